"""Calibrate from a vLLM server's own Prometheus metrics plus a load-test run.

The load test scrapes `/metrics` every second (server_metrics.prom). Between two scrapes a
busy engine ran its steps back to back, so the interval's length is the sum of its step
times, and the counters say what those steps did:

    interval_s = fixed * N + per_prefill_token * P + per_decode_seq * D + per_kv_token * K

(fitted per interval as its mean step, interval_s / N, against P/N, D/N and K/N)

N  engine steps            delta of `vllm:iteration_tokens_total` (histogram) _count
P  prompt tokens prefilled delta of `vllm:prompt_tokens_by_source_total{source=
                           "local_compute"}` (0.20 on), else of `vllm:prompt_tokens_total`
                           less the run's share of cache hits (`prefix_cache_hits_total`
                           and `external_prefix_cache_hits_total`, or V0's
                           `gpu_prefix_cache_hit_rate`)
D  decode sequences        delta of `vllm:generation_tokens_total` less the first tokens
                           (delta of `vllm:time_to_first_token_seconds_count`) and, with
                           speculative decoding, less the accepted draft tokens (delta of
                           `vllm:spec_decode_num_accepted_tokens_total`: a verify step gives
                           a sequence one token and those it accepts)
K  KV tokens read          from the load-test records (every decode token's context), else
                           N x the mean `vllm:kv_cache_usage_perc` x the KV capacity
                           (`vllm:cache_config_info` num_gpu_blocks x block_size)

An interval counts as busy when `vllm:num_requests_running` is positive at both ends and the
records show a request in flight throughout. Consecutive busy intervals are merged until one
holds at least MIN_STEPS_PER_OBSERVATION steps and spans PREFILLS_PER_OBSERVATION mean
prefills (`vllm:request_prefill_time_seconds`): a step that straddles a scrape is counted in
the interval it ends in, and V1 counts a prompt's tokens when its first token comes, not
when its chunks are computed, so a single interval's counters can belong partly to its
neighbours'. A run whose steps were counted by several API server processes (multiprocess
metrics: `--api-server-count` above 1 counts a step once per front-end with output in it)
is refused: the records show fewer tokens per step for a request decoding throughout than
a step gives. The same robust NNLS and quality gate as the
records path give the same coefficient kinds; the client overhead is the client's mean TTFT
less vLLM's own (`vllm:time_to_first_token_seconds`), i.e. HTTP and tokenisation.
Runs fitted together are also fitted with a speed of their own each over the same costs
(fit.run_speeds, an interval's relative residual being its mean step's): one whose steps
took more than 1.10 times another's for the same work, beyond the noise, while the one fit
read less of it, is refused as the records path refuses it (fit.run_speed_findings).
A counter that falls between two scrapes is a restart of the server: only the scrapes after
the last one are fitted, with a note (the intervals across it difference two processes'
counters). Metric names are vLLM's (v1 engine, `vllm/v1/metrics/loggers.py`); the KV gauge was
`vllm:gpu_cache_usage_perc` before vLLM 0.9, and both are read.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from llmplan.errors import InputError, Problem
from llmplan.fidelity.fit import (
    MIN_STEPS,
    Finding,
    Fit,
    Observed,
    kind_quality,
    trim_by_kind,
)
from llmplan.fidelity.promtext import Snapshot
from llmplan.fidelity.server import metrics_snapshots
from llmplan.fidelity.timeline import token_times, usable
from llmplan.loadtests.records import RequestRecord

STEPS = "vllm:iteration_tokens_total_count"
PROMPT = "vllm:prompt_tokens_total"
GENERATED = "vllm:generation_tokens_total"
FIRST_TOKENS = "vllm:time_to_first_token_seconds_count"
TTFT_SUM = "vllm:time_to_first_token_seconds_sum"
RUNNING = "vllm:num_requests_running"
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
#: prompt tokens read from the prefix cache (a counter of tokens; named
#: vllm:gpu_prefix_cache_hits until 0.9.2, vllm/v1/metrics/loggers.py)
PREFIX_HITS = ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total")
#: prompt tokens a KV connector (LMCache, offloading) brought in (0.14 on)
EXTERNAL_HITS = "vllm:external_prefix_cache_hits_total"
#: prompt tokens by where they came from; "local_compute": computed (0.20 on)
BY_SOURCE = "vllm:prompt_tokens_by_source_total"
#: V0's share of prefix-cache block lookups that hit (a gauge; V0 counts no hit tokens)
V0_HIT_RATE = "vllm:gpu_prefix_cache_hit_rate"
MIN_INTERVALS = 8
#: steps an observation holds at least (consecutive busy intervals merged): a step that
#: straddles a scrape moves at most one step's time between neighbours
MIN_STEPS_PER_OBSERVATION = 10
#: draft tokens a verify step accepted (speculative decoding; V1 from 0.8)
ACCEPTED = "vllm:spec_decode_num_accepted_tokens_total"
#: vLLM's time from a request's scheduling to its first token (V1, observed as it ends)
PREFILL_SUM = "vllm:request_prefill_time_seconds_sum"
PREFILL_COUNT = "vllm:request_prefill_time_seconds_count"
#: an observation spans at least this many mean prefills: V1 counts a prompt's tokens at
#: its first token, so the chunks of the prompts prefilling across an observation's edges
#: (about one prefill's worth at each) are counted in a neighbour
PREFILLS_PER_OBSERVATION = 4
#: the median tokens per step of requests decoding through an interval below which the
#: steps were counted more than once (one token per step, more with speculation)
MIN_TOKENS_PER_STEP = 0.75


@dataclass(frozen=True)
class Interval:
    seconds: float
    steps: float
    prompt_tokens: float
    decode_tokens: float
    kv_tokens: float


def _delta(a: Snapshot, b: Snapshot, name: str) -> float:
    x, y = a.total(name), b.total(name)
    if x is None or y is None:
        raise KeyError(name)
    return y - x


def _accepted(a: Snapshot, b: Snapshot) -> float:
    """Draft tokens verify steps accepted between two scrapes (0 without speculation)."""
    x, y = a.total(ACCEPTED), b.total(ACCEPTED)
    return max(0.0, y - x) if x is not None and y is not None else 0.0


def _computed(s: Snapshot) -> float | None:
    """The prompt tokens the engine computed, counted so far (0.20 on; None before)."""
    values = [v for labels, v in s.samples.get(BY_SOURCE, [])
              if labels.get("source") == "local_compute"]
    return sum(values) if values else None


def computed_share(snapshots: list[Snapshot]) -> float:
    """Of the prompt tokens vLLM counted over the run, the share it computed rather than
    read from a cache: its local prefix cache's hits and a KV connector's
    (`vllm:prefix_cache_hits_total`, `external_prefix_cache_hits_total`), counted when a
    request is scheduled while its prompt is counted at its first token, so taken over the
    whole run; V0 counts no hit tokens, only a hit rate of block lookups (a gauge); 1
    without any."""
    try:
        prompt = _increase(snapshots, PROMPT)
    except KeyError:
        return 1.0
    hits = 0.0
    local = [n for n in PREFIX_HITS if any(s.total(n) is not None for s in snapshots)]
    for name in [*local[:1], EXTERNAL_HITS]:     # one name per release (renamed in 0.9.2)
        try:
            hits += _increase(snapshots, name)
        except KeyError:
            continue
    if not local:
        rates = [r for r in (s.total(V0_HIT_RATE) for s in snapshots) if r is not None]
        return 1.0 - float(np.clip(np.mean(rates), 0.0, 1.0)) if rates else 1.0
    return float(np.clip(1.0 - hits / prompt, 0.0, 1.0)) if prompt > 0 else 1.0


def _records_kv(rows: list[RequestRecord], start: float, end: float) -> float:
    """KV tokens the decode steps in [start, end) read, from the records' token times."""
    total = 0.0
    for row in rows:
        times = token_times(row)
        inside = np.nonzero((times[1:] >= start) & (times[1:] < end))[0] + 1
        total += float(np.sum((row.prompt_tokens or 0) + inside))
    return total


