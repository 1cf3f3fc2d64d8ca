"""The bundled example scenarios give the recommendation the README explains."""

from __future__ import annotations

from html import escape as html_escape

import pytest
from helpers import ExampleResult, page_text

from llmplan.results import Result


def _per_useful(result: Result, name: str) -> float:
    value = result.deployments[name].cost.usd_per_useful_result
    assert value is not None
    return value


def test_support_assistant_the_small_gpu_keeps_the_restricted_work_and_the_api_chats(
        example_result: ExampleResult) -> None:
    # one L40S with FP8 Llama-3.1-8B cannot carry all 12 req/s: its mixed steps pay the
    # prompts' GEMMs and the decodes' KV reads one after the other, and the queue grows. The
    # hybrid keeps classify and redact (restricted) on it and sends chat to the API.
    result = example_result("support-assistant", False)
    deps = result.deployments
    assert result.recommendation.deployment == "hybrid"
    assert not deps["api"].feasible
    assert "restricted data" in deps["api"].infeasible_because[0]
    assert not deps["gpu-small"].feasible
    assert deps["gpu-small"].infeasible_because[0].startswith("misses the SLO")
    assert deps["hybrid"].feasible and deps["gpu-fleet"].feasible
    assert _per_useful(result, "hybrid") < _per_useful(result, "gpu-fleet")
    hybrid = deps["hybrid"].hybrid
    assert hybrid is not None and hybrid.restricted_served_by_cloud == 0
    assert hybrid.served_local == hybrid.restricted_requests     # the L40S: restricted only
    # the headline names what decides it: the cheaper API is excluded by the data rule,
    # the fleet is dearer per useful result at lower (assumed) quality on chat
    drivers = [d.text for d in result.recommendation.drivers]
    assert drivers[0].startswith("api would cost less") and "restricted data" in drivers[0]
    quality = next(d for d in result.recommendation.drivers
                   if d.text.startswith("useful results"))
    assert quality.basis.startswith("assumption")


def test_bulk_extraction_owned_gpus_win(example_result: ExampleResult) -> None:
    result = example_result("bulk-extraction", False)
    ranking = result.recommendation.ranking
    assert ranking[0] == "owned-h100"
    assert ranking.index("owned-h100") < ranking.index("rented-h100")
    assert ranking.index("owned-h100") < ranking.index("mini") < ranking.index("flagship")
    be = next(r for r in result.break_even if r.local == "owned-h100" and r.cloud == "mini")
    # the simulated volume is past the break-even volume
    assert be.break_even_requests_per_month is not None
    assert be.break_even_requests_per_month < be.simulated_requests_per_month


def test_bursty_agent_cloud_wins(example_result: ExampleResult) -> None:
    result = example_result("agent-workflow", False)
    assert result.recommendation.deployment == "api"
    deps = result.deployments
    assert deps["gpu"].cost.monthly_usd > 5 * deps["api"].cost.monthly_usd
    idle = [d for d in result.recommendation.drivers if "of what it could" in d.text]
    assert idle and idle[0].text.startswith("gpu's one GPU serves") and idle[0].basis == "simulated"


@pytest.mark.parametrize("name", ["regulated-records"])
def test_regulated_workload_cloud_infeasible(name: str,
                                             example_result: ExampleResult) -> None:
    result = example_result(name, False)
    deps = result.deployments
    assert result.recommendation.deployment == "on-prem"
    reasons = " ".join(deps["api"].infeasible_because)
    assert "restricted data" in reasons and "offline" in reasons
    texts = [d.text for d in result.recommendation.drivers]
    assert texts[0] == "on-prem is the only candidate that meets every constraint and the SLO"
    # sized for its SLO, the fleet is far from full batches: worth knowing before buying
    assert len(texts) == 2 and texts[1].startswith("on-prem's 2 GPUs serve")


