"""`llmplan simulate` end to end: table, result.json contents, determinism, seeds."""

from __future__ import annotations

import datetime
import itertools
import json
from pathlib import Path

import pytest
from helpers import page_text
from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.results import Result

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SMALL = """
name: cli-check
seed: 4
duration: 5m
traffic: {kind: poisson, rate_per_s: 6}
tasks:
  - name: chat
    prompt_tokens: {kind: lognormal, mean: 600, p95: 1500}
    output_tokens: {kind: lognormal, mean: 200, p95: 500}
slo: {ttft_ms: 1000, tpot_ms: 80}
deployments:
  h100: {gpu: H100-SXM, model: Llama-3.1-8B}
  l4-pair: {gpu: L4, model: Llama-3.1-8B, replicas: 2}
"""


def _simulate(tmp_path: Path, name: str, *args: str) -> tuple[str, bytes]:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SMALL)
    out = tmp_path / name
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return result.output, (out / "result.json").read_bytes()


def test_result_json_has_the_promised_fields(tmp_path: Path) -> None:
    output, raw = _simulate(tmp_path, "a", "--requests")
    result = json.loads(raw)
    Result.model_validate(result)          # result.json reads back into its own model
    assert set(result["deployments"]) == {"h100", "l4-pair"}
    for dep in result["deployments"].values():
        for metric in ("ttft_ms", "tpot_ms", "e2e_ms", "itl_ms"):
            for p in ("p50", "p90", "p95", "p99"):
                assert dep["latency"][metric][p] > 0
        lat = dep["latency"]
        assert lat["ttft_ms"]["p50"] <= lat["ttft_ms"]["p90"] <= lat["ttft_ms"]["p99"]
        assert lat["e2e_ms"]["p50"] > lat["ttft_ms"]["p50"]
        assert dep["throughput"]["requests_per_s"] > 0
        assert dep["throughput"]["output_tokens_per_s"] > dep["throughput"]["requests_per_s"]
        assert 0 <= dep["slo"]["goodput_fraction"] <= 1
        assert len(dep["timeseries"]["arrivals_per_s"]) == 5
        use = dep["local"]["utilisation"]
        assert 0 < use["engine_busy_fraction"] <= 1 and 0 < use["mbu_fraction"] <= 1
        assert 0 < use["load_fraction"] <= 1
        assert "cloud" not in dep and "hybrid" not in dep    # absent sections are left out
    # the table names every deployment and its hardware
    assert "h100" in output and "l4-pair" in output and "H100-SXM" in output
    rows = (tmp_path / "a" / "requests" / "h100.csv").read_text().splitlines()
    assert len(rows) == 1 + result["scenario"]["requests"]
    assert rows[0].startswith("id,task,arrival_s,start_s,first_token_s,finish_s,ttft_s")
    # an H100 beats two L4s on latency for an 8B model at this load
    h100, l4 = result["deployments"]["h100"], result["deployments"]["l4-pair"]
    assert h100["latency"]["tpot_ms"]["p50"] < l4["latency"]["tpot_ms"]["p50"]


def test_same_scenario_and_seed_give_identical_bytes(tmp_path: Path) -> None:
    _, first = _simulate(tmp_path, "a")
    _, second = _simulate(tmp_path, "b")
    assert first == second
    _, other_seed = _simulate(tmp_path, "c", "--seed", "5")
    assert other_seed != first
    assert json.loads(other_seed)["scenario"]["seed"] == 5


def test_reference_mode_from_the_command_line(tmp_path: Path) -> None:
    _, fast = _simulate(tmp_path, "fast")
    _, ref = _simulate(tmp_path, "ref", "--mode", "reference")
    f, r = json.loads(fast), json.loads(ref)
    for name in f["deployments"]:
        for metric in ("ttft_ms", "e2e_ms"):
            for p in ("p50", "p99"):
                a = f["deployments"][name]["latency"][metric][p]
                b = r["deployments"][name]["latency"][metric][p]
                assert abs(a - b) <= 1e-3 * b


def test_schema_command_prints_json_schema() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert {"traffic", "tasks", "deployments", "slo", "constraints", "duration"} <= set(
        schema["properties"])
    assert schema["additionalProperties"] is False


