"""Terminal tables that never cut an id: the widest layout that fits the terminal.

A column holds ids and figures (never wrapped, at least as wide as its widest cell) or free
text (wrapped between words, never inside one). Headers break where written ("TTFT p95\\nms").
`Fitted` shows the first of several layouts, widest first, whose columns all fit the width
it is printed in, so a narrow terminal gets fewer or merged columns instead of ids cut
short; if none fits, the last (narrowest) one with its cells folded over lines, never cut.
Its caption (units, notes, the SLO) goes under it as a paragraph of the terminal's width.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

#: joins the words of a cell that must stay on one line, one column wide like a space; not
#: a no-break space, which rich wraps at as at any whitespace, but the blank braille
#: pattern, which is no whitespace; `Fitted` prints it as a plain space
KEEP = "\u2800"


def groups_unbroken(words: str) -> str:
    """What serves a candidate, breakable only between its groups: before a bracket and
    after a "+" ("2 x H100-SXM" / "(tp 2)" / "(4 bought)"), never inside one ("(4" /
    "bought)")."""
    return " ".join(group.replace(" ", KEEP)
                    for group in re.split(r" (?=\()|(?<=\+) ", words))


@dataclass(frozen=True)
class Col:
    """One column: its header ("\\n" breaks it), alignment, and whether it is free text."""

    header: str
    justify: JustifyMethod = "right"
    wrap: bool = False          # free text: may wrap between words
    note: str = ""              # what the caption says about it (units, meaning)


def cell_width(cell: str) -> int:
    """Columns the widest line of a cell takes on screen (markup not counted)."""
    return max(Text.from_markup(line).cell_len for line in cell.split("\n"))


def grid(title: str | None, columns: Sequence[Col], rows: Sequence[Sequence[str]],
         caption: str = "") -> Table:
    """A compact table (header rule only, no outer edge): id and figure columns as wide as
    their widest cell, free-text columns wrapped between words. The caption joins `caption`
    and the notes of the columns shown."""
    notes = [c.note for c in columns if c.note]
    text = "; ".join(notes) + ("\n" if notes and caption else "") + caption
    table = Table(title=title, caption=text or None, box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, collapse_padding=True, caption_justify="left")
    for i, col in enumerate(columns):
        widest = max(cell_width(c) for c in [col.header, *(row[i] for row in rows)])
        table.add_column(col.header, justify=col.justify, no_wrap=not col.wrap,
                         overflow="fold", min_width=None if col.wrap else widest)
    for row in rows:
        table.add_row(*row)
    return table


class Fitted:
    """The first of `layouts` (widest first) whose columns all fit the width it is printed
    in; the last one, folded, when none does."""

    def __init__(self, *layouts: Table) -> None:
        assert layouts
        self.layouts = layouts

    def choose(self, console: Console, options: ConsoleOptions) -> Table:
        for table in self.layouts:
            if table.__rich_measure__(console, options).minimum <= options.max_width:
                return table
        # nothing fits: fold the narrowest layout's cells over lines (a cell kept on one
        # line would be cropped to the column, silently)
        folded = copy.deepcopy(self.layouts[-1])
        for column in folded.columns:
            column.no_wrap, column.min_width = False, None
        return folded

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = self.choose(console, options)
        # the caption under the table, wrapped at the terminal's width: as the table's own
        # caption rich wraps it at the table's, narrower, and a sentence a word longer than
        # the table left that word alone on a line ("SLO: ... within it" / "(goodput)")
        bare = copy.copy(table)
        bare.caption = None
        for row in console.render_lines(bare, options, pad=False):
            # a kept group's spaces are plain spaces on screen and in a copied line
            yield from (Segment(s.text.replace(KEEP, " "), s.style, s.control)
                        for s in row)
            yield Segment.line()
        if not table.caption:
            return
        caption = console.render_str(str(table.caption), style=table.caption_style
                                     or "table.caption")
        for line in caption.wrap(console, options.max_width):
            line.rstrip()           # no trailing blank where a line broke
            line.plain = line.plain.replace(KEEP, " ")     # same length: styles stay
            yield line

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.choose(console, options))
