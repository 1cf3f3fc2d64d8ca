"""vLLM's MLA kernels choose the KV block (platforms/cuda.py): FlashMLA, the default MLA
backend where it runs (Hopper, data-centre Blackwell), takes multiples of 64 and turns
--block-size 16 into 64, which sizes the cache in 64-token blocks and caches prefixes in
64-token steps; other GPUs and other attention keep the block asked for."""

from __future__ import annotations

import pytest

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import kv_capacity
from llmplan.perf.setup import ReplicaSetup

CATALOG = builtin_catalog()


@pytest.mark.parametrize(("gpu", "model", "asked", "runs"), [
    ("H200", "DeepSeek-V3", 16, 64),
    ("B200", "DeepSeek-R1", 32, 64),
    ("H200", "DeepSeek-V3", 128, 128),        # a multiple of 64 stays
    ("H200", "Llama-3.3-70B", 16, 16),        # not MLA
    ("A100-80GB", "DeepSeek-V3", 16, 16),     # no FlashMLA before Hopper
])
def test_the_block_is_the_one_vllm_runs_with(gpu: str, model: str, asked: int,
                                             runs: int) -> None:
    setup = ReplicaSetup(gpu, model, CATALOG.gpus[gpu], CATALOG.models[model],
                         EngineSpec(block_size_tokens=asked), 8)
    assert setup.block_size_tokens == runs
    capacity = kv_capacity(setup)
    assert capacity.block_size_tokens == runs


def test_a_release_before_flashmla_keeps_the_block_asked_for() -> None:
    setup = ReplicaSetup("H200", "DeepSeek-V3", CATALOG.gpus["H200"],
                         CATALOG.models["DeepSeek-V3"],
                         EngineSpec(block_size_tokens=16, vllm_version="0.6.6"), 8)
    assert setup.block_size_tokens == 16
