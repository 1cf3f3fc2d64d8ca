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
