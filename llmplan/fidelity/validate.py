"""`llmplan validate`: replay measured requests through the simulator and compare.

Every finished request of a load test is replayed with its real send time, the prompt
tokens the server computed (its count less those it served from its prompt cache, as the
fit counts them) and its output tokens through one calibrated replica; the predicted and
measured TTFT, TPOT, ITL and E2E percentiles and the throughput are set side by side with
the error of each.

A server that ran slower or faster than when it was calibrated (another tenant on the
machine, a throttled GPU) moves every latency with it, and near saturation the queue
multiplies the change. So the comparison also reads the run's own speed: its busy steps,
rebuilt from the records as the calibration rebuilt its own, take so much wall time against
what the calibration predicts for the same steps (`step_time_ratio`: their total time over
the total predicted, so a step the host stalled counts for all the time it lost), over the
whole run and over parts of SPEED_PART_STEPS steps (`step_time_ratio_range`).
`error_pct_at_run_speed` are the errors of one replay on the run's own clock: a server whose
every step takes s times as long during a part does in it what the calibrated one does in
1/s of the time, so the replay runs on a work clock that advances 1/s as fast as the wall
clock during each part (the arrivals moved onto it), and its first tokens and finishes are
moved back to the wall clock (the client overhead is not scaled). A queue that builds during
a slow minute and drains in a fast one is replayed as the server ran it, past saturation too.

A coefficient the fit got wrong reads as a speed too, so the speed is also read measured
against measured (`step_time_ratio_measured`): the calibration file keeps its runs'
decode-only steps' mean time per batch size (`speed_reference`), and the run's steps of
the same sizes, in total, are set against them (their KV reads moved to the reference's
context at the fitted per-KV-token cost). When the two readings agree, the speed was the
host's and the errors at it are the model's; when they do not, the model mispredicts the
run's steps (SPEED_AGREEMENT), and the errors at the run's speed hide it.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llmplan.catalog import builtin_catalog
from llmplan.fidelity.calibrate import NOT_A_DECODE_STEP, read_measurements
from llmplan.fidelity.fit import TokenTable
from llmplan.fidelity.timeline import StepSample, computed_prompt, steps
from llmplan.loadtests.records import RequestRecord
from llmplan.perf.engine import EngineSpec
from llmplan.perf.steptime_spec import (
    CalibratedStepTime,
    Calibration,
    FittedStepTime,
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
    #: the run's busy steps' wall time against the calibration's prediction of the same
    #: steps (total over total): above 1 the server ran slower than when it was calibrated, or
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
    #: the errors of the replay on the run's own clock (each part at its speed; no ITL)
    error_pct_at_run_speed: dict[str, dict[str, float]] | None = None
    #: what limits the comparison (failed or cut requests, contexts past the calibration's,
    #: the calibration's own run, few requests, a model that mispredicts this run's steps)
    notes: list[str] = Field(default_factory=list)


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
#: ... over parts of the run of this many (one speed each; a one-thread CPU server's level
#: of 80 requests has 400-1,600 steps, a part lasts 3-10 s): the fit's error on one step
#: (15% of its time, median, on that server) averages out over a part, a host's slow
#: spell of a few seconds does not
SPEED_PART_STEPS = 100
#: the two readings of a run's speed (step_time_ratio and step_time_ratio_measured) differ
#: by at most this share when the speed is the host's: at most 6.2% on the 60 held-out
#: levels of 20 recorded held-out experiments on a shared 2-core machine (benchmarks/
#: heldout.py; the median-based reading of before was up to 11% off). A per-sequence
#: decode cost 0.8 times the server's read more than 10% apart in 9 of 12 of them, a
#: per-prompt-token cost 0.7 times in 12 of 12
SPEED_AGREEMENT = 0.10


@dataclass(frozen=True)
class RunSpeed:
    """How many times the calibration's prediction a run's busy steps took, in total."""

    whole: float
    parts: tuple[float, ...]        # in time order
    part_ends_ts: tuple[float, ...]  # when each part's last step ended (records' clock)
    #: the same read measured against measured: None without a speed reference
    measured: float | None = None


def _measured_speed(samples: list[StepSample], calibration: Calibration) -> float | None:
    """The run's decode-only steps of the batch sizes the calibration's runs measured too,
    their total time against the total of those runs' mean for each (KV reads moved to the
    reference's context at the fitted per-KV-token cost): like step_time_ratio, a total,
    so a host's stalls count in both. None when fewer than SPEED_MIN_STEPS such steps.
    (A reference written before means were kept, even in part, is read by the median of
    each batch size's ratios, averaged over the batch sizes by their steps.)"""
    reference = {p.decode_seqs: p for p in calibration.speed_reference or []}
    per_kv_token_ms = calibration.step_time.per_kv_token_ns * 1e-6
    decodes = [s for s in samples if not s.prefill_tokens and s.decode_seqs in reference]
    median_s = {d: float(np.median([s.duration_s for s in decodes if s.decode_seqs == d]))
                for d in {s.decode_seqs for s in decodes}}
    # as the reference was taken: without steps too long to be decode steps of their size
    matched = [(s, reference[s.decode_seqs]) for s in decodes
               if s.duration_s < NOT_A_DECODE_STEP * median_s[s.decode_seqs]]
    if len(matched) < SPEED_MIN_STEPS:
        return None
    if all(p.mean_ms is not None and p.mean_kv_tokens is not None for p in reference.values()):
        moved = sum(s.duration_s * 1e3
                    - per_kv_token_ms * (s.kv_tokens - (r.mean_kv_tokens or 0.0))
                    for s, r in matched)
        if moved <= 0:
            return None     # the KV cost cannot move these steps to the reference's contexts
        return moved / sum(r.mean_ms or 0.0 for _, r in matched)
    by_batch: dict[int, list[float]] = {}
    for s, r in matched:
        ms = s.duration_s * 1e3 - per_kv_token_ms * (s.kv_tokens - r.median_kv_tokens)
        by_batch.setdefault(s.decode_seqs, []).append(ms / r.median_ms)
    total = float(sum(len(v) * np.median(v) for v in by_batch.values()))
    return total / len(matched) if total > 0 else None


#: A run whose decoding sequences hold this many times the calibration's longest contexts
#: is predicted on an extrapolated KV-token cost: validate says so.
CONTEXT_EXTRAPOLATION = 2.0


def context_extrapolation(rows: list[RequestRecord], calibration: Calibration) -> str | None:
    """A note when the run's decoding sequences hold far longer contexts (median per
    sequence) than any batch size of the calibration's runs did on average."""
    reference = [p for p in calibration.speed_reference or [] if p.decode_seqs > 0]
    samples, _ = steps(rows)
    decoding = [s.kv_tokens / s.decode_seqs for s in samples
                if s.decode_seqs > 0 and not s.prefill_tokens]
    if not reference or not decoding:
        return None
    calibrated = max((p.mean_kv_tokens if p.mean_kv_tokens is not None else p.median_kv_tokens)
                     / p.decode_seqs for p in reference)
    here = float(np.median(decoding))
    if calibrated <= 0 or here <= CONTEXT_EXTRAPOLATION * calibrated:
        return None
    return (f"this run's decoding sequences hold {here:,.0f} tokens of context (median), "
            f"{here / calibrated:.1f} times the calibration runs' longest ({calibrated:,.0f}): "
            f"the per-KV-token cost ({calibration.step_time.per_kv_token_ns:,.1f} ns) is "
            f"extrapolated; calibrate with contexts as long as these")


#: A run whose prompts compute this many times the calibration runs' longest is predicted
#: on an extrapolated prefill: validate says so.
PROMPT_EXTRAPOLATION = 2.0


def prompt_extrapolation(rows: list[RequestRecord], calibration: Calibration) -> str | None:
    """A note when the run's prompts (median computed tokens of its answered requests) are
    far longer than any the calibration's runs computed: the per-token and per-pair costs
    were fitted on shorter prompts, and a prefill that grows with the square of its length
    is extrapolated on how they split (a fit on uniform 16-48-token prompts of a one-thread
    llama.cpp server predicted 630-token prompts' TTFT at +1,487%)."""
    longest = calibration.fit.longest_prompt_tokens
    prompts = [computed_prompt(r) for r in rows if r.ok and r.prompt_tokens]
    if not longest or not prompts:
        return None
    here = float(np.median(prompts))
    if here <= PROMPT_EXTRAPOLATION * longest:
        return None
    st = calibration.step_time
    return (f"this run's prompts compute {here:,.0f} tokens (median), {here / longest:.1f} "
            f"times the calibration runs' longest ({longest:,}): their prefill, "
            f"{st.per_prefill_pair_ns:,.1f} ns per (query, key) pair beside the per-token "
            f"cost, is extrapolated; calibrate with prompts as long as these")


def run_speed(rows: list[RequestRecord], calibration: Calibration) -> RunSpeed | None:
    """The run's speed against the calibration's (see the module doc), or None when fewer
    than SPEED_MIN_STEPS busy steps could be rebuilt."""
    samples, _ = steps(rows)
    if len(samples) < SPEED_MIN_STEPS:
        return None
    predicted_s = predicted_step_s(calibration.step_time, samples)
    took_s = np.array([s.duration_s for s in samples])
    bounds = np.array_split(np.arange(len(samples)), max(1, len(samples) // SPEED_PART_STEPS))
    return RunSpeed(whole=float(took_s.sum() / max(predicted_s.sum(), 1e-12)),
                    parts=tuple(float(took_s[b].sum() / max(predicted_s[b].sum(), 1e-12))
                                for b in bounds),
                    part_ends_ts=tuple(samples[int(b[-1])].end_ts for b in bounds),
                    measured=_measured_speed(samples, calibration))


#: how far before the first and after the last part's end the run's clock reaches
CLOCK_REACH_S = 1e7


@dataclass(frozen=True)
class RunClock:
    """The work clock of a run whose server took `speed.parts[k]` times the calibration's
    time for each step of part k: it advances 1/speed as fast as the wall clock, each part's
    speed holding from the end of the part before it to its own end (the first part's from
    the start, the last part's to the end). Both clocks read 0 at the first request's
    send."""

    wall_s: np.ndarray   # knots on the wall clock (s since the first send)
    work_s: np.ndarray   # ... and on the work clock

    @classmethod
    def of(cls, speed: RunSpeed, t0_ts: float) -> RunClock:
        edges = np.array(speed.part_ends_ts[:-1], dtype=float) - t0_ts
        first_s = min(0.0, float(edges[0])) if len(edges) else 0.0
        last_s = max(0.0, float(edges[-1])) if len(edges) else 0.0
        # ~4 months either way: no replayed event lies beyond (np.interp would pin it)
        wall = np.concatenate([[first_s - CLOCK_REACH_S], edges, [last_s + CLOCK_REACH_S]])
        work = np.concatenate([[0.0], np.cumsum(np.diff(wall) / np.array(speed.parts))])
        return cls(wall, work - np.interp(0.0, wall, work))

    def to_work(self, wall_s: np.ndarray) -> np.ndarray:
        return np.asarray(np.interp(wall_s, self.wall_s, self.work_s), dtype=float)

    def to_wall(self, work_s: np.ndarray) -> np.ndarray:
        return np.asarray(np.interp(work_s, self.work_s, self.wall_s), dtype=float)


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
    return _simulate(stream, dep), stream, done


def _simulate(stream: RequestStream, dep: LocalDeployment) -> DeploymentRun:
    span = float(stream.arrival_s[-1]) + 1.0
    return simulate_deployment("replay", dep, builtin_catalog(), stream, span,
                               drain_s=max(600.0, 10 * span))


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


def _columns_at(rows: list[RequestRecord], dep: LocalDeployment, speed: RunSpeed
                ) -> dict[str, np.ndarray]:
    """Per-request latencies (s) of the replay on the run's own clock (RunClock): the
    arrivals moved onto the work clock, the calibrated server simulated on it, and every
    first token and finish moved back to the wall clock."""
    stream, done = replay_stream(rows)
    clock = RunClock.of(speed, done[0].send_ts)
    on_work = RequestStream(
        arrival_s=np.maximum(clock.to_work(stream.arrival_s), 0.0),
        task_index=stream.task_index, prompt_tokens=stream.prompt_tokens,
        output_tokens=stream.output_tokens, task_names=stream.task_names)
    run = _simulate(on_work, dep)
    table = request_table(run, on_work)
    overhead_s = run.step_time.client_overhead_s if run.step_time is not None else 0.0
    first_s = clock.to_wall(table.first_token_s - overhead_s) + overhead_s
    finish_s = clock.to_wall(table.finish_s - overhead_s) + overhead_s
    n_out = stream.output_tokens
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot_s = np.where(n_out > 1, (finish_s - first_s) / (n_out - 1), np.nan)
    arrival_s = stream.arrival_s
    return {"ttft_s": first_s - arrival_s, "tpot_s": tpot_s, "e2e_s": finish_s - arrival_s,
            "arrival_s": arrival_s}


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
        speed = run_speed(rows, dep.step_time.calibration)
    if speed is None:
        return (Comparison(requests=len(done), measured=measured, predicted=predicted,
                           error_pct=_errors(measured, predicted)),
                Replay(done, table, None, None))
    at_run = _columns_at(rows, dep, speed)
    # inter-token percentiles pool the tokens, whose times the clock change does not move:
    # left out
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
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in result.notes)
    (out_dir / "validation.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>llmplan validate</title>"
        + (f"<p><b>Read with care:</b></p><ul>{notes}</ul>" if notes else "")
        + to_html(fig, include_plotlyjs="inline", full_html=False, div_id="plot-validation"),
        encoding="utf-8")


def load_rows(path: Path) -> list[RequestRecord]:
    return read_measurements(path)
