"""result.json's per-GPU memory: the KV cache is what is left, in whole vLLM blocks.

vLLM gives the KV cache the bytes left of the budget once weights, the profiling run's
activation peak, non-torch memory and (from vLLM 0.21) the CUDA-graph estimate are
counted, rounded down to whole blocks; models mixing sliding-window and full-attention
layers page them in groups that share one pool of blocks (vllm/v1/core/kv_cache_utils.py
`get_kv_cache_config_from_groups`), so the groups never multiply the memory.
"""

from __future__ import annotations

import pytest
from helpers import scenario_from

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import GIB, EngineSpec
from llmplan.perf.memory import kv_capacity
from llmplan.perf.setup import ReplicaSetup
from llmplan.sim.run import simulate_scenario

CATALOG = builtin_catalog()


def _smallest_fit(model: str, gpu: str = "B200") -> ReplicaSetup:
    for tp in (1, 2, 4, 8):
        setup = ReplicaSetup(gpu, model, CATALOG.gpus[gpu], CATALOG.models[model],
                             EngineSpec(), tp)
        if kv_capacity(setup).error is None:
            return setup
    raise AssertionError(f"{model} fits on no {gpu} replica")


@pytest.mark.parametrize("model", sorted(CATALOG.models))
def test_kv_cache_is_what_is_left_rounded_down_to_whole_blocks(model: str) -> None:
    capacity = kv_capacity(_smallest_fit(model))
    left = capacity.budget.available_bytes
    assert capacity.kv_cache_bytes <= left
    assert capacity.kv_cache_bytes > left - capacity.block_bytes


def test_gemma_block_is_a_page_of_each_layer_of_one_group() -> None:
    """Gemma-3-27B: 52 sliding-window and 10 full-attention layers, so groups of 10 layers
    (one full, six sliding); a 16-token page of one layer is 2 (K, V) x 16 KV heads x
    128 head dim x 2 bytes x 16 tokens = 128 KiB, a block ten of them."""
    setup = ReplicaSetup("A100-80GB", "Gemma-3-27B", CATALOG.gpus["A100-80GB"],
                         CATALOG.models["Gemma-3-27B"], EngineSpec(), 1)
    capacity = kv_capacity(setup)
    block = 10 * 2 * 16 * 128 * 2 * 16
    assert capacity.block_bytes == block
    assert capacity.kv_cache_bytes == (capacity.budget.available_bytes // block) * block


SCENARIO = """
    seed: 1
    duration: 60
    traffic: {{kind: poisson, rate_per_s: 1}}
    tasks:
      - name: chat
        prompt_tokens: {{kind: fixed, tokens: 500}}
        output_tokens: {{kind: fixed, tokens: 50}}
    deployments:
      d: {{gpu: {gpu}, model: {model}, tp: {tp}}}
"""


@pytest.mark.parametrize(("gpu", "model", "tp"), [
    ("A100-80GB", "Gemma-3-27B", 1), ("H100-SXM", "gpt-oss-120b", 1),
    ("H200", "Llama-4-Scout", 2), ("L40S", "Llama-3.1-8B", 1)])
def test_result_kv_cache_gib_fits_in_what_the_card_leaves(gpu: str, model: str,
                                                          tp: int) -> None:
    loaded = scenario_from(SCENARIO.format(gpu=gpu, model=model, tp=tp))
    result = simulate_scenario(loaded).deployments["d"]
    assert result.local is not None
    memory = result.local.engine.memory
    left_gib = memory.budget_gib - memory.weights_gib - memory.activation_gib \
        - memory.non_torch_gib - (memory.cuda_graph_gib if memory.cuda_graph_in_budget else 0) \
        - memory.runner_buffers_gib
    block_gib = kv_capacity(loaded.scenario.deployments["d"].setup(loaded.catalog)) \
        .block_bytes / GIB
    assert left_gib - block_gib < memory.kv_cache_gib <= left_gib + 1e-9
    assert memory.kv_cache_gib < memory.total_gib



def test_a_fixed_kv_cache_tokens_occupies_those_tokens_pages() -> None:
    """Llama-3.1-8B holds 128 KiB of KV per token (32 layers x 2 x 8 KV heads x 128 x 2
    bytes): 16,000 tokens are 1,000 blocks of 16, 2,048,000 KiB."""
    setup = ReplicaSetup("L40S", "Llama-3.1-8B", CATALOG.gpus["L40S"],
                         CATALOG.models["Llama-3.1-8B"], EngineSpec(kv_cache_tokens=16_000), 1)
    assert kv_capacity(setup).kv_cache_bytes == 16_000 * 128 * 1024


def test_a_max_model_len_past_the_models_context_is_refused() -> None:
    """vLLM will not start with --max-model-len above the model's context window."""
    model = CATALOG.models["Llama-3.1-8B"]
    over = EngineSpec(max_model_len=model.max_context_tokens + 1)
    setup = ReplicaSetup("H100-SXM", "Llama-3.1-8B", CATALOG.gpus["H100-SXM"], model, over, 1)
    error = kv_capacity(setup).error
    assert error is not None and f"<= {model.max_context_tokens}" in error
    at = EngineSpec(max_model_len=model.max_context_tokens)
    assert kv_capacity(ReplicaSetup("H100-SXM", "Llama-3.1-8B", CATALOG.gpus["H100-SXM"],
                                    model, at, 1)).error is None
