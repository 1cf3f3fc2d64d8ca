"""Planning honours a cloud API's rate limits: the rate it calls sustainable is one the
provider's limits let through for as long as it lasts, and a change of volume is
re-checked against them (sim/ratelimit.py's accounting, the simulator's own)."""

from __future__ import annotations

import pytest
from helpers import scenario_from

from llmplan.decide.decision import decide
from llmplan.decide.planner import Planner, Point
from llmplan.decide.planning import plan
from llmplan.pipeline import evaluate
from llmplan.sim.run import simulate_scenario

# regular arrivals of identical calls: 1,000 prompt + 100 output tokens, charged 1,100
PAPER = """
    seed: 1
    duration: 600
    traffic: {kind: constant, rate_per_s: 5}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 1000},
             output_tokens: {kind: fixed, tokens: 100}}]
    slo: {ttft_ms: 5000, e2e_ms: 20000, min_goodput_fraction: 0.95}
    deployments:
      api: {kind: cloud, model: gpt-4o-mini,
            limits: {requests_per_min: __RPM__, tokens_per_min: __TPM__}}
"""


@pytest.mark.parametrize(("rpm", "tpm", "sustained_per_s"), [
    (600, 396_000, 6.0),        # 10 requests/s; 396,000 / 60 / 1,100 = 6 calls/s
    (240, 3_960_000, 4.0),      # 4 requests/s; 60 calls/s by tokens
])
def test_max_sustainable_rate_is_the_tightest_limit(rpm: int, tpm: int,
                                                    sustained_per_s: float) -> None:
    loaded = scenario_from(PAPER.replace("__RPM__", str(rpm)).replace("__TPM__", str(tpm)))
    planned = plan(simulate_scenario(loaded), loaded, jobs=1)
    rate = planned.deployments["api"].max_sustainable_requests_per_s
    assert rate == pytest.approx(sustained_per_s, rel=1e-9)
    # below the traffic's 5/s, a note says so, in the same mean rate the table shows
    notes = [n for n in planned.notes if n.startswith("api: gpt-4o-mini's limits")]
    assert len(notes) == (sustained_per_s < 5.0)
    assert all(f"at most {rate:,.2f}/s on average" in note for note in notes)
    # and the limit that would carry the traffic's 5/s: 240 requests/min x 5 / 4
    assert all("raise the account's tier or its limits to at least 300 requests/min"
               in note for note in notes)
    # the load curve's runs past the limit see the 429s that traffic would keep getting
    over = [p for p in planned.deployments["api"].load_curve
            if p.requests_per_s > 1.2 * sustained_per_s]
    assert over and all((p.goodput_fraction or 0.0) < 0.95 for p in over)


def test_over_limit_note_asks_for_every_limit_the_traffic_passes() -> None:
    # 5 calls/s of 1,100 tokens: 240 requests/min carry 4/s, 297,000 tokens/min 4.5/s; both
    # must rise, to 5 x 60 = 300 requests/min and 297,000 x 5 / 4.5 = 330,000 tokens/min
    loaded = scenario_from(PAPER.replace("__RPM__", "240").replace("__TPM__", "297000"))
    planned = plan(simulate_scenario(loaded), loaded, jobs=1)
    note = next(n for n in planned.notes if n.startswith("api: gpt-4o-mini's limits"))
    assert "(240 requests/min) sustain 4.00 requests/s" in note
    assert note.endswith("raise the account's tier or its limits to at least 300 "
                         "requests/min and 330,000 tokens/min (limits.requests_per_min, "
                         "limits.tokens_per_min)")


# a cheap API whose tokens/min hold 1x (330,000 a minute) but not 2x (660,000, 1.16x its
# 570,000), and a dearer one with room to spare
TWO_APIS = """
    seed: 5
    duration: 1200
    traffic: {kind: poisson, rate_per_s: __RATE__}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 1000},
             output_tokens: {kind: fixed, tokens: 100}}]
    slo: {ttft_ms: 5000, e2e_ms: 20000, min_goodput_fraction: 0.95}
    deployments:
      cheap: {kind: cloud, model: gpt-4o-mini,
              limits: {requests_per_min: 100000, tokens_per_min: 570000}}
      dear: {kind: cloud, model: gpt-4o,
             limits: {requests_per_min: 100000, tokens_per_min: 10000000}}
"""


