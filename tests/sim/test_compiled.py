"""The mypyc-compiled hot path and its Python source give identical results."""

from __future__ import annotations

from helpers import run_first, scenario_from

from llmplan.sim.compiled import pure_python
from llmplan.sim.engine import simulate_deployment
from llmplan.traffic import build_request_stream

SCENARIO = """
    seed: 9
    duration: 120
    traffic: {kind: gamma, rate_per_s: 5, cv: 2}
    tasks:
      - name: chat
        prompt_tokens: {kind: lognormal, mean: 700, p95: 2000}
        output_tokens: {kind: lognormal, mean: 200, p95: 600}
    deployments:
      d:
        gpu: L4
        model: Llama-3.1-8B
        replicas: 3
        engine: {max_num_seqs: 32, kv_cache_tokens: 15000}
        admission: {queue_timeout_s: 20}
"""


def test_installed_and_pure_python_replicas_agree_exactly() -> None:
    loaded = scenario_from(SCENARIO)
    scenario = loaded.scenario
    stream = build_request_stream(scenario)
    installed, _ = run_first(loaded, "fast", stream)
    dep = scenario.deployments["d"]
    pure = simulate_deployment("d", dep, loaded.catalog, stream, scenario.duration_s,
                               replica_class=pure_python("replica").Replica)
    a, b = installed.records, pure.records
    assert sum(a.preemptions) > 0
    assert a.outcome == b.outcome
    assert a.first_token_s == b.first_token_s
    assert a.finish_s == b.finish_s
    assert a.preemptions == b.preemptions
    assert bytes(a.segments) == bytes(b.segments)
