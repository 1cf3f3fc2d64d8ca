"""`llmplan validate`: replay measured requests through the simulator and compare.

Every finished request of a load test is replayed with its real send time, the prompt
tokens the server computed (its count less those it served from its prompt cache, as the
fit counts them) and its output tokens through one calibrated replica; the predicted and
measured TTFT, TPOT, ITL and E2E percentiles and the throughput are set side by side with
the error of each.

A server that ran slower or faster than when it was calibrated (another tenant on the
machine, a throttled GPU) moves every latency with it, and near saturation the queue
multiplies the change. So the comparison also reads the run's own speed: its busy steps,
rebuilt from the records as the calibration rebuilt its own, against what the calibration
predicts for each (`step_time_ratio`: their mean ratio, the 5% extremes either side
trimmed), over the whole run and over each third of it (`step_time_ratio_range`: the
fastest and slowest third). The errors of a replay at the whole run's speed are
`error_pct_at_run_speed`; `error_pct_outside_run_speeds` is how far each measurement falls
outside the predictions at the fastest and the slowest third's speed (0 between them): a
server whose speed moved within the run lands anywhere in that range, and an error that
stays outside it is the model's, not the host's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy.stats import trim_mean

from llmplan.catalog import builtin_catalog
from llmplan.fidelity.calibrate import read_measurements
from llmplan.fidelity.fit import MIN_STEPS
from llmplan.fidelity.timeline import StepSample, computed_prompt, steps
from llmplan.loadtests.records import RequestRecord
from llmplan.perf.engine import EngineSpec
from llmplan.perf.steptime_spec import (
    CalibratedStepTime,
    Calibration,
    FittedStepTime,
    LinearStepTime,
    TabulatedStepTime,
)
from llmplan.scenario.models import AdmissionSpec, LocalDeployment
from llmplan.sim.engine import DeploymentRun, simulate_deployment
from llmplan.sim.table import request_table
from llmplan.stats import PERCENTILES, percentiles
from llmplan.traffic import RequestStream

METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
#: Percentiles by the keys the comparison uses ("p50", ...), None when unmeasured.
Points = dict[str, float | None]


class Comparison(BaseModel):
    """validation.json: predicted vs measured, per metric and percentile, errors in %."""

    model_config = ConfigDict(extra="forbid")

    requests: int
    measured: dict[str, Points]
    predicted: dict[str, Points]
    error_pct: dict[str, dict[str, float]]
    #: the run's busy steps against the calibration's prediction of each (the trimmed
    #: mean of measured / predicted): above 1 the server ran slower than when it was
    #: calibrated. None: not a calibrated deployment, or too few busy steps to read.
    step_time_ratio: float | None = None
    #: the same over the fastest and the slowest third of the run
    step_time_ratio_range: tuple[float, float] | None = None
    #: the errors of a replay whose steps take step_time_ratio times the calibration's
    error_pct_at_run_speed: dict[str, dict[str, float]] | None = None
    #: how far each measurement falls outside the replays at the range's two speeds, in %
    #: of the measurement (0: between them)
    error_pct_outside_run_speeds: dict[str, dict[str, float]] | None = None


def calibrated_deployment(calibration_path: Path, gpu: str = "L4",
                          model: str = "SmolLM2-135M") -> LocalDeployment:
    """One replica with the calibration's coefficients and engine limits, whose clients
    wait for every answer: it replays measured requests, all of which were answered (the
    scenario default gives up after 60 s in the queue)."""
    calibration = Calibration.read(calibration_path)
    engine = EngineSpec(**calibration.engine.model_dump(exclude_none=True))
    step = CalibratedStepTime.model_validate(
        {"kind": "calibrated", "file": str(calibration_path.resolve())},
        context={"base_dir": "/"})
    return LocalDeployment(gpu=gpu, model=model, engine=engine, step_time=step, replicas=1,
                           admission=AdmissionSpec(queue_timeout_s=None))


def predicted_step_s(step_time: FittedStepTime, samples: list[StepSample]) -> np.ndarray:
    """What a fitted step-time model predicts for each step."""
    P, D, K, A = (np.array([getattr(s, f) for s in samples], dtype=float)
                  for f in ("prefill_tokens", "decode_seqs", "kv_tokens", "prefill_pairs"))
    if isinstance(step_time, LinearStepTime):
        ms = step_time.fixed_ms + step_time.per_prefill_token_us * 1e-3 * P \
            + step_time.per_decode_seq_us * 1e-3 * D
    else:
        tokens = [0, *(t for t, _ in step_time.tokens_ms)]
        points = [0.0, *(v for _, v in step_time.tokens_ms)]
        rate = max(0.0, (points[-1] - points[-2]) / (tokens[-1] - tokens[-2]))
        ms = np.interp(P + D, tokens, points) + rate * np.maximum(0.0, P + D - tokens[-1])
    ms = ms + step_time.per_kv_token_ns * 1e-6 * K + step_time.per_prefill_pair_ns * 1e-6 * A
    return np.asarray(ms, dtype=float) * 1e-3


#: a run's speed is read over the whole run and over each of this many parts of it
SPEED_PARTS = 3
#: ... as the mean step ratio without this share of the steps at either end: a preempted
#: step can last ten times its prediction, and a busy host's preemptions are part of its
#: speed, but a mis-clustered step is not
SPEED_TRIM = 0.05


def step_time_ratios(rows: list[RequestRecord], calibration: Calibration
                     ) -> tuple[float, float, float] | None:
    """How many times the calibration's prediction the run's busy steps took: over the
    whole run, its fastest third and its slowest (None when any third has fewer steps
    than a calibration needs)."""
    samples, _ = steps(rows)
    if len(samples) < SPEED_PARTS * MIN_STEPS:
        return None
    predicted = predicted_step_s(calibration.step_time, samples)
    ratio = np.array([s.duration_s for s in samples]) / np.maximum(predicted, 1e-9)
    parts = [float(trim_mean(part, SPEED_TRIM)) for part in np.array_split(ratio, SPEED_PARTS)]
    return float(trim_mean(ratio, SPEED_TRIM)), min(parts), max(parts)


def at_speed(dep: LocalDeployment, ratio: float) -> LocalDeployment:
    """The calibrated deployment with every step taking `ratio` times as long."""
    assert isinstance(dep.step_time, CalibratedStepTime) and dep.step_time.calibration
    calibration = dep.step_time.calibration
    fitted = calibration.step_time
    if isinstance(fitted, LinearStepTime):
        scaled: FittedStepTime = fitted.model_copy(update={
            f: getattr(fitted, f) * ratio
            for f in ("fixed_ms", "per_prefill_token_us", "per_decode_seq_us",
                      "per_kv_token_ns", "per_prefill_pair_ns")})
    else:
        scaled = TabulatedStepTime(
            tokens_ms=[(t, v * ratio) for t, v in fitted.tokens_ms],
            per_kv_token_ns=fitted.per_kv_token_ns * ratio,
            per_prefill_pair_ns=fitted.per_prefill_pair_ns * ratio)
    step = CalibratedStepTime(file=dep.step_time.file,
                              calibration=calibration.model_copy(update={"step_time": scaled}))
    return dep.model_copy(update={"step_time": step})


def replay_stream(rows: list[RequestRecord]) -> tuple[RequestStream, list[RequestRecord]]:
    """The measured requests as a simulator request stream (finished ones only)."""
    done = sorted((r for r in rows if r.ok and r.output_tokens and r.prompt_tokens
                   and r.e2e_ms is not None), key=lambda r: r.send_ts)
    if not done:
        raise ValueError("no finished requests with token counts to replay")
    t0 = done[0].send_ts
    stream = RequestStream(
        arrival_s=np.array([r.send_ts - t0 for r in done]),
        task_index=np.zeros(len(done), dtype=np.int64),
        # what the server computed: the fit's per-token cost is per computed prompt token
        prompt_tokens=np.array([max(1, computed_prompt(r)) for r in done], dtype=np.int64),
        output_tokens=np.array([r.output_tokens or 0 for r in done], dtype=np.int64),
        task_names=("measured",))
    return stream, done


def simulate_replay(rows: list[RequestRecord], dep: LocalDeployment) -> tuple[
        DeploymentRun, RequestStream, list[RequestRecord]]:
    stream, done = replay_stream(rows)
    span = float(stream.arrival_s[-1]) + 1.0
    run = simulate_deployment("replay", dep, builtin_catalog(), stream, span,
                              drain_s=max(600.0, 10 * span))
    return run, stream, done


def _points(values: list[float | None] | np.ndarray) -> Points:
    return {f"p{q:g}": v for q, v in percentiles(values, PERCENTILES).items()}


def _predicted(rows: list[RequestRecord], dep: LocalDeployment) -> dict[str, Points]:
    """The replay's percentiles per metric and its throughput."""
    run, stream, _ = simulate_replay(rows, dep)
    table = request_table(run, stream)
    _, itl = run.records.itl_percentiles_s(PERCENTILES)
    finish = table.arrival_s + table.e2e_s
    return {
        "ttft_ms": _points(table.ttft_s * 1e3),
        "tpot_ms": _points(table.tpot_s * 1e3),
        "itl_ms": {f"p{q:g}": itl[q] * 1e3 for q in PERCENTILES},
        "e2e_ms": _points(table.e2e_s * 1e3),
        "throughput": {"requests_per_s": int(np.sum(~np.isnan(finish)))
                       / float(np.nanmax(finish))},
    }