def _in_flight(rows: list[RequestRecord], start: float, end: float) -> bool:
    spans = sorted((r.send_ts, r.send_ts + (r.e2e_ms or 0) / 1e3) for r in rows)
    reach = start
    for a, b in spans:
        if a <= reach < b:
            reach = b
        if reach >= end:
            return True
    return reach >= end


def busy_intervals(snapshots: list[Snapshot], rows: list[RequestRecord],
                   kv_capacity_tokens: int | None) -> list[tuple[float, Interval]]:
    """The busy scrape intervals, each with its start (Unix time), as step-model
    observations."""
    done = usable(rows)
    share = computed_share(snapshots)
    out = []
    for a, b in itertools.pairwise(snapshots):
        if a.unix_ts is None or b.unix_ts is None or b.unix_ts <= a.unix_ts:
            continue
        try:
            steps = _delta(a, b, STEPS)
            # prompt tokens the engine computed: vLLM counts a cache hit in
            # prompt_tokens_total too (computed_share)
            x, y = _computed(a), _computed(b)
            prompt = y - x if x is not None and y is not None \
                else _delta(a, b, PROMPT) * share
            decode = _delta(a, b, GENERATED) - _delta(a, b, FIRST_TOKENS) \
                - _accepted(a, b)
        except KeyError:
            continue
        if steps <= 0 or not (a.total(RUNNING) or 0) > 0 or not (b.total(RUNNING) or 0) > 0:
            continue
        if rows and not _in_flight(rows, a.unix_ts, b.unix_ts):
            continue
        if done:
            kv = _records_kv(done, a.unix_ts, b.unix_ts)
        else:
            usage = [u for u in (a.first(*KV_USAGE), b.first(*KV_USAGE)) if u is not None]
            kv = steps * float(np.mean(usage)) * (kv_capacity_tokens or 0) if usage else 0.0
        out.append((a.unix_ts, Interval(b.unix_ts - a.unix_ts, steps, max(prompt, 0.0),
                                        max(decode, 0.0), kv)))
    return out


