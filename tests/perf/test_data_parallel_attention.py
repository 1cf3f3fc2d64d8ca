"""Data-parallel attention with expert parallelism (engine.data_parallel_attention): each GPU
is a rank with its own scheduler, KV cache and whole attention and dense weights, the
experts spread over all of them (vLLM's --data-parallel-size with --enable-expert-parallel).
Checked against the same replica run tensor-parallel, by hand from the catalog's sizes."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, run_first, scenario_from

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import (
    activation_bytes,
    kv_capacity,
    moe_workspace_bytes,
    weights_bytes_per_gpu,
)
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.steptime import build_step_time
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.pipeline import evaluate
from llmplan.provision.serving_manifests import vllm_args
from llmplan.provision.stack import write_stack
from llmplan.scenario import load_scenario_text
from llmplan.sim.serving import rank_of
from llmplan.sim.stepmodel import StepModel


def _setup(model: str, gpu: str, tp: int, dp: bool, **engine: object) -> ReplicaSetup:
    catalog = builtin_catalog()
    spec = EngineSpec(weights_dtype="fp8", expert_parallel=True, data_parallel_attention=dp,
                      **engine)  # type: ignore[arg-type]
    return ReplicaSetup(gpu_name=gpu, model_name=model, gpu=catalog.gpus[gpu],
                        model=catalog.models[model], engine=spec, tp=tp)


@pytest.mark.parametrize("model", ["DeepSeek-V3", "Qwen3-235B-A22B"])
def test_each_rank_holds_the_dense_weights_whole_and_a_share_of_the_experts(model: str) -> None:
    tp_setup, dp_setup = (_setup(model, "H200", 8, dp) for dp in (False, True))
    spec = dp_setup.model
    whole, dense = spec.weight_bytes("fp8"), spec.weight_bytes_without_experts("fp8")
    # under tensor parallelism too, every GPU holds the routers and MLA's down-projections
    replicated = spec.replicated_bytes("fp8")
    assert weights_bytes_per_gpu(tp_setup) == pytest.approx((whole - replicated) / 8
                                                            + replicated)
    assert weights_bytes_per_gpu(dp_setup) == pytest.approx(dense + (whole - dense) / 8)


@pytest.mark.parametrize(("model", "heads_per_gpu_tp"), [
    ("DeepSeek-V3", None),          # MLA: the latent on every GPU either way
    ("Qwen3-235B-A22B", 1),         # 4 KV heads over 8 GPUs: one each, each on two GPUs
])
def test_each_rank_caches_whole_heads_of_its_own_requests(
        model: str, heads_per_gpu_tp: int | None) -> None:
    tp_setup, dp_setup = (_setup(model, "H200", 8, dp) for dp in (False, True))
    tp_cap, dp_cap = kv_capacity(tp_setup), kv_capacity(dp_setup)
    assert tp_cap.error is None and dp_cap.error is None
    spec = dp_setup.model
    # blocks of 16 tokens, --block-size's default, which 0.33.0 keeps for MLA too (it has
    # forced no MLA block since 0.18.0)
    block = 16
    assert dp_cap.block_size_tokens == tp_cap.block_size_tokens == block
    # a rank pages whole heads (or the one latent) of every layer
    assert dp_cap.block_bytes == pytest.approx(
        block * spec.layers * spec.kv_bytes_per_token_per_layer("bf16"))
    if heads_per_gpu_tp is not None:
        assert tp_cap.block_bytes == pytest.approx(
            16 * spec.layers * 2 * heads_per_gpu_tp * spec.head_dim * 2)
    # the replica holds every rank's blocks, each rank what its own memory leaves
    per_rank = int(dp_cap.budget.available_bytes // dp_cap.block_bytes)
    assert dp_cap.vllm_blocks == per_rank
    assert dp_cap.blocks == 8 * per_rank
    # a request fits one rank: the longest is what one rank holds
    assert dp_cap.max_model_len == min(spec.max_context_tokens, per_rank * block)
    if spec.attention == "mla":
        # tensor parallelism keeps the same latent on all 8 GPUs: the ranks hold several
        # times the tokens even after each keeps the dense weights whole
        assert dp_cap.tokens > 4 * tp_cap.tokens


def test_the_step_reads_dense_weights_per_rank_and_talks_only_in_routed_layers() -> None:
    spec_time = RooflineStepTime()
    tp_setup, dp_setup = (_setup("DeepSeek-V3", "H200", 8, dp) for dp in (False, True))
    tp_step = build_step_time(tp_setup, spec_time)
    dp_step = build_step_time(dp_setup, spec_time)
    model, gpu = dp_setup.model, dp_setup.gpu
    # every rank reads the weights outside the experts; the experts are read once; under
    # tensor parallelism each GPU reads the replicated layers whole, a rank its own copy
    bandwidth = gpu.bandwidth_bytes_per_s * 8 * spec_time.memory_efficiency
    replicated = model.replicated_bytes("fp8")
    assert dp_step.weights_s == pytest.approx(8 * (tp_step.weights_s
                                                   - 7 * replicated / bandwidth))
    assert dp_step.experts_s == pytest.approx(tp_step.experts_s)
    # the latent is read once per token, not by all 8 GPUs
    assert dp_step.memory_per_kv_token_s == pytest.approx(tp_step.memory_per_kv_token_s / 8)
    # an all-gather and a reduce-scatter of 7/8 of a 16-bit hidden vector per routed layer
    link = gpu.interconnect_gb_per_s * 1e9 * spec_time.allreduce_efficiency
    assert dp_step.serial_per_token_s == pytest.approx(
        2 * model.moe_layer_count * model.hidden_size * 2 * 7 / 8 / link)
    assert tp_step.serial_per_token_s == pytest.approx(
        2 * model.layers * model.hidden_size * 2 * (2 * 7 / 8) / link)
    # a routed slot costs only its expert's GPU, and each rank's CPU its own sequences
    slot = model.moe_layer_count * model.experts_per_token * 3 * model.hidden_size \
        * spec_time.expert_slot_overhead_width * 2 / (
            gpu.flops_per_s("bf16") * 8 * spec_time.compute_efficiency
            * gpu.gemm_efficiency("bf16"))
    # ... and under tensor parallelism each GPU multiplies the replicated layers whole
    whole = 7 * model.replicated_params * 2 / (gpu.flops_per_s("fp8") * 8
                                               * spec_time.compute_efficiency
                                               * gpu.gemm_efficiency("fp8"))
    assert tp_step.compute_per_token_s - dp_step.compute_per_token_s == pytest.approx(
        7 * slot + whole)
    assert dp_step.cpu_per_seq_s == pytest.approx(tp_step.cpu_per_seq_s / 8)
    # vllm serve starts an API server per rank unless told otherwise
    assert dp_step.frontend_per_seq_s == pytest.approx(tp_step.frontend_per_seq_s / 8)
    one = build_step_time(_setup("DeepSeek-V3", "H200", 8, True, api_server_count=1), spec_time)
    assert one.frontend_per_seq_s == pytest.approx(tp_step.frontend_per_seq_s)


def test_the_limits_are_per_rank_as_vllm_reads_them() -> None:
    setup = _setup("DeepSeek-V3", "H200", 8, True, max_num_seqs=64,
                   max_num_batched_tokens=4096)
    assert (setup.rank_max_num_seqs, setup.rank_max_num_batched_tokens) == (64, 4096)
    assert (setup.max_num_seqs, setup.max_num_batched_tokens) == (512, 32768)
    assert (setup.attention_ranks, setup.attention_tp) == (8, 1)


SCENARIO = """
name: dp-attention
seed: 3
duration: 20
traffic: {kind: poisson, rate_per_s: 2}
tasks:
  - {name: chat, prompt_tokens: {kind: fixed, tokens: 500},
     output_tokens: {kind: fixed, tokens: 50}}
deployments:
  ranks: {gpu: H200, model: DeepSeek-V3, tp: 8,
          engine: {weights_dtype: fp8, expert_parallel: true, data_parallel_attention: true,
                   max_num_seqs: 32}}
  %s
"""


def test_the_stack_starts_the_ranks_it_simulated(tmp_path: Path) -> None:
    loaded = load_scenario_text(textwrap.dedent(SCENARIO % ""), base_dir=ROOT)
    result = evaluate(loaded)
    counts = result.deployments["ranks"].requests
    assert counts.completed == counts.total > 0
    local = result.deployments["ranks"].local
    assert local is not None
    # result.json says the replica is eight ranks, and gives their limits together
    assert (local.engine.data_parallel_ranks, local.engine.max_num_seqs) == (8, 8 * 32)
    args = vllm_args(write_stack(tmp_path / "Pulumi.ranks.yaml", loaded, result, "ranks",
                                 {}).config)
    flags = {args[i]: args[i + 1] for i in range(len(args) - 1)}
    assert flags["--tensor-parallel-size"] == "1"
    assert flags["--data-parallel-size"] == "8"
    assert flags["--max-num-seqs"] == "32"          # per rank, as the scenario set it
    assert flags["--api-server-count"] == "8"       # what vllm serve would default to
    # one server asked for is one server started: vLLM's default would be eight
    one = load_scenario_text(textwrap.dedent(SCENARIO % "").replace(
        "max_num_seqs: 32}", "max_num_seqs: 32, api_server_count: 1}"), base_dir=ROOT)
    args = vllm_args(write_stack(tmp_path / "Pulumi.one.yaml", one, evaluate(one), "ranks",
                                 {}).config)
    assert args[args.index("--api-server-count") + 1] == "1"
    assert "--enable-expert-parallel" in args


@pytest.mark.parametrize(("deployment", "fragment"), [
    ("dense: {gpu: H100-SXM, model: Llama-3.1-70B, tp: 4, "
     "engine: {expert_parallel: true, data_parallel_attention: true}}",
     "engine.data_parallel_attention is for mixtures of experts"),
    ("sliced: {gpu: H200, model: Qwen3-235B-A22B, tp: 8, "
     "engine: {data_parallel_attention: true}}", "needs engine.expert_parallel: true"),
    ("slots: {gpu: H200, model: Qwen3-235B-A22B, tp: 8, engine: {expert_parallel: true, "
     "data_parallel_attention: true, prefix_caching: per_slot}}", "llama.cpp's cache"),
])
def test_what_the_ranks_cannot_run_is_refused(deployment: str, fragment: str) -> None:
    loaded = load_scenario_text(textwrap.dedent(SCENARIO % deployment), base_dir=ROOT)
    name = deployment.split(":", maxsplit=1)[0]
    assert name not in loaded.scenario.deployments
    assert fragment in loaded.unbuildable[name]


def test_the_profiling_run_holds_the_routed_layers_caches_for_every_ranks_tokens() -> None:
    """vLLM's fused-MoE kernel keeps, for M tokens of k slots each, an M x k x max(2N,
    hidden) and an M x k x N 16-bit buffer (N: the expert width one GPU computes), at most
    32,768 tokens at a time; with data-parallel attention the routed layer runs every rank's
    tokens (all-gathered), so M is the ranks' budgets together, capped by the chunk."""
    dp = _setup("Qwen3-Coder-480B-A35B", "H200", 8, True, max_num_batched_tokens=8192)
    assert moe_workspace_bytes(dp) == 32768 * 8 * (max(2 * 2560, 6144) + 2560) * 2
    # tensor parallelism without expert parallelism: each GPU runs its 1/4 of each expert
    # over its own 8,192 tokens
    catalog = builtin_catalog()
    tp = ReplicaSetup(gpu_name="H100-SXM", model_name="Qwen3-235B-A22B",
                      gpu=catalog.gpus["H100-SXM"], model=catalog.models["Qwen3-235B-A22B"],
                      engine=EngineSpec(weights_dtype="fp8", max_num_batched_tokens=8192),
                      tp=4)
    assert moe_workspace_bytes(tp) == 8192 * 8 * (max(2 * 384, 4096) + 384) * 2
    # the gathered tokens' input and output come on top: 65,536 hidden vectors twice
    assert activation_bytes(dp) == pytest.approx(
        65536 * 2 * 6144 * 2 + moe_workspace_bytes(dp))


def test_api_servers_follow_vllms_default_of_the_release() -> None:
    # one per rank from 0.15 (vllm-project/vllm#32525), one before; as set when set
    assert _setup("DeepSeek-V3", "H200", 8, True).api_server_count == 8
    assert _setup("DeepSeek-V3", "H200", 8, True, vllm_version="0.11.0").api_server_count == 1
    assert _setup("DeepSeek-V3", "H200", 8, True, api_server_count=2).api_server_count == 2
    assert _setup("DeepSeek-V3", "H200", 8, False).api_server_count == 1


def test_a_kv_cache_set_by_hand_is_one_ranks() -> None:
    setup = _setup("DeepSeek-V3", "H200", 8, True, kv_cache_tokens=100_000,
                   vllm_version="0.17.1")
    capacity = kv_capacity(setup)
    assert capacity.block_size_tokens == 64            # FlashMLA's: 1,563 blocks a rank
    assert capacity.blocks == 8 * 1_563
    assert capacity.max_model_len == 1_563 * 64        # a request fits one rank
    # one GPU's memory holds one rank's cache
    assert capacity.kv_cache_bytes == pytest.approx(1_563 * capacity.block_bytes)


def test_experts_that_do_not_divide_leave_the_fullest_gpu_one_more() -> None:
    """vLLM's expert map gives the first E mod tp GPUs an extra expert: Mixtral's 8 experts
    over 3 GPUs are 3, 3 and 2, and the GPU with 3 is the one that runs out of memory."""
    setup = _setup("Mixtral-8x7B", "H100-SXM", 3, True)
    model = setup.model
    dense = model.weight_bytes_without_experts("fp8")
    experts = model.weight_bytes("fp8") - dense
    assert weights_bytes_per_gpu(setup) == pytest.approx(dense + experts * 3 / 8)
    # with expert parallelism alone the rest is split three ways, but for the routers
    tp_only = _setup("Mixtral-8x7B", "H100-SXM", 3, False)
    routers = model.replicated_bytes("fp8")
    assert weights_bytes_per_gpu(tp_only) == pytest.approx(
        (dense - routers) / 3 + routers + experts * 3 / 8)


