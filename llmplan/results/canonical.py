"""Deterministic JSON for results: the same scenario and seed give the same bytes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmplan.files import write_text_atomic

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


def dumps_canonical(value: BaseModel | dict[str, Any] | list[Any]) -> str:
    """Canonical JSON: sorted keys, floats to 7 significant digits, NaN as null."""
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return json.dumps(_clean(data), sort_keys=True, indent=1, allow_nan=False) + "\n"


def write_result(result: BaseModel, out_dir: str | Path, name: str = "result.json") -> Path:
    """Write atomically (a reader never sees half a file)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    write_text_atomic(path, dumps_canonical(result))
    return path