def mean_prefill_s(snapshots: list[Snapshot]) -> float:
    """vLLM's mean time from scheduling a request to its first token over the run (0 when
    it does not export it)."""
    try:
        count = _increase(snapshots, PREFILL_COUNT)
        return _increase(snapshots, PREFILL_SUM) / count if count > 0 else 0.0
    except KeyError:
        return 0.0


def merged(found: list[tuple[float, Interval]], min_s: float = 0.0) -> list[Interval]:
    """Consecutive busy intervals added together until each holds at least
    MIN_STEPS_PER_OBSERVATION steps and spans `min_s` (a run's last few, short of it, are
    left out)."""
    out: list[Interval] = []
    group: list[Interval] = []
    end = None
    for start, interval in found:
        if group and (end is None or abs(start - end) > 1e-6):
            group = []                        # a gap: not consecutive, start again
        group.append(interval)
        end = start + interval.seconds
        if sum(i.steps for i in group) >= MIN_STEPS_PER_OBSERVATION \
                and sum(i.seconds for i in group) >= min_s:
            out.append(Interval(*(sum(getattr(i, f) for i in group)
                                  for f in ("seconds", "steps", "prompt_tokens",
                                            "decode_tokens", "kv_tokens"))))
            group = []
    return out


def tokens_per_step(found: list[tuple[float, Interval]],
                    rows: list[RequestRecord]) -> float | None:
    """The median, over busy intervals and the requests decoding through each (first token
    before it, last after it), of the tokens the request received per step counted (None:
    no such request)."""
    times = [t for t in (token_times(row) for row in usable(rows)) if len(t) >= 3]
    if not times or not found:
        return None
    first = np.array([t[0] for t in times])
    last = np.array([t[-1] for t in times])
    ratios = []
    for start, interval in found:
        end = start + interval.seconds
        for i in np.flatnonzero((first <= start) & (last >= end)):
            got = np.searchsorted(times[i], end) - np.searchsorted(times[i], start)
            ratios.append(float(got) / interval.steps)
    return float(np.median(ratios)) if ratios else None