def test_retail_assistant_small_fleet_plus_api_wins(example_result: ExampleResult) -> None:
    # evenings at four times the mean: one TP2 replica cannot carry the peak alone, three
    # can (eight H100s idle most of the night would be dearer); the hybrid keeps the
    # restricted order look-ups local and spills product questions at the peak
    result = example_result("retail-assistant", False)
    deps = result.deployments
    assert result.recommendation.deployment == "hybrid"
    assert not deps["gpu-base"].feasible and not deps["api"].feasible
    assert "restricted data" in deps["api"].infeasible_because[0]
    assert deps["gpu-peak"].feasible
    assert _per_useful(result, "hybrid") < _per_useful(result, "gpu-peak")
    hybrid = deps["hybrid"].hybrid
    assert hybrid is not None and hybrid.restricted_served_by_cloud == 0
    assert hybrid.served_cloud > 0.1 * (hybrid.served_cloud + hybrid.served_local)
    # what decides it: the cheapest option may not see customer records, and the peak
    # fleet's GPUs cost twice the hybrid's while idling much of the day
    texts = [d.text for d in result.recommendation.drivers]
    assert texts[0].startswith("api would cost less") and "restricted data" in texts[0]
    assert texts[1].startswith("monthly cost: $") and "GPUs and servers $" in texts[1]
    assert any(t.startswith("gpu-peak's 6 GPUs serve") for t in texts)


def test_coding_agent_gpus_win_only_with_their_prefix_cache(
        example_result: ExampleResult) -> None:
    # agent loops resend an 8k system prompt and a growing history every step: two H100s
    # carry it while vLLM's prefix cache answers most prompt tokens, not without it
    result = example_result("coding-agent", True)
    deps = result.deployments
    assert result.recommendation.deployment == "gpu"
    local = deps["gpu"].local
    assert local is not None and local.prefix_cache is not None
    assert local.prefix_cache.hit_rate_tokens > 0.7
    sessions = deps["gpu"].sessions
    assert sessions is not None and sessions.completed_sessions > 0.95 * sessions.sessions
    # later turns carry longer histories
    turns = sessions.by_turn
    assert turns[-1].prompt_tokens_mean > 2 * turns[0].prompt_tokens_mean
    # the API bills most of those tokens at its cached-input price
    cloud = deps["api"].cloud
    assert cloud is not None and cloud.cached_input_tokens is not None
    assert cloud.cached_input_tokens > 0.5 * cloud.input_tokens
    assert result.planning is not None
    flip = next(c for c in result.planning.sensitivity
                if c.change == "local prefix caching off")
    assert flip.winner == "api"


def test_bursty_agent_what_ifs_vary_quality_and_fill_the_gpu(
        example_result: ExampleResult) -> None:
    # the GPU idles at this volume; the what-ifs ask whether it would win if it were used
    # as far as the SLO allows, or if the quality figures typed into the scenario were off
    result = example_result("agent-workflow", True)
    assert result.planning is not None
    cases = {c.change: c for c in result.planning.sensitivity}
    assert "the task quality gaps were halved" in cases
    assert "the task quality figures were left out (every answer useful)" in cases
    fill = next(c for c in cases.values() if "the most gpu serves within the SLO" in c.change)
    most = result.planning.deployments["gpu"].max_sustainable_requests_per_s
    offered = result.deployments["gpu"].throughput.offered_requests_per_s
    assert most is not None
    factor = float(fill.change.split()[1].removeprefix("x"))
    # the volume factor is the rate search's over the costed (long-run) rate, rounded down
    # to two significant digits (the simulated stream arrives lighter than that rate)
    long_run = result.scenario.long_run_requests_per_s or offered
    assert 0.9 * most / long_run <= factor <= most / long_run
    assert fill.winner == "api"
    # the report says what the answer survived as well as what would change it
    from llmplan.report.page import render

    held = [c.change for c in cases.values() if c.winner == "api"]
    assert held and "<p>It holds if " + html_escape("; ".join(held)) + ".</p>" in render(result)


