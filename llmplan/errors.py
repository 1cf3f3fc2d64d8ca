"""User-facing input errors: each names the file, the line, the field path and what was expected."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path or '<top level>'}: {self.message}"


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