def test_volume_x2_agrees_with_a_simulation_at_twice_the_rate() -> None:
    loaded = scenario_from(TWO_APIS.replace("__RATE__", "5"))
    simulation = simulate_scenario(loaded)
    assert decide(simulation, loaded).recommendation.deployment == "cheap"
    planned = plan(simulation, loaded, jobs=1, window_requests=400)
    x2 = next(case for case in planned.sensitivity
              if case.change == "volume x2 (fleets as simulated)")
    doubled = scenario_from(TWO_APIS.replace("__RATE__", "10"))
    direct = simulate_scenario(doubled)
    assert not direct.deployments["cheap"].slo.met and direct.deployments["dear"].slo.met
    assert x2.winner == decide(direct, doubled).recommendation.deployment == "dear"
    planner = Planner(loaded, simulation, window_requests=400)
    for name in ("cheap", "dear"):
        assert planner.simulate(Point(name, factor=2.0)).slo.met == \
            direct.deployments[name].slo.met


# a hybrid that sends every request to its API, a GPU catching what the API refuses: the
# API's tokens/min hold 1x (330,000 a minute against 570,000) but not 2x (660,000: 8.64 of
# 10 calls/s pass). Regular arrivals, so the busiest stretch runs at the day's rate. A
# 400-request stretch sped up 2x lasts 40 s: an API starting it with a full minute's
# allowance (518 calls) would pass all of it.
HYBRID_OVER_LIMIT = """
    seed: 5
    duration: 1200
    traffic: {kind: constant, rate_per_s: __RATE__}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 1000},
             output_tokens: {kind: fixed, tokens: 100}}]
    slo: {ttft_ms: 5000, e2e_ms: 20000, min_goodput_fraction: 0.95}
    deployments:
      gpu: {gpu: L4, model: Llama-3.1-8B}
      api: {kind: cloud, model: gpt-4o-mini,
            limits: {requests_per_min: 100000, tokens_per_min: 570000},
            retry: {max_retries: 0}}
      mixed: {kind: hybrid, local: gpu, cloud: api, routes: [{to: cloud}]}
"""


def test_a_hybrids_api_limits_start_as_what_its_router_sends_leaves_them() -> None:
    loaded = scenario_from(HYBRID_OVER_LIMIT.replace("__RATE__", "5"))
    simulation = simulate_scenario(loaded)
    planner = Planner(loaded, simulation, window_requests=400)
    doubled = scenario_from(HYBRID_OVER_LIMIT.replace("__RATE__", "10"))
    direct = simulate_scenario(doubled).deployments["mixed"]
    at_x2 = planner.simulate(Point("mixed", factor=2.0))
    # the whole day at twice the rate: 12,000 calls, of which the API passes 9,500
    # tokens/s (8.64 calls/s) from the start, as such a day kept up leaves its limits (no
    # first minute's allowance: sim/run.py run_steady): 1,636 refused, moved to the GPU
    assert direct.cloud is not None and direct.hybrid is not None
    passed = 570_000 / 60 / 1100 * 1200
    assert direct.hybrid.moved_between_paths == pytest.approx(12_000 - passed, abs=5)
    # the stretch is part of such a day past its first minute: 13.6% refused
    # (1 - 8.64 / 10), not none on a minute's allowance
    assert at_x2.cloud is not None and at_x2.hybrid is not None
    assert at_x2.hybrid.moved_between_paths / at_x2.requests.total == pytest.approx(
        1 - 570_000 / 60 / 1100 / 10, abs=0.01)
    # at 1x the API's limits hold: nothing to prime, the same run as before
    at_x1 = planner.simulate(Point("mixed", factor=1.0))
    assert at_x1.cloud is not None and at_x1.cloud.throttle_events == 0


# every call shares one 50,000-token system prompt the provider holds (the run is a stretch
# of a long day: the call a second before the window left it cached): 500 uncached tokens
# a second are 30,000 a minute, half the input limit; the whole prompt (50,500 a call)
# would be 50 times it
CACHED_PREFIX = """
    seed: 3
    duration: 120
    traffic: {kind: constant, rate_per_s: 1}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 500},
             output_tokens: {kind: fixed, tokens: 100},
             shared_prefix: {groups: 1, tokens: {kind: fixed, tokens: 50000}}}]
    slo: {ttft_ms: 5000, e2e_ms: 20000, min_goodput_fraction: 0.95}
    deployments:
      api: {kind: cloud, model: claude-sonnet-4.6,
            limits: {requests_per_min: 6000, tokens_per_min: 60000,
                     output_tokens_per_min: 1000000}}
"""


def test_cache_reads_the_run_simulates_leave_anthropics_input_limit_alone() -> None:
    loaded = scenario_from(CACHED_PREFIX)
    simulation = simulate_scenario(loaded)
    cloud = simulation.deployments["api"].cloud
    assert cloud is not None and cloud.cached_input_tokens == 120 * 50_000
    assert cloud.cache_write_tokens == 0
    assert cloud.throttled_requests == 0 and simulation.deployments["api"].slo.met
    # planning counts the same: per call 500 uncached tokens
    uncached = 500
    rate = plan(simulation, loaded, jobs=1).deployments["api"].max_sustainable_requests_per_s
    assert rate == pytest.approx(60_000 / 60 / uncached, rel=0.02)