def test_the_tp_a_model_that_does_not_fit_is_told_to_take_fits() -> None:
    """The suggestion counts the memory at the suggested size, the ranks' gathered
    activations and whole dense weights included."""
    catalog = builtin_catalog()
    suggestions = []
    for dp in (False, True):
        for tp in (1, 2):
            setup = ReplicaSetup(
                gpu_name="L4", model_name="Mixtral-8x7B", gpu=catalog.gpus["L4"],
                model=catalog.models["Mixtral-8x7B"], tp=tp,
                engine=EngineSpec(expert_parallel=True, data_parallel_attention=dp,
                                  max_num_batched_tokens=16384))
            error = kv_capacity(setup).error
            assert error is not None and "does not fit" in error
            if "expected tp >= " in error:
                suggested = int(error.split("expected tp >= ")[1].split()[0])
                bigger = dataclasses.replace(setup, tp=suggested)
                assert kv_capacity(bigger).error is None, (dp, tp, suggested)
                suggestions.append((dp, suggested))
    # tensor parallelism fits at 8 L4s; eight ranks each gather 8 x 16,384 tokens, which
    # leaves no room on an L4 at any size
    assert suggestions == [(False, 8), (False, 8)]


LONE = """
name: lone-prompt
seed: 1
duration: 30
traffic: {kind: constant, rate_per_s: 0.02}
tasks:
  - {name: long, prompt_tokens: {kind: fixed, tokens: 60000},
     output_tokens: {kind: fixed, tokens: 20}}
deployments:
  d: {gpu: H200, model: DeepSeek-V3, tp: 8,
      engine: {weights_dtype: fp8, expert_parallel: true, data_parallel_attention: %s}}
"""


