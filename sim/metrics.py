"""What a run means: latency percentiles, throughput, SLO goodput, utilisation, time series.

`summarise_run` turns a finished run and its request table into the typed result of one
deployment (llmplan.results.simulation). Percentiles follow the one rule of llmplan.stats;
goodput the one rule of llmplan.scenario.goodput. Throughput counts what finished inside
the simulated duration, per second of it.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from llmplan.perf.engine import GIB
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.steptime import StepTime
from llmplan.results.simulation import (
    TURNS_SHOWN,
    AbandonedCalls,
    CloudOutcome,
    DeploymentResult,
    EngineOutcome,
    FleetOutcome,
    HybridOutcome,
    Latency,
    LatencyCdf,
    LatencyStats,
    LaterTurns,
    LocalOutcome,
    LocalTimeSeries,
    LongContextCalls,
    MemoryOutcome,
    PrefixCacheOutcome,
    RequestCounts,
    ScaleEvent,
    SessionOutcome,
    SloOutcome,
    StepTimeCoefficients,
    TaskOutcome,
    Throughput,
    TimeSeries,
    TurnStats,
    UnservedCalls,
    Useful,
    Utilisation,
)
from llmplan.scenario.models import Scenario
from llmplan.sim.cloud import sustained_limit
from llmplan.sim.engine import DeploymentRun
from llmplan.sim.hardware_use import (
    WorkDone,
    full_batch,
    hardware_use,
    memory_bandwidth_series,
)
from llmplan.sim.prompt_cache import prompt_cache_use
from llmplan.sim.queue import queue_depth
from llmplan.sim.records import (
    BLOCKED,
    BUSY,
    CONVERSATION_ENDED,
    DECODE_SEQ_STEPS,
    DECODE_STEPS,
    FAILED,
    KV_BLOCK_S,
    KV_TOKEN_STEPS,
    MINUTE_S,
    PENDING,
    REJECTED,
    SERVED_CLOUD,
    SERVED_LOCAL,
    STEPS,
    THROTTLED,
    TIMED_OUT,
    TOO_LONG,
)
from llmplan.sim.table import RequestTable, request_table, slo_met
from llmplan.stats import PERCENTILES, mean, percentile, percentiles
from llmplan.traffic import RequestStream


def latency_stats_ms(values_s: np.ndarray) -> LatencyStats:
    """Mean and p50/p90/p95/p99 in milliseconds (None when there are no values)."""
    ms = values_s * 1e3
    points = percentiles(ms, PERCENTILES)
    return LatencyStats(mean=mean(ms), p50=points[50], p90=points[90], p95=points[95],
                        p99=points[99])


def summarise_run(run: DeploymentRun, stream: RequestStream,
                  scenario: Scenario) -> DeploymentResult:
    """The result of one deployment (local, cloud or hybrid)."""
    stream = run.served(stream)
    table = request_table(run, stream)
    outcome, ok = table.outcome, table.ok
    duration = run.duration_s
    in_window = ok & (table.finish_s <= duration)
    met = slo_met(table, scenario)
    n = len(outcome)
    minutes = max(1, math.ceil(duration / MINUTE_S))
    span = np.diff(np.minimum(np.arange(minutes + 1) * MINUTE_S, duration))
    arrival_minute = np.minimum((table.arrival_s // MINUTE_S).astype(int), minutes - 1)
    finish_minute = np.where(in_window, table.finish_s // MINUTE_S, -1).astype(int)
    done = finish_minute >= 0
    return DeploymentResult(
        kind=run.deployment.kind,
        requests=RequestCounts(
            total=n, completed=int(ok.sum()), rejected=_count(outcome, REJECTED),
            timed_out=_count(outcome, TIMED_OUT), too_long=_count(outcome, TOO_LONG),
            failed=_count(outcome, FAILED), throttled=_count(outcome, THROTTLED),
            blocked=_count(outcome, BLOCKED), unfinished=_count(outcome, PENDING),
            conversation_ended=(None if stream.session is None
                                else _count(outcome, CONVERSATION_ENDED)),
            preempted=int((table.preemptions > 0).sum()),
            preemptions=int(table.preemptions.sum())),
        latency=Latency(
            ttft_ms=latency_stats_ms(table.ttft_s[ok]),
            tpot_ms=latency_stats_ms(table.tpot_s[ok]),
            itl_ms=_itl(run),
            e2e_ms=latency_stats_ms(table.e2e_s[ok]),
            queue_wait_ms=latency_stats_ms(table.queue_wait_s),
            ttft_visible_ms=None if table.ttft_visible_s is None
            else latency_stats_ms(table.ttft_visible_s[ok])),
        throughput=Throughput(
            requests_per_s=float(in_window.sum() / duration),
            output_tokens_per_s=float(table.output_tokens[in_window].sum() / duration),
            input_tokens_per_s=float(table.prompt_tokens[in_window].sum() / duration),
            offered_requests_per_s=float(n / duration),
            offered_output_tokens=int(table.output_tokens.sum())),
        slo=_slo_outcome(table, met, in_window, scenario, duration),
        latency_cdf=LatencyCdf(ttft_ms=_cdf_ms(table.ttft_s[ok]),
                               e2e_ms=_cdf_ms(table.e2e_s[ok])),
        useful=_useful(run, table, met, scenario),
        per_task=_per_task(table, met, scenario),
        timeseries=TimeSeries(
            minute=list(range(minutes)),
            arrivals_per_s=(np.bincount(arrival_minute, minlength=minutes) / span).tolist(),
            completed_per_s=(np.bincount(finish_minute[done],
                                         minlength=minutes)[:minutes] / span).tolist(),
            output_tokens_per_s=(np.bincount(finish_minute[done],
                                             weights=table.output_tokens[done],
                                             minlength=minutes)[:minutes] / span).tolist(),
            ttft_p95_ms=_per_minute_percentile(arrival_minute[ok], table.ttft_s[ok],
                                               minutes, 95)),
        local=_local_part(run, table, minutes, span) if run.fleet is not None else None,
        cloud=_cloud_part(run, table, stream) if run.cloud is not None else None,
        hybrid=_hybrid_part(run, table, scenario) if run.parts else None,
        sessions=_sessions_part(run, table, stream),
    )


def _sessions_part(run: DeploymentRun, table: RequestTable,
                   stream: RequestStream) -> SessionOutcome | None:
    loop = run.sessions
    if loop is None or stream.session is None or stream.turn is None:
        return None
    session, turn, ok = stream.session, stream.turn, table.ok
    mine = session >= 0
    ids = session[mine]
    sent = np.asarray(loop.sent) & mine
    sessions = np.unique(ids)
    # a session is complete when all its turns were answered
    unanswered = np.bincount(np.searchsorted(sessions, ids), weights=~ok[mine],
                             minlength=len(sessions))
    complete = unanswered == 0
    start = np.full(len(sessions), np.inf)
    end = np.zeros(len(sessions))
    where = np.searchsorted(sessions, ids)
    np.minimum.at(start, where, table.arrival_s[mine])
    np.maximum.at(end, where, np.where(ok[mine], table.arrival_s[mine] + table.e2e_s[mine],
                                       0.0))
    def stats(k: int, rows: np.ndarray) -> TurnStats:
        done = rows & ok
        return TurnStats(turn=k, requests=int(rows.sum()),
                         prompt_tokens_mean=float(table.prompt_tokens[rows].mean()),
                         completed=int(done.sum()),
                         ttft_p50_ms=percentile(table.ttft_s[done] * 1e3, 50),
                         ttft_p95_ms=percentile(table.ttft_s[done] * 1e3, 95))

    last = int(turn[mine].max(initial=-1))
    by_turn = [stats(k, mine & (turn == k)) for k in range(min(TURNS_SHOWN, last + 1))
               if (mine & (turn == k)).any()]
    # the turns past those, together: with the turns shown they count every request
    later = mine & (turn >= TURNS_SHOWN)
    return SessionOutcome(
        sessions=len(sessions), turns=int(mine.sum()), turns_sent=int(sent.sum()),
        completed_sessions=int(complete.sum()),
        session_duration_p50_s=percentile((end - start)[complete], 50),
        by_turn=by_turn,
        later_turns=LaterTurns(**stats(TURNS_SHOWN, later).model_dump(), last_turn=last)
        if later.any() else None)


def _count(outcome: np.ndarray, code: int) -> int:
    return int((outcome == code).sum())


def _useful(run: DeploymentRun, table: RequestTable, met: np.ndarray,
            scenario: Scenario) -> Useful:
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
                quality[(table.task_index == i) & (table.served_by == path)] = rate
    useful = float((met * quality).sum())
    n = len(met)
    # a load test's test set (`evaluations:`) measured it for this deployment or its paths
    measured = any(name in scenario.evaluations for name in {run.name, *names.values()})
    source = "measured (load-test evaluation)" if given and measured else \
        "scenario" if given else "assumed 1.0 (no quality given)"
    return Useful(expected_useful_requests=useful, useful_fraction=useful / n if n else None,
                  quality_source=source)


def _cdf_ms(values_s: np.ndarray) -> list[float]:
    points = percentiles(values_s, tuple(range(1, 100)))
    return [v * 1e3 for v in points.values() if v is not None]


def _itl(run: DeploymentRun) -> LatencyStats:
    """Gaps between streamed chunks. A simulated step is one token's; with speculative
    decoding it is 1/accepted of a verify step, whose tokens the engine streams as one
    chunk (vLLM's output processor sends what a step produced), so a chunk's gap is the
    whole verify step: accepted x the token's."""
    average, points = run.records.itl_percentiles_s(PERCENTILES)
    step = run.step_time
    chunk = step.accepted if step is not None else 1.0
    return LatencyStats(mean=_ms(average * chunk), p50=_ms(points[50] * chunk),
                        p90=_ms(points[90] * chunk), p95=_ms(points[95] * chunk),
                        p99=_ms(points[99] * chunk))


def _slo_outcome(table: RequestTable, met: np.ndarray, in_window: np.ndarray,
                 scenario: Scenario, duration: float) -> SloOutcome:
    """Goodput against the scenario's share, and each task whose SLO sets a share of its own
    against it (a task of 99% is not met by a run whose other tasks carry the average)."""
    n = len(met)
    short = []
    for i, task in enumerate(scenario.tasks):
        required = scenario.slo_for(task).min_goodput_fraction
        mine = table.task_index == i
        count = int(mine.sum())
        # a task's own share, where its SLO sets one (else the whole run's share binds)
        if task.slo is None or "min_goodput_fraction" not in task.slo.model_fields_set \
                or not count:
            continue
        share = float((met & mine).sum() / count)
        if share < required:
            shown = SloOutcome(goodput_fraction=share, goodput_requests_per_s=0.0,
                               min_goodput_fraction=required, met=False)
            short.append(f"{task.name}: {shown.goodput_shown()} of its requests within its "
                         f"bounds, {shown.required_shown()} required")
    overall = bool(n and met.sum() / n >= scenario.slo.min_goodput_fraction)
    return SloOutcome(goodput_fraction=float(met.sum() / n) if n else None,
                      goodput_requests_per_s=float((met & in_window).sum() / duration),
                      min_goodput_fraction=scenario.slo.min_goodput_fraction,
                      met=overall and not short, tasks_short=short or None)


def _per_task(table: RequestTable, met: np.ndarray,
              scenario: Scenario) -> dict[str, TaskOutcome]:
    out = {}
    for i, task in enumerate(scenario.tasks):
        mine = table.task_index == i
        count = int(mine.sum())
        ok = mine & table.ok
        p95_ttft = percentile(table.ttft_s[ok], 95)
        p95_e2e = percentile(table.e2e_s[ok], 95)
        out[task.name] = TaskOutcome(
            requests=count, completed=int(ok.sum()),
            too_long=int((mine & (table.outcome == TOO_LONG)).sum()),
            goodput_fraction=float((met & mine).sum() / count) if count else None,
            served_cloud=int((mine & (table.served_by == SERVED_CLOUD)).sum()),
            ttft_p95_ms=None if p95_ttft is None else p95_ttft * 1e3,
            e2e_p95_ms=None if p95_e2e is None else p95_e2e * 1e3)
    return out


def _local_part(run: DeploymentRun, table: RequestTable, minutes: int,
                span: np.ndarray) -> LocalOutcome:
    assert run.fleet is not None and run.capacity is not None and run.step_time is not None
    dep, duration = run.fleet.deployment, run.duration_s
    replicas = dep.replicas
    per_minute = run.records.per_minute(minutes, duration)
    held = per_minute[KV_BLOCK_S]
    pool_blocks = max(1, run.capacity.blocks)
    replica_s = _replica_seconds(run, span)
    setup = dep.setup(run.fleet.catalog)
    work = _work(run, table, per_minute, setup.max_num_batched_tokens)
    q_mean, q_max, q_series = queue_depth(table, duration, run.horizon_s)
    step = run.step_time
    budget = run.capacity.budget
    requests = table.prompt_tokens + table.output_tokens
    mean_request = float(requests.mean()) if len(requests) else 0.0
    return LocalOutcome(
        gpu=dep.gpu, model=dep.model, replicas=replicas, tp=dep.tp, pp=dep.pp,
        servers_per_replica=setup.servers, gpus=replicas * dep.gpus_per_replica,
        fleet=_fleet_part(run, float(replica_s.sum())),
        utilisation=_utilisation(run, table, per_minute, work=work, setup=setup,
                                 replica_s=float(replica_s.sum()), q_mean=q_mean, q_max=q_max),
        engine=EngineOutcome(
            vllm_version=dep.engine.vllm_version, data_parallel_ranks=setup.attention_ranks,
            max_num_seqs=setup.max_num_seqs,
            # one batch's (vLLM's flag, every rank's); pipeline stages run pp of them a round
            max_num_batched_tokens=setup.max_num_batched_tokens // setup.pp,
            async_scheduling=setup.async_scheduling,
            kv_cache_tokens=run.capacity.tokens, kv_cache_blocks=run.capacity.blocks,
            vllm_logged_kv_cache_tokens=run.capacity.logged_tokens,
            max_model_len=run.capacity.max_model_len,
            max_concurrency_at_max_model_len=run.capacity.max_concurrency,
            max_concurrency_at_mean_request=(run.capacity.concurrency_at(mean_request)
                                             if mean_request else None),
            memory=MemoryOutcome(
                total_gib=budget.total_bytes / GIB,
                gpu_memory_utilization=setup.gpu_memory_utilization,
                budget_gib=budget.budget_bytes / GIB, weights_gib=budget.weights_bytes / GIB,
                activation_gib=budget.activation_bytes / GIB,
                non_torch_gib=budget.non_torch_bytes / GIB,
                cuda_graph_gib=budget.cuda_graph_bytes / GIB,
                cuda_graph_in_budget=budget.graphs_in_budget,
                runner_buffers_gib=budget.runner_buffers_bytes / GIB,
                kv_cache_gib=run.capacity.kv_cache_bytes / GIB),
            step_time=_coefficients(step)),
        timeseries=LocalTimeSeries(
            queue_depth_mean=q_series.tolist(),
            mbu_fraction=memory_bandwidth_series(
                setup, steps=per_minute[STEPS].tolist(),
                decode_steps=per_minute[DECODE_STEPS].tolist(),
                decode_seq_steps=per_minute[DECODE_SEQ_STEPS].tolist(),
                kv_token_steps=per_minute[KV_TOKEN_STEPS].tolist(),
                run=work,
                replica_s=replica_s.tolist()),
            kv_cache_fraction=_share(held, replica_s * pool_blocks).tolist()),
        prefix_cache=_prefix_cache_part(run, table))


def _replica_seconds(run: DeploymentRun, span: np.ndarray) -> np.ndarray:
    """Replica-seconds the fleet had on in each minute of the run: with failures or
    autoscaling, the replicas on at each moment (fleet_control.py), else all of them."""
    assert run.fleet is not None
    control = run.fleet.control
    if control is None:
        return span * run.fleet.deployment.replicas
    return control.replica_seconds(np.concatenate([[0.0], np.cumsum(span)]))


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole, 0 where the whole is 0 (a minute with no replica on)."""
    out: np.ndarray = np.divide(part, whole, out=np.zeros_like(part, dtype=np.float64),
                                where=whole > 0)
    return out


def _fleet_started(run: DeploymentRun, table: RequestTable) -> np.ndarray:
    """Requests a local fleet started (their first prefill ran on one of its replicas)."""
    started: np.ndarray = (np.asarray(run.records.start_s) >= 0) & \
        (np.asarray(run.records.replica) >= 0) & (table.served_by != SERVED_CLOUD)
    return started


def _work(run: DeploymentRun, table: RequestTable, per_minute: np.ndarray,
          chunk_tokens: int) -> WorkDone:
    """What the fleet's steps processed: prefills of the requests it started (less what a
    prefix cache answered; recomputation after preemption not counted), and the steps,
    within the run's duration (the steps after it, draining, are not in its GPU-seconds).
    Steps carrying a prefill: each prompt's chunks of at most `chunk_tokens` (the token
    budget), as if no two prompts shared a step."""
    started = _fleet_started(run, table) & \
        (np.asarray(run.records.start_s) < run.duration_s)
    cached = np.asarray(run.records.cached_tokens, dtype=np.float64)[started]
    computed = table.prompt_tokens[started] - cached
    decode = float(per_minute[DECODE_SEQ_STEPS].sum())
    return WorkDone(steps=float(per_minute[STEPS].sum()),
                    decode_steps=float(per_minute[DECODE_STEPS].sum()),
                    tokens=float(computed.sum()) + decode,
                    prefill_pairs=float((computed * (cached + (computed + 1.0) / 2.0)).sum()),
                    decode_seq_steps=decode,
                    kv_token_steps=float(per_minute[KV_TOKEN_STEPS].sum()),
                    prefill_steps=float(np.ceil(computed[computed > 0]
                                                / max(1, chunk_tokens)).sum()))


def _utilisation(run: DeploymentRun, table: RequestTable, per_minute: np.ndarray, *,
                 work: WorkDone, setup: ReplicaSetup, replica_s: float, q_mean: float,
                 q_max: float) -> Utilisation:
    """Shares of what the fleet had on: over the replica-seconds of the replicas on at
    each moment (`replica_s`), not the starting count times the window."""
    assert run.fleet is not None and run.capacity is not None and run.step_time is not None
    duration = run.duration_s
    started = _fleet_started(run, table)
    if not started.any():
        started = np.ones(len(table.prompt_tokens), dtype=bool)
    full = full_batch(
        run.step_time, max_num_seqs=setup.max_num_seqs, capacity=run.capacity,
        max_num_batched_tokens=setup.max_num_batched_tokens,
        prompt_tokens=table.prompt_tokens[started],
        cached_tokens=np.asarray(run.records.cached_tokens)[started],
        output_tokens=table.output_tokens[started])
    served = table.ok & (table.served_by == SERVED_LOCAL) & (table.finish_s <= duration)
    achieved = float(served.sum() / duration)
    full_rate = full.requests_per_s * replica_s / duration
    use = hardware_use(setup, work, replica_s)
    whole = replica_s if replica_s > 0 else math.inf
    return Utilisation(
        achieved_requests_per_s=achieved, full_batch_requests_per_s=full_rate,
        full_batch_sequences=full.sequences, full_batch_limited_by=full.batch_limited_by,
        full_batch_step_bound_by=full.step_bound_by,
        load_fraction=achieved / full_rate if full_rate > 0 else 0.0,
        mfu_fraction=use.compute_fraction, mbu_fraction=use.memory_bandwidth_fraction,
        kv_cache_mean_fraction=float(per_minute[KV_BLOCK_S].sum()
                                     / (whole * max(1, run.capacity.blocks))),
        engine_busy_fraction=float(per_minute[BUSY].sum() / whole),
        queue_depth_mean=q_mean, queue_depth_max=q_max)


def _prefix_cache_part(run: DeploymentRun, table: RequestTable) -> PrefixCacheOutcome | None:
    """Hits of the replicas' prefix caches, over the requests the fleet started."""
    if run.fleet is None or not run.shares_prefixes:
        return None
    rec = run.records
    started = _fleet_started(run, table)
    cached = np.asarray(rec.cached_tokens, dtype=np.int64)
    prompt = int(table.prompt_tokens[started].sum())
    hit = started & (cached > 0)
    ok = table.ok

    def p50_ms(mask: np.ndarray) -> float | None:
        return percentile(table.ttft_s[mask & ok] * 1e3, 50)

    return PrefixCacheOutcome(
        policy=run.fleet.deployment.engine.prefix_caching, requests=int(started.sum()),
        prompt_tokens=prompt, cached_prompt_tokens=int(cached[started].sum()),
        hit_rate_tokens=float(cached[started].sum() / prompt) if prompt else 0.0,
        requests_with_hit=int(hit.sum()), ttft_p50_ms_hit=p50_ms(hit),
        ttft_p50_ms_miss=p50_ms(started & ~hit))