def fit_intervals(found: list[Interval], overhead_s: float) -> Fit:
    if len(found) < MIN_INTERVALS:
        raise ValueError(f"only {len(found)} busy scrape intervals: load the vLLM server for "
                         f"longer (at least ~{MIN_INTERVALS * 2} s with requests in flight) "
                         f"while the load test scrapes /metrics")
    # per interval, its mean step: the interval's length is nearly constant (the scrape
    # period), what varies with the load is how long each of its steps took
    X = np.array([[1.0, i.prompt_tokens / i.steps, i.decode_tokens / i.steps,
                   i.kv_tokens / i.steps] for i in found])
    y = np.array([i.seconds / i.steps for i in found])
    coef, _ = nnls(X, y)
    relative = np.abs(X @ coef - y) / y
    prefill = X[:, 1] > 0
    # trimmed within each kind (prompt-carrying or not), as the records path does: a trim
    # of all intervals together can drop every prompt-carrying one
    keep = trim_by_kind(relative, prefill)
    coef, _ = nnls(X[keep], y[keep])
    predicted = X @ coef
    error_pct = 100 * np.abs(predicted - y) / y
    ss_res = float(np.sum((y - predicted) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2)) or 1e-30

    return Fit(coefficients_s=(float(coef[0]), float(coef[1]), float(coef[2]), float(coef[3]),
                               0.0),   # scrapes do not say which prompts hit the cache
               client_overhead_s=overhead_s, samples=int(sum(i.steps for i in found)),
               cold_starts=0,
               r2=1.0 - ss_res / ss_tot, rmse_ms=math.sqrt(ss_res / len(y)) * 1e3,
               median_abs_error_pct=float(np.median(error_pct)),
               prefill=kind_quality(predicted, y, prefill, keep),
               decode=kind_quality(predicted, y, ~prefill, keep), median_cold_ttft_s=None,
               observed="scrape interval")


def observed(found: list[Interval]) -> Observed:
    """A run's intervals as the step line reads them (fit.run_speeds): each one's steps,
    prompt tokens, decoding sequences and KV tokens (no prefill pairs: the scrapes do not
    say which prompts hit the cache), and its seconds."""
    return Observed(np.array([[i.steps, i.prompt_tokens, i.decode_tokens, i.kv_tokens, 0.0]
                              for i in found]).reshape(-1, 5),
                    np.array([i.seconds for i in found]))


def identifiability_intervals(found: list[Interval]) -> list[Finding]:
    blocking = []
    if sum(1 for i in found if i.prompt_tokens > 0) < MIN_STEPS:
        blocking.append(Finding("per_prefill_token_us", "too few scrape intervals prefilled "
                                "prompts", "send more requests per second, or run longer"))
    per_step = {round(i.decode_tokens / i.steps, 1) for i in found if i.steps}
    if len(per_step) < 3:
        blocking.append(Finding("per_decode_seq_us", "the batch size hardly changed between "
                                "intervals", "vary the load: an open-loop Poisson level below "
                                "saturation, or several levels fitted together"))
    return blocking


def _increase(snapshots: list[Snapshot], name: str) -> float:
    """A counter's increase over the scrapes, as Prometheus' increase() takes it: a fall
    is a restart of the server, after which the counter counts again from zero."""
    seen = [v for v in (s.total(name) for s in snapshots) if v is not None]
    if not seen:
        raise KeyError(name)
    return sum(b - a if b >= a else b for a, b in itertools.pairwise(seen))


