"""Request traces: CSV or JSONL rows of (timestamp, prompt_tokens, output_tokens, task).

`timestamp` is seconds (relative or Unix epoch) or an ISO-8601 date-time; times are shifted so
the first request arrives at 0. `task` is optional. A bad row is reported with its line number.

Optional columns, as `llmplan import-trace` writes them: `prefix_group` and `prefix_tokens`
(the shared prefix a prompt begins with, as in a scenario's shared_prefix; -1 and 0: none),
and `session`, `turn`, `think_s` (a conversation's turn: sent `think_s` after the previous
turn ended, its `prefix_tokens` being the history; -1: not a conversation).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

from llmplan.errors import InputError, Problem

T = TypeVar("T")

COLUMNS = ("timestamp", "prompt_tokens", "output_tokens")
#: The longest pause a conversation's user may take before a turn (a year of seconds): a
#: finite bound, so a turn's time stays a number the clock can hold.
MAX_THINK_S = 365 * 86400.0
#: optional integer columns and their value when absent; think_s is a float
OPTIONAL = {"prefix_group": -1, "prefix_tokens": 0, "session": -1, "turn": 0}


def _timestamp_s(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    if not math.isfinite(seconds):
        raise ValueError(f"timestamp must be a finite number of seconds, got {value!r}")
    return seconds


def describe(problems: list[Problem]) -> str:
    """Problems of a trace file as one line for an error about the field naming it."""
    return "; ".join(f"{p.file}" + (f":{p.line}" if p.line is not None else "")
                     + (f": {p.path}" if p.path else "") + f": {p.message}" for p in problems)


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix in {".jsonl", ".ndjson"}:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError([Problem(str(path), number, "",
                                              f"not valid JSON: {exc.msg}")]) from None
                if not isinstance(row, dict):
                    raise InputError([Problem(str(path), number, "",
                                              "expected a JSON object per line")])
                rows.append((number, row))
        return rows
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError([Problem(
            str(path), 1, "", f"missing column(s) {', '.join(missing)}; "
            "expected header: timestamp,prompt_tokens,output_tokens[,task]")])
    # the line a row ends on, as the file numbers it (DictReader skips blank lines)
    return [(reader.line_num, row) for row in reader]


@cache
def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        rows = _rows(path)
    except FileNotFoundError:
        raise InputError([Problem(str(path), None, "", "trace file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem(str(path), None, "", f"cannot read trace: {exc}")]) from None
    if not rows:
        raise InputError([Problem(str(path), None, "", "trace has no rows")])
    times, prompts, outputs, tasks = [], [], [], []
    present = [c for c in (*OPTIONAL, "think_s") if any(row.get(c) not in (None, "")
                                                        for _, row in rows)]
    extra: dict[str, list[float]] = {c: [] for c in present}
    for number, row in rows:
        past: list[str] | None = cast("dict[Any, Any]", row).get(None)
        if past:                 # csv.DictReader's key for values past the header's
            raise InputError([Problem(str(path), number, "", (
                f"{len(past)} value(s) more than the header's columns "
                f"({', '.join(c for c in row if c is not None)})"))])
        times.append(_cell(path, number, row, "timestamp", parse=_timestamp_s,
                           expected="a finite number of seconds or an ISO date-time"))
        prompt, output = (_cell(path, number, row, column, parse=_whole,
                                expected=f"a whole number of tokens up to {MAX_TOKENS:,}")
                          for column in ("prompt_tokens", "output_tokens"))
        if prompt < 1 or output < 1:
            raise InputError([Problem(str(path), number, "prompt_tokens/output_tokens",
                                      f"token counts must be >= 1 (got {prompt} and "
                                      f"{output})")])
        prompts.append(prompt)
        outputs.append(output)
        tasks.append(str(row.get("task") or ""))
        for column in present:
            extra[column].append(_optional(path, number, column, row.get(column), prompt))
    t = np.asarray(times, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    columns = {
        "timestamp": t[order] - t[order][0],
        "prompt_tokens": np.asarray(prompts, dtype=np.int64)[order],
        "output_tokens": np.asarray(outputs, dtype=np.int64)[order],
        "task": np.asarray(tasks, dtype=object)[order],
    }
    for column, values in extra.items():
        kind = np.float64 if column == "think_s" else np.int64
        columns[column] = np.asarray(values, dtype=kind)[order]
    return columns


def _cell(path: Path, number: int, row: dict[Any, Any], column: str, *,
          parse: Callable[[Any], T], expected: str) -> T:
    """One required column's value, or an error naming the file, line, column and what was
    expected."""
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError([Problem(str(path), number, column, f"missing; expected {expected}")])
    try:
        return parse(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError([Problem(str(path), number, column,
                                  f"expected {expected}, got {value!r}")]) from None


#: the largest token count a trace row may carry (a million-token context is today's most)
MAX_TOKENS = 10**8


def _whole(value: Any) -> int:
    """A whole number from a CSV cell or a JSON value ("100", 100, 100.0; not 100.5), at
    most MAX_TOKENS."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a count")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("not whole")
        value = int(value)
    number = int(value)
    if abs(number) > MAX_TOKENS:
        raise ValueError("too large")
    return number


def _optional(path: Path, number: int, column: str, value: Any, prompt: int) -> float:
    """One optional column's value (its default when empty), checked."""
    if value in (None, ""):
        return 0.0 if column == "think_s" else OPTIONAL[column]
    try:
        number_value = float(value) if column == "think_s" else int(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError([Problem(str(path), number, column,
                                  f"expected a number, got {value!r}")]) from None
    low = 0 if column in {"prefix_tokens", "turn", "think_s"} else -1
    if not number_value >= low or (column == "prefix_tokens" and number_value > prompt) \
            or (column == "think_s" and not number_value <= MAX_THINK_S):
        expected = "between 0 and prompt_tokens" if column == "prefix_tokens" else \
            f"between 0 and {MAX_THINK_S:,.0f} seconds (a year)" if column == "think_s" \
            else f">= {low}"
        raise InputError([Problem(str(path), number, column,
                                  f"expected {expected}, got {value!r}")])
    return number_value


def read_trace(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a trace, sorted by time, time starting at 0. Cached per resolved path."""
    return _read(Path(path).resolve())
