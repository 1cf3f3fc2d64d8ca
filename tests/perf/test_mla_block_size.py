"""vLLM's CUDA platform forces an MLA kernel's KV block (platforms/cuda.py
`check_and_update_config`, read in the published wheels): FlashMLA's 64 on Hopper from
0.8.3, CUTLASS MLA's 128 on Blackwell (10.0) from 0.10.1, FlashInfer MLA's 64 there from
0.15.0 (32 or a multiple of 64 kept), only the exact block before 0.11.1 and a multiple of
it from then; from 0.18.0 nothing is forced and the --block-size given is kept
(platforms/interface.py `update_block_size_for_backend`). The forced block sizes the cache
in whole blocks and the prefix cache in whole-block steps."""

from __future__ import annotations

import pytest

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import kv_capacity
from llmplan.perf.setup import ReplicaSetup

CATALOG = builtin_catalog()


def _setup(gpu: str, model: str, asked: int, version: str) -> ReplicaSetup:
    return ReplicaSetup(gpu, model, CATALOG.gpus[gpu], CATALOG.models[model],
                        EngineSpec(block_size_tokens=asked, vllm_version=version), 8)


@pytest.mark.parametrize(("gpu", "model", "asked", "version", "runs"), [
    ("H200", "DeepSeek-V3", 16, "0.6.6", 16),      # before FlashMLA's forcing
    ("H200", "DeepSeek-V3", 16, "0.11.0", 64),     # FlashMLA: != 64 -> 64
    ("H200", "DeepSeek-V3", 128, "0.11.0", 64),    # ... 128 too
    ("H200", "DeepSeek-V3", 128, "0.11.1", 128),   # % 64: a multiple stays
    ("H200", "DeepSeek-V3", 16, "0.17.1", 64),     # the last release that forces
    ("H200", "DeepSeek-V3", 16, "0.18.0", 16),     # --block-size kept
    ("H200", "DeepSeek-V3", 16, "0.33.0", 16),
    ("B200", "DeepSeek-R1", 16, "0.10.0", 16),     # FlashMLA is Hopper's only
    ("B200", "DeepSeek-R1", 16, "0.10.1", 128),    # CUTLASS MLA on 10.0
    ("GB200", "DeepSeek-R1", 64, "0.14.1", 128),
    ("B200", "DeepSeek-R1", 256, "0.14.1", 256),
    ("B200", "DeepSeek-R1", 16, "0.15.0", 64),     # FlashInfer MLA (qk_nope 128)
    ("B200", "DeepSeek-R1", 32, "0.15.0", 32),
    ("B200", "DeepSeek-R1", 128, "0.17.1", 128),
    ("B200", "DeepSeek-R1", 32, "0.33.0", 32),
    ("H200", "Llama-3.3-70B", 16, "0.11.0", 16),   # not MLA
    ("A100-80GB", "DeepSeek-V3", 16, "0.11.0", 16),
    ("RTX-PRO-6000", "DeepSeek-V3", 16, "0.15.0", 16),   # capability 12: not 10.x
])
def test_the_block_is_the_one_vllm_runs_with(gpu: str, model: str, asked: int,
                                             version: str, runs: int) -> None:
    setup = _setup(gpu, model, asked, version)
    assert setup.block_size_tokens == runs
    assert kv_capacity(setup).block_size_tokens == runs


@pytest.mark.parametrize(("version", "block"), [("0.11.0", 64), ("0.33.0", 16)])
def test_deepseek_r1_on_8_h200s_pages_its_cache_in_the_releases_block(
        version: str, block: int) -> None:
    setup = _setup("H200", "DeepSeek-R1", 16, version)
    capacity = kv_capacity(setup)
    assert capacity.error is None
    # on paper: the latent (512 + 64 values of 2 bytes) of 61 layers a token, on every GPU
    block_bytes = block * 61 * (512 + 64) * 2
    assert capacity.block_bytes == pytest.approx(block_bytes)
    blocks = int(capacity.budget.available_bytes // block_bytes)
    assert capacity.vllm_blocks == capacity.blocks == blocks
    assert capacity.tokens == blocks * block
    # the cache holds the same memory to within one block of either size
    assert capacity.budget.available_bytes - capacity.tokens * block_bytes / block \
        < block_bytes