def _coefficients(step: StepTime) -> StepTimeCoefficients:
    return StepTimeCoefficients(
        serial_ms=step.serial_s * 1e3, serial_per_token_us=step.serial_per_token_s * 1e6,
        serial_tokens_ms=[(t, ms) for t, ms in step.table_points_ms] or None,
        serial_per_prefill_token_us=step.serial_per_prefill_token_s * 1e6,
        serial_per_seq_us=step.serial_per_seq_s * 1e6,
        serial_per_kv_token_ns=step.serial_per_kv_token_s * 1e9,
        serial_per_pair_ns=step.serial_per_pair_s * 1e9,
        compute_per_token_us=step.compute_per_token_s * 1e6,
        compute_per_pair_ns=step.compute_per_pair_s * 1e9,
        compute_per_prefill_pair_ns=step.compute_per_prefill_pair_s * 1e9,
        compute_per_window_seq_us=step.compute_per_window_seq_s * 1e6,
        window_tokens=step.window_tokens,
        compute_per_sampled_us=step.compute_per_sampled_s * 1e6,
        upproject_per_context_token_ns=step.upproject_per_context_token_s * 1e9
        if step.upproject_per_context_token_s else None,
        weights_ms=step.weights_s * 1e3, experts_ms=step.experts_s * 1e3,
        experts=step.experts, experts_per_token=step.experts_per_token,
        memory_per_kv_token_ns=step.memory_per_kv_token_s * 1e9,
        memory_per_seq_us=step.memory_per_seq_s * 1e6, cpu_ms=step.cpu_s * 1e3,
        cpu_per_seq_us=step.cpu_per_seq_s * 1e6, async_cpu=step.async_cpu,
        frontend_per_seq_us=step.frontend_per_seq_s * 1e6,
        verify_tokens=step.verify_tokens, accepted_per_step=step.accepted,
        draft_per_token_us=step.draft_per_token_s * 1e6,
        draft_weights_ms=step.draft_weights_s * 1e3,
        launch_ms=step.launch_s * 1e3 if step.launch_s else None,
        client_overhead_ms=step.client_overhead_s * 1e3, source=step.source)


