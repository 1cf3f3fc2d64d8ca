"""Replica failures and autoscaling change every figure the way they should."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import run_first, scenario_from

from llmplan.results.simulation import DeploymentResult
from llmplan.sim.metrics import summarise_run
from llmplan.sim.records import BUSY, OK
from llmplan.sim.table import request_table

FLEET = """
    seed: 8
    duration: 1200
    traffic: {{kind: poisson, rate_per_s: {rate}, spikes: {spikes}}}
    tasks: [{{name: chat, prompt_tokens: {{kind: lognormal, mean: 600, p95: 1500}},
             output_tokens: {{kind: lognormal, mean: 200, p95: 500}}}}]
    slo: {{ttft_ms: 2000}}
    deployments:
      d:
        gpu: L40S
        model: Llama-3.1-8B
        replicas: {replicas}
        {extra}
"""


def _go(rate: float = 5.0, replicas: int = 2, extra: str = "", spikes: str = "[]"):  # type: ignore[no-untyped-def]
    loaded = scenario_from(FLEET.format(rate=rate, replicas=replicas, extra=extra,
                                        spikes=spikes))
    run, stream = run_first(loaded)
    return run, stream, request_table(run, stream), summarise_run(run, stream, loaded.scenario)


def _p95(summary: DeploymentResult) -> float:
    assert summary.latency.ttft_ms.p95 is not None
    return summary.latency.ttft_ms.p95


def test_a_failed_replica_hands_its_requests_to_the_others() -> None:
    window = "failures: {windows: [{replica: 0, start_s: 300, duration_s: 400}]}"
    _, stream, table, summary = _go(extra=window)
    assert summary.local is not None
    _, _, steady, _ = _go()
    assert summary.local.fleet.failures == 1
    retried = table.fallbacks > 0
    assert summary.local.fleet.requests_retried_after_failure == retried.sum() > 0
    assert (table.outcome[retried] == OK).all()           # retried and finished
    # while replica 0 is down, everything that starts runs on replica 1
    started = table.start_s
    during = (started > 300) & (started < 700)
    assert during.sum() > 100 and (table.replica[during] == 1).all()
    assert (table.replica[(started > 750)] == 0).any()    # back after the repair
    # and the outage shows in the tail
    window_mask = (stream.arrival_s > 300) & (stream.arrival_s < 700)
    assert np.nanpercentile(table.e2e_s[window_mask], 95) > \
        1.15 * np.nanpercentile(steady.e2e_s[window_mask], 95)


def test_autoscaling_follows_a_spike_and_scales_back() -> None:
    spike = "[{start_s: 300, duration_s: 300, multiplier: 5}]"
    scaling = ("autoscaling: {min_replicas: 1, max_replicas: 4, spin_up_s: 60, "
               "cooldown_s: 60, interval_s: 10, scale_up_waiting_per_replica: 2}")
    _, _, table, summary = _go(rate=3.0, replicas=1, extra=scaling, spikes=spike)
    assert summary.local is not None
    _, _, _, fixed_summary = _go(rate=3.0, replicas=1, spikes=spike)
    events = summary.local.fleet.scale_events
    peak = max(e.replicas for e in events)
    assert peak > 1 and peak <= 4
    assert events[-1].replicas < peak                      # scaled back after the spike
    assert all(e.t_s >= 300 + 60 for e in events[1:] if e.replicas > 1)  # load time
    assert 1 < summary.local.fleet.mean_active_replicas < 4
    assert _p95(summary) < _p95(fixed_summary)
    assert (table.replica >= 1).any()                      # the new replicas served


SATURATED = """
    seed: 2
    duration: 600
    traffic: {{kind: poisson, rate_per_s: 20}}
    tasks: [{{name: chat, prompt_tokens: {{kind: fixed, tokens: 1000}},
             output_tokens: {{kind: fixed, tokens: 300}}}}]
    deployments:
      d:
        gpu: L40S
        model: Llama-3.1-8B
        replicas: {replicas}
        {extra}
