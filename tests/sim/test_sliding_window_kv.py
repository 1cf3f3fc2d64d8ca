"""Sliding-window layers hold pages for their window while a request runs.

vLLM pages every KV-cache group of a hybrid model (Gemma 3: 10 full-attention layers, 52
sliding-window layers of 1,024 tokens, paged as 1 full group and 6 sliding groups of 10
layers) from one pool; a request holds a page of every full group per block of its tokens
and a page of every sliding group per block of its last window (at most ceil(1023 / 16) + 1
= 65 pages; vllm/v1/core/single_type_kv_cache_manager.py, SlidingWindowManager).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import kv_capacity
from llmplan.scenario.models import LocalDeployment, SimulationMode
from llmplan.sim.engine import simulate_deployment
from llmplan.traffic import RequestStream


def _started_at_once(kv_tokens: int, mode: SimulationMode) -> int:
    """Requests a burst of 40 prompts of 1,000 tokens (1 output token) starts at t = 0."""
    n = 40
    stream = RequestStream(arrival_s=np.zeros(n), task_index=np.zeros(n, dtype=np.int64),
                           prompt_tokens=np.full(n, 1000, dtype=np.int64),
                           output_tokens=np.ones(n, dtype=np.int64), task_names=("doc",))
    dep = LocalDeployment(gpu="A100-80GB", model="Gemma-3-27B", engine=EngineSpec(
        kv_cache_tokens=kv_tokens, max_num_seqs=256, max_num_batched_tokens=65536))
    run = simulate_deployment("d", dep, builtin_catalog(), stream, 1.0, drain_s=600.0, mode=mode)
    start_s = np.asarray(run.records.start_s[:n])
    assert np.all(start_s >= 0.0)                   # every request ran in the end
    return int(np.sum(start_s == 0.0))


def test_the_layout_gemma3_pages() -> None:
    setup = LocalDeployment(gpu="A100-80GB", model="Gemma-3-27B").setup(builtin_catalog())
    capacity = kv_capacity(setup)
    assert (capacity.full_groups, capacity.sliding_groups) == (1, 6)
    assert capacity.window_blocks == math.ceil(1023 / 16) + 1 == 65
    # a short request pages its whole length in every group, a long one its window
    assert capacity.window_reserve_blocks(1000) == 6 * 63
    assert capacity.window_reserve_blocks(50_000) == 6 * 65
    # at a 1,200-token request: 75 full-group pages and 6 x 65 window pages each
    assert capacity.concurrency_at(1200) == capacity.blocks / (75 + 6 * 65)


def test_a_burst_starts_only_what_all_groups_hold() -> None:
    """44,112 tokens of full-group pages: 2,757 blocks. A 1,000-token prompt (and its one
    output token) takes ceil(1000 / 16) = 63 pages of the full group and ceil(1001 / 16) = 63
    of each of the 6 sliding groups: 441 blocks, so 6 start at once, where counting the
    full group alone would start all 40."""
    assert _started_at_once(44_112, SimulationMode.FAST) == 2757 // (63 + 6 * 63) == 6
    # (the step-by-step reference agrees request by request: test_fast_vs_reference's
    # sliding-window cases; it starts its first step at the first arrival's event, so a
    # burst at one instant is not comparable there)


def _scout(version: str, **engine: object) -> LocalDeployment:
    return LocalDeployment(gpu="H200", model="Llama-4-Scout",
                           engine=EngineSpec(vllm_version=version, max_model_len=32768,
                                             weights_dtype="fp8",
                                             **engine))  # type: ignore[arg-type]


def test_chunked_local_layers_are_paged_whole_where_vllm_turns_its_hybrid_manager_off() -> None:
    """Llama 4's 36 chunked-local layers (8,192-token chunks) and 12 full ones: vLLM 0.10.1
    to 0.13 page them all as full attention by default, 0.14 on by their chunk; a request of
    the whole 32,768 tokens then holds pages for its whole length in every layer. The log's
    "GPU KV cache size" is the same either way (blocks over groups x block size)."""
    catalog = builtin_catalog()
    off = kv_capacity(_scout("0.13.0").setup(catalog))
    on = kv_capacity(_scout("0.14.0").setup(catalog))
    assert (off.full_groups, off.sliding_groups) == (1, 0)
    assert (on.full_groups, on.sliding_groups) == (1, 3)
    assert off.logged_tokens == pytest.approx(on.logged_tokens, rel=0.02)
    # whole-context requests: 48 layers' pages against 12 and 3 groups' chunk and step
    ratio = off.concurrency_at(32768) / on.concurrency_at(32768)
    assert 0.4 < ratio < 0.75
    # short requests need the same memory either way
    assert off.concurrency_at(1000) == pytest.approx(on.concurrency_at(1000), rel=0.03)
    # an EAGLE-3 drafter keeps it off in every release
    eagle = _scout("0.14.0", speculative={"method": "eagle3", "num_speculative_tokens": 3,
                                          "draft_params_b": 0.9, "mean_acceptance_length": 2.5})
    assert kv_capacity(eagle.setup(catalog)).sliding_groups == 0


def test_the_longest_request_a_hybrid_cache_holds_counts_its_window_pages() -> None:
    """Gemma 3 on one H100 at 88% of its memory: the full group's pages alone would hold
    the whole 131,072-token context, but one such request also holds 6 groups' window
    pages (1,023 + two steps' 8,192 tokens each, async scheduling keeping a batch in
    flight) and would not fit: vLLM's auto-fit (0.14
    on) searches for the longest request whose pages of every group fit, and so does the
    simulation, so the stack passes `--max-model-len auto` (it refuses to start otherwise)."""
    setup = LocalDeployment(gpu="H100-SXM", model="Gemma-3-27B", engine=EngineSpec(
        gpu_memory_utilization=0.88)).setup(builtin_catalog())
    capacity = kv_capacity(setup)
    assert capacity.error is None
    full_only = capacity.blocks * capacity.block_size_tokens     # the full group's pages
    assert full_only >= 131_072 > capacity.max_model_len
    assert capacity.max_concurrency >= 1.0        # one request of max_model_len fits
    block = capacity.block_size_tokens
    window_pages = 6 * (math.ceil((1023 + 2 * 8192) / block) + 1)
    assert math.ceil(capacity.max_model_len / block) + window_pages <= capacity.vllm_blocks
    assert math.ceil((capacity.max_model_len + block) / block) + window_pages \
        > capacity.vllm_blocks
    # a length set past it is refused, as vLLM refuses to start with it
    too_long = LocalDeployment(gpu="H100-SXM", model="Gemma-3-27B", engine=EngineSpec(
        gpu_memory_utilization=0.88, max_model_len=131_072)).setup(builtin_catalog())
    error = kv_capacity(too_long).error
    assert error is not None and "sliding-window pages included" in error


def test_vllm_0_14_to_0_18_sized_a_hybrid_request_by_its_first_group() -> None:
    """From 0.14 to 0.18 vLLM's auto-fit and start-up check counted only the first KV-cache
    group's pages (Gemma 3's first layer slides: a window's worth), so the whole context
    passes there, set or left to auto; 0.19 on sum every group's, as the simulation does
    from 0.19 (here the default release, two batches in flight)."""
    def capacity(version: str | None, max_model_len: int | None = None) -> object:
        engine = {"gpu_memory_utilization": 0.88, "max_model_len": max_model_len,
                  **({"vllm_version": version} if version else {})}
        return kv_capacity(LocalDeployment(gpu="H100-SXM", model="Gemma-3-27B",
                                           engine=EngineSpec(**engine)).setup(
            builtin_catalog()))
    old, new = capacity("0.18.0"), capacity(None)
    assert old.max_model_len == 131_072 > new.max_model_len  # type: ignore[attr-defined]
    assert capacity("0.18.0", 131_072).error is None  # type: ignore[attr-defined]
    assert capacity(None, 131_072).error is not None  # type: ignore[attr-defined]