def _fleet_part(run: DeploymentRun, replica_s: float) -> FleetOutcome:
    fleet = run.fleet
    assert fleet is not None
    control = fleet.control
    if control is None:
        return FleetOutcome(mean_active_replicas=float(fleet.deployment.replicas), failures=0,
                            requests_retried_after_failure=0, scale_events=[])
    return FleetOutcome(
        mean_active_replicas=replica_s / run.duration_s,
        mean_loading_replicas=control.loading_seconds(run.duration_s) / run.duration_s,
        max_replicas=fleet.deployment.max_replicas, failures=control.failures,
        requests_retried_after_failure=control.retried,
        scale_events=[ScaleEvent(t_s=t, replicas=n) for t, n in control.scale_events])


def _cloud_part(run: DeploymentRun, table: RequestTable,
                stream: RequestStream) -> CloudOutcome:
    cloud = run.cloud
    assert cloud is not None
    served = table.served_by == SERVED_CLOUD
    cache = _prompt_cache_use(run, table, stream, (served & table.ok)
                              | _missed(run, table, stream, served))
    outage_s = sum(min(end, run.duration_s) - start for start, end in cloud.outages
                   if start < run.duration_s)
    # what the API's limits admit at this mix: for an API alone (a hybrid's share varies)
    sustained = sustained_limit(cloud.spec, cloud.model, stream, run.duration_s) \
        if run.fleet is None else None
    return CloudOutcome(
        model=cloud.spec.model, provider=cloud.model.provider, calls=int(cloud.calls),
        served=int(served.sum()), requests_sent=int((table.attempts > 0).sum()),
        throttle_events=int(table.throttles.sum()),
        throttled_requests=int((table.throttles > 0).sum()),
        retried_requests=int((table.attempts > 1).sum()),
        tokens_charged_against_limit=float(cloud.charged_tokens), outage_s=float(outage_s),
        outages=len(cloud.outages), input_tokens=int(table.prompt_tokens[served].sum()),
        output_tokens=int(table.output_tokens[served].sum()),
        unserved=_unserved(run, table, stream, served),
        abandoned=AbandonedCalls(attempts=cloud.abandoned_attempts,
                                 input_tokens=cloud.abandoned_input_tokens,
                                 output_tokens=cloud.abandoned_output_tokens,
                                 cut_off=cloud.cut_off or None)
        if cloud.abandoned_attempts else None,
        long_context=_long_context(run, table, stream, served, cache),
        reasoning_streamed=(None if stream.reasoning_tokens is None
                            else cloud.model.streams_reasoning),
        # what limited the requests too long for it
        **({} if sustained is None else {
            "limit": sustained.limit,
            "limit_sustains_requests_per_s": sustained.requests_per_s}),
        **({"context_tokens": cloud.model.context_tokens,
            "max_output_tokens": cloud.model.max_output_tokens,
            "client_max_tokens": cloud.spec.limits.max_tokens}
           if (table.outcome == TOO_LONG).any() else {}),
        **({} if cache is None else {"cached_input_tokens": int(cache[0].sum()),
                                     "cache_write_tokens": int(cache[1].sum())}))