def test_an_apis_binding_limit_is_shown_against_the_months_rate() -> None:
    """Without planning too: the limit that binds at the traffic's token mix, the rate it
    admits for ever, and how much of it the month's mean rate (5/s) takes."""
    from llmplan.pipeline import evaluate
    from llmplan.render import api_limits

    loaded = scenario_from(PAPER.replace("__RPM__", "600").replace("__TPM__", "396000"))
    result = evaluate(loaded)
    cloud = result.deployments["api"].cloud
    assert cloud is not None and cloud.limit == "396,000 tokens/min"
    assert cloud.limit_sustains_requests_per_s == pytest.approx(6.0, rel=1e-9)
    assert api_limits(result) == ("api (396,000 tokens/min) sustain 6.00 req/s at this token "
                                  "mix, 83% of it at the month's mean rate")
    scale = next(r for r in result.decision_table if r.question == "scale").answers["api"]
    assert "limits (396,000 tokens/min) sustain 6.00 req/s" in scale
    # past the limit, the mean rate as a multiple of what it sustains (5 / 2.5 = 2.00x),
    # not "200% of it"
    over = evaluate(scenario_from(PAPER.replace("__RPM__", "600")
                                  .replace("__TPM__", "165000")))
    assert api_limits(over) == ("api (165,000 tokens/min) sustain 2.50 req/s at this token "
                                "mix; the month's mean rate is 2.00x that (over the limits)")
    # without a long-run rate (a trace's), the run's own mean, and said to be the run's
    from llmplan.decide.table import limit_words

    words = limit_words(result.deployments["api"], None)
    assert words is not None and words.endswith("of it at the run's mean rate")


def test_an_api_over_its_limits_is_excluded_naming_them_and_the_quota_to_ask_for() -> None:
    # 5 calls/s of 1,100 tokens: 240 requests/min let 4/s through (297,000 tokens/min
    # 4.5/s); the exclusion says so, and asks for 300 requests/min and 330,000 tokens/min,
    # without planning as with it
    loaded = scenario_from(PAPER.replace("__RPM__", "240").replace("__TPM__", "297000"))
    result = evaluate(loaded)
    api = result.deployments["api"]
    assert api.cloud is not None and api.cloud.throttled_requests > 0
    (reason,) = api.infeasible_because
    assert reason.startswith("misses the SLO: ")
    assert ("; its limits (240 requests/min) let 4.00 req/s through at this token mix, under "
            f"the 5.00/s sent ({api.cloud.throttled_requests:,} requests met a 429); to carry "
            "it, raise them to at least 300 requests/min and 330,000 tokens/min "
            "(limits.requests_per_min, limits.tokens_per_min)") in reason
    # within its limits, an API that misses the SLO misses it for its latency alone
    roomy = evaluate(scenario_from(PAPER.replace("__RPM__", "600").replace(
        "__TPM__", "3960000").replace("ttft_ms: 5000", "ttft_ms: 10")))
    (reason,) = roomy.deployments["api"].infeasible_because
    assert reason.startswith("misses the SLO: ") and "its limits" not in reason


def test_limits_count_the_hidden_reasoning_a_plain_task_gets() -> None:
    """GPT-5 cannot answer without reasoning: a task asking for none is served at its lowest
    effort, minimal, whose 128 hidden tokens (the catalog's estimate) each call is charged
    with the rest, so its tokens/min carry 294,720 / 60 / (1,000 + 100 + 128) = 4 calls/s,
    not the 4.47 the visible 1,100 tokens would, the same as when the task gives those 128
    reasoning_tokens itself."""
    text = PAPER.replace("gpt-4o-mini", "gpt-5").replace("__RPM__", "100000") \
        .replace("__TPM__", "294720")
    loaded = scenario_from(text)
    assert loaded.catalog.cloud_models["gpt-5"].plain_reasoning_tokens == 128
    rate = plan(simulate_scenario(loaded), loaded, jobs=1) \
        .deployments["api"].max_sustainable_requests_per_s
    assert rate == pytest.approx(294_720 / 60 / (1000 + 100 + 128), rel=1e-9)
    asked = scenario_from(text.replace(
        "output_tokens: {kind: fixed, tokens: 100}}",
        "output_tokens: {kind: fixed, tokens: 100},\n"
        "             reasoning_tokens: {kind: fixed, tokens: 128}}"))
    assert plan(simulate_scenario(asked), asked, jobs=1) \
        .deployments["api"].max_sustainable_requests_per_s == pytest.approx(rate, rel=1e-9)
