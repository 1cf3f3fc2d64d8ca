"""What a load test measured: the figures the field expects, from the JSONL records.

Same definitions as the simulator (TTFT, TPOT = (E2E - TTFT)/(n - 1), ITL excluding TTFT,
goodput = requests inside every SLO bound of their task), plus what only a real run has:
errors by class with 429 apart, requested vs achieved rate, the generator's own schedule
delay, token-count mismatches and answer correctness per task.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmplan.scenario.models import SloSpec
from loadtests.records import ERROR_CLASSES

PERCENTILES = (50, 90, 95, 99)


def _stats(values: list[float] | np.ndarray) -> dict[str, float | None]:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return {"mean": None, **{f"p{p}": None for p in PERCENTILES}, "max": None}
    points = np.percentile(arr, PERCENTILES)
    return {"mean": float(arr.mean()),
            **{f"p{p}": float(v) for p, v in zip(PERCENTILES, points, strict=True)},
            "max": float(arr.max())}


def within_slo(row: dict[str, Any], slo: SloSpec) -> bool:
    if row["error_class"] is not None or row["e2e_ms"] is None:
        return False
    for bound, key in ((slo.ttft_ms, "ttft_ms"), (slo.tpot_ms, "tpot_ms"), (slo.e2e_ms, "e2e_ms")):
        value = row.get(key)
        if bound is not None and value is not None and value > bound:
            return False
    return True


def summarise(rows: list[dict[str, Any]], *, planned: int, planned_span_s: float,
              slo_by_task: dict[str, SloSpec], mode: str) -> dict[str, Any]:
    """summary.json content."""
    ok = [r for r in rows if r["error_class"] is None]
    errors = {cls: sum(1 for r in rows if r["error_class"] == cls) for cls in ERROR_CLASSES}
    status_codes: dict[str, int] = {}
    for r in rows:
        if r["error_class"] is not None:
            status_codes[str(r["status"])] = status_codes.get(str(r["status"]), 0) + 1
    if rows:
        first_send = min(r["send_ts"] for r in rows)
        last_end = max(r["send_ts"] + (r["e2e_ms"] or 0.0) / 1e3 for r in rows)
        window = max(last_end - first_send, 1e-9)
        send_span = max(max(r["send_ts"] for r in rows) - first_send, 1e-9)
    else:
        window = send_span = 1e-9
    good = [r for r in rows if within_slo(r, slo_by_task.get(r["task"], SloSpec()))]
    tasks: dict[str, Any] = {}
    for task in sorted({r["task"] for r in rows}):
        mine = [r for r in rows if r["task"] == task]
        checked = [r for r in mine if r["correct"] is not None]
        tasks[task] = {
            "requests": len(mine),
            "ok": sum(1 for r in mine if r["error_class"] is None),
            "checked": len(checked),
            "correct_fraction": (sum(1 for r in checked if r["correct"]) / len(checked)
                                 if checked else None),
            "goodput_fraction": sum(1 for r in good if r["task"] == task) / len(mine),
        }
    requested_rate = planned / planned_span_s if planned_span_s > 0 and mode == "open" else None
    return {
        "mode": mode,
        "requests": {"planned": planned, "sent": len(rows), "ok": len(ok),
                     "failed": len(rows) - len(ok), "errors_by_class": errors,
                     "errors_by_status": status_codes,
                     "token_mismatches": sum(1 for r in ok if r["token_mismatch"])},
        "latency": {
            "ttft_ms": _stats([r["ttft_ms"] for r in ok if r["ttft_ms"] is not None]),
            "tpot_ms": _stats([r["tpot_ms"] for r in ok if r["tpot_ms"] is not None]),
            "itl_ms": _stats([x for r in ok for x in r["itl_ms"]]),
            "e2e_ms": _stats([r["e2e_ms"] for r in ok]),
        },
        "throughput": {
            "requested_rate_per_s": requested_rate,
            "send_rate_per_s": len(rows) / send_span if len(rows) > 1 else None,
            "achieved_rate_per_s": len(ok) / window,
            "output_tokens_per_s": sum(r["output_tokens"] or 0 for r in ok) / window,
            "window_s": window,
        },
        "schedule_delay_ms": _stats([r["schedule_delay_ms"] for r in rows]),
        "slo": {"goodput_fraction": len(good) / len(rows) if rows else None,
                "goodput_requests_per_s": len(good) / window},
        "tasks": tasks,
    }
