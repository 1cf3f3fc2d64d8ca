"""Parsing of human durations ("90s", "15m", "2h", "1d") into seconds."""

from __future__ import annotations

import re

_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
#: A duration as text: a number and an optional unit (seconds when left out); also valid as
#: an ECMAScript pattern, so the JSON Schema of a scenario can carry it.
DURATION_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)?\s*$"
_DURATION = re.compile(DURATION_PATTERN)


def parse_duration_s(value: object) -> float:
    """Seconds from a number (already seconds) or a string like '90s', '15m', '2h', '1d'."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 3600, '90s', '15m', '2h' or '1d'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
    raise ValueError(f"expected a duration such as 3600, '90s', '15m', '2h' or '1d', got {value!r}")
