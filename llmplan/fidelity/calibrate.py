"""`llmplan calibrate`: fit the simulator's step-time model to a real server's load tests.

Reads the records of one or more load tests of one server (refusing runs whose saved server
settings differ), rebuilds its batch steps from them (timeline.py), fits the step model
robustly (fit.py), then the client-server overhead (HTTP, tokenisation, scheduling) as the
median of what cold-start TTFTs leave after their prefill step. Concurrency (slots /
max_num_seqs), the token budget and the KV capacity come from the server when it says
(server_props.json, vLLM's cache_config_info) or from the command line.

The result is right or says it is not: `calibrate` raises `CalibrationRejectedError`, naming what
is missing and how to get it, when the steps cannot determine a coefficient or the fit is
out of bounds (fit.quality_gate). `fit_runs` returns the fit and its findings either way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from llmplan.errors import InputError, Problem
from llmplan.fidelity.fit import (
    MIN_STEPS_PER_SIZE,
    Finding,
    Fit,
    fit_step_time,
    identifiability,
    kv_split_note,
    quality_gate,
    run_speed_findings,
)
from llmplan.fidelity.server import ServerInfo, model_file, same_server, server_info
from llmplan.fidelity.timeline import (
    ColdStart,
    StepSample,
    computed_prompt,
    first_tokens,
    steps,
)
from llmplan.fidelity.vllm_metrics import (
    Interval,
    fit_intervals,
    identifiability_intervals,
    observed,
    run_intervals,
)
from llmplan.loadtests.records import RequestRecord, read_records, records_file, warmup_records
from llmplan.perf.steptime_spec import (
    Calibration,
    CalibrationEngine,
    CalibrationServer,
    FitQuality,
    LinearStepTime,
    SpeedPoint,
    TabulatedStepTime,
)

CalibrationSource = Literal["records", "vllm-metrics"]


class CalibrationRejectedError(InputError):
    """The data cannot support a calibration; each problem says what is missing and how to
    get it. `report` holds the fit anyway (for --accept-poor-fit)."""

    def __init__(self, report: CalibrationReport) -> None:
        self.report = report
        super().__init__([Problem(report.source, None, f.field, str(f))
                          for f in report.rejected],
                         title="calibration rejected: the fit cannot be trusted")


@dataclass(frozen=True)
class CalibrationReport:
    calibration: Calibration
    fit: Fit
    rejected: list[Finding]          # empty: the fit passed the quality gate
    advisory: list[Finding]
    source: str


def read_measurements(path: Path) -> list[RequestRecord]:
    """Records of a load test (its folder, or a requests.jsonl file), validated: one
    target's (a file joining two servers' records would be fitted as one server)."""
    file = records_file(path)
    rows = read_records(file)
    if not rows:
        raise InputError([Problem(str(file), None, "", "no requests in it: the run sent "
                                  "nothing (see its summary.json and locust.log)")],
                         title="nothing to read")
    targets = Counter(r.target for r in rows)
    if len(targets) > 1:
        seen = ", ".join(f"{name} ({count:,})" for name, count in targets.most_common())
        raise InputError([Problem(str(file), None, "target", f"records of {len(targets)} "
                                  f"targets: {seen}; expected one server's: keep each run in "
                                  "its own folder and pass the folders (runs of one server "
                                  "are fitted together)")], title="records of several servers")
    return rows


def _as_list(paths: Path | Sequence[Path]) -> list[Path]:
    return [paths] if isinstance(paths, Path) else list(paths)


def fit_runs(paths: Path | Sequence[Path], *, slots: int | None = None,
             max_batched_tokens: int | None = None, kv_cache_tokens: int | None = None,
             source: CalibrationSource = "records") -> CalibrationReport:
    """Fit the runs of one server together and judge the fit (never raises for quality).

    `source` "records": each run's timeline is reconstructed from its request records on
    its own (their clocks are unrelated) and the step samples of all runs are fitted
    together, which averages out a run's machine noise. "vllm-metrics": the busy intervals
    between the vLLM /metrics scrapes of every run are fitted (vllm_metrics.py).
    """
    runs = _as_list(paths)
    twice = sorted({str(run) for run in runs if sum(r.resolve() == run.resolve()
                                                    for r in runs) > 1})
    if twice:
        raise InputError([Problem(", ".join(twice), None, "", "given more than once: each "
                                  "run's steps would count twice; expected each run once")],
                         title="calibration impossible")
    infos = [server_info(run) for run in runs]
    same_server(runs, infos)
    if source == "vllm-metrics":
        return _fit_vllm_metrics(runs, infos, slots=slots,
                                 max_batched_tokens=max_batched_tokens,
                                 kv_cache_tokens=kv_cache_tokens)
    source_text = ", ".join(map(str, runs))
    rows: list[RequestRecord] = []
    samples: list[StepSample] = []
    cold: list[ColdStart] = []
    by_run: list[list[StepSample]] = []
    for run in runs:
        run_rows = read_measurements(run)
        _need_token_times(run, run_rows)
        # the warm-ups were still running as the first measured requests started
        run_samples, run_cold = steps(run_rows, warmup_records(run))
        rows += run_rows
        samples += run_samples
        by_run.append(run_samples)
        cold += run_cold
    try:
        fit = fit_step_time(samples, cold, first_tokens(rows))
    except ValueError as exc:
        raise InputError([Problem(source_text, None, "", str(exc))],
                         title="calibration impossible") from None
    given = _options_hold(source_text, rows, samples, slots=slots,
                          kv_cache_tokens=kv_cache_tokens)
    lost = sum(1 for r in rows if not r.ok)
    if lost:
        given.append(Finding(
            "requests", f"{lost:,} of {len(rows):,} requests failed or were cut off, and "
                        f"the steps they ran in are rebuilt without them (those batches "
                        f"read smaller than the server ran them)",
            "calibrate from runs without failures where you can"))
    blocking, advisory = identifiability(samples, len(cold))
    drift, drift_notes = run_speed_findings(fit, by_run, [str(run) for run in runs])
    blocking += drift
    calibration = build_calibration(fit, _merged(infos), rows, source_text, samples=samples,
                                    slots=slots,
                                    max_batched_tokens=max_batched_tokens,
                                    kv_cache_tokens=kv_cache_tokens)
    reasons, notes = quality_gate(fit, blocking, advisory)
    split = kv_split_note(fit, samples)
    if split is not None:
        notes.append(split)
    return CalibrationReport(calibration, fit, reasons, given + advisory + notes + drift_notes,
                             source_text)


def _options_hold(source: str, rows: list[RequestRecord], samples: list[StepSample], *,
                  slots: int | None, kv_cache_tokens: int | None,
                  running: int = 0) -> list[Finding]:
    """Refuse --kv-cache-tokens below the run's longest request and --slots below the
    batches its steps held (or below `running`, the most requests vLLM's own gauge saw
    running): the calibration would describe another server than the one measured, and a
    replay of its own run would refuse or queue what it served. A batch size rebuilt in
    fewer than MIN_STEPS_PER_SIZE steps is only noted (a reconstruction may join two steps'
    tokens and count one sequence too many)."""
    problems = []
    notes = []
    if slots is not None and slots < running:
        problems.append(Problem(source, None, "--slots",
                                f"{slots:,}, but the server counted {running:,} requests "
                                f"running at once (vllm:num_requests_running); expected its "
                                f"--max-num-seqs, {running:,} or more"))
    sizes = Counter(s.decode_seqs for s in samples)
    most = max(sizes, default=0)
    often = max((d for d, n in sizes.items() if n >= MIN_STEPS_PER_SIZE), default=0)
    if slots is not None and slots < often:
        problems.append(Problem(source, None, "--slots",
                                f"{slots:,}, but {sizes[often]:,} steps rebuilt from the "
                                f"records decoded {often:,} sequences at once; expected the "
                                f"server's concurrency, {often:,} or more"))
    elif slots is not None and slots < most:
        notes.append(Finding("engine.max_num_seqs",
                             f"--slots {slots}, but {sizes[most]:,} steps rebuilt from "
                             f"the records decoded {most} sequences at once (too few to be "
                             f"sure of: a "
                             f"step rebuilt from two may count one too many); replayed, the "
                             f"calibration queues what the server ran together",
                             f"pass the server's own concurrency (--slots {most} or more)"))
    longest = max(((r.prompt_tokens or 0) + (r.output_tokens or 0) for r in rows if r.ok),
                  default=0)
    if kv_cache_tokens is not None and kv_cache_tokens < longest:
        problems.append(Problem(source, None, "--kv-cache-tokens",
                                f"{kv_cache_tokens:,}, but a request of the run held "
                                f"{longest:,} tokens; expected the server's KV cache, "
                                f"{longest:,} tokens or more"))
    if problems:
        raise InputError(problems, title="calibration impossible")
    return notes


def _fit_vllm_metrics(runs: list[Path], infos: list[ServerInfo], *, slots: int | None,
                      max_batched_tokens: int | None,
                      kv_cache_tokens: int | None) -> CalibrationReport:
    info = _merged(infos)
    source_text = ", ".join(f"{run} (vLLM /metrics)" for run in runs)
    rows: list[RequestRecord] = []
    found: list[Interval] = []
    by_run: list[list[Interval]] = []
    overheads: list[float] = []
    running = 0
    restarts: list[Finding] = []
    for run in runs:
        run_rows = read_measurements(run)
        run_found, overhead, run_running, run_notes = run_intervals(
            run, run_rows, kv_cache_tokens or info.kv_cache_tokens)
        rows += run_rows
        found += run_found
        by_run.append(run_found)
        overheads.append(overhead)
        running = max(running, run_running)
        restarts += run_notes
    try:
        fit = fit_intervals(found, float(sum(overheads) / len(overheads)))
    except ValueError as exc:
        raise InputError([Problem(source_text, None, "", str(exc)),
                          *(Problem(source_text, None, f.field, str(f)) for f in restarts)],
                         title="calibration impossible") from None
    _options_hold(source_text, rows, [], slots=slots, kv_cache_tokens=kv_cache_tokens,
                  running=running)
    calibration = build_calibration(fit, info, rows, source_text,
                                    slots=slots or info.slots or running or None,
                                    max_batched_tokens=max_batched_tokens,
                                    kv_cache_tokens=kv_cache_tokens)
    drift, drift_notes = run_speed_findings(fit, [observed(r) for r in by_run],
                                            [str(run) for run in runs])
    reasons, notes = quality_gate(fit, identifiability_intervals(found) + drift)
    notes += drift_notes
    if not (slots or info.slots):
        # vLLM's metrics do not carry --max-num-seqs: the busiest moment is a lower bound,
        # and validating a heavier run against it would queue what the server ran
        notes.append(Finding(
            "engine.max_num_seqs",
            f"max_num_seqs is written as the most requests seen running at once ({running}), "
            f"a lower bound: the server's own limit is not in its metrics, and a heavier "
            f"load would be simulated queueing behind it",
            "pass --slots with the server's --max-num-seqs"))
    if not (max_batched_tokens or info.max_batched_tokens):
        # nor --max-num-batched-tokens: 2048 is llama.cpp's batch, not vLLM's default
        # (8192 for the API server on large GPUs: engine/arg_utils.py, 0.10 on)
        notes.append(Finding(
            "engine.max_num_batched_tokens",
            f"max_num_batched_tokens is written as "
            f"{calibration.engine.max_num_batched_tokens:,}, an assumption: the server's "
            f"own step budget is not in its metrics, and it sets how a long prompt is "
            f"split into chunks",
            "pass --max-batched-tokens with the server's --max-num-batched-tokens (its "
            "start-up log prints it)"))
    return CalibrationReport(calibration, fit, reasons, restarts + notes, source_text)


#: Finished requests without a prompt token count a run may have before calibrate refuses
#: it (each one leaves the steps it ran in a sequence short).
MAX_UNCOUNTED_SHARE = 0.02


def _need_token_times(run: Path, rows: list[RequestRecord]) -> None:
    """Steps are rebuilt from per-token arrival times: refuse records that have none."""
    if rows and not any(r.ok for r in rows):
        classes: dict[str, int] = {}
        for r in rows:
            classes[r.error_class or "?"] = classes.get(r.error_class or "?", 0) + 1
        said = ", ".join(f"{name}: {n:,}" for name, n in sorted(classes.items()))
        raise InputError([Problem(str(run), None, "error_class",
                                  f"no request of this run finished ({said}); calibrate "
                                  f"from a run the server answered")],
                         title="calibration impossible")
    multi = [r for r in rows if r.ok and (r.output_tokens or 0) > 1]
    bare = sum(1 for r in multi if not r.itl_ms)
    if multi and bare > len(multi) / 2:
        raise InputError([Problem(str(run), None, "itl_ms",
                                  f"{bare:,} of {len(multi):,} finished requests carry no "
                                  f"inter-token times, so the server's steps cannot be rebuilt; "
                                  f"calibrate from records with per-chunk times (llmplan "
                                  f"loadtest, AIPerf's inter_chunk_latency, vllm bench serve "
                                  f"--save-detailed)")], title="calibration impossible")
    # a request without its prompt's token count cannot be placed in the steps it ran in;
    # leaving it out would rebuild every batch it shared one or more sequences short
    finished = [r for r in rows if r.ok]
    uncounted = sum(1 for r in finished if not r.prompt_tokens)
    if uncounted > MAX_UNCOUNTED_SHARE * len(finished):
        raise InputError([Problem(str(run), None, "prompt_tokens",
                                  f"{uncounted:,} of {len(finished):,} finished requests carry "
                                  f"no prompt token count (the server sent no usage), so the "
                                  f"batches they ran in cannot be rebuilt; calibrate from a "
                                  f"server that reports usage (OpenAI-compatible streams: "
                                  f"stream_options include_usage)")],
                         title="calibration impossible")


def calibrate(paths: Path | Sequence[Path], *, slots: int | None = None,
              max_batched_tokens: int | None = None, kv_cache_tokens: int | None = None,
              source: CalibrationSource = "records") -> Calibration:
    """The calibration of one server from its load tests, or CalibrationRejectedError."""
    report = fit_runs(paths, slots=slots, max_batched_tokens=max_batched_tokens,
                      kv_cache_tokens=kv_cache_tokens, source=source)
    if report.rejected:
        raise CalibrationRejectedError(report)
    return report.calibration


def _merged(infos: list[ServerInfo]) -> ServerInfo:
    """What the runs' servers said (they agree where more than one said it)."""
    merged = ServerInfo()
    for info in infos:
        merged = merged.filled_from(info)
    return merged


def build_calibration(fit: Fit, info: ServerInfo, rows: list[RequestRecord], source: str, *,
                      samples: list[StepSample] | None = None, slots: int | None,
                      max_batched_tokens: int | None,
                      kv_cache_tokens: int | None) -> Calibration:
    """The calibration file's content from a fit and what the server said about itself."""
    slots = slots or info.slots or max(1, max_concurrency(rows))
    n_ctx = info.n_ctx_per_slot
    kv = kv_cache_tokens or info.kv_cache_tokens or (n_ctx * slots if n_ctx else None)
    fixed, prefill, decode, kv_token, pair = fit.coefficients_s
    step_time: LinearStepTime | TabulatedStepTime = LinearStepTime(
        fixed_ms=round(fixed * 1e3, 6), per_prefill_token_us=round(prefill * 1e6, 6),
        per_decode_seq_us=round(decode * 1e6, 6), per_kv_token_ns=round(kv_token * 1e9, 6),
        per_prefill_pair_ns=round(pair * 1e9, 6))
    if fit.table is not None:
        step_time = TabulatedStepTime(
            tokens_ms=[(t, round(s * 1e3, 6)) for t, s in zip(fit.table.tokens,
                                                                fit.table.step_s, strict=True)],
            per_kv_token_ns=round(fit.table.per_kv_token_s * 1e9, 6),
            per_prefill_pair_ns=round(fit.table.per_pair_s * 1e9, 6))
    return Calibration(
        source=source,
        server=CalibrationServer(slots=int(slots), n_ctx_per_slot=n_ctx, build=info.build,
                                 model_file=model_file(info), engine=info.engine),
        step_time=step_time,
        engine=CalibrationEngine(max_num_seqs=int(slots),
                                 max_num_batched_tokens=int(max_batched_tokens
                                                            or info.max_batched_tokens or 2048),
                                 kv_cache_tokens=kv,
                                 prefix_caching="per_slot" if n_ctx else None),
        client_overhead_ms=round(fit.client_overhead_s * 1e3, 3),
        fit=FitQuality(steps=fit.samples, cold_starts=fit.cold_starts, r2=round(fit.r2, 4),
                       rmse_ms=round(fit.rmse_ms, 3),
                       median_abs_error_pct=round(fit.median_abs_error_pct, 2),
                       requests=len(rows),
                       longest_prompt_tokens=max((computed_prompt(r) for r in rows if r.ok),
                                                 default=None)),
        speed_reference=speed_reference(samples) if samples else None)


#: a batch size's decode-only steps count in the speed reference from this many
SPEED_POINT_STEPS = 5


#: a decode-only step this many times its batch size's median is no decode step of it (a
#: prompt step the timeline could not place, a lost token's gap): kept out of the speed
#: reference, and out of what a later run's steps are read against it
NOT_A_DECODE_STEP = 10.0


def speed_reference(samples: list[StepSample]) -> list[SpeedPoint] | None:
    """The decode-only steps' measured median and mean per batch size (see SpeedPoint),
    without steps NOT_A_DECODE_STEP times their median or more."""
    by_batch: dict[int, list[StepSample]] = {}
    for s in samples:
        if s.prefill_tokens == 0 and s.decode_seqs > 0:
            by_batch.setdefault(s.decode_seqs, []).append(s)
    for d, group in by_batch.items():
        median = float(np.median([s.duration_s for s in group]))
        by_batch[d] = [s for s in group if s.duration_s < NOT_A_DECODE_STEP * median]
    points = [SpeedPoint(decode_seqs=d,
                         median_ms=round(float(np.median([s.duration_s for s in group])) * 1e3, 6),
                         median_kv_tokens=float(np.median([s.kv_tokens for s in group])),
                         steps=len(group),
                         mean_ms=round(float(np.mean([s.duration_s for s in group])) * 1e3, 6),
                         mean_kv_tokens=round(float(np.mean([s.kv_tokens for s in group])), 3))
              for d, group in sorted(by_batch.items()) if len(group) >= SPEED_POINT_STEPS]
    return points or None


def max_concurrency(rows: list[RequestRecord]) -> int:
    """Most requests that were decoding at once (first token to last)."""
    spans = [(r.send_ts + r.ttft_ms / 1e3, r.send_ts + (r.e2e_ms or 0.0) / 1e3)
             for r in rows if r.ok and r.ttft_ms is not None]
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak
