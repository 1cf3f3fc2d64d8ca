"""What a load test measured: the figures the field expects, from the request records.

Same definitions as the simulator (TTFT, TPOT = (E2E - TTFT)/(n - 1), ITL excluding TTFT),
the same percentile rule (llmplan.stats) and the same goodput rule
(llmplan.scenario.goodput), plus what only a real run has: errors by class with 429 apart,
requested vs achieved rate, the generator's own schedule delay, token-count mismatches and
answer correctness per task, as a `LoadTestSummary` (summary.json).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from llmplan.loadtests.records import ERROR_CLASSES, RequestRecord
from llmplan.results.loadtest import (
    LoadTestSummary,
    MeasuredCache,
    MeasuredLatency,
    MeasuredSlo,
    MeasuredThroughput,
    RequestOutcomes,
    Stats,
    TaskMeasurement,
)
from llmplan.scenario.goodput import within_slo
from llmplan.scenario.models import SloSpec
from llmplan.stats import finite, percentiles

#: The percentiles a load-test summary reports (AIPerf's set plus p99.9).
LOADTEST_PERCENTILES: tuple[float, ...] = (1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9)
CACHE_WARNING_RATE = 0.10   # unshared prompts served from cache beyond this: warn


def stats(values: Iterable[float | None]) -> Stats:
    """Count, mean, std (population), min, p1-p99.9 and max (llmplan.stats rule)."""
    array = finite(list(values))
    if not array.size:
        return Stats()
    points = percentiles(array, LOADTEST_PERCENTILES)
    named = {f"p{q:g}".replace(".", "_"): v for q, v in points.items()}
    return Stats(count=int(array.size), mean=float(array.mean()), std=float(array.std()),
                 min=float(array.min()), max=float(array.max()), **named)


def cache_figures(rows: list[RequestRecord], shared_prompts: bool = False,
                  planned_prompt_tokens: Mapping[int, int] | None = None) -> MeasuredCache:
    """Prompt-cache hits of the finished requests, and a warning for accidental ones.

    Every prompt shares a prefix any prompt-caching server serves from cache: the chat
    template around it (and the first word of ours). Per request that allowance is the
    server's prompt count less the prompt's planned length (`planned_prompt_tokens` by record
    id); without a plan, the smallest non-zero cached count of the run. Cached tokens beyond
    it are what unshared prompts should not get (a repeated plan, an unsalted run).
    """
    ok = [r for r in rows if r.ok and r.prompt_tokens]
    reporting = [r for r in ok if r.cached_prompt_tokens is not None]
    prompt = sum(r.prompt_tokens or 0 for r in ok)
    if not reporting:
        return MeasuredCache(prompt_tokens=prompt, cached_prompt_tokens=None, hit_rate=None,
                             beyond_shared_prefix_rate=None)
    cached = sum(r.cached_prompt_tokens or 0 for r in reporting)
    base = sum(r.prompt_tokens or 0 for r in reporting)
    positive = [r.cached_prompt_tokens for r in reporting if r.cached_prompt_tokens]
    floor = min(positive) if positive else 0

    def allowance(r: RequestRecord) -> int:
        if planned_prompt_tokens is not None and r.id in planned_prompt_tokens:
            return max(0, (r.prompt_tokens or 0) - planned_prompt_tokens[r.id])
        return floor

    beyond = sum(max(0, (r.cached_prompt_tokens or 0) - allowance(r)) for r in reporting) / base
    warning = None
    if not shared_prompts and beyond > CACHE_WARNING_RATE:
        warning = (f"{beyond:.0%} of prompt tokens were served from the server's prompt cache "
                   f"beyond the prefix all prompts share: latencies are flattered (were these "
                   f"prompts sent before? llmplan salts each run's prompts; a test set repeats "
                   f"its own)")
    return MeasuredCache(prompt_tokens=prompt, cached_prompt_tokens=cached,
                         hit_rate=cached / base if base else None,
                         beyond_shared_prefix_rate=beyond, warning=warning)


def goodput_mask(rows: list[RequestRecord], slo_by_task: Mapping[str, SloSpec]) -> np.ndarray:
    """Per record: inside every SLO bound of its task (tasks the scenario lacks: no bounds)."""
    names = sorted({r.task for r in rows})
    index = {name: i for i, name in enumerate(names)}

    def column(values: Iterable[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    return within_slo([slo_by_task.get(name, SloSpec()) for name in names],
                      np.array([index[r.task] for r in rows], dtype=np.int64),
                      np.array([r.ok and r.e2e_ms is not None for r in rows], dtype=bool),
                      ttft_ms=column(r.ttft_ms for r in rows),
                      tpot_ms=column(r.tpot_ms for r in rows),
                      e2e_ms=column(r.e2e_ms for r in rows),
                      # a request that reasoned and never answered has no visible TTFT
                      ttft_visible_ms=column(r.ttft_visible_ms if r.ttft_visible_ms is not None
                                             or r.reasoning_tokens else r.ttft_ms
                                             for r in rows))


def summarise_records(rows: list[RequestRecord], *, planned: int, planned_span_s: float,
                      slo_by_task: Mapping[str, SloSpec], mode: str, warmup: int = 0,
                      shared_prompts: bool = False,
                      planned_prompt_tokens: Mapping[int, int] | None = None) -> LoadTestSummary:
    """summary.json content (warm-up records must not be in `rows`)."""
    ok = [r for r in rows if r.ok]
    cancelled = sum(1 for r in rows if r.error_class == "cancelled")
    errors = {cls: sum(1 for r in rows if r.error_class == cls) for cls in ERROR_CLASSES}
    status_codes: dict[str, int] = {}
    for r in rows:
        if not r.ok:
            status_codes[str(r.status)] = status_codes.get(str(r.status), 0) + 1
    if rows:
        first_send = min(r.send_ts for r in rows)
        last_end = max(r.send_ts + (r.e2e_ms or 0.0) / 1e3 for r in rows)
        window = max(last_end - first_send, 1e-9)
        send_span = max(max(r.send_ts for r in rows) - first_send, 1e-9)
    else:
        window = send_span = 1e-9
    good = goodput_mask(rows, slo_by_task) if rows else np.zeros(0, bool)
    tasks: dict[str, TaskMeasurement] = {}
    for task in sorted({r.task for r in rows}):
        mine = [i for i, r in enumerate(rows) if r.task == task]
        checked = [rows[i] for i in mine if rows[i].correct is not None]
        tasks[task] = TaskMeasurement(
            requests=len(mine), ok=sum(1 for i in mine if rows[i].ok), checked=len(checked),
            correct_fraction=(sum(1 for r in checked if r.correct) / len(checked)
                              if checked else None),
            goodput_fraction=float(good[mine].sum()) / len(mine))
    requested_rate = planned / planned_span_s if planned_span_s > 0 and mode == "open" else None
    return LoadTestSummary(
        mode=mode,
        requests=RequestOutcomes(planned=planned, sent=len(rows), finished=len(ok),
                                 failed=len(rows) - len(ok) - cancelled, cancelled=cancelled,
                                 not_sent=max(0, planned - len(rows)), warmup=warmup,
                                 errors_by_class=errors,
                                 errors_by_status=status_codes,
                                 token_mismatches=sum(1 for r in ok if r.token_mismatch)),
        latency=MeasuredLatency(ttft_ms=stats(r.ttft_ms for r in ok),
                                tpot_ms=stats(r.tpot_ms for r in ok),
                                itl_ms=stats(x for r in ok for x in r.itl_ms),
                                e2e_ms=stats(r.e2e_ms for r in ok),
                                ttft_visible_ms=stats(r.ttft_visible_ms for r in ok)
                                if any(r.ttft_visible_ms is not None for r in ok) else None),
        throughput=MeasuredThroughput(
            requested_rate_per_s=requested_rate,
            send_rate_per_s=len(rows) / send_span if len(rows) > 1 else None,
            achieved_rate_per_s=len(ok) / window,
            output_tokens_per_s=sum(r.output_tokens or 0 for r in ok) / window,
            input_tokens_per_s=sum(r.prompt_tokens or 0 for r in ok) / window,
            output_tokens_per_s_per_user=stats(1e3 / r.tpot_ms for r in ok
                                               if r.tpot_ms and r.tpot_ms > 0),
            window_s=window),
        schedule_delay_ms=stats(r.schedule_delay_ms for r in rows),
        slo=MeasuredSlo(goodput_fraction=float(good.sum()) / len(rows) if rows else None,
                        goodput_requests_per_s=float(good.sum()) / window,
                        bounded=any(bound is not None for spec in slo_by_task.values()
                                    for bound in (spec.ttft_ms, spec.tpot_ms, spec.e2e_ms,
                                                  spec.ttft_visible_ms))),
        tasks=tasks, cache=cache_figures(rows, shared_prompts, planned_prompt_tokens))
