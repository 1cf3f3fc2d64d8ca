"""Prometheus text exposition, read: what servers say about themselves at /metrics.

A scrape file holds one or more snapshots; each snapshot after the first (and optionally
the first) starts with the comment line the load test writes before it:

    # llmplan-scrape unix_ts=1733059200.125

Samples are `name{label="value",...} value [timestamp]`; HELP/TYPE and other comments are
skipped. Errors name the file, the line and what was expected; scrapes whose times go
backwards are refused (each interval between two is differenced as it comes).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from llmplan.errors import InputError, Problem
from llmplan.loadtests.scrape import SCRAPE_MARK

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


@dataclass
class Snapshot:
    """One scrape: samples by metric name, each a list of (labels, value)."""

    unix_ts: float | None
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)
    #: the line of the file its scrape mark is on (None: no mark, or not from a file)
    line: int | None = None

    def total(self, name: str) -> float | None:
        """Sum of a metric over all its label sets (engines, models); None if absent."""
        values = [v for _, v in self.samples.get(name, [])]
        return float(sum(values)) if values else None

    def first(self, *names: str) -> float | None:
        """The total of the first of `names` the server exports (renamed metrics)."""
        for name in names:
            value = self.total(name)
            if value is not None:
                return value
        return None

    def labels_of(self, name: str) -> dict[str, str]:
        """Labels of an info-style metric (a gauge fixed at 1 that carries settings)."""
        rows = self.samples.get(name, [])
        return dict(rows[0][0]) if rows else {}


def _labels(text: str, where: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        match = _LABEL.match(text, pos)
        if match is None:
            raise ValueError(f"{where}: cannot read labels {{{text}}}")
        labels[match.group(1)] = (match.group(2).replace("\\n", "\n").replace('\\"', '"')
                                  .replace("\\\\", "\\"))
        pos = match.end()
    return labels


def parse_snapshots(text: str, source: str = "<metrics>") -> list[Snapshot]:
    """Every snapshot in a scrape file (see the module docstring)."""
    snapshots: list[Snapshot] = []
    current: Snapshot | None = None
    problems: list[Problem] = []
    latest: Snapshot | None = None           # the latest-stamped scrape so far
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith(SCRAPE_MARK):
            try:
                ts = float(line[len(SCRAPE_MARK):].split()[0])
            except (ValueError, IndexError):
                problems.append(Problem(source, number, "unix_ts", "expected a number"))
                continue
            if latest is not None and latest.unix_ts is not None and ts < latest.unix_ts:
                problems.append(Problem(
                    source, number, "unix_ts",
                    f"scrape time goes backwards: {ts:.3f} after {latest.unix_ts:.3f} (line "
                    f"{latest.line}); expected scrapes in the order they were taken (a "
                    f"clock stepped back, or scrape files were joined out of order)"))
                if len(problems) >= 20:
                    break
            current = Snapshot(ts, line=number)
            snapshots.append(current)
            if latest is None or latest.unix_ts is None or ts >= latest.unix_ts:
                latest = current
            continue
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        try:
            if match is None:
                raise ValueError("expected `name{labels} value`")
            value = float(match.group(4))
            labels = _labels(match.group(3) or "", f"{source}:{number}")
        except ValueError as exc:
            problems.append(Problem(source, number, "", f"not Prometheus text: {exc}"))
            if len(problems) >= 20:
                break
            continue
        if current is None:
            current = Snapshot(None)
            snapshots.append(current)
        if not math.isnan(value):
            current.samples.setdefault(match.group(1), []).append((labels, value))
    if problems:
        raise InputError(problems, title="invalid metrics text")
    return snapshots


def read_snapshots(path: Path) -> list[Snapshot]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from None
    return parse_snapshots(text, str(path))