def test_schema_of_result_and_records() -> None:
    result = CliRunner().invoke(app, ["schema", "--result"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert {"scenario", "deployments", "recommendation", "break_even", "decision_table",
            "checklist", "planning"} <= set(schema["properties"])
    records = json.loads(CliRunner().invoke(app, ["schema", "--records"]).output)
    assert {"ttft_ms", "itl_ms", "error_class", "send_ts"} <= set(records["properties"])
    assert set(records["required"]) == {"id", "task", "target", "scheduled_ts", "send_ts",
                                        "schedule_delay_ms", "status"}


def test_old_prices_are_named_in_the_terminal_and_the_report(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SMALL + "catalog:\n  gpus:\n    L4: {prices_as_of: 2020-01-01}\n")
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(tmp_path / "o"),
                                      "--no-plan", "--no-requests"])
    assert result.exit_code == 0, result.output
    assert "GPU L4: prices as of 2020-01-01" in result.output
    page = (tmp_path / "o" / "report.html").read_text()
    assert "Prices out of date" in page and "GPU L4: prices as of 2020-01-01" in page
    # a deployment's GPU whose prices are recent enough is not named
    fresh = tmp_path / "fresh.yaml"
    today = datetime.date.today().isoformat()
    fresh.write_text(SMALL + f"catalog:\n  gpus:\n    L4: {{prices_as_of: {today}}}\n"
                     f"    H100-SXM: {{prices_as_of: {today}}}\n")
    again = CliRunner().invoke(app, ["simulate", str(fresh), "--out", str(tmp_path / "f"),
                                     "--no-plan", "--no-requests"])
    assert again.exit_code == 0, again.output
    assert "Prices out of date" not in (tmp_path / "f" / "report.html").read_text()


def test_a_cloud_model_being_retired_is_named_in_the_terminal_and_the_report(
        tmp_path: Path) -> None:
    # gpt-4o-mini: shut down 2027-01-14 by the catalog, inside any 36-month horizon now
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SMALL + "  api: {kind: cloud, model: gpt-4o-mini}\n")
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(tmp_path / "o"),
                                      "--no-plan"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "note: cloud model gpt-4o-mini (used by api): " in result.output
    # (the model's id kept whole on a line by a span)
    assert "cloud model gpt-4o-mini (used by api): " in page_text(
        (tmp_path / "o" / "report.html").read_text())


@pytest.mark.parametrize("example", ["support-assistant", "bulk-extraction", "agent-workflow",
                                     "regulated-records", "retail-assistant",
                                     "coding-agent", "reasoning-model"])
def test_the_summary_fits_a_100_column_terminal(tmp_path: Path, example: str) -> None:
    result = CliRunner().invoke(app, ["simulate", str(EXAMPLES / f"{example}.yaml"), "--out",
                                      str(tmp_path), "--no-plan"], env={"COLUMNS": "100"},
                                terminal_width=100)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "…" not in result.output                     # no cell cut short
    table = Result.model_validate_json((tmp_path / "result.json").read_text())
    for name in table.deployments:
        assert any(line.lstrip().startswith(name) for line in lines)
    said = " ".join(result.output.split())
    for name, dep in table.deployments.items():         # every reason of every exclusion,
        if dep.infeasible_because:                      # on one line a candidate
            assert f"excluded {name}: {dep.infeasible_because[0]}"[:60] in said
            assert all(f"; and {reason}"[:60] in said for reason in dep.infeasible_because[1:])
            assert said.count(f"excluded {name}:") == 1
    # the labelled lines under the recommendation wrap under their text, not at the margin
    labels = ("because ", "risk: ", "right-sized: ", "break-even: ", "excluded ", "flips to ",
              "holds if ")
    label = None
    for line in lines:
        starts = next((x for x in labels if line.startswith("  " + x)), None)
        if starts is not None:
            label = starts
        elif label is not None and line.startswith("   "):
            assert line.startswith(" " * (2 + len(label))), (label, line)
        else:
            label = None
            continue
        assert not line.endswith(" "), line


