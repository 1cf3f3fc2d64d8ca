"""Tensor-parallel sizes a replica can run: vLLM's rule for the model's heads (the attention
heads divide by tp; the KV heads by tp, or tp by them when they are replicated), within the
GPUs one interconnect domain links."""

from __future__ import annotations

import pytest

from llmplan.catalog import builtin_catalog
from llmplan.perf.parallel import allowed_tp, heads_allow


@pytest.mark.parametrize(("model", "gpu", "expected"), [
    ("Llama-3.1-8B", "H100-SXM", [1, 2, 4, 8]),       # 32 heads, 8 KV heads
    ("Qwen2.5-7B", "H100-SXM", [1, 2, 4]),            # 28 heads: 7 splits them, not 4 KV
    ("Qwen3-30B-A3B", "H100-SXM", [1, 2, 4, 8]),      # 4 KV heads, each on 2 GPUs at tp 8
    ("SmolLM2-135M", "L4", [1, 3]),                   # 9 heads, 3 KV heads
    ("Llama-4-Scout", "H200", [1, 2, 4, 8]),          # 40 heads
    ("Llama-3.1-405B", "GB200", [1, 2, 4, 8, 16, 32, 64]),   # one NVL72 domain: 72 GPUs
    ("DeepSeek-V3", "GB200", [1, 2, 4, 8, 16, 32, 64]),      # MLA: 128 query heads
])
def test_allowed_tp_within_one_domain(model: str, gpu: str, expected: list[int]) -> None:
    catalog = builtin_catalog()
    assert allowed_tp(catalog.models[model], catalog.gpus[gpu]) == expected


def test_kv_heads_replicate_only_in_whole_copies() -> None:
    # 28 query heads and 4 KV heads: tp 7 splits the query heads, but 7 GPUs cannot hold
    # whole copies of 4 KV heads (vLLM's QKVParallelLinear: divide(7, 4) fails)
    qwen = builtin_catalog().models["Qwen2.5-7B"]
    assert qwen.attention_heads % 7 == 0
    assert not heads_allow(qwen, 7)
