"""What a run means: latency percentiles, throughput, SLO goodput, utilisation, time series.

Definitions (the ones the load tests use too):
  TTFT = first token - arrival;  E2E = finish - arrival;  TPOT = (E2E - TTFT) / (n_out - 1)
  ITL  = every gap between successive tokens of a request (TTFT excluded)
  goodput = requests that finished within every SLO bound of their task / all requests
Throughput counts what finished inside the simulated duration, per second of it.
"""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from llmplan.scenario.models import Scenario
from llmplan.traffic import RequestStream
from sim.engine import DeploymentRun
from sim.records import (
    BLOCKED,
    MINUTE_S,
    OK,
    OUTCOME_NAMES,
    PENDING,
    REJECTED,
    SERVED_CLOUD,
    SERVED_LOCAL,
    TIMED_OUT,
    TOO_LONG,
)

PERCENTILES = (50, 90, 95, 99)


def percentiles_ms(values_s: np.ndarray) -> dict[str, float | None]:
    """mean and p50/p90/p95/p99 in milliseconds; None when there are no values."""
    if len(values_s) == 0:
        return {"mean": None, **{f"p{p}": None for p in PERCENTILES}}
    ms = values_s * 1e3
    points = np.percentile(ms, PERCENTILES)
    return {"mean": float(ms.mean()),
            **{f"p{p}": float(v) for p, v in zip(PERCENTILES, points, strict=True)}}


def request_table(run: DeploymentRun, stream: RequestStream) -> dict[str, np.ndarray]:
    """Per-request columns with derived latencies (NaN where not applicable)."""
    cols = run.records.arrays()
    arrival = stream.arrival_s
    outcome = cols["outcome"].copy()
    late = (outcome == OK) & (cols["finish_s"] > run.horizon_s)
    outcome[late] = 0  # finished after the horizon: unfinished
    ok = outcome == OK
    # a local client sees every token later by the calibrated client-server overhead
    overhead = run.step_time.client_overhead_s if run.step_time is not None else 0.0
    shift = np.where(cols["served_by"] == SERVED_LOCAL, overhead, 0.0)
    first = np.where((cols["first_token_s"] >= 0) & (cols["first_token_s"] <= run.horizon_s),
                     cols["first_token_s"] + shift, np.nan)
    finish = np.where(ok, cols["finish_s"] + shift, np.nan)
    ttft = first - arrival
    e2e = finish - arrival
    n_out = stream.output_tokens
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(ok & (n_out > 1), (finish - first) / (n_out - 1), np.nan)
    start = np.where(cols["start_s"] >= 0, cols["start_s"], np.nan)
    return {
        "arrival_s": arrival, "start_s": start, "first_token_s": first, "finish_s": finish,
        "ttft_s": ttft, "tpot_s": tpot, "e2e_s": e2e, "queue_wait_s": start - arrival,
        "prompt_tokens": stream.prompt_tokens, "output_tokens": n_out,
        "task_index": stream.task_index, "replica": cols["replica"],
        "preemptions": cols["preemptions"], "outcome": outcome,
        "served_by": cols["served_by"], "attempts": cols["attempts"],
        "throttles": cols["throttles"], "fallbacks": cols["fallbacks"],
        "refused_s": np.where(outcome >= REJECTED, cols["finish_s"], np.nan),
    }


def slo_met(table: dict[str, np.ndarray], scenario: Scenario) -> np.ndarray:
    """Boolean per request: finished and inside every bound of its task's SLO."""
    met: np.ndarray = table["outcome"] == OK
    for i, task in enumerate(scenario.tasks):
        slo = scenario.slo_for(task)
        mine = table["task_index"] == i
        for bound_ms, column in ((slo.ttft_ms, "ttft_s"), (slo.tpot_ms, "tpot_s"),
                                 (slo.e2e_ms, "e2e_s")):
            if bound_ms is not None:
                value = table[column]
                # a single-token request has no TPOT: it cannot break a TPOT bound
                within = np.isnan(value) if column == "tpot_s" else np.zeros(len(value), bool)
                within |= value * 1e3 <= bound_ms
                met &= ~mine | within
    return met


def _queue_depth(table: dict[str, np.ndarray], duration_s: float,
                 horizon_s: float) -> tuple[float, float, np.ndarray]:
    """Time-average and max of waiting requests over [0, duration], and per-minute means."""
    queued = (table["outcome"] != REJECTED) & (table["outcome"] != TOO_LONG)
    enter = table["arrival_s"][queued]
    leave = table["start_s"][queued]
    leave = np.where(np.isnan(leave), np.where(table["outcome"][queued] == TIMED_OUT,
                                               table["refused_s"][queued], horizon_s), leave)
    times = np.concatenate([enter, leave])
    steps = np.concatenate([np.ones(len(enter)), -np.ones(len(leave))])
    order = np.lexsort((steps, times))   # leave before enter at equal times
    times, depth = times[order], np.cumsum(steps[order])
    minutes = max(1, math.ceil(duration_s / MINUTE_S))
    per_minute = np.zeros(minutes)
    if len(times) == 0:
        return 0.0, 0.0, per_minute
    # integrate the step function depth(t) over each minute
    edges = np.minimum(np.arange(minutes + 1) * MINUTE_S, duration_s)
    grid = np.unique(np.concatenate([times[times < duration_s], edges]))
    idx = np.searchsorted(times, grid, side="right") - 1
    level = np.where(idx >= 0, depth[np.maximum(idx, 0)], 0.0)
    widths = np.diff(grid)
    area = level[:-1] * widths
    which = np.minimum((grid[:-1] // MINUTE_S).astype(int), minutes - 1)
    np.add.at(per_minute, which, area)
    span = np.diff(edges)
    per_minute = np.divide(per_minute, span, out=np.zeros(minutes), where=span > 0)
    inside = times < duration_s
    peak = float(depth[inside].max()) if inside.any() else 0.0
    return float(area.sum() / duration_s), peak, per_minute


def summarise(run: DeploymentRun, stream: RequestStream, scenario: Scenario) -> dict[str, Any]:
    """The result.json section of one deployment (local, cloud or hybrid)."""
    table = request_table(run, stream)
    outcome = table["outcome"]
    ok = outcome == OK
    duration = run.duration_s
    in_window = ok & (table["finish_s"] <= duration)
    met = slo_met(table, scenario)
    n = len(outcome)
    minutes = max(1, math.ceil(duration / MINUTE_S))
    span = np.diff(np.minimum(np.arange(minutes + 1) * MINUTE_S, duration))
    arrival_minute = np.minimum((table["arrival_s"] // MINUTE_S).astype(int), minutes - 1)
    finish_minute = np.where(in_window, table["finish_s"] // MINUTE_S, -1).astype(int)
    done = finish_minute >= 0
    result: dict[str, Any] = {
        "kind": run.deployment.kind,
        "requests": {
            "total": n, "completed": int(ok.sum()),
            **{OUTCOME_NAMES[code]: int((outcome == code).sum())
               for code in OUTCOME_NAMES if code not in (OK, PENDING)},
            "unfinished": int((outcome == PENDING).sum()),
            "preempted": int((table["preemptions"] > 0).sum()),
            "preemptions": int(table["preemptions"].sum()),
        },
        "latency": {
            "ttft_ms": percentiles_ms(table["ttft_s"][ok]),
            "tpot_ms": percentiles_ms(table["tpot_s"][ok & ~np.isnan(table["tpot_s"])]),
            "itl_ms": _itl(run),
            "e2e_ms": percentiles_ms(table["e2e_s"][ok]),
            "queue_wait_ms": percentiles_ms(
                table["queue_wait_s"][~np.isnan(table["queue_wait_s"])]),
        },
        "throughput": {
            "requests_per_s": float(in_window.sum() / duration),
            "output_tokens_per_s": float(table["output_tokens"][in_window].sum() / duration),
            "input_tokens_per_s": float(table["prompt_tokens"][in_window].sum() / duration),
            "offered_requests_per_s": float(n / duration),
        },
        "slo": {
            "goodput_fraction": float(met.sum() / n) if n else None,
            "goodput_requests_per_s": float((met & in_window).sum() / duration),
            "min_goodput_fraction": scenario.slo.min_goodput_fraction,
            "met": bool(n and met.sum() / n >= scenario.slo.min_goodput_fraction),
        },
        "latency_cdf": {  # percentiles 1..99, for the report's distribution charts
            "ttft_ms": _cdf_ms(table["ttft_s"][ok]),
            "e2e_ms": _cdf_ms(table["e2e_s"][ok]),
        },
        "useful": _useful(run, table, met, scenario),
        "per_task": _per_task(table, met, scenario),
        "timeseries": {
            "minute": list(range(minutes)),
            "arrivals_per_s": (np.bincount(arrival_minute, minlength=minutes) / span).tolist(),
            "completed_per_s": (np.bincount(finish_minute[done],
                                            minlength=minutes)[:minutes] / span).tolist(),
            "output_tokens_per_s": (np.bincount(finish_minute[done],
                                                weights=table["output_tokens"][done],
                                                minlength=minutes)[:minutes] / span).tolist(),
            "ttft_p95_ms": _per_minute_percentile(arrival_minute[ok], table["ttft_s"][ok],
                                                  minutes, 95),
        },
    }
    if run.fleet is not None:
        result.update(_local_part(run, table, minutes, span))
    if run.cloud is not None:
        result["cloud"] = _cloud_part(run, table)
    if run.parts:
        served = table["served_by"]
        sensitive = np.array([scenario.constraints.restricted_stays_local
                              and t.sensitivity == "restricted" for t in scenario.tasks])
        restricted = sensitive[table["task_index"]] if len(sensitive) else np.zeros(n, bool)
        result["hybrid"] = {
            **run.parts,
            "served_local": int((served == SERVED_LOCAL).sum()),
            "served_cloud": int((served == SERVED_CLOUD).sum()),
            "moved_between_paths": int((table["fallbacks"] > 0).sum()),
            "restricted_requests": int(restricted.sum()),
            "restricted_served_by_cloud": int((restricted & (served == SERVED_CLOUD)).sum()),
            "restricted_blocked": int((restricted & (outcome == BLOCKED)).sum()),
        }
    return result


def _useful(run: DeploymentRun, table: dict[str, np.ndarray], met: np.ndarray,
            scenario: Scenario) -> dict[str, Any]:
    """Expected useful results: requests inside the SLO, times the share of right answers
    of their task on the path that served them (quality per deployment, 1.0 if unknown)."""
    names = {SERVED_LOCAL: run.parts.get("local", run.name),
             SERVED_CLOUD: run.parts.get("cloud", run.name)}
    quality = np.ones(len(met))
    given = False
    for i, task in enumerate(scenario.tasks):
        for path, name in names.items():
            rate = task.quality.get(name, task.quality.get(run.name))
            if rate is not None:
                given = True
                quality[(table["task_index"] == i) & (table["served_by"] == path)] = rate
    useful = float((met * quality).sum())
    n = len(met)
    return {"expected_useful_requests": useful,
            "useful_fraction": useful / n if n else None,
            "quality_source": "scenario" if given else "assumed 1.0 (no quality given)"}


def _cdf_ms(values_s: np.ndarray) -> list[float]:
    if len(values_s) == 0:
        return []
    return [float(v) for v in np.percentile(values_s, np.arange(1, 100)) * 1e3]


def _itl(run: DeploymentRun) -> dict[str, float | None]:
    mean, points = run.records.itl_percentiles_s(PERCENTILES)
    return {"mean": _ms(mean), **{f"p{p}": _ms(points[p]) for p in PERCENTILES}}


def _per_task(table: dict[str, np.ndarray], met: np.ndarray,
              scenario: Scenario) -> dict[str, Any]:
    out = {}
    for i, task in enumerate(scenario.tasks):
        mine = table["task_index"] == i
        count = int(mine.sum())
        ok = mine & (table["outcome"] == OK)
        out[task.name] = {
            "requests": count,
            "completed": int(ok.sum()),
            "goodput_fraction": float((met & mine).sum() / count) if count else None,
            "served_cloud": int((mine & (table["served_by"] == SERVED_CLOUD)).sum()),
            "ttft_p95_ms": _p95_ms(table["ttft_s"][ok]),
            "e2e_p95_ms": _p95_ms(table["e2e_s"][ok]),
        }
    return out


def _p95_ms(values_s: np.ndarray) -> float | None:
    return float(np.percentile(values_s, 95) * 1e3) if len(values_s) else None


def _local_part(run: DeploymentRun, table: dict[str, np.ndarray], minutes: int,
                span: np.ndarray) -> dict[str, Any]:
    assert run.fleet is not None and run.capacity is not None and run.step_time is not None
    dep, duration = run.fleet.deployment, run.duration_s
    replicas = dep.replicas
    busy, kv = run.records.per_minute(minutes)
    capacity_tokens = max(1, run.capacity.tokens)
    q_mean, q_max, q_series = _queue_depth(table, duration, run.horizon_s)
    return {
        "gpu": dep.gpu, "model": dep.model, "replicas": replicas, "tp": dep.tp,
        "gpus": replicas * dep.tp,
        "fleet": _fleet_part(run),
        "utilisation": {
            "gpu_busy_fraction": float(busy.sum() / (duration * replicas)),
            "kv_cache_mean_fraction": float(kv.sum() / (duration * replicas * capacity_tokens)),
            "queue_depth_mean": q_mean,
            "queue_depth_max": q_max,
        },
        "engine": {
            "kv_cache_tokens_per_replica": run.capacity.tokens,
            "kv_cache_blocks_per_replica": run.capacity.blocks,
            "weights_gb_per_gpu": run.capacity.weights_gb_per_gpu,
            "max_model_len": run.capacity.max_model_len,
            "step_time": run.step_time.as_dict(),
        },
        "local_timeseries": {
            "queue_depth_mean": q_series.tolist(),
            "gpu_busy_fraction": (busy / (span * replicas)).tolist(),
            "kv_cache_fraction": (kv / (span * replicas * capacity_tokens)).tolist(),
        },
    }


def _fleet_part(run: DeploymentRun) -> dict[str, Any]:
    fleet = run.fleet
    assert fleet is not None
    control = fleet.control
    if control is None:
        return {"mean_active_replicas": float(fleet.deployment.replicas), "failures": 0,
                "requests_retried_after_failure": 0, "scale_events": []}
    return {"mean_active_replicas": control.mean_active(run.duration_s),
            "max_replicas": fleet.deployment.max_replicas,
            "failures": control.failures,
            "requests_retried_after_failure": control.retried,
            "scale_events": [{"t_s": t, "replicas": n} for t, n in control.scale_events]}


def _cloud_part(run: DeploymentRun, table: dict[str, np.ndarray]) -> dict[str, Any]:
    cloud = run.cloud
    assert cloud is not None
    served = table["served_by"] == SERVED_CLOUD
    outage_s = sum(min(end, run.duration_s) - start for start, end in cloud.outages
                   if start < run.duration_s)
    return {
        "model": cloud.spec.model, "provider": cloud.model.provider,
        "calls": int(cloud.calls), "served": int(served.sum()),
        "throttle_events": int(table["throttles"].sum()),
        "throttled_requests": int((table["throttles"] > 0).sum()),
        "retried_requests": int((table["attempts"] > 1).sum()),
        "tokens_charged_against_limit": float(cloud.charged_tokens),
        "outage_s": float(outage_s), "outages": len(cloud.outages),
        "input_tokens": int(table["prompt_tokens"][served].sum()),
        "output_tokens": int(table["output_tokens"][served].sum()),
    }


def _per_minute_percentile(minute: np.ndarray, values_s: np.ndarray, minutes: int,
                           q: float) -> list[float | None]:
    """Percentile q (ms) of values grouped by minute; None for empty minutes."""
    order = np.argsort(minute, kind="stable")
    minute, values_s = minute[order], values_s[order]
    bounds = np.searchsorted(minute, np.arange(minutes + 1))
    return [float(np.percentile(values_s[a:b], q) * 1e3) if b > a else None
            for a, b in itertools.pairwise(bounds)]


def _ms(value_s: float) -> float | None:
    return None if math.isnan(value_s) else value_s * 1e3


REQUEST_COLUMNS = ("arrival_s", "start_s", "first_token_s", "finish_s", "ttft_s", "tpot_s",
                   "e2e_s", "prompt_tokens", "output_tokens", "replica", "preemptions",
                   "served_by", "attempts", "throttles", "fallbacks")


def write_requests_csv(run: DeploymentRun, stream: RequestStream, path: Path) -> Path:
    """One row per request: its times, tokens, where it ran and how it ended."""
    table = request_table(run, stream)
    names = stream.task_names
    served = {SERVED_LOCAL: "local", SERVED_CLOUD: "cloud"}
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "task", *REQUEST_COLUMNS, "outcome"])
        columns = [table[c] for c in REQUEST_COLUMNS]
        for i in range(len(stream)):
            row: list[object] = [i, names[int(table["task_index"][i])]]
            for name, column in zip(REQUEST_COLUMNS, columns, strict=True):
                value = column[i]
                if name == "served_by":
                    row.append(served.get(int(value), ""))
                elif isinstance(value, float | np.floating):
                    row.append("" if math.isnan(value) else f"{value:.6f}")
                else:
                    row.append(int(value))
            row.append(OUTCOME_NAMES[int(table["outcome"][i])])
            out.writerow(row)
    return path
