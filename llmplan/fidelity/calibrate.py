"""`llmplan calibrate`: fit the simulator's step-time model to a real server's load test.

Fits, by non-negative least squares on the reconstructed steps (timeline.py),

    step_s = fixed + per_prefill_token * P + per_decode_seq * D + per_kv_token * K

then the client-server overhead (HTTP, tokenisation, scheduling) as the median of what
cold-start TTFTs leave after their prefill step. Concurrency (slots / max_num_seqs), the
token budget and the KV capacity come from the server when it says (llama.cpp /props,
saved by the load test) or from the command line. Returns a `Calibration` (written as
calibration.yaml), which a scenario references as
`step_time: {kind: calibrated, file: calibration.yaml}`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls

from llmplan.errors import InputError, Problem
from llmplan.fidelity.timeline import ColdStart, StepSample, steps
from llmplan.loadtests.records import RequestRecord, read_records, records_file
from llmplan.perf.steptime_spec import (
    Calibration,
    CalibrationEngine,
    CalibrationServer,
    FitQuality,
    LinearStepTime,
)


@dataclass(frozen=True)
class Fit:
    coefficients_s: tuple[float, float, float, float]
    client_overhead_s: float
    samples: int
    cold_starts: int
    r2: float
    rmse_ms: float
    median_abs_error_pct: float


def read_measurements(path: Path) -> list[RequestRecord]:
    """Records of a load test (its folder, or a requests.jsonl file), validated."""
    return read_records(records_file(path))


def fit_step_time(samples: list[StepSample], cold: list[ColdStart]) -> Fit:
    """NNLS fit of the four coefficients, plus the overhead seen by cold starts."""
    if len(samples) < 8:
        raise ValueError(f"only {len(samples)} busy steps could be reconstructed: load the "
                         f"server with concurrent requests (several in flight) to calibrate")
    X = np.array([[1.0, s.prefill_tokens, s.decode_seqs, s.kv_tokens] for s in samples])
    y = np.array([s.duration_s for s in samples])
    # robust: fit, drop the worst 5% (scheduler hiccups, client stalls), fit again
    coef, _ = nnls(X, y)
    residual = np.abs(X @ coef - y)
    keep = residual <= np.percentile(residual, 95)
    coef, _ = nnls(X[keep], y[keep])
    predicted = X @ coef
    ss_res = float(np.sum((y - predicted) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2)) or 1e-30
    # a cold start is one step with only the prompt: what is left is client-side time
    leftovers = [c.ttft_s - (coef[0] + coef[1] * c.prompt_tokens) for c in cold]
    overhead = max(0.0, float(np.median(leftovers))) if leftovers else 0.0
    return Fit(coefficients_s=(float(coef[0]), float(coef[1]), float(coef[2]), float(coef[3])),
               client_overhead_s=overhead, samples=len(samples), cold_starts=len(cold),
               r2=1.0 - ss_res / ss_tot, rmse_ms=math.sqrt(ss_res / len(y)) * 1e3,
               median_abs_error_pct=float(np.median(np.abs(predicted - y) / y)) * 100)


def server_props(folder: Path) -> dict[str, Any]:
    """What the load test saved about the server (llama.cpp /props), if anything."""
    props = folder / "server_props.json" if folder.is_dir() else folder.parent / "server_props.json"
    if not props.exists():
        return {}
    try:
        data = json.loads(props.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError([Problem(str(props), None, "", f"not JSON: {exc}")]) from None
    return data if isinstance(data, dict) else {}


def calibrate(paths: Path | Sequence[Path], *, slots: int | None = None,
              max_batched_tokens: int | None = None,
              kv_cache_tokens: int | None = None) -> Calibration:
    """The calibration of one server from the records of one or more of its load tests.

    Each run's timeline is reconstructed on its own (their clocks are unrelated); the step
    samples of all runs are fitted together, which averages out a run's machine noise.
    """
    paths = [paths] if isinstance(paths, Path) else list(paths)
    rows: list[RequestRecord] = []
    samples: list[StepSample] = []
    cold: list[ColdStart] = []
    for path in paths:
        run_rows = read_measurements(path)
        run_samples, run_cold = steps(run_rows)
        rows += run_rows
        samples += run_samples
        cold += run_cold
    try:
        fit = fit_step_time(samples, cold)
    except ValueError as exc:
        raise InputError([Problem(", ".join(map(str, paths)), None, "", str(exc))]) from None
    props = server_props(paths[0])        # the same server: its first run's /props speak for all
    settings = props.get("default_generation_settings", {})
    slots = slots or props.get("total_slots") or max(1, _max_concurrency(rows))
    n_ctx = settings.get("n_ctx")
    kv = kv_cache_tokens or (int(n_ctx) * int(slots) if n_ctx else None)
    fixed, prefill, decode, kv_token = fit.coefficients_s
    return Calibration(
        source=", ".join(map(str, paths)),
        server=CalibrationServer(slots=int(slots), n_ctx_per_slot=n_ctx,
                                 build=props.get("build_info")),
        step_time=LinearStepTime(fixed_ms=round(fixed * 1e3, 6),
                                 per_prefill_token_us=round(prefill * 1e6, 6),
                                 per_decode_seq_us=round(decode * 1e6, 6),
                                 per_kv_token_ns=round(kv_token * 1e9, 6)),
        engine=CalibrationEngine(max_num_seqs=int(slots),
                                 max_num_batched_tokens=int(max_batched_tokens or 2048),
                                 kv_cache_tokens=kv),
        client_overhead_ms=round(fit.client_overhead_s * 1e3, 3),
        fit=FitQuality(steps=fit.samples, cold_starts=fit.cold_starts, r2=round(fit.r2, 4),
                       rmse_ms=round(fit.rmse_ms, 3),
                       median_abs_error_pct=round(fit.median_abs_error_pct, 2),
                       requests=len(rows)))


def _max_concurrency(rows: list[RequestRecord]) -> int:
    spans = [(r.send_ts + r.ttft_ms / 1e3, r.send_ts + (r.e2e_ms or 0.0) / 1e3)
             for r in rows if r.ok and r.ttft_ms is not None]
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak
