"""CUDA graphs in vLLM's memory budget.

From v0.20.0 vLLM captures a few graphs while profiling and takes its estimate of their
pool out of the budget (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS, on by default;
vllm/v1/worker/gpu_worker.py `determine_available_memory`); before, they are captured
after the KV cache, outside the budget, and so are they on Model Runner V2 until 0.29,
whose estimate returned 0. The pool follows the largest batch captured,
min(2 x max_num_seqs x (1 + speculative tokens), 512, max_num_batched_tokens)
(vllm/config/vllm.py, v0.27.1).
"""

from __future__ import annotations

import re

import pytest

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import GIB, EngineSpec, SpeculativeSpec
from llmplan.perf.memory import (
    GRAPH_POOL_FIXED_GIB,
    GRAPH_POOL_PER_TOKEN_MIB,
    MOE_GRAPH_FACTOR,
    capture_tokens,
    cuda_graph_bytes,
    kv_capacity,
    memory_budget,
)
from llmplan.perf.setup import ReplicaSetup

CATALOG = builtin_catalog()
MIB = float(1 << 20)


def _setup(model: str = "Llama-3.1-8B", gpu: str = "H100-SXM", **engine: object) -> ReplicaSetup:
    return ReplicaSetup(gpu, model, CATALOG.gpus[gpu], CATALOG.models[model],
                        EngineSpec(**engine), 1)  # type: ignore[arg-type]


def _pool(capture_tokens: int, moe: bool = False) -> float:
    pool = GRAPH_POOL_FIXED_GIB * GIB + capture_tokens * GRAPH_POOL_PER_TOKEN_MIB * MIB
    return pool * (MOE_GRAPH_FACTOR if moe else 1)


@pytest.mark.parametrize(("version", "model"), [
    ("0.20.0", "Llama-3.1-8B"), ("0.21.0", "Llama-3.1-8B"), ("0.33.0", "Llama-3.1-8B"),
    # a mixture of experts stays on the V1 runner until 0.29
    ("0.27.1", "Qwen3-30B-A3B")])
def test_from_0_20_the_graphs_estimate_comes_out_of_the_budget(version: str,
                                                               model: str) -> None:
    budget = memory_budget(_setup(model, vllm_version=version))
    assert budget.graphs_in_budget
    assert budget.cuda_graph_bytes > 0
    assert budget.available_bytes == pytest.approx(
        budget.budget_bytes - budget.weights_bytes - budget.activation_bytes
        - budget.non_torch_bytes - budget.cuda_graph_bytes - budget.runner_buffers_bytes)


@pytest.mark.parametrize(("version", "model"), [
    ("0.10.1", "Llama-3.1-8B"), ("0.11.0", "Llama-3.1-8B"), ("0.19.1", "Llama-3.1-8B"),
    # Model Runner V2 (every dense model from 0.25) estimated 0 until 0.29
    ("0.25.0", "Llama-3.1-8B"), ("0.27.1", "Qwen3-32B"), ("0.28.0", "Gemma-3-27B"),
    ("0.22.0", "Qwen3-8B")])
def test_before_0_20_and_on_runner_v2_before_0_29_the_graphs_live_outside_the_budget(
        version: str, model: str) -> None:
    budget = memory_budget(_setup(model, vllm_version=version))
    assert not budget.graphs_in_budget
    assert budget.available_bytes == pytest.approx(
        budget.budget_bytes - budget.weights_bytes - budget.activation_bytes
        - budget.non_torch_bytes - budget.runner_buffers_bytes)


def test_enforce_eager_gives_the_graphs_memory_to_the_kv_cache_from_0_20() -> None:
    graphs, eager = (kv_capacity(_setup(enforce_eager=flag)) for flag in (False, True))
    assert eager.budget.cuda_graph_bytes == 0
    gained = eager.budget.available_bytes - graphs.budget.available_bytes
    assert gained == pytest.approx(graphs.budget.cuda_graph_bytes)
    assert eager.blocks > graphs.blocks
    # before 0.20 the graphs were never in the budget: eager changes nothing in the cache
    old = [kv_capacity(_setup(vllm_version="0.11.0", enforce_eager=flag)).blocks
           for flag in (False, True)]
    assert old[0] == old[1]


@pytest.mark.parametrize(("engine", "capture"), [
    ({}, 512),                                              # 1,024 sequences on an H100
    ({"max_num_seqs": 20}, 40),                             # 2 x 20
    ({"max_num_seqs": 128}, 256),
    ({"max_num_seqs": 64, "max_num_batched_tokens": 96}, 96),   # capped by the token budget
    ({"max_num_seqs": 32,
      "speculative": SpeculativeSpec(method="ngram", num_speculative_tokens=3,
                                     mean_acceptance_length=2.0)}, 256),  # 2 x 32 x 4
])
def test_the_pool_follows_the_largest_batch_vllm_captures(engine: dict[str, object],
                                                          capture: int) -> None:
    assert cuda_graph_bytes(_setup(**engine)) == pytest.approx(_pool(capture))


def test_rocm_budgets_the_graphs_from_0_26() -> None:
    """vLLM skipped the estimate on ROCm until 0.26.0 (vllm/v1/worker/gpu_worker.py)."""
    # a mixture of experts, which the V1 runner serves in these releases
    moe = "Qwen3-30B-A3B"
    assert not memory_budget(_setup(moe, gpu="MI300X", vllm_version="0.25.1")).graphs_in_budget
    assert memory_budget(_setup(moe, gpu="MI300X", vllm_version="0.26.0")).graphs_in_budget
    assert memory_budget(_setup(moe, gpu="H100-SXM", vllm_version="0.25.1")).graphs_in_budget


@pytest.mark.parametrize(("gpu", "version", "engine", "capture"), [
    ("B200", "0.28.0", {}, 1024),            # data-centre Blackwell: up to 1,024 from 0.28
    ("B200", "0.27.1", {}, 512),
    ("H200", "0.33.0", {}, 512),
    ("RTX-PRO-6000", "0.33.0", {"max_num_seqs": 1024}, 512),   # sm_120: not family 10
    ("H100-SXM", "0.9.2", {"max_num_seqs": 20}, 512),      # 0.9: 512 whatever the sequences
    ("H100-SXM", "0.12.0", {"max_num_seqs": 32, "speculative": SpeculativeSpec(
        method="eagle3", num_speculative_tokens=3, mean_acceptance_length=2.0,
        draft_params_b=0.5)}, 64),                         # drafts multiply it from 0.13
])
def test_the_largest_captured_batch_by_release(gpu: str, version: str,
                                               engine: dict[str, object], capture: int) -> None:
    assert capture_tokens(_setup(gpu=gpu, vllm_version=version, **engine)) == capture


def test_a_mixture_of_experts_captures_its_expert_workspaces_too() -> None:
    dense = cuda_graph_bytes(_setup("Qwen3-32B"))
    moe = cuda_graph_bytes(_setup("Qwen3-30B-A3B"))
    assert moe == pytest.approx(MOE_GRAPH_FACTOR * dense)


def test_fewer_sequences_leave_more_kv_cache_through_the_graphs_and_the_sampler() -> None:
    """max_num_seqs shrinks the sampler's logits in the profiling peak, the graph pool and
    (Model Runner V2, the default release's) the sampler's penalty counts: the KV cache
    grows by exactly what they give back."""
    many, few = (memory_budget(_setup(max_num_seqs=n)) for n in (1024, 32))
    given_back = (many.activation_bytes - few.activation_bytes) \
        + (many.cuda_graph_bytes - few.cuda_graph_bytes) \
        + (many.runner_buffers_bytes - few.runner_buffers_bytes)
    assert many.runner_buffers_bytes - few.runner_buffers_bytes > 0.4 * GIB
    assert given_back > 0.5 * GIB
    assert few.available_bytes - many.available_bytes == pytest.approx(given_back)


def test_an_unset_context_is_fitted_to_the_cache_and_logged_at_that_length() -> None:
    """Llama-3.1-8B on an L4 holds far fewer tokens than its 131,072 context. vLLM 0.14 and
    later, told `--max-model-len auto` (what the stack passes), fit the length to the cache
    and log their concurrency at it: one whole request; before, the figures are at the
    model's own context."""
    new = kv_capacity(_setup(gpu="L4"))
    assert new.max_model_len < CATALOG.models["Llama-3.1-8B"].max_context_tokens
    assert new.max_concurrency == pytest.approx(1.0, abs=0.01)
    old = kv_capacity(_setup(gpu="L4", vllm_version="0.13.0", max_model_len=131072))
    assert old.max_concurrency < 0.5


def test_what_does_not_fit_counts_the_graphs_it_budgets() -> None:
    """At a utilisation that leaves the weights and the peak room but not the graphs'
    estimate, the refusal's own figures add up: what it needs exceeds what is usable."""
    error = kv_capacity(_setup(gpu_memory_utilization=0.2046)).error
    assert error is not None and "CUDA graphs 0.77" in error, error
    need, usable = (float(x) for x in re.findall(
        r"needs ([\d.]+) GiB per GPU.*, ([\d.]+) GiB usable", error)[0])
    assert need > usable


def test_the_estimate_can_be_turned_off_or_on_as_vllm_reads_its_variable() -> None:
    """VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS (vllm/envs.py, from 0.18): off gives the
    graphs' share back to the KV cache; on brings it into 0.18/0.19 budgets; on ROCm before
    0.26 vLLM estimates nothing whatever it says."""
    on, off = (memory_budget(_setup(cuda_graph_estimate=flag)) for flag in (None, False))
    assert on.graphs_in_budget and not off.graphs_in_budget
    assert off.available_bytes - on.available_bytes == pytest.approx(on.cuda_graph_bytes)
    assert memory_budget(_setup(vllm_version="0.18.0", cuda_graph_estimate=True)).graphs_in_budget
    assert not memory_budget(_setup(vllm_version="0.19.1")).graphs_in_budget
    assert not memory_budget(_setup(gpu="MI300X", vllm_version="0.25.1",
                                    cuda_graph_estimate=True)).graphs_in_budget
    with pytest.raises(ValueError, match=r"VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS.* came in "
                                         r"0.18.0"):
        EngineSpec(vllm_version="0.17.1", cuda_graph_estimate=False)
