"""The `llmplan` command's entry: one line for a Ctrl-C that no command reported."""

from __future__ import annotations

import sys

import pytest
import typer

from llmplan import entry


def _typer_style_exit() -> SystemExit:
    """What typer raises for a Ctrl-C it caught: Exit(130) from the KeyboardInterrupt,
    then SystemExit(130) while handling it."""
    try:
        try:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as e:
                raise typer.Exit(130) from e
        except typer.Exit as e:
            sys.exit(e.exit_code)
    except SystemExit as stop:
        return stop
    raise AssertionError("unreachable")


def test_a_silent_ctrl_c_gets_a_line_and_a_reported_one_does_not(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert entry._from_ctrl_c(_typer_style_exit())
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemExit(130) from None
    except SystemExit as reported:
        assert not entry._from_ctrl_c(reported)

    def interrupted() -> None:
        raise _typer_style_exit()

    import llmplan.cli
    monkeypatch.setattr(llmplan.cli, "app", interrupted)
    with pytest.raises(SystemExit) as stop:
        entry.main()
    assert stop.value.code == 130
    assert capsys.readouterr().err == "interrupted: nothing written\n"
