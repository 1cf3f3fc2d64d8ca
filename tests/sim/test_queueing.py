"""Queueing theory: one replica at batch size 1 is a single-server FCFS queue."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_first, scenario_from

from llmplan.sim.table import request_table

BATCH_OF_ONE = """
    seed: {seed}
    duration: {duration}
    traffic: {{kind: poisson, rate_per_s: {rate}}}
    tasks:
      - name: t
        prompt_tokens: {{kind: fixed, tokens: 16}}
        output_tokens: {output}
    deployments:
      single:
        gpu: H100-SXM
        model: Llama-3.1-8B
        engine: {{max_num_seqs: 1}}
        step_time: {{kind: linear, fixed_ms: {step_ms}, per_prefill_token_us: 0,
                    per_decode_seq_us: 0, per_kv_token_ns: 0}}
    simulation: {{drain_s: 100000}}
"""


def _waits(rate: float, requests: int, output: str, step_ms: float, seed: int = 11) -> np.ndarray:
    loaded = scenario_from(BATCH_OF_ONE.format(seed=seed, duration=requests / rate, rate=rate,
                                               output=output, step_ms=step_ms))
    run, stream = run_first(loaded)
    table = request_table(run, stream)
    assert len(stream) > 0.98 * requests
    assert (table.outcome == 1).all()
    return table.queue_wait_s


def test_md1_mean_wait_matches_pollaczek_khinchine() -> None:
    # every request: 1 prefill step + 9 decode steps of 10 ms = 100 ms of service
    service_s, rate = 0.1, 7.0
    rho = rate * service_s
    waits = _waits(rate, 200_000, "{kind: fixed, tokens: 10}", step_ms=10)
    expected = rho * service_s / (2 * (1 - rho))          # M/D/1
    assert waits.mean() == pytest.approx(expected, rel=0.03)


def test_mm1_mean_wait_with_memoryless_lengths() -> None:
    # geometric tokens with mean 100 at 1 ms per step: service ~ exponential, mean 100 ms
    mu, rate = 10.0, 5.0
    waits = _waits(rate, 400_000, "{kind: exponential, mean: 100}", step_ms=1)
    expected = (rate / mu) / (mu - rate)                  # M/M/1: rho / (mu - lambda)
    assert waits.mean() == pytest.approx(expected, rel=0.03)
    # and the waiting-time distribution: P(W > 0) = rho
    assert (waits > 1e-12).mean() == pytest.approx(rate / mu, abs=0.01)


ROOFLINE_BATCH_OF_ONE = """
    seed: 5
    duration: {duration}
    traffic: {{kind: poisson, rate_per_s: {rate}}}
    tasks:
      - name: t
        prompt_tokens: {{kind: fixed, tokens: 200}}
        output_tokens: {{kind: fixed, tokens: 20}}
    deployments:
      single:
        gpu: H200
        model: gpt-oss-120b
        engine: {{max_num_seqs: 1}}
    simulation: {{drain_s: 100000}}
"""


def test_md1_holds_for_a_roofline_replica_of_a_mixture_of_experts() -> None:
    # gpt-oss-120b (MXFP4 experts, sliding-window layers) on an H200 at one sequence: every
    # request costs the same service time, whatever the roofline makes of it, so the queue
    # is M/D/1; the service time is the replica's own, from one request alone
    alone = scenario_from(ROOFLINE_BATCH_OF_ONE.format(duration=50, rate=0.01))
    run, stream = run_first(alone)
    service_s = float(request_table(run, stream).e2e_s[0])
    assert 0.01 < service_s < 1.0
    rho, requests = 0.7, 60_000
    rate = rho / service_s
    loaded = scenario_from(ROOFLINE_BATCH_OF_ONE.format(duration=requests / rate, rate=rate))
    run, stream = run_first(loaded)
    table = request_table(run, stream)
    assert (table.outcome == 1).all()
    # the service time does not depend on the queue
    assert np.ptp(table.e2e_s - table.queue_wait_s) < 1e-9 * service_s + 1e-12
    expected = rho * service_s / (2 * (1 - rho))          # Pollaczek-Khinchine, M/D/1
    assert table.queue_wait_s.mean() == pytest.approx(expected, rel=0.04)