def _priceable(table: RequestTable, stream: RequestStream) -> np.ndarray:
    """An API candidate's requests priced whether answered or not (at the volume offered):
    all but those too long for it (no account's limits would ever let them through) and
    the later turns of a conversation one of whose turns was too long (they would be too:
    the history only grows). A conversation a 429 or an outage ended would have gone on,
    its later turns with it."""
    priceable: np.ndarray = table.outcome != TOO_LONG
    ended = table.outcome == CONVERSATION_ENDED
    if ended.any() and stream.session is not None:
        too_long = np.unique(stream.session[(table.outcome == TOO_LONG)
                                            & (stream.session >= 0)])
        priceable &= ~(ended & np.isin(stream.session, too_long))
    return priceable


def _unserved(run: DeploymentRun, table: RequestTable, stream: RequestStream,
              served: np.ndarray) -> UnservedCalls | None:
    """The requests the API was priced for (`_priceable`) and did not answer, when there
    are any: an API candidate's, and those a hybrid sent its API (at least one attempt)
    that no path answered (a hybrid's other requests are its fleet's)."""
    missed = _missed(run, table, stream, served)
    if not missed.any():
        return None
    return UnservedCalls(requests=int(missed.sum()),
                         input_tokens=int(table.prompt_tokens[missed].sum()),
                         output_tokens=int(table.output_tokens[missed].sum()))


