"""Tensor-parallel sizes a replica can run: vLLM's rule for the model's heads (the attention
heads divide by tp; the KV heads by tp, or tp by them when they are replicated), within the
GPUs one interconnect domain links."""

from __future__ import annotations

import pytest

from llmplan.catalog import builtin_catalog
from llmplan.perf.parallel import allowed_tp, heads_allow
from llmplan.scenario import load_scenario_text


@pytest.mark.parametrize(("model", "gpu", "expected"), [
    ("Llama-3.1-8B", "H100-SXM", [1, 2, 4, 8]),       # 32 heads, 8 KV heads
    ("Qwen2.5-7B", "H100-SXM", [1, 2, 4]),            # 28 heads: 7 splits them, not 4 KV
    ("Qwen3-30B-A3B", "H100-SXM", [1, 2, 4, 8]),      # 4 KV heads, each on 2 GPUs at tp 8
    ("SmolLM2-135M", "L4", [1, 3]),                   # 9 heads, 3 KV heads
    ("Llama-4-Scout", "H200", [1, 2, 4, 8]),          # 40 heads
    # one NVL72 NVLink domain links 72 GPUs, but a Kubernetes node (a compute tray) holds 4
    ("Llama-3.1-405B", "GB200", [1, 2, 4]),
    ("DeepSeek-V3", "GB200", [1, 2, 4]),             # MLA: 128 query heads
])
def test_allowed_tp_within_one_domain(model: str, gpu: str, expected: list[int]) -> None:
    catalog = builtin_catalog()
    assert allowed_tp(catalog.models[model], catalog.gpus[gpu]) == expected


SERVER = """
duration: 60
traffic: {kind: poisson, rate_per_s: 1}
tasks:
  - name: chat
    prompt_tokens: {kind: fixed, tokens: 100}
    output_tokens: {kind: fixed, tokens: 50}
deployments:
  fits: {gpu: H100-SXM, model: Llama-3.1-8B}
  wide: %s
"""


@pytest.mark.parametrize(("deployment", "expected"), [
    # 16 GB200s share one NVL72 NVLink domain, but a pod gets one node's 4 GPUs
    ("{gpu: GB200, model: Llama-3.1-405B, tp: 16, engine: {weights_dtype: fp8}}",
     ("deployments.wide.tp: tp 16 needs 16 GPUs in the replica's one pod",
      "one GB200 server holds 4 (catalog node_gpus)", "multi-node tensor parallelism",
      # 405 GB of fp8 weights: one tray's 4 GPUs hold them, 1 or 2 GPUs do not
      "expected tp one of 4 for Llama-3.1-405B on GB200 in fp8")),
    # the deployment's own servers hold 4 H100s: tp 8 would span two of them
    ("{gpu: H100-SXM, model: Llama-3.1-70B, tp: 8, costs: {gpus_per_server: 4}}",
     ("deployments.wide.tp: tp 8 needs 8 GPUs", "one H100-SXM server holds 4 "
      "(deployment costs.gpus_per_server)", "expected tp one of 2, 4 for Llama-3.1-70B")),
    # DeepSeek-V3's 671 GB of fp8 weights fit no tp of one 8-GPU H100 server: the sizes
    # vLLM accepts are not offered as the way out, pipeline stages over two servers are
    ("{gpu: H100-SXM, model: DeepSeek-V3, tp: 16, engine: {weights_dtype: fp8}}",
     ("tp 16 spans more GPUs than one H100-SXM nvlink domain links",
      "no tp holds DeepSeek-V3 on H100-SXM in fp8 with pp 1 (tp 8 at most",
      "expected tp 8 x pp 2 (2 servers), a GPU with more memory or a smaller weights_dtype")),
    # ... unless the vLLM release cannot span servers
    ("{gpu: H100-SXM, model: DeepSeek-V3, tp: 16, engine: {weights_dtype: fp8, "
     "vllm_version: '0.11.0'}}",
     ("no tp holds DeepSeek-V3 on H100-SXM in fp8 with pp 1 (tp 8 at most",
      "KV cache); expected a GPU with more memory or a smaller weights_dtype")),
])
def test_a_tp_wider_than_one_server_cannot_be_built(deployment: str,
                                                    expected: tuple[str, ...]) -> None:
    """The stack asks one pod for tp GPUs and Kubernetes places a pod on one node: a wider
    replica would need multi-node vLLM, which is neither simulated nor provisioned."""
    loaded = load_scenario_text(SERVER % deployment)
    assert "wide" not in loaded.scenario.deployments
    for fragment in expected:
        assert fragment in loaded.unbuildable["wide"]


