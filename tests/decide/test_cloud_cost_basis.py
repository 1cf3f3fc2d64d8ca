"""The seed's cloud cost list: items a scenario leaves at llmplan's $0 default say so in
their basis (the local side's people and monitoring have non-zero defaults; a $0 the reader
cannot see would tilt the comparison toward the API without a word)."""

from __future__ import annotations

import pytest
from helpers import scenario_from

from llmplan.decide.decision import decide
from llmplan.sim.run import simulate_scenario

SCENARIO = """
    seed: 1
    duration: 120
    traffic: {{kind: poisson, rate_per_s: 1}}
    tasks: [{{name: t, prompt_tokens: {{kind: fixed, tokens: 100}},
             output_tokens: {{kind: fixed, tokens: 20}}}}]
    deployments:
      api: {{kind: cloud, model: gpt-4o-mini{costs}}}
"""


def _items(costs: str) -> dict[str, tuple[float, str]]:
    loaded = scenario_from(SCENARIO.format(costs=costs))
    result = decide(simulate_scenario(loaded), loaded)
    return {i.item: (i.usd_per_month, i.basis) for i in result.deployments["api"].cost.items}


@pytest.mark.parametrize("field", ["observability_usd_per_month",
                                   "rate_limit_planning_usd_per_month",
                                   "storage_retrieval_usd_per_month",
                                   "vendor_review_usd_one_off"])
def test_a_cloud_cost_left_out_reads_as_assumed_zero(field: str) -> None:
    item = {"observability_usd_per_month": "observability",
            "rate_limit_planning_usd_per_month": "rate_limit_planning",
            "storage_retrieval_usd_per_month": "storage_retrieval",
            "vendor_review_usd_one_off": "vendor_review"}[field]
    usd, basis = _items("")[item]
    assert usd == 0 and basis == f"$0: llmplan's default when not given (set costs.{field})"
    usd, basis = _items(f", costs: {{{field}: 3600}}")[item]
    assert usd > 0 and "default" not in basis