def _missed(run: DeploymentRun, table: RequestTable, stream: RequestStream,
            served: np.ndarray) -> np.ndarray:
    """The requests the API is priced for as if served though it did not answer them."""
    missed: np.ndarray = ~served & _priceable(table, stream)
    if run.parts:
        missed &= (table.attempts > 0) & ~table.ok
    return missed


def _long_context(run: DeploymentRun, table: RequestTable, stream: RequestStream,
                  served: np.ndarray, cache: tuple[np.ndarray, np.ndarray] | None
                  ) -> LongContextCalls | None:
    """The priced requests (served, and the unserved ones priced as if served: `_missed`)
    whose prompts are past the model's long-context threshold: billed whole at its
    long-context prices, their own cache reads and writes among them (`cache`, per
    request)."""
    cloud = run.cloud
    assert cloud is not None
    prices = cloud.model.long_context
    if prices is None:
        return None
    priced = served | _missed(run, table, stream, served)
    long = priced & (table.prompt_tokens > prices.above_input_tokens)
    if not long.any():
        return None
    return LongContextCalls(requests=int(long.sum()),
                            input_tokens=int(table.prompt_tokens[long].sum()),
                            output_tokens=int(table.output_tokens[long].sum()),
                            **({} if cache is None else
                               {"cached_input_tokens": int(cache[0][long].sum()),
                                "cache_write_tokens": int(cache[1][long].sum())}))


