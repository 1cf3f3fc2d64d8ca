"""User-facing input errors: each names the file, the line, the field path and what was expected."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

#: most names a "did you mean" offers
MAX_SUGGESTIONS = 4


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        # no field path: the problem is the file's as a whole (not found, not YAML, empty)
        return f"{where}: {self.path}: {self.message}" if self.path \
            else f"{where}: {self.message}"


class InputError(Exception):
    """Raised for bad user input (scenario, trace, targets...). Never a traceback at the CLI."""

    def __init__(self, problems: list[Problem], title: str = "invalid input") -> None:
        self.problems = problems
        self.title = title
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        lines = [f"{self.title} ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class ScenarioError(InputError):
    """A scenario file that cannot be used."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems, title="invalid scenario")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """" (did you mean 'A' or 'B'?)" for a mistyped `name`, or "" when nothing is close.

    Names that begin with what was typed come first (`H100`: H100-PCIe, H100-SXM), then
    the ones spelt most alike (difflib's ratio of at least 0.6), ignoring case."""
    by_lower = {k.lower(): k for k in known if k != name}
    typed = name.lower()
    offered = [by_lower[k] for k in sorted(by_lower) if typed and k.startswith(typed)]
    offered += [by_lower[k] for k in difflib.get_close_matches(typed, by_lower, n=MAX_SUGGESTIONS)
                if by_lower[k] not in offered]
    return offered_names(offered)


def offered_names(names: list[str]) -> str:
    """" (did you mean 'A' or 'B'?)" for the first MAX_SUGGESTIONS `names`; "" for none."""
    names = names[:MAX_SUGGESTIONS]
    if not names:
        return ""
    quoted = [f"'{k}'" for k in names]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f" (did you mean {listed}?)"
