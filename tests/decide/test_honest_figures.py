"""Figures a tech lead reads are what the scenario and the run support: the checklist and
latency sources follow what the scenario contains, clients give up after a default queue
timeout and the summary says so, the quality figures are varied in the what-ifs."""

from __future__ import annotations

import pytest
from helpers import scenario_from

from llmplan.decide.what_if import quality_variants
from llmplan.pipeline import evaluate
from llmplan.render import not_served
from llmplan.results.decision import Result
from llmplan.scenario import LoadedScenario
from llmplan.sim.run import simulate_scenario

BASE = """
    seed: 2
    duration: 600
    traffic: {{kind: poisson, rate_per_s: {rate}}}
    tasks:
      - name: chat
        prompt_tokens: {{kind: fixed, tokens: 800}}
        output_tokens: {{kind: fixed, tokens: 200}}
        sensitivity: {sensitivity}
        quality: {quality}
    slo: {{ttft_ms: 2000}}
    deployments:
      gpu:
        gpu: L4
        model: Llama-3.1-8B
      api:
        kind: cloud
        model: gpt-4o-mini
{extra}
"""


def _loaded(rate: float = 1.0, sensitivity: str = "internal", quality: str = "{}",
            extra: str = "") -> LoadedScenario:
    return scenario_from(BASE.format(rate=rate, sensitivity=sensitivity, quality=quality,
                                     extra=extra))


def _check(result: Result, item: str) -> str:
    return next(c.evidence for c in result.checklist if c.item.startswith(item))


def test_checklist_and_latency_sources_follow_the_scenario() -> None:
    result = evaluate(_loaded(sensitivity="restricted"))
    data = _check(result, "How does it handle private")
    assert "hybrid" not in data                      # there is no hybrid router here
    assert "api would send them to a provider" in data
    # gpt-4o-mini's latency was measured by a public benchmark: the catalog's, not assumed
    assert result.deployments["api"].latency_from == \
        "catalog: measured (kickllm.com, 2026-04-30)"
    assert result.deployments["gpu"].latency_from == "defaults: roofline step model"
    assert "from the catalog, for api (kickllm.com, 2026-04-30)" in \
        _check(result, "What is the real latency")
    # given latency figures are called given, and a hybrid router is named when there is one
    given = evaluate(_loaded(sensitivity="restricted", extra="""
        latency: {network_rtt_ms: 20, ttft_ms: {median: 300, p95: 900}}
      both: {kind: hybrid, local: gpu, cloud: api}
""".replace("\n        latency", "\n        latency", 1)))
    # the scenario gives the first-token time; the output speed is still the catalog's
    assert given.deployments["api"].latency_from == (
        "given: provider latency in the scenario; catalog: measured (kickllm.com, "
        "2026-04-30) for its output speed")
    assert "the hybrid router of both keeps them on owned hardware" in \
        _check(given, "How does it handle private")


def test_clients_give_up_after_the_default_queue_timeout_and_the_summary_says_so() -> None:
    # an L4 offered about three times what it can serve: without a timeout the queue (and
    # TTFT) would grow for the whole run
    result = evaluate(_loaded(rate=8.0))
    gpu = result.deployments["gpu"]
    assert gpu.requests.timed_out > 0
    assert gpu.latency.ttft_ms.p95 is not None and gpu.latency.ttft_ms.p95 < 62_000
    line = next(x for x in not_served(result) if x.startswith("gpu "))
    assert f"{gpu.requests.timed_out:,} timed out (queue wait or API call)" in line
    # every way a request went unanswered is counted: the lost requests add up
    lost = gpu.requests.total - gpu.requests.completed
    assert line.startswith(f"gpu {lost:,} of {gpu.requests.total:,} requests")
    # so many lost that the table's latencies describe the answered ones only: said so
    assert lost >= 0.2 * gpu.requests.total
    assert line.endswith(f"its latencies are of the {gpu.requests.completed:,} answered only")


@pytest.mark.parametrize(("quality", "flips"), [
    ("{gpu: 0.6, api: 0.95}", True), ("{gpu: 0.9, api: 0.9}", False)])
def test_quality_what_ifs_recount_useful_results(quality: str, flips: bool) -> None:
    loaded = _loaded(quality=quality)
    simulation = simulate_scenario(loaded)
    variants = dict(quality_variants(simulation, loaded))
    assert bool(variants) == flips          # equal quality: nothing to vary
    if not variants:
        return
    halved = variants["the task quality gaps were halved"].deployments
    ignored = variants["the task quality figures were left out (every answer useful)"]
    for name, q in (("gpu", 0.6), ("api", 0.95)):
        dep = simulation.deployments[name]
        good = (dep.slo.goodput_fraction or 0.0) * dep.requests.total
        assert dep.useful.expected_useful_requests == pytest.approx(good * q)
        assert halved[name].useful.expected_useful_requests == pytest.approx(
            good * (q + 0.95) / 2)
        assert ignored.deployments[name].useful.expected_useful_requests == pytest.approx(good)


def test_a_share_near_none_or_all_keeps_two_significant_digits_of_its_gap() -> None:
    """14 requests of 39,606 are 0.0353%: one decimal showed a real loss as "0.0%" (and
    39,592 as "100.0%"); the share keeps two significant digits of its distance from the
    end it is near where one decimal would still read 0.0% or 100.0%."""
    from llmplan.decide.table import share_shown

    assert share_shown(14, 39_606) == "0.035%"
    assert share_shown(39_592, 39_606) == "99.965%"
    assert share_shown(3, 1_000) == "0.3%" and share_shown(999, 1_000) == "99.9%"
    assert share_shown(2_000, 39_606) == "5%"      # far from either end: whole per cent
    assert share_shown(0, 5) == "0%" and share_shown(5, 5) == "100%"


def test_a_share_of_exactly_half_a_per_cent_is_not_shown_as_none() -> None:
    """1 of 200 is 0.5%: the near-an-end test took shares below 0.005 only, and whole per
    cent rounds 0.5% to "0%" (a real loss read as none). Far out, the distance from the
    end comes from the counts: 1 - 0.9999999 in floats is 9.99999993922529e-08, which gave
    three significant digits ("99.9999900%") where 1 of 10,000,000 is 0.00001% on paper."""
    from llmplan.decide.table import share_shown

    assert share_shown(1, 200) == "0.5%" and share_shown(2, 400) == "0.5%"
    assert share_shown(199, 200) == "99.5%"
    assert share_shown(1, 10_000_000) == "0.000010%"
    assert share_shown(9_999_999, 10_000_000) == "99.999990%"
