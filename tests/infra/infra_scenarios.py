"""A hybrid plan that exercises what the bundled examples do not: AWS Bedrock as the cloud,
an autoscaled GPU fleet, and a local task that may spill to the API."""

from __future__ import annotations

import textwrap
from pathlib import Path

from helpers import ROOT

from llmplan.pipeline import evaluate
from llmplan.provision.stack import WrittenStack, write_stack
from llmplan.scenario import load_scenario_text

BEDROCK_HYBRID = """
name: bedrock-hybrid
seed: 3
duration: 120
traffic: {kind: poisson, rate_per_s: 4}
tasks:
  - {name: chat, weight: 0.5, prompt_tokens: {kind: fixed, tokens: 400},
     output_tokens: {kind: fixed, tokens: 100}}
  - {name: summarise, weight: 0.3, prompt_tokens: {kind: fixed, tokens: 800},
     output_tokens: {kind: fixed, tokens: 100}}
  - {name: classify, weight: 0.2, sensitivity: restricted,
     prompt_tokens: {kind: fixed, tokens: 300}, output_tokens: {kind: fixed, tokens: 8}}
slo: {ttft_ms: 2000, tpot_ms: 100}
deployments:
  gpus:
    gpu: L40S
    model: Llama-3.1-8B
    replicas: 2
    engine: {weights_dtype: fp8, max_num_seqs: 64}
    autoscaling: {min_replicas: 1, max_replicas: 4, scale_up_waiting_per_replica: 2.5,
                  interval_s: 20, cooldown_s: 300}
  bedrock:
    kind: cloud
    model: llama-3.1-8b-bedrock
  both:
    kind: hybrid
    local: gpus
    cloud: bedrock
    routes: [{tasks: [chat], to: cloud}]
    spillover_wait_s: 1.5
"""


def bedrock_hybrid_stack(folder: Path, settings: dict[str, object] | None = None,
                         ) -> WrittenStack:
    """Simulate BEDROCK_HYBRID (seconds) and write the stack of its `both` deployment."""
    loaded = load_scenario_text(textwrap.dedent(BEDROCK_HYBRID), base_dir=ROOT)
    return write_stack(folder / "Pulumi.bedrock.yaml", loaded, evaluate(loaded), "both",
                       settings or {})