"""


def _saturated(replicas: int, extra: str) -> DeploymentResult:
    loaded = scenario_from(SATURATED.format(replicas=replicas, extra=extra))
    run, stream = run_first(loaded)
    return summarise_run(run, stream, loaded.scenario)


def test_a_fleet_busy_whenever_on_is_busy_all_the_time_when_one_replica_fails() -> None:
    """Two replicas, one down from 300 s of 600 to the end, both busy whenever up: 1.5
    replicas on average, busy 100% of that (not 0.75 of the two), the KV cache under 100%."""
    summary = _saturated(2, "failures: {windows: [{replica: 1, start_s: 300, "
                            "duration_s: 100000}]}")
    assert summary.local is not None
    local = summary.local
    assert local.fleet.mean_active_replicas == pytest.approx(1.5, abs=1e-3)
    assert 0.99 < local.utilisation.engine_busy_fraction <= 1.0
    assert local.utilisation.kv_cache_mean_fraction <= 1.0
    assert max(local.timeseries.kv_cache_fraction) <= 1.0


def test_a_fleet_scaled_up_from_one_replica_is_busy_all_the_time_not_more() -> None:
    """One replica, a second one after the first check that sees a queue (10 s) and its
    60 s load: on from 70 s of 600, so (70 + 2 x 530) / 600 replicas on average, both busy
    all the time: busy 100% (not 188% of the starting replica)."""
    summary = _saturated(1, "autoscaling: {min_replicas: 1, max_replicas: 2, spin_up_s: 60, "
                            "interval_s: 10, scale_up_waiting_per_replica: 2}")
    assert summary.local is not None
    local = summary.local
    assert [(e.t_s, e.replicas) for e in local.fleet.scale_events][:2] == [(0.0, 1), (70.0, 2)]
    assert local.fleet.mean_active_replicas == pytest.approx((70 + 2 * 530) / 600)
    # the second replica's 60 s load is paid for (rented hours) though it serves nothing
    assert local.fleet.mean_loading_replicas == pytest.approx(60 / 600)
    assert 0.99 < local.utilisation.engine_busy_fraction <= 1.0
    assert local.utilisation.kv_cache_mean_fraction <= 1.0
    assert max(local.timeseries.kv_cache_fraction) <= 1.0
    assert max(local.timeseries.mbu_fraction) <= 1.0


def test_no_minute_is_busier_than_the_replicas_on_in_it_while_scaling_down() -> None:
    """A replica scaled in keeps running what it holds: it is on until it finishes, so
    every minute's busy seconds fit in the minute's replica-seconds."""
    spike = "[{start_s: 300, duration_s: 300, multiplier: 5}]"
    scaling = ("autoscaling: {min_replicas: 1, max_replicas: 4, spin_up_s: 60, "
               "cooldown_s: 60, interval_s: 10, scale_up_waiting_per_replica: 2, "
               "scale_down_outstanding_per_replica: 8}")
    run, _, _, summary = _go(rate=3.0, replicas=1, extra=scaling, spikes=spike)
    assert run.fleet is not None and run.fleet.control is not None
    assert summary.local is not None
    events = summary.local.fleet.scale_events
    assert any(b.replicas < a.replicas for a, b in itertools.pairwise(events))
    minutes = 20
    busy = run.records.per_minute(minutes)[BUSY]
    on = run.fleet.control.replica_seconds(np.arange(minutes + 1) * 60.0)
    assert (busy <= on + 1e-9).all()
    assert on.sum() / 1200 == pytest.approx(summary.local.fleet.mean_active_replicas)


def test_a_replica_that_just_loaded_is_not_scaled_away_by_its_own_arrival() -> None:
    """A burst at the start makes the scaler ask for a second replica; by the time it has
    loaded (60 s) the burst is over, and the per-replica load its arrival halves is under
    the scale-down threshold. The stack's HPA holds scale-downs for `cooldown_s` after a
    higher recommendation: so does the simulation (none within 300 s of the scale-up)."""
    loaded = scenario_from("""
        seed: 2
        duration: 900
        traffic: {kind: poisson, rate_per_s: 0.3, spikes: [{start_s: 0, duration_s: 40,
                                                             multiplier: 40}]}
        tasks: [{name: chat, prompt_tokens: {kind: fixed, tokens: 1000},
                 output_tokens: {kind: fixed, tokens: 300}}]
        deployments:
          d:
            gpu: L4
            model: Llama-3.1-8B
            costs: {ownership: rented_on_demand}
            autoscaling: {min_replicas: 1, max_replicas: 2, spin_up_s: 60, interval_s: 10,
                          scale_up_waiting_per_replica: 2, cooldown_s: 300,
                          scale_down_outstanding_per_replica: 3}
    """)
    run, stream = run_first(loaded)
    local = summarise_run(run, stream, loaded.scenario).local
    assert local is not None
    events = [(e.t_s, e.replicas) for e in local.fleet.scale_events]
    up = next(t for t, n in events if n == 2)
    asked = up - 60.0                              # the scaler's decision, a load earlier
    downs = [t for (t, n), (_, before) in zip(events[1:], events, strict=False) if n < before]
    assert downs, events                           # it does scale back once the load is gone
    assert all(t - asked >= 300.0 for t in downs), events