def client_overhead_s(snapshots: list[Snapshot], rows: list[RequestRecord]) -> float:
    """Client-seen mean TTFT less vLLM's own mean TTFT over the run (never negative)."""
    try:
        count = _increase(snapshots, FIRST_TOKENS)
        server = _increase(snapshots, TTFT_SUM) / count if count > 0 else None
    except KeyError:
        server = None
    client = [r.ttft_ms / 1e3 for r in rows if r.ok and r.ttft_ms is not None]
    if server is None or not client:
        return 0.0
    return max(0.0, float(np.mean(client)) - server)


#: counters that fall only when the server restarts (and counts again from zero)
COUNTERS = (STEPS, PROMPT, GENERATED, FIRST_TOKENS, TTFT_SUM, PREFILL_SUM, PREFILL_COUNT,
            *PREFIX_HITS, EXTERNAL_HITS, ACCEPTED)


def last_restart(snapshots: list[Snapshot]) -> tuple[int, str, float, float] | None:
    """Where the server last restarted: (index of the first scrape after it, a counter that
    fell, its value before, after); None: no counter ever fell."""
    found = None
    for i, (a, b) in enumerate(itertools.pairwise(snapshots), start=1):
        pairs = [(name, a.total(name), b.total(name)) for name in COUNTERS]
        pairs.append((f'{BY_SOURCE}{{source="local_compute"}}', _computed(a), _computed(b)))
        for name, x, y in pairs:
            if x is not None and y is not None and y < x:
                found = (i, name, x, y)
                break
    return found


def _after_restart(path: Path, snapshots: list[Snapshot], rows: list[RequestRecord]
                   ) -> tuple[list[Snapshot], list[RequestRecord], list[Finding]]:
    """The scrapes from the server's last restart on, the requests whose first token came
    after the last scrape before it, and a note of what was left out. The intervals of a
    restart differ counters of two processes; the stretch before it ran a server whose
    settings may not be the ones now exported (cache_config_info is read from the last
    scrape), so only the stretch after it is fitted."""
    restart = last_restart(snapshots)
    if restart is None:
        return snapshots, rows, []
    i, name, before, after = restart
    since = snapshots[i - 1].unix_ts
    where = f"{path}:{snapshots[i].line}" if snapshots[i].line is not None else str(path)
    note = Finding(
        "server_metrics.prom",
        f"{where}: {name} fell from {before:,.0f} to {after:,.0f}: the server restarted "
        f"(its counters start again from zero), so the fit uses only the "
        f"{len(snapshots) - i:,} scrapes after it, not the {i:,} before",
        "calibrate from a run during which the server kept running")
    kept = [r for r in rows if since is None or r.ttft_ms is None
            or r.send_ts + r.ttft_ms / 1e3 > since]
    return snapshots[i:], kept, [note]