def _errors(measured: dict[str, Points], predicted: dict[str, Points]
            ) -> dict[str, dict[str, float]]:
    return {metric: {k: 100.0 * (p - v) / v for k, v in values.items()
                     if v and (p := predicted[metric].get(k)) is not None}
            for metric, values in measured.items()}


def _outside(measured: dict[str, Points], low: dict[str, Points], high: dict[str, Points]
             ) -> dict[str, dict[str, float]]:
    """How far each measured figure lies outside [low, high] predictions, in % of it."""
    out: dict[str, dict[str, float]] = {}
    for metric, values in measured.items():
        out[metric] = {}
        for k, v in values.items():
            a, b = low[metric].get(k), high[metric].get(k)
            if not v or a is None or b is None:
                continue
            lo, hi = min(a, b), max(a, b)
            out[metric][k] = 0.0 if lo <= v <= hi else \
                100.0 * ((lo if v < lo else hi) - v) / v
    return out


def compare(rows: list[RequestRecord], dep: LocalDeployment) -> Comparison:
    """Predicted vs measured per metric and percentile, with relative errors in %, and the
    same at the run's own speed when the deployment is calibrated (see the module doc)."""
    _, done = replay_stream(rows)
    measured: dict[str, Points] = {
        "ttft_ms": _points([r.ttft_ms for r in done]),
        "tpot_ms": _points([r.tpot_ms for r in done]),
        "itl_ms": _points([x for r in done for x in r.itl_ms]),
        "e2e_ms": _points([r.e2e_ms for r in done]),
    }
    window_measured = max(r.send_ts + (r.e2e_ms or 0.0) / 1e3 for r in done) - done[0].send_ts
    measured["throughput"] = {"requests_per_s": len(done) / window_measured}
    predicted = _predicted(rows, dep)
    speeds = None
    if isinstance(dep.step_time, CalibratedStepTime) and dep.step_time.calibration:
        speeds = step_time_ratios(rows, dep.step_time.calibration)
    if speeds is None:
        return Comparison(requests=len(done), measured=measured, predicted=predicted,
                          error_pct=_errors(measured, predicted))
    whole, fastest, slowest = speeds
    return Comparison(
        requests=len(done), measured=measured, predicted=predicted,
        error_pct=_errors(measured, predicted), step_time_ratio=whole,
        step_time_ratio_range=(fastest, slowest),
        error_pct_at_run_speed=_errors(measured, _predicted(rows, at_speed(dep, whole))),
        error_pct_outside_run_speeds=_outside(measured,
                                              _predicted(rows, at_speed(dep, fastest)),
                                              _predicted(rows, at_speed(dep, slowest))))