def test_the_largest_chunk_runs_on_one_ranks_gpu() -> None:
    setup = _setup("DeepSeek-V3", "H200", 8, True)
    st = build_step_time(setup, RooflineStepTime())
    model = StepModel(**st.coefficients())
    # the dense layers' GEMMs on one H200 at the FP8 rate: the layers' parameters (the
    # total less embeddings and the 248 of 256 routed experts a token skips: 35.7 B, the
    # smaller of the two counts, the card's 37 B active less the head being 36.1 B) less
    # the 8 routed experts a token uses
    spec, gpu, roof = setup.model, setup.gpu, RooflineStepTime()
    routed = spec.expert_params * 8 / 256
    dense = spec.params_b * 1e9 - spec.embedding_params - spec.expert_params
    assert dense < spec.active_params_b * 1e9 - spec.vocab_size * spec.hidden_size - routed
    one_gpu = gpu.flops_per_s("fp8") * roof.compute_efficiency * gpu.gemm_efficiency("fp8")
    assert st.ranks == 8
    assert st.rank_dense_per_token_s * 8 == pytest.approx(2 * dense / one_gpu, rel=1e-9)
    # a lone 8,192-token chunk 40,000 tokens into its prompt: compute-bound, so the step
    # is the pooled one plus 7 more GPUs' worth of its dense GEMMs and its attention
    chunk, done = 8192, 40000
    pairs = chunk * done + chunk * (chunk + 1) // 2
    pooled = model.step_s(chunk, 0, done, pairs)
    lone = model.step_s(chunk, 0, done, pairs, lone_tokens=chunk, lone_pairs=pairs)
    assert lone - pooled == pytest.approx(
        7 * (st.rank_dense_per_token_s * chunk + st.compute_per_prefill_pair_s * pairs),
        rel=1e-9)
    # eight such chunks, one per rank: the even share, nothing more
    assert model.step_s(8 * chunk, 0, 8 * done, 8 * pairs, lone_tokens=chunk,
                        lone_pairs=pairs) == \
        pytest.approx(model.step_s(8 * chunk, 0, 8 * done, 8 * pairs), rel=1e-12)


