"""The batch limits `vllm serve` picks when a scenario leaves them out (vLLM's arg_utils)."""

from __future__ import annotations

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec, default_limits


def _limits(gpu: str, **engine: object) -> tuple[int, int]:
    spec = builtin_catalog().gpus[gpu]
    return default_limits(EngineSpec.model_validate(engine), spec.memory_bytes, gpu)


def test_v1_picks_its_limits_by_the_card() -> None:
    # V1's usage-context defaults (vllm/engine/arg_utils.py, read in the published wheels):
    # 8,192 tokens and 1,024 sequences on cards of 70 GiB or more but the A100, 2,048 and 256
    # elsewhere; 16,384 tokens from 160 GiB since 0.28 (0.27.1 has no such tier)
    assert _limits("H100-SXM", vllm_version="0.11.0") == (8192, 1024)
    assert _limits("A100-80GB", vllm_version="0.11.0") == (2048, 256)
    assert _limits("L40S", vllm_version="0.11.0") == (2048, 256)
    assert _limits("B200", vllm_version="0.28.0") == (16384, 1024)
    assert _limits("B200", vllm_version="0.27.1") == (8192, 1024)
    assert _limits("B200", vllm_version="0.11.0") == (8192, 1024)


def test_early_v1_releases_picked_by_name_then_by_memory() -> None:
    # 0.8.0-0.8.3: 8,192 tokens on an H100 or H200 by name, 1,024 sequences on any card;
    # 0.8.4: 256 sequences off them; 0.8.5: by memory (70 GiB, the A100-80GB included);
    # 0.9.0: the A100 left out
    assert _limits("L40S", vllm_version="0.8.3") == (2048, 1024)
    assert _limits("MI300X", vllm_version="0.8.3") == (2048, 1024)
    assert _limits("H200", vllm_version="0.8.3") == (8192, 1024)
    assert _limits("L40S", vllm_version="0.8.4") == (2048, 256)
    assert _limits("MI300X", vllm_version="0.8.5") == (8192, 1024)
    assert _limits("A100-80GB", vllm_version="0.8.5") == (8192, 1024)
    assert _limits("A100-80GB", vllm_version="0.9.0") == (2048, 256)


def test_the_v0_engine_runs_256_sequences_on_any_card() -> None:
    # EngineArgs.max_num_seqs = 256 until V1's defaults (0.8): a 192 GB MI300X included
    assert _limits("MI300X", vllm_version="0.6.2")[1] == 256
    assert _limits("MI300X", vllm_version="0.8.0")[1] == 1024


def test_without_chunked_prefill_a_whole_prompt_fits_one_step() -> None:
    assert _limits("H100-SXM", chunked_prefill=False, max_model_len=32768)[0] == 32768
