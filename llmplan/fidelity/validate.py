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
predicts for each (`step_time_ratio`: their mean ratio, 5% at either end trimmed), over the
whole run and over parts of it (`step_time_ratio_range`; SPEED_PART_STEPS and
SPEED_PART_LATENCIES say how long a part is). `error_pct_at_run_speed` are the errors of a
replay at the speed the server ran at when each request was sent (one replay per part,
each request read from its part's; the client overhead is not scaled).

A coefficient the fit got wrong reads as a speed too, so the speed is also read measured
against measured (`step_time_ratio_measured`): the calibration file keeps its runs'
decode-only steps' median time per batch size (`speed_reference`), and the run's steps of
the same sizes are set against them (their KV reads moved to the reference's context at
the fitted per-KV-token cost). When the two readings agree, the speed was the host's and
the errors at it are the model's; when they do not, the model mispredicts the run's
steps (SPEED_AGREEMENT), and the errors at the run's speed hide it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy.stats import trim_mean

from llmplan.catalog import builtin_catalog
from llmplan.fidelity.calibrate import read_measurements
from llmplan.fidelity.fit import TokenTable
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
from llmplan.sim.table import RequestTable, request_table
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
    #: the run's busy steps against the calibration's prediction of each (trimmed mean of
    #: measured / predicted): above 1 the server ran slower than when it was calibrated, or
    #: the model mispredicts its steps (step_time_ratio_measured tells them apart). None:
    #: not a calibrated deployment, or too few busy steps to read.
    step_time_ratio: float | None = None
    #: the same over the fastest and the slowest part of the run, and how many parts
    step_time_ratio_range: tuple[float, float] | None = None
    speed_parts: int = 0
    #: the run's decode-only steps against the calibration runs' own of the same batch
    #: sizes, measured against measured: what the host did, whatever the model says. Far
    #: from step_time_ratio, the model mispredicts this run's steps. None: the calibration
    #: has no speed reference (written before it, or from vLLM's metrics).
    step_time_ratio_measured: float | None = None
    #: the errors of a replay at the speed the server ran at when each request was sent
    error_pct_at_run_speed: dict[str, dict[str, float]] | None = None


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
    """What a fitted step-time model predicts for each step (seconds)."""
    P, D, K, A = (np.array([getattr(s, f) for s in samples], dtype=float)
                  for f in ("prefill_tokens", "decode_seqs", "kv_tokens", "prefill_pairs"))
    if isinstance(step_time, TabulatedStepTime):
        table = TokenTable(tokens=tuple(t for t, _ in step_time.tokens_ms),
                           step_s=tuple(v * 1e-3 for _, v in step_time.tokens_ms),
                           per_kv_token_s=step_time.per_kv_token_ns * 1e-9,
                           per_pair_s=step_time.per_prefill_pair_ns * 1e-9)
        return table.predict(P + D, K, A)
    return (step_time.fixed_ms * 1e-3 + step_time.per_prefill_token_us * 1e-6 * P
            + step_time.per_decode_seq_us * 1e-6 * D + step_time.per_kv_token_ns * 1e-9 * K
            + step_time.per_prefill_pair_ns * 1e-9 * A)


#: a run's speed is read from at least this many busy steps,
SPEED_MIN_STEPS = 50
#: ... over parts of the run of at least this many (a one-thread CPU server's level of 80
#: requests has 600-1,100),
SPEED_PART_STEPS = 200
#: ... each lasting this many times the run's p95 latency or more (a part's speed sets its
#: requests' latencies only if they start and end in it: past saturation every request
#: waits behind the whole backlog, and the run is one part),
SPEED_PART_LATENCIES = 3.0
#: ... and at most this many parts (each is one more replay)
SPEED_PARTS_MAX = 12
#: ... as the mean step ratio without this share of the steps at either end: a preempted
#: step can last ten times its prediction, and a busy host's preemptions are part of its
#: speed, but a mis-clustered step is not
SPEED_TRIM = 0.05
#: the two readings of a run's speed (step_time_ratio and step_time_ratio_measured) differ
#: by at most this share when the speed is the host's: a busy host moves a mean of all
#: steps and a median of the decode-only ones apart (up to 8.9% on a CI run's saturation
#: level); a per-sequence cost 1.6 times the server's reads them 20% apart
SPEED_AGREEMENT = 0.15


@dataclass(frozen=True)
class RunSpeed:
    """How many times the calibration's prediction a run's busy steps took."""

    whole: float
    parts: tuple[float, ...]        # in time order
    part_ends_ts: tuple[float, ...]  # when each part's last step ended (records' clock)
    #: the same read measured against measured: None without a speed reference
    measured: float | None = None


def _measured_speed(samples: list[StepSample], calibration: Calibration) -> float | None:
    """Median measured / reference time of each batch size's decode-only steps that the
    calibration's runs measured too (their KV reads moved to the reference's context at
    the fitted per-KV-token cost), averaged over the batch sizes by their steps; None
    when fewer than SPEED_MIN_STEPS such steps."""
    reference = {p.decode_seqs: p for p in calibration.speed_reference or []}
    per_kv_token_ms = calibration.step_time.per_kv_token_ns * 1e-6
    by_batch: dict[int, list[float]] = {}
    for s in samples:
        ref = reference.get(s.decode_seqs)
        if s.prefill_tokens or ref is None:
            continue
        ms = s.duration_s * 1e3 - per_kv_token_ms * (s.kv_tokens - ref.median_kv_tokens)
        by_batch.setdefault(s.decode_seqs, []).append(ms / ref.median_ms)
    total = sum(len(v) for v in by_batch.values())
    if total < SPEED_MIN_STEPS:
        return None
    return float(sum(len(v) * np.median(v) for v in by_batch.values()) / total)


def run_speed(rows: list[RequestRecord], calibration: Calibration, p95_latency_s: float
              ) -> RunSpeed | None:
    """The run's speed against the calibration's (see the module doc), or None when fewer
    than SPEED_MIN_STEPS busy steps could be rebuilt."""
    samples, _ = steps(rows)
    if len(samples) < SPEED_MIN_STEPS:
        return None
    predicted = predicted_step_s(calibration.step_time, samples)
    ratio = np.array([s.duration_s for s in samples]) / np.maximum(predicted, 1e-9)
    span_s = samples[-1].end_ts - samples[0].end_ts
    parts = min(SPEED_PARTS_MAX, len(samples) // SPEED_PART_STEPS,
                int(span_s // (SPEED_PART_LATENCIES * max(p95_latency_s, 1e-9))))
    bounds = np.array_split(np.arange(len(samples)), max(1, parts))
    return RunSpeed(whole=float(trim_mean(ratio, SPEED_TRIM)),
                    parts=tuple(float(trim_mean(ratio[b], SPEED_TRIM)) for b in bounds),
                    part_ends_ts=tuple(samples[int(b[-1])].end_ts for b in bounds),
                    measured=_measured_speed(samples, calibration))


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


def _replay(rows: list[RequestRecord], dep: LocalDeployment
            ) -> tuple[RequestTable, dict[str, float | None]]:
    run, stream, _ = simulate_replay(rows, dep)
    _, itl = run.records.itl_percentiles_s(PERCENTILES)
    return request_table(run, stream), {f"p{q:g}": itl[q] * 1e3 for q in PERCENTILES}


def _summary(ttft_s: np.ndarray, tpot_s: np.ndarray, e2e_s: np.ndarray, finish_s: np.ndarray,
             itl_ms: Points) -> dict[str, Points]:
    """Percentiles per metric (ms) and the throughput of one replay's requests."""
    return {
        "ttft_ms": _points(ttft_s * 1e3),
        "tpot_ms": _points(tpot_s * 1e3),
        "itl_ms": itl_ms,
        "e2e_ms": _points(e2e_s * 1e3),
        "throughput": {"requests_per_s": int(np.sum(~np.isnan(finish_s)))
                       / float(np.nanmax(finish_s))},
    }


def _columns_at(rows: list[RequestRecord], dep: LocalDeployment, speed: RunSpeed,
                done: list[RequestRecord]) -> dict[str, np.ndarray]:
    """Per-request latencies (s) of a replay at the speed the server ran at when each
    request was sent: one replay per part of the run, each request read from its own part's
    (a queue forgets within seconds at the loads a part can be read at; a part lasts a
    minute or more)."""
    part = np.minimum(np.searchsorted(np.array(speed.part_ends_ts),
                                      np.array([r.send_ts for r in done])),
                      len(speed.parts) - 1)
    tables = [_replay(rows, at_speed(dep, ratio))[0] for ratio in speed.parts]
    each = np.arange(len(done))
    return {name: np.stack([getattr(t, name) for t in tables])[part, each]
            for name in ("ttft_s", "tpot_s", "e2e_s", "arrival_s")}


@dataclass(frozen=True)
class Replay:
    """What a comparison simulated, kept for its chart (validation.html)."""

    done: list[RequestRecord]                 # the measured requests replayed
    table: RequestTable                       # ... their plain replay
    speed: RunSpeed | None                    # the run's speed, when it could be read
    at_run: dict[str, np.ndarray] | None      # ... and the replay at it (_columns_at)


def _errors(measured: dict[str, Points], predicted: dict[str, Points]
            ) -> dict[str, dict[str, float]]:
    return {metric: {k: 100.0 * (p - v) / v for k, v in values.items()
                     if v and (p := predicted[metric].get(k)) is not None}
            for metric, values in measured.items()}


def compare(rows: list[RequestRecord], dep: LocalDeployment) -> Comparison:
    """Predicted vs measured per metric and percentile, with relative errors in %, and the
    same at the run's own speed when the deployment is calibrated (see the module doc)."""
    return replay_and_compare(rows, dep)[0]


def replay_and_compare(rows: list[RequestRecord], dep: LocalDeployment
                       ) -> tuple[Comparison, Replay]:
    """compare(), and the replays it ran (for write_validation)."""
    _, done = replay_stream(rows)
    measured: dict[str, Points] = {
        "ttft_ms": _points([r.ttft_ms for r in done]),
        "tpot_ms": _points([r.tpot_ms for r in done]),
        "itl_ms": _points([x for r in done for x in r.itl_ms]),
        "e2e_ms": _points([r.e2e_ms for r in done]),
    }
    window_measured = max(r.send_ts + (r.e2e_ms or 0.0) / 1e3 for r in done) - done[0].send_ts
    measured["throughput"] = {"requests_per_s": len(done) / window_measured}
    table, itl = _replay(rows, dep)
    predicted = _summary(table.ttft_s, table.tpot_s, table.e2e_s,
                         table.arrival_s + table.e2e_s, itl)
    speed = None
    if isinstance(dep.step_time, CalibratedStepTime) and dep.step_time.calibration:
        speed = run_speed(rows, dep.step_time.calibration,
                          (measured["e2e_ms"].get("p95") or 0.0) / 1e3)
    if speed is None:
        return (Comparison(requests=len(done), measured=measured, predicted=predicted,
                           error_pct=_errors(measured, predicted)),
                Replay(done, table, None, None))
    at_run = _columns_at(rows, dep, speed, done)
    # inter-token percentiles pool tokens, not requests: the stitched replay leaves them out
    predicted_at = _summary(at_run["ttft_s"], at_run["tpot_s"], at_run["e2e_s"],
                            at_run["arrival_s"] + at_run["e2e_s"], {})
    return (Comparison(
        requests=len(done), measured=measured, predicted=predicted,
        error_pct=_errors(measured, predicted), step_time_ratio=speed.whole,
        step_time_ratio_range=(min(speed.parts), max(speed.parts)),
        speed_parts=len(speed.parts), step_time_ratio_measured=speed.measured,
        error_pct_at_run_speed=_errors(measured, predicted_at)),
        Replay(done, table, speed, at_run))


def write_validation(result: Comparison, replay: Replay, out_dir: Path) -> None:
    """validation.json and validation.html: the measured and simulated latency
    distributions overlaid (also at the run's speed, when it could be read) and the
    server's speed over the run against the calibration's."""
    import plotly.graph_objects as go
    from plotly.io import to_html
    from plotly.subplots import make_subplots

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "validation.json").write_text(
        json.dumps(result.model_dump(mode="json"), indent=1, sort_keys=True))
    done, table, speed, at_run = replay.done, replay.table, replay.speed, replay.at_run
    titles = ["TTFT CDF (ms)", "E2E CDF (ms)"]
    if speed is not None:
        titles.append("server step time / calibration's")
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles)
    for col, (measured, key) in enumerate((([r.ttft_ms or 0.0 for r in done], "ttft_s"),
                                           ([r.e2e_ms or 0.0 for r in done], "e2e_s")), start=1):
        curves = [("measured", "#1f77b4", np.sort(measured)),
                  ("simulated", "#d62728", np.sort(getattr(table, key) * 1e3))]
        if at_run is not None:
            curves.append(("simulated at the run's speed", "#2ca02c",
                           np.sort(at_run[key] * 1e3)))
        for name, colour, values in curves:
            fig.add_trace(go.Scatter(x=values, y=np.linspace(0, 1, len(values)), name=name,
                                     mode="lines", line={"color": colour}, legendgroup=name,
                                     showlegend=col == 1), row=1, col=col)
    if speed is not None:
        t0 = done[0].send_ts
        ends = [end - t0 for end in speed.part_ends_ts]
        starts = [0.0, *ends[:-1]]
        fig.add_trace(go.Scatter(
            x=[t for a, b in zip(starts, ends, strict=True) for t in (a, b)],
            y=[r for r in speed.parts for _ in (0, 1)], mode="lines",
            name="server speed (step time / calibration's)", line={"color": "#7f7f7f"}),
            row=1, col=3)
        fig.add_hline(y=1.0, line={"dash": "dot", "color": "#555555"}, row=1, col=3)
        fig.update_xaxes(title_text="seconds into the run", row=1, col=3)
        fig.update_yaxes(range=[0, max(1.0, *speed.parts) * 1.1], row=1, col=3)
    (out_dir / "validation.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>llmplan validate</title>"
        + to_html(fig, include_plotlyjs="inline", full_html=False), encoding="utf-8")


def load_rows(path: Path) -> list[RequestRecord]:
    return read_measurements(path)