def test_the_readmes_stack_costs_are_the_examples_monthly_costs(
        example_result: ExampleResult) -> None:
    """README's "What each stack costs" table quotes each example's monthly cost: it must be
    what the example gives today (the deployment `stack` builds: the recommendation, or
    the one `--deployment` names)."""
    import re

    from helpers import ROOT

    text = (ROOT / "README.md").read_text()
    table = text.split("**What each stack costs, per the plan**", 1)[1].split("\n\n", 2)[1]
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    assert len(rows) >= 6
    for cells in rows:
        first, cost = cells[0].strip(), cells[-1].strip()
        example = first.split()[0]
        named = re.search(r"--deployment ([\w-]+)", first)
        result = example_result(example, False)
        deployment = named.group(1) if named else result.recommendation.deployment
        assert deployment is not None
        monthly = result.deployments[deployment].cost.monthly_usd
        assert cost == f"{monthly:,.0f}", (example, deployment, cost, monthly)


def test_the_slo_is_stated_beside_the_figures_it_judges(example_result: ExampleResult) -> None:
    """The terminal's summary and the report say which bounds goodput counts against."""
    from llmplan.render import summary_table
    from llmplan.report.page import render

    result = example_result("support-assistant", False)
    words = "TTFT <= 1,500 ms, TPOT <= 80 ms for each request; met when 95% of requests"
    assert result.scenario.slo is not None and result.scenario.slo.startswith(words)
    table = summary_table(result, frozenset({"ttft_ms", "tpot_ms"}))
    assert any(f"SLO: {words}" in (layout.caption or "") for layout in table.layouts)
    page = render(result)
    assert "SLO: TTFT &lt;= 1,500 ms, TPOT &lt;= 80 ms" in page and "TPOT p50 ms" in page


def test_the_report_lists_every_cost_item_with_its_basis(
        example_result: ExampleResult) -> None:
    """The cost chart draws what costs money; the report also lists every item, the $0
    ones with the default that made them $0, so a lopsided default is visible."""
    import html

    from llmplan.report.cost_items import item_label
    from llmplan.report.page import render

    result = example_result("support-assistant", False)
    page = page_text(render(result))
    section = page.split("<h2>Cost items</h2>", 1)[1]
    for name, dep in result.deployments.items():
        assert f"<summary>{name}: ${dep.cost.monthly_usd:,.0f} a month" in section
        for line in dep.cost.items:
            assert html.escape(line.basis) in section and item_label(line.item) in section
    free = [line for dep in result.deployments.values() for line in dep.cost.items
            if line.usd_per_month == 0]
    assert free and any("llmplan's default" in line.basis for line in free)


def test_the_report_prints_the_break_even_volumes(example_result: ExampleResult) -> None:
    """The chart marks them; the table gives the numbers (and which side never loses)."""
    from llmplan.report.page import render

    result = example_result("support-assistant", False)
    section = page_text(render(result)).split("<h2>Break-even</h2>", 1)[1]
    for row in result.break_even:
        assert row.break_even_requests_per_month is not None
        cells = (f"<td>{row.local}</td><td>{row.cloud}</td>"
                 f"<td>{row.break_even_requests_per_month:,.0f}</td>")
        assert cells in section


def test_the_reports_decision_table_carries_the_seed_guides_criteria(
        example_result: ExampleResult) -> None:
    """Each of the seven questions says when the guide has local fit and when cloud."""
    import html

    from llmplan.decide.table import QUESTIONS, SEED_FIT
    from llmplan.report.page import render

    section = page_text(render(example_result("support-assistant", False))).split(
        "<h2>Decision table</h2>", 1)[1].split("<h2>", 1)[0]
    assert set(SEED_FIT) == set(QUESTIONS)
    for local, cloud in SEED_FIT.values():
        assert html.escape(f"local: {local}; cloud: {cloud}") in section


