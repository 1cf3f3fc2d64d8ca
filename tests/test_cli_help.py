"""Every command's --help reads whole at 80 columns: no option name or help cut with "…",
and the description flows as paragraphs (a docstring's own line breaks are not kept)."""

from __future__ import annotations

import inspect
from itertools import pairwise
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from llmplan.cli import app, flowing

WIDTH = 80
#: rich pads the description by one column on each side
TEXT_WIDTH = WIDTH - 2
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def _help(command: str) -> str:
    run = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": str(WIDTH)},
                             terminal_width=WIDTH)
    assert run.exit_code == 0, run.output
    return run.output


def _description(output: str) -> list[str]:
    """The lines between the usage line and the first panel."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("╭"))
    return [line.strip() for line in lines[start:end]]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_at_80_columns_cuts_nothing(command: str) -> None:
    output = _help(command)
    assert all(len(line) <= WIDTH for line in output.splitlines())
    assert not [line for line in output.splitlines() if "…" in line]


@pytest.mark.parametrize("command", COMMANDS)
def test_the_description_flows_as_paragraphs(command: str) -> None:
    callback = typer.main.get_command(app).commands[command].callback  # type: ignore[attr-defined]
    doc = inspect.getdoc(callback)
    assert doc
    lines = _description(_help(command))
    assert " ".join(" ".join(lines).split()) == " ".join(flowing(doc).split())
    for line, after in pairwise(lines):
        if line and after:     # a break inside a paragraph only where the next word did not fit
            assert len(line) + 1 + len(after.split()[0]) > TEXT_WIDTH, (line, after)


def test_a_multi_line_docstring_paragraph_becomes_one_line() -> None:
    assert flowing("""First line.

    A paragraph written
    over two lines.
    """) == "First line.\n\nA paragraph written over two lines."


def test_requests_still_names_the_measured_requests(tmp_path: Path) -> None:
    quick = ["loadtest", "--target", "x", "--targets", str(tmp_path / "none.yaml"),
             "--prompt-tokens", "10", "--output-tokens", "5", "--rate", "1"]
    both = CliRunner().invoke(app, [*quick, "--requests", "5", "--max-requests", "6"])
    assert both.exit_code == 2 and "--max-requests/--requests" in both.output
    alone = CliRunner().invoke(app, [*quick, "--requests", "5"])
    assert alone.exit_code == 2 and "No such option" not in alone.output
    assert "none.yaml" in " ".join(alone.output.split())
    # no request at all is the option's error, not an empty plan blamed on --duration
    for option in ("--requests", "--max-requests"):
        none = CliRunner().invoke(app, [*quick, option, "0"])
        assert none.exit_code == 2 and f"'{option}'" in none.output, none.output
        assert "--duration" not in none.output
