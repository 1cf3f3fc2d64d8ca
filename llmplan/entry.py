"""The `llmplan` command: the CLI, and one line for a Ctrl-C that came before a command
could say what it kept (while Python imports the CLI, or where typer turns it into a
silent exit 130)."""

from __future__ import annotations

import sys

#: the exit status of a command interrupted by Ctrl-C (128 + SIGINT), as typer gives it
INTERRUPTED = 130
#: the exit status of bad input, as the commands give it (llmplan.cli.terminal `fail`)
BAD_INPUT = 2


def main() -> None:
    try:
        from llmplan.cli import app
        app()
    except KeyboardInterrupt:
        _say_interrupted()
        raise SystemExit(INTERRUPTED) from None
    except UnicodeDecodeError as error:
        # a reader that did not name its file: one line, not a traceback
        sys.stderr.write(f"error: an input file is not UTF-8 text ({error.reason} at byte "
                         f"{error.start}); expected the text file the command reads\n")
        raise SystemExit(BAD_INPUT) from None
    except OverflowError as error:
        sys.stderr.write(f"error: a number in the input is too large to use ({error}); "
                         f"expected values of a sensible size\n")
        raise SystemExit(BAD_INPUT) from None
    except SystemExit as stop:
        if stop.code == INTERRUPTED and _from_ctrl_c(stop):
            _say_interrupted()
        raise


def _from_ctrl_c(error: BaseException) -> bool:
    """Whether a KeyboardInterrupt caused this exit (typer's `Exit(130) from` it); the
    commands that say what they kept raise theirs from None."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return False


def _say_interrupted() -> None:
    sys.stderr.write("interrupted: nothing written\n")