def _prompt_cache_use(run: DeploymentRun, table: RequestTable, stream: RequestStream,
                      priced: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per request, the prompt tokens the provider's cache answered and took (tasks with
    shared prefixes), over the `priced` requests: those answered and those priced as if
    answered (`_missed`), whose calls would have read and written the cache too. The cache
    starts as the same traffic, kept up, leaves it (the window is a stretch of a month).
    None: no shared prefixes; zeros: a provider that does not cache."""
    cloud = run.cloud
    assert cloud is not None
    if stream.prefix_group is None or stream.prefix_tokens is None:
        return None
    if cloud.model.cached_input_usd_per_mtok is None:    # the provider does not cache
        none = np.zeros(len(table.prompt_tokens), dtype=np.int64)
        return none, none
    return prompt_cache_use(
        table.arrival_s, stream.prefix_group, stream.prefix_tokens, priced,
        keep_group=stream.cache_write_groups(), prompt_tokens=table.prompt_tokens,
        conversation=None if stream.session is None else stream.session >= 0,
        min_tokens=cloud.model.min_cacheable_tokens, ttl_s=cloud.model.cache_ttl_s,
        period_s=run.duration_s, step_tokens=cloud.model.cache_hit_step_tokens,
        side_calls=stream.side_calls())


def _hybrid_part(run: DeploymentRun, table: RequestTable, scenario: Scenario) -> HybridOutcome:
    served, outcome = table.served_by, table.outcome
    n = len(outcome)
    # counted whether or not the constraint keeps them local: a scenario that lets its
    # routes send restricted data to the API should see how much went
    sensitive = np.array([t.sensitivity == "restricted" for t in scenario.tasks])
    restricted = sensitive[table.task_index] if len(sensitive) else np.zeros(n, bool)
    return HybridOutcome(
        local=run.parts["local"], cloud=run.parts["cloud"],
        served_local=int((served == SERVED_LOCAL).sum()),
        served_cloud=int((served == SERVED_CLOUD).sum()),
        moved_between_paths=int((table.fallbacks > 0).sum()),
        restricted_requests=int(restricted.sum()),
        restricted_served_by_cloud=int((restricted & (served == SERVED_CLOUD)).sum()),
        restricted_blocked=int((restricted & (outcome == BLOCKED)).sum()))


def _per_minute_percentile(minute: np.ndarray, values_s: np.ndarray, minutes: int,
                           q: float) -> list[float | None]:
    """Percentile q (ms) of values grouped by minute; None for empty minutes."""
    order = np.argsort(minute, kind="stable")
    minute, values_s = minute[order], values_s[order]
    bounds = np.searchsorted(minute, np.arange(minutes + 1))
    out: list[float | None] = []
    for a, b in itertools.pairwise(bounds):
        value = percentile(values_s[a:b], q)
        out.append(None if value is None else value * 1e3)
    return out


def _ms(value_s: float) -> float | None:
    return None if math.isnan(value_s) else value_s * 1e3
