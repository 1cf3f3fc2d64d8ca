"""The ranking tells a free candidate from one that produces nothing useful.

A cost of $0 per useful result is the cheapest there is; a candidate whose answers are all
worth nothing (task quality 0) has no cost per useful result at all, and cannot be the
answer, however cheap its month.
"""

from __future__ import annotations

from helpers import scenario_from

from llmplan.pipeline import evaluate

BASE = """
    seed: 1
    duration: 120
    traffic: {{kind: poisson, rate_per_s: 2}}
    tasks:
      - name: chat
        prompt_tokens: {{kind: fixed, tokens: 500}}
        output_tokens: {{kind: fixed, tokens: 50}}
        quality: {quality}
    slo: {{ttft_ms: 5000}}
    {catalog}
    deployments:
      gpu: {{gpu: H100-SXM, model: Llama-3.1-8B}}
      api: {{kind: cloud, model: gpt-4o-mini, costs: {{egress_kb_per_request: 0}},
             limits: {{requests_per_min: 5000, tokens_per_min: 2000000}}}}
      paid: {{kind: cloud, model: gpt-4.1-mini,
              limits: {{requests_per_min: 5000, tokens_per_min: 2000000}}}}
"""

FREE = ("catalog:\n      cloud_models:\n        gpt-4o-mini: {input_usd_per_mtok: 0, "
        "cached_input_usd_per_mtok: 0, output_usd_per_mtok: 0, prices_as_of: 2026-11-20}")


def test_a_free_candidate_is_the_cheapest_not_a_tie() -> None:
    result = evaluate(scenario_from(BASE.format(quality="{}", catalog=FREE)))
    assert result.deployments["api"].cost.monthly_usd == 0
    assert result.recommendation.deployment == "api"
    assert result.recommendation.ranking[0] == "api"
    assert "free per useful result where" in result.recommendation.reason
    assert "within 0.5%" not in result.recommendation.reason


def test_a_candidate_with_nothing_useful_is_not_chosen() -> None:
    result = evaluate(scenario_from(BASE.format(quality="{gpu: 0.9, api: 0, paid: 0}",
                                                catalog="")))
    api = result.deployments["api"]
    assert api.cost.usd_per_useful_result is None
    assert not api.feasible
    assert any("produces no useful result" in r for r in api.infeasible_because)
    assert result.recommendation.deployment == "gpu"
    assert "within 0.5%" not in result.recommendation.reason


def test_when_nothing_is_useful_there_is_no_answer() -> None:
    result = evaluate(scenario_from(BASE.format(quality="{gpu: 0, api: 0, paid: 0}",
                                                catalog="")))
    assert result.recommendation.deployment is None
    assert "produces no useful result" in result.recommendation.reason


def test_the_decision_table_does_not_call_nothing_useful_free() -> None:
    result = evaluate(scenario_from(BASE.format(quality="{gpu: 0.9, api: 0, paid: 0}",
                                                catalog="")))
    cost = next(r for r in result.decision_table if r.question == "cost").answers
    assert cost["api"].endswith("no useful result") and "per 1k" not in cost["api"]
    assert "per 1k useful results" in cost["gpu"]