def test_a_replica_of_one_whole_server_is_built() -> None:
    loaded = load_scenario_text(SERVER % "{gpu: GB200, model: Llama-3.1-405B, tp: 4, "
                                         "engine: {weights_dtype: nvfp4}}")
    assert "wide" in loaded.scenario.deployments and not loaded.unbuildable


def test_kv_heads_replicate_only_in_whole_copies() -> None:
    # 28 query heads and 4 KV heads: tp 7 splits the query heads, but 7 GPUs cannot hold
    # whole copies of 4 KV heads (vLLM's QKVParallelLinear: divide(7, 4) fails)
    qwen = builtin_catalog().models["Qwen2.5-7B"]
    assert qwen.attention_heads % 7 == 0
    assert not heads_allow(qwen, 7)


@pytest.mark.parametrize(("model", "gpu", "expected"), [
    # 128x128 FP8 blocks: 768-wide experts split into 384 at tp 2, 192 at tp 4
    ("Qwen3-30B-A3B", "H100-SXM", [1, 2]),
    # 1536-wide experts: 384 at tp 4, 192 at tp 8
    ("Qwen3-235B-A22B", "H200", [1, 2, 4]),
    # dense 25600-wide MLP: 3200 = 25 x 128 at tp 8
    ("Qwen3-32B", "H100-SXM", [1, 2, 4, 8]),
])
def test_fp8_block_checkpoints_allow_only_tps_that_cut_whole_blocks(
        model: str, gpu: str, expected: list[int]) -> None:
    catalog = builtin_catalog()
    spec, card = catalog.models[model], catalog.gpus[gpu]
    assert allowed_tp(spec, card, weights_dtype="fp8") == expected
    # with expert parallelism each GPU holds whole experts; in BF16 there are no blocks
    assert allowed_tp(spec, card, weights_dtype="fp8", expert_parallel=True) == \
        allowed_tp(spec, card, weights_dtype="bf16") == allowed_tp(spec, card)


@pytest.mark.parametrize(("deployment", "expected"), [
    ("{gpu: H100-SXM, model: Qwen3-30B-A3B, tp: 4, engine: {weights_dtype: fp8}}",
     ("deployments.wide.tp: tp 4 gives each GPU a 192-wide slice of Qwen3-30B-A3B's experts "
      "(moe_intermediate_size 768)", "128x128 weight blocks of its fp8 checkpoint "
      "(Qwen/Qwen3-30B-A3B-FP8, catalog weight_block_size)",
      "'... = 192 is not divisible by weight quantization block_n = 128'",
      "expected tp one of 1, 2 for Qwen3-30B-A3B on H100-SXM in fp8, or "
      "engine.expert_parallel: true")),
    ("{gpu: H200, model: Qwen3-235B-A22B, tp: 8, engine: {weights_dtype: fp8}}",
     ("deployments.wide.tp: tp 8 gives each GPU a 192-wide slice of Qwen3-235B-A22B's "
      "experts (moe_intermediate_size 1536)", "expected tp one of 2, 4 for "
      "Qwen3-235B-A22B on H200 in fp8")),
])
def test_an_fp8_block_checkpoint_cut_into_partial_blocks_cannot_be_built(
        deployment: str, expected: tuple[str, ...]) -> None:
    """vLLM refuses to load such a checkpoint (vllm-project/vllm#17569)."""
    loaded = load_scenario_text(SERVER % deployment)
    assert "wide" not in loaded.scenario.deployments
    for fragment in expected:
        assert fragment in loaded.unbuildable["wide"]


def test_expert_parallelism_builds_the_same_checkpoint_at_that_tp() -> None:
    loaded = load_scenario_text(SERVER % "{gpu: H100-SXM, model: Qwen3-30B-A3B, tp: 4, "
                                         "engine: {weights_dtype: fp8, expert_parallel: true}}")
    assert "wide" in loaded.scenario.deployments and not loaded.unbuildable
