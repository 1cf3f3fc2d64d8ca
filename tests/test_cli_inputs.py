"""What the CLI says about inputs it cannot use: a result.json where a scenario belongs is
named as such in one line, and the same problem is listed once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.cli.terminal import fail
from llmplan.errors import Problem, ScenarioError

ROOT = Path(__file__).resolve().parent.parent

TINY = """
name: tiny-chat
seed: 2
duration: 60
traffic: {kind: poisson, rate_per_s: 1}
tasks:
  - {name: chat, prompt_tokens: {kind: fixed, tokens: 200},
     output_tokens: {kind: fixed, tokens: 20}}
deployments:
  gpu: {gpu: L4, model: Llama-3.1-8B}
  api: {kind: cloud, model: gpt-4o-mini}
"""


@pytest.fixture(scope="module")
def result_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("result")
    scenario = folder / "tiny.yaml"
    scenario.write_text(TINY)
    run = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(folder / "out"),
                                   "--no-plan", "--quiet"])
    assert run.exit_code == 0, run.output
    return folder / "out" / "result.json"


@pytest.mark.parametrize("command", [["stack"], ["simulate", "--no-plan"], ["sweep"]])
def test_a_result_json_for_a_scenario_is_named_in_one_line(
        result_json: Path, command: list[str], tmp_path: Path) -> None:
    run = CliRunner().invoke(app, [command[0], str(result_json), *command[1:],
                                   "--out", str(tmp_path / "o")])
    assert run.exit_code == 2
    lines = run.output.strip().splitlines()
    assert len(lines) == 1, run.output
    assert str(result_json) in lines[0] and "simulation result" in lines[0]
    assert "pass the scenario file it came from (scenario 'tiny-chat')" in lines[0]
    assert "Traceback" not in run.output and not (tmp_path / "o" / "Pulumi.dev.yaml").exists()


def test_a_json_scenario_with_mistakes_still_lists_them(tmp_path: Path) -> None:
    scenario = tmp_path / "s.json"
    scenario.write_text('{"name": "x", "duration": 60}')
    run = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(tmp_path / "o")])
    assert run.exit_code == 2
    assert "traffic: required field is missing" in run.output
    assert "simulation result" not in run.output


def test_identical_problems_are_listed_once(capsys: pytest.CaptureFixture[str]) -> None:
    same = Problem("s.yaml", 3, "deployments.api.cloud", "unknown key 'cloud'")
    other = Problem("s.yaml", 1, "duration", "required field is missing")
    with pytest.raises(typer.Exit) as stopped:
        fail(ScenarioError([other, same, same, same, other]))
    assert stopped.value.exit_code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].endswith("invalid scenario (2 problems):")
    assert [line.strip() for line in lines[1:]] == [str(other), str(same)]


@pytest.mark.parametrize("name", ["/../../escaped", "../evil", "a b", "..", "-dev", "a" * 101])
def test_a_stack_name_pulumi_would_refuse_never_becomes_a_path(tmp_path: Path,
                                                              name: str) -> None:
    """`--stack` names the file Pulumi.<stack>.yaml beside the project: a name with a
    slash, a space or dots alone would write elsewhere (it wrote outside --out)."""
    result = CliRunner().invoke(app, ["stack", str(tmp_path / "any.yaml"), "--stack", name,
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "is no Pulumi stack name" in result.output
    assert not any(tmp_path.rglob("*.yaml"))


def test_an_out_path_that_is_the_wrong_kind_is_a_clear_error(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00,1,2\n")
    for args in (["import-usage", "--csv", str(trace), "--out", str(afile)],
                 ["import-trace", "azure", str(trace), "--out", str(afile / "x.csv")],
                 ["import-trace", "azure", str(trace), "--out", str(tmp_path)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "Traceback" not in result.output, args
        assert "--out" in result.output, args


def test_a_seed_the_scenario_would_refuse_is_refused_on_the_command_line(
        tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", str(ROOT / "examples" / "agent-workflow.yaml"),
                                      "--seed", "-3", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--seed" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_import_trace_never_writes_over_the_trace_it_reads(tmp_path: Path) -> None:
    source = tmp_path / "azure.csv"
    text = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n"
    source.write_text(text)
    result = CliRunner().invoke(app, ["import-trace", "azure", str(source), "--out",
                                      str(source)])
    assert result.exit_code == 2 and "is the trace being read" in result.output
    assert source.read_text() == text


@pytest.mark.parametrize("command", [["import-trace", "azure"], ["import-trace", "sharegpt"],
                                     ["calibrate"]])
def test_a_binary_file_is_a_clear_error(tmp_path: Path, command: list[str]) -> None:
    binary = tmp_path / "picture.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    result = CliRunner().invoke(app, [*command, str(binary)])
    assert result.exit_code == 2 and "not a text file" in result.output, result.output


def test_an_output_the_disk_refuses_is_a_one_line_error(tmp_path: Path) -> None:
    """A folder where result.json goes (or a full disk, a vanished mount): the path and
    why, exit 2, not a traceback."""
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY)
    out = tmp_path / "out"
    (out / "result.json").mkdir(parents=True)
    run = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out), "--no-plan",
                                   "--quiet"])
    assert run.exit_code == 2
    assert "--out: cannot write" in run.output and "result.json" in run.output
    assert "Traceback" not in run.output
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]   # no half file left


def test_requests_where_a_file_stands_is_refused_before_the_run(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY)
    out = tmp_path / "out"
    out.mkdir()
    (out / "requests").write_text("not a folder")
    run = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out), "--no-plan",
                                   "--quiet", "--requests"])
    assert run.exit_code == 2
    assert "--requests:" in run.output and "is a file" in run.output


@pytest.mark.parametrize("command", [
    ["calibrate", "{input}", "--out", "{input}"],
    ["import-cluster", "--kubeconfig", "{input}", "--out", "{input}"]])
def test_an_out_that_is_the_commands_own_input_is_refused(tmp_path: Path,
                                                          command: list[str]) -> None:
    given = tmp_path / "input.jsonl"
    given.write_text("precious\n", encoding="utf-8")
    result = CliRunner().invoke(app, [part.format(input=given) for part in command])
    assert result.exit_code == 2 and "own input" in result.output
    assert given.read_text(encoding="utf-8") == "precious\n"


def test_records_with_a_negative_time_are_refused_where_they_are(tmp_path: Path) -> None:
    from llmplan.errors import InputError
    from llmplan.loadtests.records import read_records
    row = {"id": 0, "task": "t", "target": "x", "scheduled_ts": 1.0, "send_ts": 1.0,
           "schedule_delay_ms": 0.0, "status": 200, "ttft_ms": 50.0, "e2e_ms": 900.0}
    bad = [row, {**row, "id": 1, "ttft_ms": -1000.0}, {**row, "id": 2, "ttft_ms": 2000.0}]
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in bad), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_records(path)
    where = [(p.line, p.path) for p in caught.value.problems]
    assert where == [(2, "ttft_ms"), (3, "")]
    assert "after e2e_ms" in caught.value.problems[1].message


def _sweep(tmp_path: Path, text: str, *options: str) -> tuple[int, str]:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(text)
    run = CliRunner().invoke(app, ["sweep", str(scenario), "--out", str(tmp_path / "out"),
                                   *options], env={"COLUMNS": "200"})
    return run.exit_code, " ".join(run.output.split())


def test_sweep_of_a_scenario_without_a_local_deployment_says_so_not_base(
        tmp_path: Path) -> None:
    # the user gave no --base: the message is about the scenario, and names its deployments
    cloud_only = TINY.replace("  gpu: {gpu: L4, model: Llama-3.1-8B}\n", "")
    code, said = _sweep(tmp_path, cloud_only)
    assert code == 2 and not (tmp_path / "out").exists()
    assert "no local deployment to vary: this scenario has api (kind: cloud)" in said
    assert "--base" not in said and "(none)" not in said
    # one that cannot be built is named with why, not passed over as if absent
    too_big = TINY.replace("model: Llama-3.1-8B", "model: Llama-3.1-405B")
    code, said = _sweep(tmp_path, too_big)
    assert code == 2 and "gpu (cannot be built: " in said and "does not fit" in said


def test_sweep_gpus_spelt_as_vendors_do_are_pointed_at_the_catalog_id(tmp_path: Path) -> None:
    code, said = _sweep(tmp_path, TINY, "--gpus", "NVIDIA A100-SXM4-80GB,L4")
    assert code == 2
    assert "--gpus: unknown GPU 'NVIDIA A100-SXM4-80GB' (did you mean 'A100-80GB'?)" in said
