"""Each cloud model streams at its own measured speed: the catalog's latency figures are
simulated for a model whose scenario sets none, the scenario's own figures win, and the
rest keep llmplan's default provider latency."""

from __future__ import annotations

import pytest
from helpers import scenario_from

from llmplan.catalog import builtin_catalog
from llmplan.results import SimulationResult
from llmplan.sim.run import simulate_scenario

# one short prompt (100 tokens: 2 ms of reading at the default 50,000 tokens/s) and a
# 200-token answer a second, far below every limit
SCENARIO = """
    seed: 3
    duration: 600
    traffic: {{kind: constant, rate_per_s: 1}}
    tasks: [{{name: t, prompt_tokens: {{kind: fixed, tokens: 100}},
              output_tokens: {{kind: fixed, tokens: 200}}}}]
    deployments:
{deployments}
    catalog:
      cloud_models:
        gpt-4.1-mini:
          latency: {{measured_by: a benchmark, as_of: 2026-11-01, output_tokens_per_s: 200,
                     ttft_ms: 300}}
        gpt-4.1:
          latency: {{measured_by: a benchmark, as_of: 2026-11-01, output_tokens_per_s: 50,
                     ttft_ms: 1200}}
"""


def _simulate(deployments: str) -> SimulationResult:
    return simulate_scenario(scenario_from(SCENARIO.format(deployments=deployments)))


def test_a_models_measured_speed_is_simulated() -> None:
    result = _simulate("""
      fast: {kind: cloud, model: gpt-4.1-mini}
      slow: {kind: cloud, model: gpt-4.1}
""")
    fast, slow = result.deployments["fast"].latency, result.deployments["slow"].latency
    assert fast.tpot_ms.p50 is not None and slow.tpot_ms.p50 is not None
    # a lognormal rate's median is the measured one: TPOT's median is 1000 / rate ms
    assert fast.tpot_ms.p50 == pytest.approx(1000 / 200, rel=0.1)
    assert slow.tpot_ms.p50 == pytest.approx(1000 / 50, rel=0.1)
    # time to first token: the measured median as its client saw it (its round trip in it,
    # taken as the deployment's 40 ms), plus the 2 ms of reading of this 100-token prompt
    assert fast.ttft_ms.p50 == pytest.approx(300 + 2, rel=0.1)
    assert slow.ttft_ms.p50 == pytest.approx(1200 + 2, rel=0.1)
    assert fast.e2e_ms.p50 is not None and slow.e2e_ms.p50 is not None
    assert slow.e2e_ms.p50 > 3 * fast.e2e_ms.p50


def test_the_scenarios_own_latency_wins_figure_by_figure() -> None:
    # the scenario gives the output speed: the catalog's 200 tokens/s is not used, its
    # measured first-token time still is
    result = _simulate("""
      fast: {kind: cloud, model: gpt-4.1-mini,
             latency: {output_tokens_per_s: {median: 40, p5: 20}}}
""")
    latency = result.deployments["fast"].latency
    assert latency.tpot_ms.p50 == pytest.approx(1000 / 40, rel=0.1)
    assert latency.ttft_ms.p50 == pytest.approx(300 + 2, rel=0.1)
    both = _simulate("""
      fast: {kind: cloud, model: gpt-4.1-mini,
             latency: {ttft_ms: {median: 2000, p95: 3000},
                       output_tokens_per_s: {median: 40, p5: 20}}}
""").deployments["fast"].latency
    assert both.ttft_ms.p50 == pytest.approx(2000 + 40 + 2, rel=0.1)


def test_the_builtin_gpt6_models_differ_and_an_unmeasured_one_keeps_the_default() -> None:
    cloud = builtin_catalog().cloud_models
    luna, sol = cloud["gpt-6-luna"].latency, cloud["gpt-6-sol"].latency
    assert luna is not None and sol is not None and cloud["gpt-6-astra"].latency is None
    result = simulate_scenario(scenario_from("""
        seed: 3
        duration: 600
        traffic: {kind: constant, rate_per_s: 1}
        tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 100},
                 output_tokens: {kind: fixed, tokens: 200}}]
        deployments:
          luna: {kind: cloud, model: gpt-6-luna}
          sol: {kind: cloud, model: gpt-6-sol}
          astra: {kind: cloud, model: gpt-6-astra}
    """))
    tpot = {name: d.latency.tpot_ms.p50 for name, d in result.deployments.items()}
    assert tpot["luna"] == pytest.approx(1000 / 130.6, rel=0.1)
    assert tpot["sol"] == pytest.approx(1000 / 103.3, rel=0.1)
    assert tpot["astra"] == pytest.approx(1000 / 90, rel=0.1)     # llmplan's default
    ttft = {name: d.latency.ttft_ms.p50 for name, d in result.deployments.items()}
    # measured with 10,000-token prompts: their 200 ms of reading comes out, this prompt's
    # 2 ms go in
    assert ttft["luna"] == pytest.approx(740 - 200 + 2, rel=0.1)
    assert ttft["sol"] == pytest.approx(890 - 200 + 2, rel=0.1)
    # GPT-6 Astra answers at low effort at least: its first answer token comes after the
    # hidden reasoning at the output pace (the first token of any kind, as TTFT counts it,
    # is not the answer's: OpenAI withholds the reasoning)
    hidden = cloud["gpt-6-astra"].plain_reasoning_tokens
    assert hidden > 0
    assert ttft["astra"] == pytest.approx(350 + 40 + 2 + hidden * 1000 / 90, rel=0.1)


def test_same_scenario_and_seed_give_the_same_result() -> None:
    text = SCENARIO.format(deployments="      fast: {kind: cloud, model: gpt-4.1-mini}")
    first = simulate_scenario(scenario_from(text)).model_dump_json()
    assert simulate_scenario(scenario_from(text)).model_dump_json() == first
