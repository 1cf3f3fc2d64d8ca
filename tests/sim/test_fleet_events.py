"""Replica failures and autoscaling change every figure the way they should."""

from __future__ import annotations

import numpy as np
from helpers import run_first, scenario_from

from llmplan.results.simulation import DeploymentResult
from llmplan.sim.metrics import summarise_run
from llmplan.sim.records import OK
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