def write_validation(result: Comparison, rows: list[RequestRecord], dep: LocalDeployment,
                     out_dir: Path) -> None:
    """validation.json and validation.html (both latency distributions, overlaid)."""
    import plotly.graph_objects as go
    from plotly.io import to_html
    from plotly.subplots import make_subplots

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "validation.json").write_text(
        json.dumps(result.model_dump(mode="json"), indent=1, sort_keys=True))
    run, stream, done = simulate_replay(rows, dep)
    table = request_table(run, stream)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("TTFT CDF (ms)", "E2E CDF (ms)"))
    for col, (measured, predicted) in enumerate((
            ([r.ttft_ms or 0.0 for r in done], table.ttft_s * 1e3),
            ([r.e2e_ms or 0.0 for r in done], table.e2e_s * 1e3)), start=1):
        for name, values in (("measured", np.sort(measured)), ("simulated", np.sort(predicted))):
            fig.add_trace(go.Scatter(x=values, y=np.linspace(0, 1, len(values)), name=name,
                                     mode="lines", showlegend=col == 1), row=1, col=col)
    (out_dir / "validation.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>llmplan validate</title>"
        + to_html(fig, include_plotlyjs="inline", full_html=False), encoding="utf-8")


def load_rows(path: Path) -> list[RequestRecord]:
    return read_measurements(path)
