"""What the terminal notes under its table reaches the report too: a tech lead who reads
only report.html learns that a hybrid ran on one side only, or that the stack would build
a deployment otherwise than it was simulated."""

from __future__ import annotations

from helpers import page_text, scenario_from

from llmplan.render import one_sided
from llmplan.report.page import render
from llmplan.results import Result

# a hybrid whose routes never reach its API: it ran as its fleet alone
ONE_SIDED = """
    seed: 1
    duration: 120
    traffic: {kind: poisson, rate_per_s: 0.5}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 200},
             output_tokens: {kind: fixed, tokens: 50}}]
    deployments:
      fleet: {gpu: L4, model: Llama-3.1-8B}
      api: {kind: cloud, model: gpt-4o-mini}
      both: {kind: hybrid, local: fleet, cloud: api, spillover_wait_s: 600}
"""


def test_the_terminals_notes_are_in_the_report() -> None:
    from llmplan.pipeline import evaluate

    result: Result = evaluate(scenario_from(ONE_SIDED))
    lines = one_sided(result)
    assert lines and lines[0].startswith("both answered every request on fleet")
    page = render(result, notes=[*lines, "a <deployment> the stack builds otherwise"])
    assert "<b>Notes</b>" in page
    assert "both answered every request on fleet" in page
    # escaped, as every other text of the page
    assert "a &lt;deployment&gt; the stack builds otherwise" in page
    assert "<b>Notes</b>" not in render(result)


def test_the_routing_table_never_rounds_unanswered_requests_away() -> None:
    """A task whose fleet answered 999 of 1,000 requests (one left unanswered) reads
    99.9%, never 100%: the table beside it counts the unanswered."""
    from llmplan.pipeline import evaluate
    from llmplan.report.sections import hybrid_routing

    result: Result = evaluate(scenario_from(ONE_SIDED), planning=False)
    both = result.deployments["both"]
    [(task, outcome)] = both.per_task.items()
    shown = outcome.model_copy(update={"requests": 1000, "completed": 999, "served_cloud": 0})
    page = hybrid_routing({"both": both.model_copy(update={"per_task": {task: shown}})})
    assert "999 (99.9%)" in page and "(100%)" not in page


def test_a_hybrids_scale_cell_says_its_figure_is_its_fleets_full_batches() -> None:
    """Beside a fleet's "X of Y req/s it sustains within the SLO", a hybrid built on the
    same fleet reads its fleet's load against full batches: said as such, not as what
    the hybrid serves."""
    from llmplan.pipeline import evaluate

    result: Result = evaluate(scenario_from(ONE_SIDED), planning=False)
    scale = next(r.answers for r in result.decision_table if r.question == "scale")
    assert scale["both"].startswith("its fleet ")
    assert "req/s it can serve with full batches" in scale["both"]
    assert not scale["fleet"].startswith("its fleet ")


# a GPU and an API that may not see the task's data
RESTRICTED = """
    seed: 1
    duration: 120
    traffic: {kind: constant, rate_per_s: 1}
    tasks: [{name: notes, sensitivity: restricted,
             prompt_tokens: {kind: fixed, tokens: 500},
             output_tokens: {kind: fixed, tokens: 100}}]
    deployments:
      gpu: {gpu: L4, model: Llama-3.1-8B}
      api: {kind: cloud, model: gpt-4o-mini,
            limits: {requests_per_min: 100000, tokens_per_min: 100000000}}
"""


def test_a_break_even_with_an_excluded_api_says_so_in_table_and_chart() -> None:
    """The break-even table and chart show where the GPU's and the API's cost lines cross;
    with the API excluded for restricted data, both say so, or a reader takes the cheaper
    side below the crossing for an option."""
    import html

    from llmplan.pipeline import evaluate
    from llmplan.report.cost_charts import break_even_chart

    result: Result = evaluate(scenario_from(RESTRICTED), planning=False)
    (row,) = result.break_even
    assert row.break_even_requests_per_month and row.excluded
    page = page_text(render(result))
    table = page[page.index("<h2>Break-even</h2>"):]
    table = table[:table.index("</table>")]
    assert "<th>excluded by the decision</th>" in table
    assert f"<td>{html.escape(row.excluded)}</td>" in table
    # per useful result too, with the shares that move it (here every answer useful)
    assert "per useful result, the ranking&#x27;s measure" in table
    useful = row.break_even_useful_requests_per_month
    assert useful == row.break_even_requests_per_month
    # (past what one L4 serves, as the next test has it)
    assert f"<td>{useful:,.0f} (100%, 100%); past the " in table
    assert "restricted data (notes)" in row.excluded
    (marker,) = [t for t in break_even_chart(result).data
                 if (t.name or "").startswith("break-even")]
    assert marker.name.startswith("break-even gpu / api")
    assert marker.name.endswith(" (api excluded)")
    assert marker.marker.symbol == "x-open"


def test_a_break_even_per_useful_result_past_the_fleet_says_it_must_grow() -> None:
    """The terminal's break-even line says when the volume where the two cost the same per
    useful result is past what the fleet serves; the report's cell says it too, from the
    same figures, and says nothing of it when the fleet serves that volume."""
    from llmplan.pipeline import evaluate
    from llmplan.report.break_even_words import per_useful_words

    # the fleet's answers half as often right: the per-useful crossing moves out, past
    # what one L4 serves
    text = RESTRICTED.replace("sensitivity: restricted,", "quality: {gpu: 0.5, api: 1.0},")
    result: Result = evaluate(scenario_from(text), planning=False)
    (row,) = result.break_even
    volume, serves = row.break_even_useful_requests_per_month, \
        row.local_capacity_requests_per_month
    assert volume is not None and serves is not None and volume > serves
    said = f"past the {serves / 1e6:,.3g} M gpu serves as simulated: it must grow"
    assert f"({said})" in row.line()
    table = page_text(render(result))
    table = table[table.index("<h2>Break-even</h2>"):]
    assert f"<td>{volume:,.0f} (50%, 100%); {said}</td>" in table[:table.index("</table>")]
    # a fleet that serves the volume: the cell gives the figure alone, as the line does
    roomy = row.model_copy(update={"local_capacity_requests_per_month": volume * 1.01})
    assert per_useful_words(roomy) == f"{volume:,.0f} (50%, 100%)"
    assert "must grow" not in roomy.per_useful_words()