def test_the_costliest_chunk_sets_the_step_and_more_work_never_shortens_it() -> None:
    st = build_step_time(_setup("DeepSeek-V3", "H200", 8, True), RooflineStepTime())
    model = StepModel(**st.coefficients())
    # the tail of a 60,000-token prompt (2,656 tokens over 57,344 cached) next to a fresh
    # 8,192-token prompt: fewer tokens, but 20 times the attention pairs
    tail = (2656, 2656 * 57344 + 2656 * 2657 // 2)
    fresh = (8192, 8192 * 8193 // 2)
    assert model.rank_cost_s(*tail) > model.rank_cost_s(*fresh)
    alone = model.step_s(tail[0], 0, 57344, tail[1], lone_tokens=tail[0], lone_pairs=tail[1])
    both = model.step_s(tail[0] + fresh[0], 0, 57344, tail[1] + fresh[1],
                        lone_tokens=tail[0], lone_pairs=tail[1])
    assert both >= alone
    # the two on two ranks: the tail's rank is the slower one, so the fresh chunk adds only
    # what every rank shares, its routed experts' GEMMs and slots and its all-gather
    assert both - alone == pytest.approx(
        (st.compute_per_token_s - st.rank_dense_per_token_s + st.serial_per_token_s)
        * fresh[0], rel=1e-9)


def test_the_busiest_rank_reads_its_whole_sequences_kv() -> None:
    setup = _setup("Qwen3-235B-A22B", "H100-SXM", 8, True)
    st = build_step_time(setup, RooflineStepTime())
    model = StepModel(**st.coefficients())
    even = StepModel(**{**st.coefficients(), "ranks": 1, "rank_dense_per_token_s": 0.0})
    # one sequence 60,000 tokens in: one GPU reads its whole context, eight times the
    # pooled figure; nine sequences: two on the busiest rank, 16/9 of the even share
    for seqs, share in ((1, 8.0), (8, 1.0), (9, 16 / 9)):
        kv = seqs * 60000
        _, memory, _, _ = model._parts(0, seqs, kv, 0)
        _, memory_even, _, _ = even._parts(0, seqs, kv, 0)
        assert memory - memory_even == pytest.approx(
            (share - 1) * st.memory_per_kv_token_s * kv, rel=1e-9, abs=1e-12)
    # by hand for the lone sequence: its 94 layers' 4 KV heads (fp16, 128 dims, K and V)
    # over one H100's bandwidth at the roofline's 75%
    spec, gpu = setup.model, setup.gpu
    per_token = spec.layers * spec.kv_heads * spec.head_dim * 2 * 2
    lone_read = per_token * 60000 / (gpu.bandwidth_bytes_per_s * 0.75)
    _, memory, _, _ = model._parts(0, 1, 60000, 0)
    _, memory_even, _, _ = even._parts(0, 1, 60000, 0)
    assert memory - memory_even == pytest.approx(lone_read * 7 / 8, rel=1e-9)


def test_a_lone_long_prompt_is_prefilled_by_one_rank_in_its_budget() -> None:
    ranks, stream = run_first(scenario_from(LONE % "true"))
    tensor, _ = run_first(scenario_from(LONE % "false"), stream=stream)
    assert len(stream) == 1
    setup = _setup("DeepSeek-V3", "H200", 8, True)
    model = StepModel(**build_step_time(setup, RooflineStepTime()).coefficients())
    # by hand: chunks of one rank's budget (8,192 of vLLM's H200 default, not the eight
    # ranks' 65,536), each step the lone chunk's, until the prompt is in; each chunk's MLA
    # layers up-project the tokens before it on that rank too
    budget = setup.rank_max_num_batched_tokens
    assert (budget, setup.max_num_batched_tokens) == (8192, 8 * 8192)
    expected, done = 0.0, 0
    while done < 60000:
        chunk = min(budget, 60000 - done)
        pairs = chunk * done + chunk * (chunk + 1) // 2
        expected += model.step_s(chunk, 0, done, pairs, lone_tokens=chunk, lone_pairs=pairs,
                                 context_tokens=done, lone_context_tokens=done)
        done += chunk
    ttft = ranks.records.first_token_s[0] - stream.arrival_s[0]
    assert ttft == pytest.approx(expected, rel=1e-9)
    # one GPU's attention over 60,000 tokens against eight's: the ranks are slower here
    tp_ttft = tensor.records.first_token_s[0] - stream.arrival_s[0]
    assert ttft > 2 * tp_ttft


PREFIXED = """
name: system-prompts
seed: 4
duration: 120
traffic: {kind: poisson, rate_per_s: 0.5}
tasks:
  - {name: chat, prompt_tokens: {kind: fixed, tokens: 300},
     output_tokens: {kind: fixed, tokens: 20},
     shared_prefix: {groups: 5, tokens: {kind: fixed, tokens: 1600}}}
deployments:
  d: {gpu: H200, model: DeepSeek-V3, tp: 8,
      engine: {weights_dtype: fp8, expert_parallel: true, data_parallel_attention: %s}}
"""


def test_a_rank_finds_only_the_prefixes_its_own_requests_computed() -> None:
    # five system prompts, requests one at a time: with tensor parallelism each prompt is
    # computed once; vLLM's balancer sends a request to a rank whatever it holds, so each
    # rank computes each prompt once, and a request hits only where its rank has
    ranks_run, stream = run_first(scenario_from(PREFIXED % "true"))
    tensor_run, _ = run_first(scenario_from(PREFIXED % "false"), stream=stream)
    groups = stream.prefix_group
    assert groups is not None and len(stream) > 40
    seen_tp: set[int] = set()
    seen_dp: set[tuple[int, int]] = set()
    hits_tp, hits_dp = [], []
    for rid in np.argsort(stream.arrival_s, kind="stable"):
        g = int(groups[rid])
        hits_tp.append(g in seen_tp)
        hits_dp.append((g, rank_of(int(rid), 8)) in seen_dp)
        seen_tp.add(g)
        seen_dp.add((g, rank_of(int(rid), 8)))
    order = np.argsort(stream.arrival_s, kind="stable")
    cached_tp = np.asarray(tensor_run.records.cached_tokens)[order]
    cached_dp = np.asarray(ranks_run.records.cached_tokens)[order]
    np.testing.assert_array_equal(cached_tp > 0, hits_tp)
    np.testing.assert_array_equal(cached_dp > 0, hits_dp)
    assert sum(hits_dp) < sum(hits_tp) == len(stream) - 5
    # a hit reads the whole 1,600-token prompt (100 full blocks of 16)
    assert set(cached_dp[np.asarray(hits_dp)].tolist()) == {1600}


def test_the_step_waits_for_the_gpu_with_the_most_experts() -> None:
    # Mixtral's 8 experts over 3 GPUs: the step reads 3 of them on the slowest GPU, where an
    # even split would read 8/3
    uneven = build_step_time(_setup("Mixtral-8x7B", "H100-SXM", 3, True), RooflineStepTime())
    even = build_step_time(_setup("Mixtral-8x7B", "H100-SXM", 4, True), RooflineStepTime())
    model = builtin_catalog().models["Mixtral-8x7B"]
    expert_bytes = model.weight_bytes("fp8") - model.weight_bytes_without_experts("fp8")
    gpu = builtin_catalog().gpus["H100-SXM"]
    per_gpu_bw = gpu.bandwidth_bytes_per_s * RooflineStepTime().memory_efficiency
    assert uneven.experts_s == pytest.approx(expert_bytes * 3 / 8 / per_gpu_bw)
    assert even.experts_s == pytest.approx(expert_bytes * 2 / 8 / per_gpu_bw)


def test_mla_down_projections_and_routers_are_held_and_read_whole_on_every_gpu() -> None:
    """vLLM builds DeepSeek's q_a_proj and kv_a_proj_with_mqa (fused_qkv_a_proj,
    disable_tp=True) and every router (unquantised) as replicated layers: on paper 61 x
    7,168 x (1,536 + 512 + 64) = 0.92 B parameters in FP8 and 58 x 256 x 7,168 = 0.11 B in
    BF16, 1.14 GB on each of eight GPUs, where an even split would put 0.12 GB; each GPU
    reads them every step."""
    setup = _setup("DeepSeek-V3", "H200", 8, dp=False)
    model = setup.model
    latents, routers = 61 * 7168 * (1536 + 512 + 64), 58 * 256 * 7168
    assert model.replicated_params == latents + routers
    on_paper = latents * 1.0 + routers * 2.0
    assert model.replicated_bytes("fp8") == on_paper
    assert 1.13e9 < on_paper < 1.14e9
    step = build_step_time(setup, RooflineStepTime())
    split = RooflineStepTime()
    bandwidth = setup.gpu.bandwidth_bytes_per_s * 8 * split.memory_efficiency
    outside = model.weight_bytes("fp8") - (model.weight_bytes("fp8")
                                           - model.weight_bytes_without_experts("fp8")) \
        - model.vocab_size * model.hidden_size * 2.0
    assert step.weights_s == pytest.approx((outside + 7 * on_paper) / bandwidth)
