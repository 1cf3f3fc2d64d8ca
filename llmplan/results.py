"""result.json: deterministic bytes for the same scenario and seed."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SIGNIFICANT_DIGITS = 7


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def dumps_result(result: dict[str, Any]) -> str:
    """Canonical JSON: sorted keys, floats to 7 significant digits, NaN as null."""
    return json.dumps(_clean(result), sort_keys=True, indent=1, allow_nan=False) + "\n"


def write_result(result: dict[str, Any], out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "result.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(dumps_result(result), encoding="utf-8")
    tmp.replace(path)
    return path
