"""Text on the page: escaped, hyphenated ids kept whole on a line, tables, numbers."""

from __future__ import annotations

import functools
import html
import re

from llmplan.results.decision import Result

#: a word with a hyphen inside it (a candidate, a GPU, a model, a date): browsers break a
#: line after a hyphen, and a narrow column showed "gpt-6-" over "luna"
HYPHENATED = re.compile(r"\S*\w-\w\S*")


def _cell(text: str) -> str:
    """A table cell's text, escaped, its hyphenated words kept whole on a line (the cell
    still wraps between words)."""
    return HYPHENATED.sub(lambda word: f"<span class='w'>{word.group(0)}</span>",
                          html.escape(text))


def prose_ids(result: Result) -> list[str]:
    """The hyphenated ids a report's prose names: the scenario, its candidates and tasks,
    the GPUs and models they run (longest first, so "gpu-small-2" is not read as
    "gpu-small")."""
    found = {result.scenario.name, *result.deployments, *(result.unbuildable or {})}
    for dep in result.deployments.values():
        found.update(dep.per_task)
        if dep.local is not None:
            found.update((dep.local.gpu, dep.local.model))
        if dep.cloud is not None:
            found.add(dep.cloud.model)
    return sorted((i for i in found if HYPHENATED.fullmatch(i)), key=lambda i: (-len(i), i))


def prose(text: str, ids: list[str]) -> str:
    """Prose, escaped, each of `ids` in it kept whole on a line: a box that moves to the
    next line when the id does not fit at the end of this one, and breaks inside only
    when the id is wider than the whole line (never past the page's edge)."""
    escaped = html.escape(text)
    if not ids:
        return escaped
    return _id_pattern(tuple(ids)).sub(lambda m: f"<span class='id'>{m.group(1)}</span>",
                                       escaped)


@functools.lru_cache(maxsize=8)
def _id_pattern(ids: tuple[str, ...]) -> re.Pattern[str]:
    """Any of `ids`, escaped as in the page, standing alone (compiled once a report)."""
    return re.compile(r"(?<![\w.-])(" + "|".join(re.escape(html.escape(i)) for i in ids)
                      + r")(?![\w-])")


def table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