def run_intervals(run: Path, rows: list[RequestRecord], kv_capacity_tokens: int | None
                  ) -> tuple[list[Interval], float, int, list[Finding]]:
    """(busy intervals, client overhead, most requests running, notes) of one run's
    scrapes (after the server's last restart, when it restarted)."""
    scraped = metrics_snapshots(run)
    if scraped is None or len(scraped[1]) < 2 or scraped[1][0].unix_ts is None:
        raise InputError([Problem(str(run), None, "server_metrics.prom",
                                  "no timed /metrics scrapes of a vLLM server here: run "
                                  "`llmplan loadtest` against a target of kind vllm (it scrapes "
                                  "every second), or write the file as described in "
                                  "llmplan/fidelity/promtext.py")], title="calibration impossible")
    path, snapshots = scraped
    if all(s.total(STEPS) is None for s in snapshots):
        raise InputError([Problem(str(path), None, STEPS.removesuffix("_count"),
                                  "not in the scrapes: this is not a vLLM (v1) /metrics")],
                         title="calibration impossible")
    _one_engine_with_every_metric(path, snapshots)
    snapshots, rows, notes = _after_restart(path, snapshots, rows)
    running = max((s.total(RUNNING) or 0) for s in snapshots)
    busy = busy_intervals(snapshots, rows, kv_capacity_tokens)
    if rows and not busy:
        _records_within_the_scrapes(path, snapshots, rows)
    per_step = tokens_per_step(busy, rows)
    if per_step is not None and per_step < MIN_TOKENS_PER_STEP:
        raise InputError([Problem(
            str(path), None, STEPS.removesuffix("_count"),
            f"a request decoding through a scrape interval received {per_step:.2f} tokens "
            f"per step counted (median), where every step gives it one: the steps were "
            f"counted more than once, as several API server processes count them "
            f"(--api-server-count above 1, Prometheus multiprocess mode), or the engine ran "
            f"pipeline stages, whose batches take turns (an interval is then not the sum of "
            f"its steps); calibrate a server started with --api-server-count 1 and no "
            f"stages, or fit these runs from their records (--source records)")],
            title="calibration impossible")
    return merged(busy, PREFILLS_PER_OBSERVATION * mean_prefill_s(snapshots)), \
        client_overhead_s(snapshots, rows), int(running), notes


#: the counters and gauge every interval needs (besides STEPS, checked first)
NEEDED = (PROMPT, GENERATED, FIRST_TOKENS, RUNNING)
#: labels that tell one engine's series from another's in one scrape
ENGINE_LABELS = ("model_name", "engine")


def _one_engine_with_every_metric(path: Path, snapshots: list[Snapshot]) -> None:
    """Refuse scrapes that lack a metric the intervals need, or that hold several models'
    or data-parallel engines' series: their counters would be added together, and the
    engines step side by side, not one after the other as the interval law assumes."""
    missing = [name for name in NEEDED if all(s.total(name) is None for s in snapshots)]
    if missing:
        raise InputError([Problem(str(path), None, name,
                                  "not in any scrape: every busy interval needs it (vLLM v1 "
                                  "exports it; a scrape filtered by metric name loses it)")
                          for name in missing], title="calibration impossible")
    engines = {tuple((key, labels.get(key, "")) for key in ENGINE_LABELS)
               for s in snapshots for labels, _ in s.samples.get(STEPS, [])}
    if len(engines) > 1:
        shown = "; ".join(", ".join(f"{k}={v}" for k, v in e if v) or "(no labels)"
                          for e in sorted(engines))
        raise InputError([Problem(str(path), None, STEPS.removesuffix("_count"),
                                  f"{len(engines)} engines' series in one scrape ({shown}): "
                                  f"their steps run side by side, and their counters would "
                                  f"be added; calibrate a server of one model and one "
                                  f"engine (--data-parallel-size 1)")],
                         title="calibration impossible")


def _records_within_the_scrapes(path: Path, snapshots: list[Snapshot],
                                rows: list[RequestRecord]) -> None:
    """Refuse records whose times do not meet the scrapes' (another run's, or clocks
    apart): no interval can have a request in flight."""
    stamps = [s.unix_ts for s in snapshots if s.unix_ts is not None]
    sent = [r.send_ts for r in rows]
    if not stamps or not sent:
        return
    first, last = min(sent), max(r.send_ts + (r.e2e_ms or 0) / 1e3 for r in rows)
    if last < min(stamps) or first > max(stamps):
        raise InputError([Problem(str(path), None, "server_metrics.prom",
                                  f"the records ({first:,.0f}-{last:,.0f} s, Unix time) and "
                                  f"the scrapes ({min(stamps):,.0f}-{max(stamps):,.0f} s) do "
                                  f"not overlap: scrape the server during the run whose "
                                  f"records these are")], title="calibration impossible")