def test_a_hybrids_fallback_that_cannot_carry_the_traffic_says_so(
        example_result: ExampleResult) -> None:
    """support-assistant's hybrid falls back to its L40S, which alone misses the SLO on the
    whole traffic: the outage line says so rather than imply the fallback carries it."""
    result = example_result("support-assistant", False)
    small = result.deployments["gpu-small"]
    assert not small.slo.met
    outage = next(c for c in result.checklist if "outages" in c.item)
    assert "hybrid falls back to gpu-small, which alone on the whole traffic meets " \
           f"{small.slo.goodput_fraction:.0%} of it within the SLO" in outage.evidence


def test_the_report_defines_its_terms_and_gives_every_way_a_request_went_unanswered(
        example_result: ExampleResult) -> None:
    """A tech lead meets TTFT, goodput and the checklist's statuses without a definition
    otherwise; the table's 'not answered' cell gives every way, as the terminal does."""
    import html

    from llmplan.render import not_served
    from llmplan.report.glossary import GLOSSARY
    from llmplan.report.page import render

    result = example_result("support-assistant", False)
    page = page_text(render(result, risks=["cloud model x (used by hybrid): shut down soon"]))
    terms = page.split("<h2 id='terms'>Terms</h2>", 1)[1]
    assert "<a href='#terms'>at the end</a>" in page     # pointed to from the top
    for term, _ in GLOSSARY:
        assert f"<dt><b>{html.escape(term)}</b></dt>" in terms
    for word in ("TTFT", "TPOT", "goodput", "useful result", "assumed", "provisioned"):
        assert word in terms
    assert "<b>Risk to the recommendation:</b> cloud model x (used by hybrid)" in page
    for name, dep in result.deployments.items():
        for count, words in dep.requests.not_answered():
            assert html.escape(f"{count:,} {words}") in page, name
    assert not_served(result)                      # the example leaves some unanswered
    # the seed's hybrid pattern, its two lists by task kind
    routing = page.split("<h2>Hybrid routing</h2>", 1)[1].split("<h2>", 1)[0]
    for kind in ("classification", "redaction", "extraction", "drafting", "reasoning",
                 "tool use", "writing", "multimodal"):
        assert kind in routing


def test_a_cost_item_has_one_colour_in_every_report(example_result: ExampleResult) -> None:
    """Two reports side by side: "GPUs and servers" must not be red in one, green in the
    other; the totals' text labels are not a legend entry."""
    from llmplan.report.cost_charts import cost_breakdown

    colours: dict[str, set[tuple[str, str]]] = {}
    for example in ("support-assistant", "retail-assistant"):
        fig = cost_breakdown(example_result(example, False))
        for trace in fig.data:
            if trace.type == "bar":
                # its colour and fill pattern (a smaller item repeats a colour, hatched)
                colours.setdefault(trace.name, set()).add(
                    (trace.marker.color, trace.marker.pattern.shape))
            else:
                assert trace.showlegend is False
    assert len(colours) > 3 and all(len(c) == 1 for c in colours.values())
    firsts = [next(iter(c)) for c in colours.values()]
    assert len(set(firsts)) == len(firsts)          # and no two items share one


def test_a_candidate_that_meets_the_slo_only_on_average_is_said_to(
        example_result: ExampleResult) -> None:
    """reasoning-model's Bedrock candidate meets the SLO over the run at the costed rate, yet
    planning finds it sustains less on the busiest stretch: the answer says so, rather than
    show a feasible candidate whose top rate sits below its own traffic."""
    result = example_result("reasoning-model", planning=True)
    assert result.planning is not None
    costed = result.scenario.long_run_requests_per_s
    assert costed is not None
    short = [name for name, p in result.planning.deployments.items()
             if p.max_sustainable_requests_per_s is not None
             and p.max_sustainable_requests_per_s < costed
             and result.deployments[name].slo.met]
    assert short
    for name in short:
        # a fleet's bursts, or (Bedrock's case) an API's limits, which a quota would lift
        assert any((note.startswith(f"{name} meets the SLO over the run") and
                   "busiest stretch" in note)
                   or (note.startswith(f"{name}: ") and "limits to at least" in note)
                   for note in result.planning.notes), name
