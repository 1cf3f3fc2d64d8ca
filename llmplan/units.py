"""Parsing of human durations ("90s", "15m", "2h", "1d") into seconds, and what to write
instead of a number given with a unit or a suffix its field does not read."""

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


#: time units as people write them after a number, in seconds
_TIME_UNIT_S = {
    "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0,
    "seconds": 1.0, "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0, "d": 86400.0,
    "day": 86400.0, "days": 86400.0,
}
#: the unit a field's name ends in: (ending, seconds in it, a rate (per that time), in words);
#: the rates first, as "_per_s" also ends in "_s"
_NAMED_UNITS = (
    ("_per_s", 1.0, True, "per second"), ("_per_min", 60.0, True, "per minute"),
    ("_per_day", 86400.0, True, "per day"), ("_ms", 1e-3, False, "milliseconds"),
    ("_us", 1e-6, False, "microseconds"), ("_s", 1.0, False, "seconds"),
    ("_minutes", 60.0, False, "minutes"), ("_hours", 3600.0, False, "hours"),
)
#: names that end like a unit and are not one (Zipf's exponent s)
_NOT_A_UNIT = frozenset({"zipf_s"})
_NUMBER_WITH_UNIT = re.compile(
    r"^\s*(\d+(?:\.\d*)?(?:e[-+]?\d+)?)\s*(/|per\s+|an?\s+)?\s*([a-zµ]+)\s*$", re.IGNORECASE)


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*%\s*$")
#: mappings whose every value is a share of 1 though no name says so (a task's quality: the
#: share of right answers per deployment)
SHARE_MAPPINGS = frozenset({"quality"})


def percent_as_fraction(text: str) -> str | None:
    """'0.95' for a percentage ('95%'); None for any other text."""
    percent = _PERCENT.match(text)
    return None if percent is None else f"{float(percent.group(1)) / 100:.6g}"


def number_in_named_unit(field: str, text: str, within: str | None = None) -> str | None:
    """For a number written with a time or memory unit ('2 s', '1500ms', '180/min', '40 GB')
    in a field whose name gives the unit (ttft_ms, rate_per_s, kv_cache_memory_gib), or a
    percentage in a fraction ('95%' for min_goodput_fraction, or for an entry of a share
    mapping: `within` the mapping's name, as `quality`): what to write instead, as a
    sentence; None when the field names no such unit or the text is no number with one."""
    share = percent_as_fraction(text)
    if share is not None and (field.endswith("_fraction") or within in SHARE_MAPPINGS):
        said = f"{within} holds" if within in SHARE_MAPPINGS else "the field's name says"
        return f"{said} a fraction of 1: write {field}: {share}"
    if (memory := _memory_in_named_unit(field, text)) is not None:
        return memory
    named = next((n for n in _NAMED_UNITS if field.endswith(n[0])), None)
    match = _NUMBER_WITH_UNIT.match(text)
    if named is None or field in _NOT_A_UNIT or match is None:
        return None
    _, field_s, rate, words = named
    number, per, unit = float(match.group(1)), match.group(2), match.group(3).lower()
    if unit not in _TIME_UNIT_S or rate != (per is not None):
        return None
    unit_s = _TIME_UNIT_S[unit]
    value = number * field_s / unit_s if rate else number * unit_s / field_s
    return f"the unit is in the field's name ({words}): write {field}: {value:.6g}"


#: memory units as people write them after a number, in bytes (GB decimal, GiB binary: a
#: GPU's marketed 80 GB is 74.5 GiB)
_MEMORY_UNIT_BYTES = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10,
                      "mib": 2**20, "gib": 2**30, "tib": 2**40}
#: the memory unit a field's name ends in, and its name as written
_NAMED_MEMORY = (("_bytes", "b", "bytes"), ("_kib", "kib", "KiB"), ("_mib", "mib", "MiB"),
                 ("_gib", "gib", "GiB"), ("_tib", "tib", "TiB"), ("_kb", "kb", "kB"),
                 ("_mb", "mb", "MB"), ("_gb", "gb", "GB"), ("_tb", "tb", "TB"))


def _memory_in_named_unit(field: str, text: str) -> str | None:
    named = next((n for n in _NAMED_MEMORY if field.endswith(n[0])), None)
    match = _NUMBER_WITH_UNIT.match(text)
    if named is None or match is None or match.group(2) is not None:
        return None
    unit = match.group(3).lower()
    if unit not in _MEMORY_UNIT_BYTES:
        return None
    _, field_unit, words = named
    value = float(match.group(1)) * _MEMORY_UNIT_BYTES[unit] / _MEMORY_UNIT_BYTES[field_unit]
    return f"the unit is in the field's name ({words}): write {field}: {value:.6g}"


#: a count with a magnitude suffix, as vLLM's command line reads one (`--max-model-len 32k`)
_SUFFIXED_COUNT = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kmgt])\s*$", re.IGNORECASE)
_POWER = {"k": 1, "m": 2, "g": 3, "t": 4}


def count_with_suffix(field: str, text: str, *, vllm_flag: bool, whole: bool) -> str | None:
    """For a count written with a magnitude suffix ('32k', '4M') in a field that reads plain
    numbers: what to write instead, as a sentence; None when the text is no such count.

    A vLLM engine setting (`vllm_flag`) is read as vLLM's `human_readable_int` reads its
    flags (vllm/engine/arg_utils.py): lower case k, m, g, t are powers of 1,000, upper
    case K, M, G, T powers of 1,024 (32k = 32,000; 32K = 32,768). Anywhere else a suffix
    is a power of 1,000 (4M tokens a minute: 4,000,000)."""
    match = _SUFFIXED_COUNT.match(text)
    if match is None:
        return None
    number, suffix = float(match.group(1)), match.group(2)
    base = 1024 if vllm_flag and suffix.isupper() else 1000
    value = number * base ** _POWER[suffix.lower()]
    written = f"{round(value)}" if whole else f"{value:.15g}"
    if vllm_flag:
        return (f"write {field}: {written} (as vLLM reads {match.group(1)}{suffix}: k, m, g "
                f"are powers of 1,000, K, M, G of 1,024)")
    return f"write {field}: {written} ({suffix} read as {base ** _POWER[suffix.lower()]:,})"
