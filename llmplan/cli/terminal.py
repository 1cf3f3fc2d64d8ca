"""The two consoles the commands print on (stdout for results, stderr for progress and
notes), a label's hanging lines, and one way to stop on bad input."""

from __future__ import annotations

import os
from typing import Any, NoReturn

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.text import Text

from llmplan.errors import InputError

PIPED_WIDTH = 100        # piped (and no COLUMNS): the product's widest, never cut to 80


class _Console(Console):
    """The terminal's width; when piped (and no COLUMNS), PIPED_WIDTH, read at each print."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # rich fixes COLUMNS and LINES as they are when the console is made (at import):
        # a width set later (a test runner's, a resized terminal's) would go unread
        if "width" not in kwargs:
            self._width = None
        if "height" not in kwargs:
            self._height = None

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if not self.is_terminal and "COLUMNS" not in os.environ:
            return ConsoleDimensions(PIPED_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = _Console(stderr=True)
out = _Console()


def fail(error: InputError) -> NoReturn:
    """Print the problems once each (a scenario can trip one rule on several paths) and exit 2."""
    unique = list(dict.fromkeys(error.problems))
    shown = error if len(unique) == len(error.problems) else InputError(unique, error.title)
    # soft_wrap: the terminal wraps it; no newline cuts a path or a field name in two
    console.print(f"[bold red]error:[/] {escape(shown.render())}", highlight=False,
                  soft_wrap=True)
    raise typer.Exit(code=2)


def hanging(label: str, markup: str, indent: str = "  ", to: Console | None = None) -> None:
    """`  label text...` with the text's wrapped lines under its first word, not at the
    margin, so the labels down the left stay readable (`label` may hold markup)."""
    to = to or out
    lead = Text.from_markup(f"{indent}{label} ")
    lines = Text.from_markup(markup).wrap(to, max(20, to.size.width - lead.cell_len))
    for i, line in enumerate(lines):
        line.rstrip()
        to.print((lead if i == 0 else Text(" " * lead.cell_len)) + line, highlight=False,
                  soft_wrap=True)
