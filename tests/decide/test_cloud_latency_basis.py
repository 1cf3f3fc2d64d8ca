"""Where each API's latency comes from, as the decision table and the checklist say it:
given in the scenario, measured in the catalog (source and date), or llmplan's default."""

from __future__ import annotations

from helpers import scenario_from

from llmplan.catalog import builtin_catalog
from llmplan.pipeline import evaluate
from llmplan.scenario.cloud import CloudDeployment

BASE = """
    seed: 1
    duration: 120
    traffic: {{kind: constant, rate_per_s: 0.5}}
    tasks: [{{name: t, prompt_tokens: {{kind: fixed, tokens: 200}},
              output_tokens: {{kind: fixed, tokens: 50}}}}]
    slo: {{ttft_ms: 10000, min_goodput_fraction: 0.9}}
    deployments:
      measured: {{kind: cloud, model: gpt-6-luna}}
      unmeasured: {{kind: cloud, model: llama-3.3-70b-bedrock}}
      given: {{kind: cloud, model: gpt-6-luna,
               latency: {{ttft_ms: {{median: 500, p95: 900}},
                          output_tokens_per_s: {{median: 60, p5: 30}}}}}}
      partly: {{kind: cloud, model: gpt-6-luna, latency: {{ttft_ms: {{median: 500, p95: 900}}}}}}
{extra}
"""


def test_each_apis_latency_says_where_it_comes_from() -> None:
    result = evaluate(scenario_from(BASE.format(extra="""
      both: {kind: hybrid, local: gpu, cloud: measured}
      gpu: {gpu: L4, model: Llama-3.1-8B}
""")))
    basis = {name: dep.latency_from for name, dep in result.deployments.items()}
    luna = builtin_catalog().cloud_models["gpt-6-luna"].latency
    assert luna is not None
    assert basis["measured"] == f"catalog: measured (Artificial Analysis, {luna.as_of})"
    assert basis["unmeasured"] == "assumed: llmplan's default provider latency"
    assert basis["given"] == "given: provider latency in the scenario"
    assert basis["partly"] == ("given: provider latency in the scenario; catalog: measured "
                               f"(Artificial Analysis, {luna.as_of}) for its output speed")
    assert basis["both"] == f"defaults: roofline step model + {basis['measured']}"
    evidence = next(c.evidence for c in result.checklist
                    if c.item.startswith("What is the real latency"))
    assert "provider latency given in the scenario for given, partly" in evidence
    assert f"for measured (Artificial Analysis, {luna.as_of})" in evidence
    assert "unmeasured: assumed provider latency" in evidence


def test_a_stored_deployment_writing_every_default_out_still_uses_the_catalog() -> None:
    # `llmplan stack` stores deployments with every field written out and simulates them
    # again: a figure equal to the default counts as unset, as before the catalog had any
    loaded = scenario_from(BASE.format(extra=""))
    dep = loaded.scenario.deployments["measured"]
    assert isinstance(dep, CloudDeployment)
    stored = CloudDeployment.model_validate(dep.model_dump(mode="json"))
    model = loaded.catalog.cloud_models["gpt-6-luna"]
    assert stored.latency_with(model) == dep.latency_with(model)
    assert stored.latency_from(model) == dep.latency_from(model)
    assert dep.latency_with(model).output_tokens_per_s.median == 130.6
