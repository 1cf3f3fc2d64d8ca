"""JSON-lines files: one rule for reading them everywhere.

A writer that is killed mid-line leaves a last line without its newline: that torn last line
is skipped (what was finished before it is kept). Any other line that is not a JSON object is
an error naming the file and line, never silently dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmplan.errors import InputError, Problem


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every line of the file, by the rule above."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from None
    lines = text.split("\n")
    torn = lines[-1] != ""          # the file does not end with a newline
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            if torn and number == len(lines):
                break
            raise InputError([Problem(str(path), number, "",
                                      f"not JSON: {exc.msg}; expected one JSON object per "
                                      f"line")]) from None
        if not isinstance(value, dict):
            raise InputError([Problem(str(path), number, "",
                                      f"expected a JSON object, got {type(value).__name__}")])
        rows.append((number, value))
    return rows


def dumps_line(value: Any) -> str:
    """One compact JSON line (with its newline)."""
    return json.dumps(value, separators=(",", ":")) + "\n"
