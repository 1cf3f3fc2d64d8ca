"""`llmplan stack` writes the stack file next to the project's Pulumi.yaml, where the
pulumi commands it prints run; run from elsewhere, it says how to get there."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import ROOT
from typer.testing import CliRunner

import llmplan.provision.stack as stack_module
from llmplan.cli import app
from llmplan.provision.stack import is_project_dir, project_dir

TINY = """
name: tiny-cloud
seed: 2
duration: 60
traffic: {kind: poisson, rate_per_s: 1}
tasks:
  - {name: chat, prompt_tokens: {kind: fixed, tokens: 200},
     output_tokens: {kind: fixed, tokens: 20}}
deployments:
  api: {kind: cloud, model: gpt-4o-mini, limits: {requests_per_min: 5000, tokens_per_min: 2000000}}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the Pulumi project (Pulumi.yaml, infra/) standing for the one llmplan has."""
    folder = tmp_path / "project"
    (folder / "infra").mkdir(parents=True)
    shutil.copy(ROOT / "Pulumi.yaml", folder / "Pulumi.yaml")
    monkeypatch.setattr(stack_module, "project_dir", lambda: folder)
    return folder


def _steps(output: str) -> list[str]:
    lines = output.splitlines()
    return [line.strip() for line in lines[lines.index("next:") + 1:]]


def _run(scenario_dir: Path, *args: str) -> tuple[int, str]:
    scenario = scenario_dir / "tiny.yaml"
    scenario.write_text(TINY)
    run = CliRunner().invoke(app, ["stack", str(scenario), "--stack", "t", *args])
    return run.exit_code, run.output


def test_the_repository_is_the_project() -> None:
    assert project_dir() == ROOT and is_project_dir(ROOT)
    assert not is_project_dir(ROOT / "infra")


def test_from_another_folder_the_stack_goes_to_the_project(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, output = _run(tmp_path)
    assert code == 0, output
    assert (project / "Pulumi.t.yaml").is_file() and not list(elsewhere.iterdir())
    steps = _steps(output)
    assert steps[0] == f"cd {project}" and steps[1] == "pulumi stack select t --create"
    assert "warning" not in output


def test_in_the_project_folder_no_cd_is_needed(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = tmp_path / "checkout"
    shutil.copytree(project, here)
    monkeypatch.chdir(here)
    code, output = _run(tmp_path)
    assert code == 0, output
    assert (here / "Pulumi.t.yaml").is_file() and not (project / "Pulumi.t.yaml").exists()
    assert _steps(output)[0] == "pulumi stack select t --create"


def test_an_out_folder_without_pulumi_yaml_is_warned_about(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "stacks"
    code, output = _run(tmp_path, "--out", str(out))
    assert code == 0, output
    assert (out / "Pulumi.t.yaml").is_file() and not (project / "Pulumi.t.yaml").exists()
    text = " ".join(output.split())
    assert f"warning: {out} has no Pulumi.yaml" in text and str(project) in text
    steps = _steps(output)
    assert steps[:3] == [f"cp {out / 'Pulumi.t.yaml'} {project}/", f"cd {project}",
                         "pulumi stack select t --create"]
    assert "pulumi preview --policy-pack infra/policy" in steps


def test_a_pulumi_yaml_copied_alone_is_not_the_project(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder with the project's Pulumi.yaml but not its program (main: infra/) once took
    the stack and was told to run `pulumi preview --policy-pack infra/policy` and `pulumi
    up` there, which find neither; the stack goes with the project's program instead."""
    alone = tmp_path / "copied"
    alone.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", alone / "Pulumi.yaml")
    assert not is_project_dir(alone)
    monkeypatch.chdir(alone)
    code, output = _run(tmp_path)
    assert code == 0, output
    assert (project / "Pulumi.t.yaml").is_file() and not (alone / "Pulumi.t.yaml").exists()
    assert _steps(output)[0] == f"cd {project}"
