"""KV exhaustion and fleet size move the tails the way a capacity planner expects."""

from __future__ import annotations

import numpy as np
from helpers import run_first, scenario_from

from llmplan.sim.table import request_table

FLEET = """
    seed: 3
    duration: 600
    traffic: {{kind: poisson, rate_per_s: {rate}}}
    tasks:
      - name: chat
        prompt_tokens: {{kind: lognormal, mean: 800, p95: 2000}}
        output_tokens: {{kind: lognormal, mean: 300, p95: 800}}
    deployments:
      d:
        gpu: L40S
        model: Llama-3.1-8B
        replicas: {replicas}
        engine: {engine}
"""


def _table(rate: float, replicas: int, engine: str = "{}") -> dict[str, np.ndarray]:
    run, stream = run_first(scenario_from(FLEET.format(rate=rate, replicas=replicas,
                                                       engine=engine)))
    return request_table(run, stream)


def test_kv_exhaustion_preempts_and_lengthens_the_tail() -> None:
    roomy = _table(3.0, 1)
    tight = _table(3.0, 1, "{kv_cache_tokens: 16000}")
    assert roomy.preemptions.sum() == 0
    assert tight.preemptions.sum() > 50
    ok_r, ok_t = roomy.outcome == 1, tight.outcome == 1
    assert np.percentile(tight.e2e_s[ok_t], 99) > 1.2 * np.percentile(roomy.e2e_s[ok_r], 99)
    assert np.percentile(tight.ttft_s[ok_t], 95) > np.percentile(roomy.ttft_s[ok_r], 95)


def test_more_replicas_lower_p95_under_the_same_load() -> None:
    p95 = {}
    for replicas in (1, 2, 4):
        table = _table(4.0, replicas)
        ok = table.outcome == 1
        p95[replicas] = (np.percentile(table.ttft_s[ok], 95),
                         np.percentile(table.e2e_s[ok], 95))
    assert p95[1][0] > p95[2][0] > p95[4][0]
    assert p95[1][1] > p95[2][1] > p95[4][1]