def test_piped_output_is_never_cut_to_80_columns() -> None:
    # no terminal and no COLUMNS: the catalog's wide tables come out whole
    result = CliRunner().invoke(app, ["catalog"], env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert "H100-SXM " in result.output and "llama-3.3-70b-bedrock " in result.output
    assert max(len(line) for line in result.output.splitlines()) > 80


def test_piped_output_is_at_most_100_columns(tmp_path: Path) -> None:
    # no terminal and no COLUMNS (a pipe, a CI log): nothing wider than the product's 100
    # columns, the recommendation's long line wrapped rather than left at 150+ characters
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SMALL)
    for args in (["simulate", str(scenario), "--out", str(tmp_path / "o"), "--no-plan"],
                 ["catalog"]):
        result = CliRunner().invoke(app, args, env={"COLUMNS": None})
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert max(len(line) for line in lines) <= 100, max(lines, key=len)
        assert "…" not in result.output


def test_json_output_for_scripts(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SMALL)
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(tmp_path / "o"),
                                      "--no-plan", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads((tmp_path / "o" / "result.json").read_text())
    assert not (tmp_path / "o" / "requests").exists()     # the CSV only when asked


@pytest.mark.parametrize("inside", [False, True])
def test_an_out_path_that_is_a_file_is_refused_before_simulating(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inside: bool) -> None:
    import llmplan.pipeline

    def never(*_: object, **__: object) -> None:
        raise AssertionError("simulated although --out cannot be written")

    monkeypatch.setattr(llmplan.pipeline, "evaluate", never)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SMALL)
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    out = taken / "run" if inside else taken
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "--out" in result.output and str(taken) in result.output
    assert "expected a folder" in result.output and "Traceback" not in result.output


def test_traffic_that_draws_no_request_is_an_input_error(tmp_path: Path) -> None:
    # 0.001 req/s for ten minutes: seed 4 draws none; the simulation has nothing to measure
    scenario = tmp_path / "quiet.yaml"
    scenario.write_text(
        "seed: 4\nduration: 600\ntraffic: {kind: poisson, rate_per_s: 0.001}\n"
        "tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 100},\n"
        "         output_tokens: {kind: fixed, tokens: 50}}]\n"
        "deployments: {l40s: {gpu: L40S, model: Llama-3.1-8B}}\n")
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "traffic: draws no request in 600 s" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o" / "result.json").exists()


def test_strict_fails_a_ci_job_when_nothing_can_be_recommended(tmp_path: Path) -> None:
    """--strict: exit 1 when no candidate is feasible (an SLO no fleet meets), after the
    files are written; 0 when one is, and without it the exit stays 0 either way."""
    hopeless = tmp_path / "hopeless.yaml"
    hopeless.write_text(SMALL.replace("slo: {ttft_ms: 1000, tpot_ms: 80}",
                                      "slo: {ttft_ms: 1, tpot_ms: 1}"))
    args = ["simulate", str(hopeless), "--no-plan", "--no-requests"]
    strict = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a"), "--strict"])
    assert strict.exit_code == 1, strict.output
    assert "no candidate can be recommended" in strict.output
    assert (tmp_path / "a" / "result.json").exists() and (tmp_path / "a" / "report.html").exists()
    # the report says "none" in a warning's box, not Python's None in the success colours
    page = (tmp_path / "a" / "report.html").read_text(encoding="utf-8")
    assert "<p class='warn'><b>Recommendation: none</b>" in page
    assert "Recommendation: None" not in page
    lenient = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert lenient.exit_code == 0, lenient.output
    fine = tmp_path / "fine.yaml"
    fine.write_text(SMALL)
    ok = CliRunner().invoke(app, ["simulate", str(fine), "--no-plan", "--no-requests",
                                  "--out", str(tmp_path / "c"), "--strict", "--json"])
    assert ok.exit_code == 0, ok.output


def test_an_earlier_runs_request_csvs_do_not_outlive_it(tmp_path: Path) -> None:
    scenario = EXAMPLES / "agent-workflow.yaml"
    out = tmp_path / "o"
    first = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out),
                                     "--no-plan", "--requests"])
    assert first.exit_code == 0 and sorted(p.name for p in (out / "requests").iterdir())
    again = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out), "--no-plan"])
    assert again.exit_code == 0 and not list((out / "requests").glob("*.csv"))


