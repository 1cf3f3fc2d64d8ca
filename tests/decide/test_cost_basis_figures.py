"""A cost item's basis shows GPU counts like the other figures: a mean of rented GPUs
(autoscaling) to two decimals, a whole count without a decimal point."""

from __future__ import annotations

import pytest
from helpers import scenario_from

from llmplan.decide.costs import LocalFacts, local_items
from llmplan.scenario.models import LocalDeployment

SCENARIO = """
    seed: 1
    duration: 600
    traffic: {kind: constant, rate_per_s: 1}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 100},
             output_tokens: {kind: fixed, tokens: 20}}]
    deployments:
      rented:
        gpu: H100-SXM
        model: Llama-3.1-8B
        costs: {ownership: rented_on_demand, serving_software_usd_per_gpu_month: 50}
      owned:
        gpu: H100-SXM
        model: Llama-3.1-8B
        costs: {serving_software_usd_per_gpu_month: 50}
"""


@pytest.mark.parametrize(("name", "gpus", "shown"), [
    ("rented", 1.416916369062907, "1.42 GPUs x"),
    ("rented", 2.0, "2 GPUs x"),
    ("owned", 8, "8 x "),
])
def test_gpu_counts_in_cost_bases_are_rounded(name: str, gpus: float, shown: str) -> None:
    loaded = scenario_from(SCENARIO)
    dep = loaded.scenario.deployments[name]
    assert isinstance(dep, LocalDeployment)
    bases = [item.basis for item in local_items(dep, loaded.catalog, loaded.scenario.economics,
                                                LocalFacts(gpus=gpus, busy_fraction=0.5))]
    gpu = loaded.catalog.gpus["H100-SXM"].name
    counted = [basis for basis in bases if "GPUs x" in basis or f" x {gpu}" in basis]
    count = shown.partition(" x")[0]
    assert counted and all(basis.startswith(f"{count} ") for basis in counted)
    assert any(shown in basis for basis in counted)
    assert not any("1.416" in basis or "2.0 " in basis for basis in bases)
