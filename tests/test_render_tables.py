"""Every table the CLI prints keeps ids, names and headers whole at 120 and 80 columns.

A table too wide for the terminal gets a narrower layout (fewer or merged columns, long
text in a note under it), never an id cut short ("H100-SXMx4-least_outstandin…") or split
over two lines ("a100-bf" / "16"), never a header ending in an ellipsis ("fini…").
"""

from __future__ import annotations

import datetime
import re

import pytest
from helpers import scenario_from
from rich.console import Console, RenderableType

from llmplan.catalog import builtin_catalog
from llmplan.decide.sweep import PointResult, SweepResult
from llmplan.loadtests.records import RequestRecord
from llmplan.loadtests.summary import summarise_records
from llmplan.pipeline import evaluate
from llmplan.render import catalog_tables, loadtest_table, summary_table, sweep_table
from llmplan.results.decision import Result

WIDTHS = (120, 80)


def _text(renderables: list[RenderableType], width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    text = console.export_text()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width
    assert "…" not in text                       # no cell or header cut short
    return text


def _whole(text: str, word: str) -> bool:
    """`word` appears on one line, not inside a longer name (not split, not cut)."""
    pattern = re.compile(rf"(?<![\w.-]){re.escape(word)}(?![\w-]|\.\w)")
    return any(pattern.search(line) for line in text.splitlines())


SCENARIO = """
    name: wide-names
    seed: 1
    duration: 60
    traffic: {kind: poisson, rate_per_s: 0.5}
    tasks:
      - {name: chat, prompt_tokens: {kind: fixed, tokens: 200},
         output_tokens: {kind: fixed, tokens: 20}}
    deployments:
      a100-bf16-x2: {gpu: A100-80GB, model: Gemma-3-27B, replicas: 2}
      l40s-llama8b-x2: {gpu: L40S, model: Llama-3.1-8B, replicas: 2}
      api: {kind: cloud, model: gemini-2.5-flash-lite}
      hybrid-with-a-long-name: {kind: hybrid, local: a100-bf16-x2, cloud: api}
"""


@pytest.fixture(scope="module")
def result() -> Result:
    return evaluate(scenario_from(SCENARIO), planning=False)


@pytest.mark.parametrize("width", WIDTHS)
def test_simulate_summary_keeps_candidates_and_what_serves_them_whole(result: Result,
                                                                       width: int) -> None:
    text = _text([summary_table(result)], width)
    for word in [*result.deployments, "A100-80GB", "L40S", "gemini-2.5-flash-lite",
                 "candidate", "goodput", "feasible"]:
        assert _whole(text, word), (width, word, text)


LONG_NAMES = """
    slo: {%s}
    deployments:
      a-very-long-deployment-name-for-the-l40s-fleet: {gpu: L40S, model: Llama-3.1-8B,
                                                       replicas: 2}
      another-quite-long-name-for-the-a100-pair-x2: {gpu: A100-80GB, model: Gemma-3-27B,
                                                     replicas: 2}
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_a_figure_the_slo_bounds_is_never_left_out_for_width(width: int) -> None:
    scenario = scenario_from(SCENARIO.split("    deployments:", maxsplit=1)[0]
                             + LONG_NAMES % "e2e_ms: 20000")
    result = evaluate(scenario, planning=False)
    text = _text([summary_table(result, scenario.scenario.bounded_latencies())], width)
    for name in result.deployments:
        assert _whole(text, name), (width, text)
    # in a column of its own, or in words under the candidate's name
    assert "E2E" in text and "left out" not in text, (width, text)
    for dep in result.deployments.values():
        e2e_s = dep.latency.e2e_ms.p95 / 1e3  # type: ignore[operator]
        assert f"{e2e_s:.1f}" in text


def test_narrow_layouts_leave_out_the_latencies_no_slo_bounds_and_say_so() -> None:
    names = (LONG_NAMES % "ttft_ms: 2000").replace(
        "a-very-long-deployment-name-for-the-l40s-fleet", "l40s-fleet-with-a-longer-name"
    ).replace("another-quite-long-name-for-the-a100-pair-x2", "a100-pair-with-longer-name")
    scenario = scenario_from(SCENARIO.split("    deployments:", maxsplit=1)[0] + names)
    result = evaluate(scenario, planning=False)
    text = _text([summary_table(result, scenario.scenario.bounded_latencies())], 80)
    header = text[:text.index("─")]
    assert "TTFT" in header and "TPOT" not in header and "E2E" not in header
    caption = text[text.index("left out for width"):]
    assert "TPOT p50" in caption and "E2E p95" in caption and "TTFT" not in caption
    # with every latency bounded, none is left out: the figures go into words instead
    every = _text([summary_table(result, frozenset({"ttft_ms", "tpot_ms", "e2e_ms"}))], 80)
    assert "left out" not in every
    assert "TPOT p50" in every and "E2E p95" in every


def _point(gpu: str, replicas: int, **figures: object) -> PointResult:
    return PointResult(gpu=gpu, replicas=replicas, router="least_outstanding",
                       traffic_scale=1.0, name=f"{gpu}x{replicas}-least_outstanding-1",
                       **figures)  # type: ignore[arg-type]


SWEEP = SweepResult(base="b200x8-tp1-fp8", points=[
    _point("H100-SXM", 4, ttft_p95_ms=61_046.0, e2e_p95_ms=98_656.0, goodput_fraction=0.102,
           monthly_usd=13_969.0, usd_per_useful_result=0.0026),
    _point("B200", 8, ttft_p95_ms=976.0, e2e_p95_ms=136_534.0, goodput_fraction=1.0,
           slo_met=True, monthly_usd=121_488.0, usd_per_useful_result=0.0004),
    _point("L40S", 4, error="Llama-3.3-70B in fp8 does not fit on L40S with tp=1: needs 68.1 "
                            "GiB per GPU (weights 67.7), 41.0 GiB usable at "
                            "gpu_memory_utilization 0.92; expected tp >= 2 or a smaller "
                            "weights_dtype")], pareto_front=[])


@pytest.mark.parametrize("width", WIDTHS)
def test_sweep_keeps_point_names_whole_and_says_why_a_point_failed_under_the_table(
        width: int) -> None:
    text = _text([sweep_table(SWEEP)], width)
    for point in SWEEP.points:
        assert _whole(text, point.name), (width, point.name, text)
    flat = " ".join(text.split())
    assert "(1) L40Sx4-least_outstanding-1: Llama-3.3-70B in fp8 does not fit" in flat
    assert "expected tp >= 2 or a smaller weights_dtype" in flat
    row = next(line for line in text.splitlines() if "L40Sx4" in line and "(1)" in line)
    assert "error (1)" in row
    # at every width the E2E p95 the Pareto front is drawn on is in the row
    b200 = next(line for line in text.splitlines() if "B200x8" in line)
    assert "136,534" in b200, (width, b200)
    # the TTFT p95 is in its row, or the caption says it was left out for width
    assert "976" in b200 or "left out for width (in sweep.json): TTFT p95" in flat, (
        width, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_sweep_costs_per_useful_result_are_per_1k_and_tell_close_points_apart(
        width: int) -> None:
    # $0.000402 and $0.000411 per useful result both read "0.0004" with four decimals
    close = SweepResult(base="fleet", points=[
        _point("H100-SXM", 2, ttft_p95_ms=80.0, e2e_p95_ms=4_000.0, goodput_fraction=1.0,
               slo_met=True, monthly_usd=11_000.0, usd_per_useful_result=0.000402),
        _point("A100-80GB", 3, ttft_p95_ms=90.0, e2e_p95_ms=5_000.0, goodput_fraction=1.0,
               slo_met=True, monthly_usd=11_200.0, usd_per_useful_result=0.000411)],
        pareto_front=[])
    text = _text([sweep_table(close)], width)
    assert "$ per 1k" in text
    rows = {p.gpu: next(line for line in text.splitlines() if p.name in line)
            for p in close.points}
    assert rows["H100-SXM"].split()[-1] == "0.40" and rows["A100-80GB"].split()[-1] == "0.41"


@pytest.mark.parametrize("width", WIDTHS)
def test_catalog_keeps_every_id_price_and_date_whole(width: int) -> None:
    catalog = builtin_catalog()
    text = _text(list(catalog_tables(catalog, today=datetime.date(2026, 12, 1))), width)
    lines = text.splitlines()
    for key, entry in [*catalog.gpus.items(), *catalog.cloud_models.items()]:
        row = [line for line in lines if line.startswith(key + " ")]
        assert len(row) == 1, (width, key)
        assert entry.prices_as_of.isoformat() in row[0], (width, key, row[0])
    for key in catalog.models:
        assert sum(line.startswith(key + " ") for line in lines) == 1, (width, key)
    for key, gpu in catalog.gpus.items():
        row = next(line for line in lines if line.startswith(key + " "))
        assert f"{gpu.purchase_usd:,.0f}" in row.split() and \
            f"{gpu.rental_usd_per_gpu_hour:.2f}" in row.split(), (width, row)


@pytest.mark.parametrize("width", (*WIDTHS, 100))
def test_the_catalog_shows_when_each_cloud_model_retires(width: int) -> None:
    # the shutdown dates the catalog's sources give (llmplan catalog --sources)
    text = _text(list(catalog_tables(builtin_catalog(), today=datetime.date(2026, 12, 1))),
                 width)
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert rows["gpt-4o-mini"][-1] == "2027-01-14" and rows["gpt-4o"][-1] == "2027-01-14"
    assert rows["llama-3.3-70b-bedrock"][-1] == "2027-03-30"
    assert rows["o4-mini"][-1] == "retired" and rows["gemini-2.5-pro"][-1] == "retired"
    assert rows["gpt-6-luna"][-1] == "-"
    assert "retires" in text


def _decimal(cell: str) -> float:
    """A compact count read in decimal units: '128k' -> 128,000, '1.05M' -> 1,050,000."""
    return float(cell.rstrip("kM")) * {"k": 1e3, "M": 1e6}.get(cell[-1], 1.0)


def test_the_catalog_shows_context_lengths_in_decimal_thousands() -> None:
    # a reader compares with the published figure: 128,000 is "128k", not 128,000 / 1024
    catalog = builtin_catalog()
    lines = _text(list(catalog_tables(catalog, today=datetime.date(2026, 12, 1))),
                  120).splitlines()

    def row(key: str) -> list[str]:
        return next(line for line in lines if line.startswith(key + " ")).split()

    shown = {key: (row(key)[-1], m.max_context_tokens) for key, m in catalog.models.items()}
    shown |= {key: (row(key)[5], c.context_tokens)   # id, in, cached, write, out, context
              for key, c in catalog.cloud_models.items()}
    for key, (cell, tokens) in shown.items():
        assert _decimal(cell) == pytest.approx(tokens, rel=0.005), (key, cell, tokens)


@pytest.mark.parametrize("width", WIDTHS)
def test_loadtest_summary_keeps_every_header_whole(width: int) -> None:
    rows = [RequestRecord(id=i, task="chat", target="t", scheduled_ts=float(i),
                          send_ts=float(i), schedule_delay_ms=1.5, status=200,
                          ttft_ms=12_345.0 + i, e2e_ms=23_456.0 + i, tpot_ms=45.6,
                          output_tokens=400) for i in range(1000)]
    summary = summarise_records(rows, planned=1000, planned_span_s=100.0, slo_by_task={},
                                mode="open")
    text = _text([loadtest_table(summary, "target: run1")], width)
    for word in ("sent", "finished", "failed", "cancelled", "429", "offered", "achieved",
                 "goodput", "TTFT", "TPOT", "ITL", "E2E", "1000/1000", "45.6"):
        assert _whole(text, word), (width, word, text)
    # no task had a bound: no goodput to speak of, only requests that finished
    assert not summary.slo.bounded and "no SLO" in text and "100.0%" not in text


def test_each_command_reads_as_one_line_in_the_command_list() -> None:
    # typer lists a command with its help's first paragraph, keeping its line breaks: a
    # docstring whose first sentence runs onto a second source line prints broken mid-phrase
    # ("... writes" / "JSONL, summary.json ...") in `llmplan --help`
    import typer.main

    from llmplan.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    broken = {name: (command.help or "").split("\n\n")[0] for name, command in commands.items()
              if "\n" in (command.help or "").split("\n\n")[0]}
    assert not broken, broken
    assert len(commands) >= 12


def test_an_autoscaled_fleet_shows_the_gpus_it_may_grow_to() -> None:
    tasks = SCENARIO.split("    deployments:", maxsplit=1)[0]   # the same traffic and task
    scaled = evaluate(scenario_from(tasks + """
    deployments:
      grows: {gpu: L40S, model: Llama-3.1-8B, tp: 2, replicas: 1,
              autoscaling: {min_replicas: 1, max_replicas: 3}}
      fixed: {gpu: L40S, model: Llama-3.1-8B, replicas: 2}
    """), planning=False)
    text = _text([summary_table(scaled)], 200)
    assert "2-6 x L40S (1-3 x tp 2)" in text and "2 x L40S" in text


def test_what_serves_a_candidate_says_how_its_replicas_spread_over_their_gpus() -> None:
    # four L40S as two tensor-parallel pairs, and two as one replica of two data-parallel
    # ranks with the experts spread: the same GPU count says nothing of either
    tasks = SCENARIO.split("    deployments:", maxsplit=1)[0]
    result = evaluate(scenario_from(tasks + """
    deployments:
      pairs: {gpu: L40S, model: Llama-3.1-8B, tp: 2, replicas: 2}
      ranks: {gpu: L40S, model: Qwen3-30B-A3B, tp: 2,
              engine: {data_parallel_attention: true, expert_parallel: true}}
      single: {gpu: L40S, model: Llama-3.1-8B}
    """), planning=False)
    text = _text([summary_table(result)], 200)
    assert "4 x L40S (2 x tp 2)" in text and "2 x L40S (dp 2)" in text
    assert re.search(r"1 x L40S\s", text)       # one GPU: nothing to spread


@pytest.mark.parametrize("width", WIDTHS)
def test_sweep_says_how_a_points_name_reads_and_how_many_gpus_a_replica_is(width: int) -> None:
    # one GPU a replica: the legend alone
    flat = " ".join(_text([sweep_table(SWEEP)], width).split())
    assert "point: GPUxreplicas-router-traffic scale" in flat and "a replica is" not in flat
    # a tp 4 replica: H100-SXMx2 is 8 GPUs, which the name alone does not say
    wide = SweepResult(base="b", pareto_front=[], points=[
        p.model_copy(update={"tp": 4}) for p in SWEEP.points])
    flat = " ".join(_text([sweep_table(wide)], width).split())
    assert "a replica is 4 GPUs" in flat
    # a layout varied: the name carries the GPUs (-tp4, -pp4)
    laid = SweepResult(base="b", pareto_front=[], points=[
        p.model_copy(update={"tp": 4, "layout": "tp"}) for p in SWEEP.points])
    flat = " ".join(_text([sweep_table(laid)], width).split())
    assert "[-layout and GPUs]" in flat and "a replica is" not in flat


BOUGHT = """
    name: whole-boards
    seed: 1
    duration: 60
    traffic: {kind: poisson, rate_per_s: 0.5}
    tasks:
      - {name: chat, prompt_tokens: {kind: fixed, tokens: 200},
         output_tokens: {kind: fixed, tokens: 20}}
    deployments:
      gpu-fleet: {gpu: H100-SXM, model: Llama-3.1-8B, replicas: 2}
      api: {kind: cloud, model: gpt-6-luna}
      hybrid: {kind: hybrid, local: gpu-fleet, cloud: api}
"""


@pytest.fixture(scope="module")
def bought() -> Result:
    return evaluate(scenario_from(BOUGHT), planning=False)


@pytest.mark.parametrize("width", range(60, 125, 4))
def test_what_serves_a_candidate_breaks_between_its_groups_never_inside_one(
        bought: Result, width: int) -> None:
    """"2 x H100-SXM (4 bought)" under a candidate's name at 80 columns once read
    "2 x H100-SXM (4" / "bought)"; it breaks before a bracket or after a "+" only."""
    result = bought
    serves = result.deployments["gpu-fleet"].serves_with()
    assert serves == "2 x H100-SXM (4 bought)"      # two SXM modules buy a 4-GPU board
    text = _text([summary_table(result)], width)
    for group in ("2 x H100-SXM", "(4 bought)", "gpt-6-luna"):
        assert _whole(text, group), (width, group, text)
    assert "\u2800" not in text and "\u00a0" not in text      # plain spaces on screen


def test_a_few_requests_left_unanswered_never_read_as_none(bought: Result) -> None:
    """14 timed out of 39,606 printed "(0.0%)" next to the count; a share too small for one
    decimal keeps two significant digits."""
    from llmplan.render import not_served

    dep = bought.deployments["gpu-fleet"]
    counts = dep.requests.model_copy(update={"total": 39_606, "completed": 39_592,
                                             "timed_out": 14})
    few = bought.model_copy(update={"deployments": {
        "gpu-fleet": dep.model_copy(update={"requests": counts})}})
    [line] = not_served(few)
    assert line.startswith("gpu-fleet 14 of 39,606 requests (0.035%): 14 timed out"), line
    # a share one decimal shows keeps its one decimal
    counts = counts.model_copy(update={"completed": 37_606, "timed_out": 2_000})
    many = bought.model_copy(update={"deployments": {
        "gpu-fleet": dep.model_copy(update={"requests": counts})}})
    [line] = not_served(many)
    assert "2,000 of 39,606 requests (5.0%)" in line, line


def test_nearly_every_request_left_unanswered_never_reads_as_all(bought: Result) -> None:
    """12 answered of 39,606 printed "39,594 of 39,606 requests (100.0%)": near all, the
    share keeps two significant digits of what was answered (12 / 39,606 = 0.030%)."""
    from llmplan.render import not_served

    dep = bought.deployments["gpu-fleet"]
    counts = dep.requests.model_copy(update={"total": 39_606, "completed": 12,
                                             "timed_out": 39_594})
    most = bought.model_copy(update={"deployments": {
        "gpu-fleet": dep.model_copy(update={"requests": counts})}})
    [line] = not_served(most)
    assert line.startswith("gpu-fleet 39,594 of 39,606 requests (99.970%): "), line
    # all of them is all of them
    counts = counts.model_copy(update={"completed": 0, "timed_out": 39_606})
    none = bought.model_copy(update={"deployments": {
        "gpu-fleet": dep.model_copy(update={"requests": counts})}})
    [line] = not_served(none)
    assert line.startswith("gpu-fleet 39,606 of 39,606 requests (100.0%): "), line