QUIET = ("seed: 4\nduration: 600\ntraffic: {kind: poisson, rate_per_s: 0.001}\n"
         "tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 100},\n"
         "         output_tokens: {kind: fixed, tokens: 50}}]\n"
         "deployments: {l40s: {gpu: L40S, model: Llama-3.1-8B}}\n")


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_that_fails_or_is_interrupted_leaves_the_earlier_runs_files_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The earlier run's request CSVs were deleted before the new run started: a scenario
    that failed in the simulation, or a Ctrl-C (which says "nothing written"), lost them."""
    scenario, out = tmp_path / "s.yaml", tmp_path / "o"
    scenario.write_text(SMALL)
    first = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out),
                                     "--no-plan", "--requests"])
    assert first.exit_code == 0, first.output
    before = _contents(out)
    assert {"requests/h100.csv", "requests/l4-pair.csv", "result.json"} <= set(before)
    quiet = tmp_path / "quiet.yaml"
    quiet.write_text(QUIET)
    for requests in ("--requests", "--no-requests"):
        failed = CliRunner().invoke(app, ["simulate", str(quiet), "--out", str(out),
                                          "--no-plan", requests])
        assert failed.exit_code == 2 and "draws no request" in failed.output, failed.output
        assert _contents(out) == before

    import llmplan.pipeline

    def cut_short(*args: object, requests_dir: Path | None = None, **kwargs: object) -> None:
        assert requests_dir is not None     # one deployment's CSV written, then Ctrl-C
        requests_dir.mkdir(parents=True, exist_ok=True)
        (requests_dir / "h100.csv").write_text("id\n1\n", encoding="utf-8")
        raise KeyboardInterrupt

    monkeypatch.setattr(llmplan.pipeline, "evaluate", cut_short)
    stopped = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out),
                                       "--no-plan", "--requests"])
    assert stopped.exit_code == 130 and "nothing written" in stopped.output, stopped.output
    assert _contents(out) == before


def test_a_new_run_replaces_the_request_csvs_only_with_its_own(tmp_path: Path) -> None:
    scenario, out = tmp_path / "s.yaml", tmp_path / "o"
    scenario.write_text(SMALL)
    first = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out),
                                     "--no-plan", "--requests"])
    assert first.exit_code == 0, first.output
    (out / "requests" / "gone.csv").write_text("id\n", encoding="utf-8")
    scenario.write_text(SMALL.replace("l4-pair:", "l4-trio:").replace("replicas: 2",
                                                                      "replicas: 3"))
    again = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out),
                                     "--no-plan", "--requests"])
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "requests", "result.json"]
    assert sorted(p.name for p in (out / "requests").iterdir()) == ["h100.csv", "l4-trio.csv"]
    assert (out / "requests" / "l4-trio.csv").read_text(encoding="utf-8").count("\n") > 100


@pytest.mark.parametrize("width", [120, 80])
def test_the_slo_line_and_the_recommendation_wrap_at_the_terminals_width(
        tmp_path: Path, width: int) -> None:
    """The caption under the summary (the costed volume, the SLO) wraps at the terminal's
    width, not the narrower table's (which left "(goodput)" alone on a line at 120
    columns); the recommendation's wrapped lines hang under its text."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SMALL)
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(tmp_path / "o"),
                                      "--no-plan", "--no-requests"],
                                env={"COLUMNS": str(width)}, terminal_width=width)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    table = Result.model_validate_json((tmp_path / "o" / "result.json").read_text())
    slo = f"SLO: {table.scenario.slo}"
    rule = next(len(line.rstrip()) for line in lines if line.startswith("─"))
    if len(slo) <= width:
        assert len(slo) > rule           # longer than the table: the case that wrapped
        assert slo in lines
    else:
        said = next(line for line in lines if line.startswith("SLO: "))
        nxt = lines[lines.index(said) + 1]
        # a line filled as far as the width allows: the next word did not fit
        assert len(said) + 1 + len(nxt.split()[0]) > width
    caption = [line for line in lines if line.startswith(("monthly costs at", "SLO: "))]
    assert len(caption) == 2 and not any(line.endswith(" ") for line in caption)
    start = next(i for i, line in enumerate(lines) if line.startswith("recommendation: "))
    follow = list(itertools.takewhile(lambda line: not line.startswith("  because"),
                                      lines[start + 1:]))
    reason = " ".join([lines[start], *follow]).split()
    assert " ".join(reason).startswith(f"recommendation: {table.headline()} - ")
    assert " ".join(reason).endswith(" ".join(table.recommendation.reason.split()))
    for line in follow:
        assert line.startswith(" " * len("recommendation: ")) and line[16] != " ", line
    assert all(not line.endswith(" ") for line in [lines[start], *follow])
