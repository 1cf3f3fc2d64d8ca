"""Plans that exercise what the bundled examples do not: a hybrid with AWS Bedrock as the
cloud, an autoscaled GPU fleet and a local task that may spill to the API; and fleets in every
weight format, with speculative decoding, and on AMD GPUs."""

from __future__ import annotations

import textwrap
from pathlib import Path

from helpers import ROOT

from llmplan.pipeline import evaluate
from llmplan.provision.stack import WrittenStack, write_stack
from llmplan.results.decision import Result
from llmplan.scenario import LoadedScenario, load_scenario_text

#: a scenario loaded and simulated
Simulated = tuple[LoadedScenario, Result]


def simulate_text(text: str) -> Simulated:
    """A scenario's text, loaded and simulated."""
    loaded = load_scenario_text(textwrap.dedent(text), base_dir=ROOT)
    return loaded, evaluate(loaded)


def stack_of(simulated: Simulated, deployment: str, folder: Path) -> WrittenStack:
    """The stack file of one deployment of a simulated scenario, written in `folder`."""
    loaded, result = simulated
    return write_stack(folder / f"Pulumi.{deployment}.yaml", loaded, result, deployment, {})


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


#: One deployment per way of getting the simulated weights (a published checkpoint in the
#: format, the model's own checkpoint quantised while loading, none known), speculative
#: decoding with and without a known drafter, and an AMD GPU.
FORMATS = """
name: formats
seed: 4
duration: 20
traffic: {kind: poisson, rate_per_s: 0.5}
tasks:
  - {name: chat, prompt_tokens: {kind: fixed, tokens: 300},
     output_tokens: {kind: fixed, tokens: 20}}
slo: {ttft_ms: 60000, tpot_ms: 2000}
deployments:
  qwen-nvfp4: {gpu: B200, model: Qwen3-235B-A22B, tp: 2, engine: {weights_dtype: nvfp4}}
  qwen-bf16: {gpu: H100-SXM, model: Qwen3-235B-A22B, tp: 8}
  qwen8-fp8: {gpu: L40S, model: Qwen3-8B, engine: {weights_dtype: fp8}}
  llama-int4: {gpu: A100-80GB, model: Llama-3.3-70B, tp: 2, engine: {weights_dtype: int4}}
  llama-int8: {gpu: H100-SXM, model: Llama-3.3-70B, tp: 2, engine: {weights_dtype: int8}}
  llama-fp8-eagle3:
    gpu: H100-SXM
    model: Llama-3.3-70B
    tp: 2
    engine:
      weights_dtype: fp8
      speculative: {method: eagle3, num_speculative_tokens: 3, mean_acceptance_length: 2.4,
                    draft_params_b: 0.8}
  qwen8-ngram:
    gpu: L40S
    model: Qwen3-8B
    engine: {speculative: {method: ngram, num_speculative_tokens: 4, mean_acceptance_length: 1.6}}
  qwen-fp8-eagle3:
    gpu: H200
    model: Qwen3-235B-A22B
    tp: 4
    engine:
      weights_dtype: fp8
      speculative: {method: eagle3, num_speculative_tokens: 3, mean_acceptance_length: 2.2,
                    draft_params_b: 1.0}
  oss-bf16: {gpu: H100-SXM, model: gpt-oss-20b, engine: {weights_dtype: bf16}}
  qwen32-draft:
    gpu: H100-SXM
    model: Qwen3-32B
    engine:
      weights_dtype: fp8
      speculative: {method: draft_model, drafter: Qwen3-0.6B, num_speculative_tokens: 3,
                    mean_acceptance_length: 2.2}
  moe-fp8-ep:
    gpu: H100-SXM
    model: Qwen3-30B-A3B
    tp: 4
    engine: {weights_dtype: fp8, expert_parallel: true}
  mi300x: {gpu: MI300X, model: Llama-3.3-70B, tp: 2, replicas: 2, engine: {weights_dtype: fp8}}
"""


def formats_scenario() -> Simulated:
    """FORMATS, loaded and simulated (seconds)."""
    return simulate_text(FORMATS)
