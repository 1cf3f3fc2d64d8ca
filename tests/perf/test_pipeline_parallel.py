"""Pipeline stages (a deployment's pp, vLLM's --pipeline-parallel-size): each stage holds a
run of the layers on its own tp GPUs, the engine keeps pp micro-batches in flight. Checked
by hand against vLLM's layer split, against the same model held tensor-parallel, and
against the whole model's pass on one stage's GPUs (a lone request pipelines nothing; a
full round pipelines pp micro-batches)."""

from __future__ import annotations

import dataclasses
import re
import textwrap

import pytest
from helpers import ROOT
from rich.console import Console

from llmplan.catalog import builtin_catalog
from llmplan.errors import InputError
from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import kv_capacity, memory_budget, stage_layers, stages
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.steptime import build_step_time
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.pipeline import evaluate
from llmplan.render import summary_table
from llmplan.report.page import render
from llmplan.scenario import load_scenario_text
from llmplan.sim.stepmodel import StepModel

CATALOG = builtin_catalog()


def _setup(model: str, gpu: str, tp: int, pp: int, **engine: object) -> ReplicaSetup:
    spec = EngineSpec(**engine)  # type: ignore[arg-type]
    return ReplicaSetup(gpu_name=gpu, model_name=model, gpu=CATALOG.gpus[gpu],
                        model=CATALOG.models[model], engine=spec, tp=tp, pp=pp)


@pytest.mark.parametrize(("layers", "pp", "split"), [
    (30, 4, [7, 8, 8, 7]),        # vLLM logs "Hidden layers were unevenly partitioned"
    (61, 2, [31, 30]),            # DeepSeek-V3: the last stage never takes the extra layer
    (80, 3, [27, 27, 26]),
    (94, 4, [23, 24, 24, 23]),
    (36, 4, [9, 9, 9, 9]),
])
def test_the_layers_split_as_vllm_splits_them(layers: int, pp: int, split: list[int]) -> None:
    """get_pp_indices (vllm/distributed/utils.py): layers // pp each, the remainder one each
    on the stages before the last, counting back from the second-to-last."""
    assert stage_layers(layers, pp) == split


def test_the_first_stage_holds_the_embedding_and_the_last_the_head_and_sampler() -> None:
    # 1,024 sequences: the sampler's logits (1,024 x 128,256 fp32) outweigh the forward pass
    setup = _setup("Llama-3.3-70B", "L40S", 1, 4, weights_dtype="fp8", max_num_seqs=1024)
    parts = stages(setup)
    assert [(s.embedding, s.head) for s in parts] == [(True, False), (False, False),
                                                      (False, False), (False, True)]
    model = setup.model
    matrix = model.vocab_size * model.hidden_size * 2.0
    layers = model.weight_bytes("fp8") - model.embedding_params * 2.0
    first, middle, _, last = (memory_budget(setup, s) for s in parts)
    assert first.weights_bytes == pytest.approx(layers / 4 + matrix)
    assert middle.weights_bytes == pytest.approx(layers / 4)
    assert last.weights_bytes == pytest.approx(layers / 4 + matrix)
    # only the last stage samples: its profiling peak holds the logits and, on Model
    # Runner V2 (every model from 0.29), it alone holds the sampler's penalty counts
    assert last.activation_bytes >= middle.activation_bytes > first.activation_bytes
    # every stage after the first keeps a buffer for the hidden states and residual it
    # receives, 16-bit, for the largest batch (make_empty_intermediate_tensors, 0.27.1)
    received = setup.rank_max_num_batched_tokens * 2 * model.hidden_size * 2.0
    assert middle.activation_bytes - first.activation_bytes == pytest.approx(received)
    assert last.runner_buffers_bytes == pytest.approx(
        1024 * (model.vocab_size + 2 * model.vocab_size / 32) * 4.0, rel=1e-4)
    assert first.runner_buffers_bytes == middle.runner_buffers_bytes == 0.0
    # on the V1 runner (0.27.1 serves no dense model on it, 0.21 every model) the logits
    # copies make the last stage's peak
    v1 = _setup("Llama-3.3-70B", "L40S", 1, 4, weights_dtype="fp8", max_num_seqs=1024,
                vllm_version="0.21.0")
    v1_first, *_, v1_last = (memory_budget(v1, s) for s in stages(v1))
    assert v1_last.activation_bytes > v1_first.activation_bytes
    assert v1_last.runner_buffers_bytes == 0.0


def test_with_tied_embeddings_the_last_stage_holds_one_vocabulary_matrix() -> None:
    """Gemma 3 ties its output head to its embedding: the first stage holds the embedding,
    the last its own copy as the head (vLLM ties lm_head to embed_tokens there), one
    262,144 x 5,376 matrix each, where tensor parallelism splits one matrix over the GPUs."""
    setup = _setup("Gemma-3-27B", "L40S", 1, 2)
    model = setup.model
    assert model.tie_word_embeddings
    matrix = model.vocab_size * model.hidden_size * 2.0
    layers = model.weight_bytes("bf16") - model.embedding_params * 2.0
    first, last = (memory_budget(setup, s) for s in stages(setup))
    assert first.weights_bytes == pytest.approx(layers / 2 + matrix)
    assert last.weights_bytes == pytest.approx(layers / 2 + matrix)
    tensor = memory_budget(_setup("Gemma-3-27B", "L40S", 2, 1))
    assert last.weights_bytes - tensor.weights_bytes == pytest.approx(matrix / 2)


def test_the_cache_is_the_tightest_stages() -> None:
    """Each stage sizes a cache of its own layers' pages; the engine takes the fewest
    blocks (get_kv_cache_configs). The last stage holds the head and the sampler's peak."""
    setup = _setup("Llama-3.3-70B", "L40S", 1, 4, weights_dtype="fp8")
    capacity = kv_capacity(setup)
    assert capacity.error is None
    per_block = [memory_budget(setup, s).available_bytes // capacity.block_bytes
                 for s in stages(setup)]
    assert capacity.vllm_blocks == min(per_block) == per_block[-1] < per_block[1]


@pytest.mark.parametrize(("model", "gpu"), [("Llama-3.1-8B", "L4"),
                                            ("Qwen3-32B", "L40S"),
                                            ("Llama-3.3-70B", "H100-SXM")])
def test_two_stages_cache_about_what_two_tensor_parallel_gpus_cache(model: str,
                                                                    gpu: str) -> None:
    """Two stages of one GPU hold half the layers each, whole; two tensor-parallel GPUs
    hold every layer, half the heads each: the same weights and KV bytes per token per
    GPU, so the same cache but for the sampler's peak on one stage and the MLP's
    activations on each (within 4%)."""
    dtype = "fp8" if model == "Llama-3.3-70B" else None
    tp2, pp2 = (kv_capacity(_setup(model, gpu, tp, pp, weights_dtype=dtype))
                for tp, pp in ((2, 1), (1, 2)))
    assert tp2.error is None and pp2.error is None
    assert pp2.kv_bytes_per_token == pytest.approx(tp2.kv_bytes_per_token, rel=0.02)
    assert pp2.tokens == pytest.approx(tp2.tokens, rel=0.04)


def _whole_model(setup: ReplicaSetup) -> StepModel:
    """The whole model's pass on one stage's tp GPUs (a roofline needs no memory check)."""
    return StepModel(**build_step_time(dataclasses.replace(setup, pp=1),
                                       RooflineStepTime()).coefficients())


@pytest.mark.parametrize(("model", "gpu", "tp", "pp"), [
    ("Llama-3.3-70B", "L40S", 1, 4), ("Llama-3.3-70B", "L40S", 2, 2),
    ("Qwen3-30B-A3B", "L40S", 1, 2),
    # a small model on a fast GPU: the scheduler runs once a round for one micro-batch, not
    # once per stage, so its CPU time stays hidden behind the pass
    ("Llama-3.1-8B", "H100-SXM", 1, 8),
])
def test_a_lone_request_waits_for_every_stage_in_turn(model: str, gpu: str, tp: int,
                                                      pp: int) -> None:
    """One request alone pipelines nothing: its token passes every stage, which together
    read the whole model at one stage's bandwidth, plus a hand-over between stages (a
    collective's latency each). Its prefill chunk is one micro-batch: the round is its
    whole pass."""
    setup = _setup(model, gpu, tp, pp, weights_dtype="fp8")
    spec = RooflineStepTime()
    staged = StepModel(**build_step_time(setup, spec).coefficients())
    whole = _whole_model(setup)
    latency = (pp - 1) * spec.tp_sync_us_per_layer * 1e-6
    for context in (500, 8000):
        assert staged.step_s(0, 1, context) == pytest.approx(
            whole.step_s(0, 1, context) + latency, rel=2e-3)
    chunk = 2000
    lone = dict(lone_tokens=chunk, lone_pairs=chunk * chunk // 2)
    hand_over = 2 * setup.model.hidden_size * 2.0 / (setup.gpu.interconnect_gb_per_s * 1e9
                                                     * spec.allreduce_efficiency)
    assert staged.step_s(chunk, 0, 0, chunk * chunk // 2, **lone) == pytest.approx(
        whole.step_s(chunk, 0, 0, chunk * chunk // 2) + latency + (pp - 1) * hand_over * chunk,
        rel=2e-3)


@pytest.mark.parametrize(("tp", "pp", "node", "servers"), [
    (8, 2, 8, 2), (4, 4, 8, 2), (2, 6, 8, 2),
    # 12 GPUs: two servers of 6 would cut a tp-4 group, three of 4 hold a stage each
    (4, 3, 8, 3),
    (1, 13, 8, 13),   # 13 stages divide only into 13 servers
    (4, 2, 8, 1), (8, 1, 8, 1),
])
def test_stages_span_the_fewest_servers_holding_whole_stages(tp: int, pp: int, node: int,
                                                              servers: int) -> None:
    """vLLM's --nnodes: the world size divides by the nodes, each node takes consecutive
    ranks, tp innermost; so each server holds pp / servers whole stages."""
    setup = dataclasses.replace(_setup("Llama-3.1-8B", "H100-SXM", tp, pp),
                                gpus_per_server=node)
    assert setup.servers == servers
    assert setup.server_gpus * servers == tp * pp and setup.server_gpus % tp == 0
    assert setup.server_gpus <= node and pp % servers == 0


def test_stages_on_two_servers_hand_over_through_the_network() -> None:
    """tp 4 x pp 2 on servers of 4 GPUs: the one hand-over leaves the server, each rank's
    1/tp slice through its share of the network (catalog network_gb_per_s), then gathered
    over NVLink; on one server of 8 it stays on NVLink. vLLM 0.11.1 to 0.26 also turns its
    custom all-reduce off over several servers, so every layer's all-reduces take NCCL's
    latency. A long prompt's chunk, alone, passes both stages: the two differ by that
    hand-over's time for its tokens and the layers' slower all-reduces."""
    spec = RooflineStepTime()
    one = _setup("Llama-3.3-70B", "H100-SXM", 4, 2, weights_dtype="fp8",
                 vllm_version="0.26.0")
    two = dataclasses.replace(one, gpus_per_server=4)
    assert (one.servers, two.servers, two.server_gpus) == (1, 2, 4)
    vectors = 2 * one.model.hidden_size * 2.0
    link = one.gpu.interconnect_gb_per_s * 1e9 * spec.allreduce_efficiency
    network = one.gpu.network_gb_per_s * 1e9 * spec.allreduce_efficiency
    across = vectors / 4 / network + vectors * 3 / 4 / link
    chunk = 4000
    lone = dict(lone_tokens=chunk, lone_pairs=chunk * chunk // 2)
    near, far = (StepModel(**build_step_time(s, spec).coefficients()).step_s(
        chunk, 0, 0, chunk * chunk // 2, **lone) for s in (one, two))
    nccl = (spec.nccl_allreduce_factor - 1) * one.model.layers * spec.tp_sync_us_per_layer \
        * 1e-6
    assert nccl == pytest.approx(0.9 * 80 * 8e-6)
    assert far - near == pytest.approx(chunk * (across - vectors / link) + nccl, rel=1e-6)
    assert far - near - nccl > 0.5e-3      # 50 GB/s per GPU against NVLink's 450: visible
    # a GB200 NVL72 rack's trays of 4 share the NVLink domain: no network between them,
    # only NCCL's all-reduces (two nodes to vLLM all the same)
    rack = _setup("Llama-3.3-70B", "GB200", 4, 2, weights_dtype="fp8", vllm_version="0.26.0")
    in_one = dataclasses.replace(rack, gpu=rack.gpu.model_copy(update={"node_gpus": 8}))
    assert (rack.servers, in_one.servers) == (2, 1)
    trays, tray = (build_step_time(s, spec).coefficients() for s in (rack, in_one))
    assert trays.pop("serial_s") - tray.pop("serial_s") == pytest.approx(nccl)
    assert trays == tray
    # from 0.27.0 each tensor-parallel group keeps the custom kernel within its server
    # (the nnodes rule is gone from vllm/config/parallel.py): only the hand-over differs
    now = {n: dataclasses.replace(s, engine=s.engine.model_copy(update={"vllm_version": "0.27.0"}))
           for n, s in (("one", one), ("two", two))}
    near_now, far_now = (StepModel(**build_step_time(s, spec).coefficients()).step_s(
        chunk, 0, 0, chunk * chunk // 2, **lone) for s in (now["one"], now["two"]))
    assert far_now - near_now == pytest.approx(chunk * (across - vectors / link), rel=1e-6)


@pytest.mark.parametrize(("model", "tp", "pp"), [("Llama-3.3-70B", 1, 4),
                                                 ("Qwen3-30B-A3B", 1, 2)])
def test_a_full_round_pipelines_pp_micro_batches(model: str, tp: int, pp: int) -> None:
    """D decodes split evenly over pp micro-batches: every sequence advances once in the
    time of one pass of a micro-batch of D / pp through the stages (a mixture of experts
    reads the experts its micro-batch's tokens touch), plus the hand-overs of its hidden
    states; so a round of decodes bound by the weight reads lasts about what one pass of
    all of them would (pipelining buys no bandwidth). The stages are not equally loaded:
    the last also reads the output head, and a full round waits for pp micro-batches on
    the busiest stage."""
    setup = _setup(model, "L40S", tp, pp, weights_dtype="fp8")
    spec = RooflineStepTime()
    step = build_step_time(setup, spec)
    staged = StepModel(**step.coefficients())
    whole = _whole_model(setup)
    # the busiest stage by hand: an even share of the layers (80 / 4, 48 / 2) and the head
    head_s = setup.model.vocab_size * setup.model.hidden_size * 2.0 / (
        setup.gpu.bandwidth_bytes_per_s * tp * spec.memory_efficiency)
    assert setup.model.layers % pp == 0
    assert step.stage_weights_s == pytest.approx((step.weights_s - head_s) / pp + head_s)
    decodes, context = 64 * pp, 64 * pp * 1500
    hand_over = 2 * setup.model.hidden_size * 2.0 / (setup.gpu.interconnect_gb_per_s * 1e9
                                                     * spec.allreduce_efficiency)
    expected = whole.step_s(0, decodes // pp, context // pp) \
        + (pp - 1) * (spec.tp_sync_us_per_layer * 1e-6 + hand_over * 64) \
        + pp * step.stage_weights_s - step.weights_s
    assert staged.step_s(0, decodes, context) == pytest.approx(expected, rel=2e-3)
    assert staged.step_s(0, decodes, context) < whole.step_s(0, decodes, context)


SCENARIO = """
name: pipeline-stages
seed: 4
duration: 120
traffic: {{kind: poisson, rate_per_s: {rate}}}
tasks:
  - name: chat
    prompt_tokens: {{kind: lognormal, mean: 1500, p95: 4000}}
    output_tokens: {{kind: lognormal, mean: 300, p95: 800}}
slo: {{ttft_ms: 3000, tpot_ms: 150, min_goodput_fraction: 0.9}}
deployments:
  tensor: {{gpu: L40S, model: Llama-3.3-70B, tp: 4, engine: {{weights_dtype: fp8}}}}
  stages: {{gpu: L40S, model: Llama-3.3-70B, pp: 4, engine: {{weights_dtype: fp8}}}}
"""


def test_on_pcie_cards_stages_trade_latency_for_throughput() -> None:
    """Four L40S without NVLink: tensor parallelism all-reduces every layer's output over
    PCIe, pipeline stages hand one hidden state over per stage. A lone request decodes
    faster over four GPUs' bandwidth at once (tp), a full server serves more requests
    with stages (pp): both ends of the trade, and the summary says which layout is which."""
    result = evaluate(load_scenario_text(textwrap.dedent(SCENARIO.format(rate=0.1)),
                                         base_dir=ROOT))
    tensor, staged = (result.deployments[n].local for n in ("tensor", "stages"))
    assert tensor is not None and staged is not None
    assert (tensor.gpus, staged.gpus, staged.pp, staged.tp) == (4, 4, 4, 1)
    low_tpot = {n: result.deployments[n].latency.tpot_ms.p50 for n in ("tensor", "stages")}
    assert low_tpot["tensor"] * 2 < low_tpot["stages"]
    assert staged.utilisation.full_batch_requests_per_s \
        > 1.3 * tensor.utilisation.full_batch_requests_per_s
    console = Console(width=140, record=True, color_system=None)
    console.print(summary_table(result))
    text = console.export_text()
    assert "4 x L40S (pp 4)" in text and "4 x L40S (tp 4)" in text
    # and the report's candidate table, which a tech lead reads
    page = render(result)
    assert "<th>serves with</th>" in page
    assert "<td>4 x L40S (pp 4)</td>" in page and "<td>4 x L40S (tp 4)</td>" in page


@pytest.mark.parametrize(("deployment", "where", "why"), [
    # a cache set by hand must fit next to every stage's own load, the last's sampler too
    ("{gpu: L40S, model: Qwen3-32B, pp: 2, engine: {kv_cache_memory_gib: 12.48}}",
     r"deployments\.bad\.engine\.kv_cache_memory_gib:",
     r"kv_cache_memory_gib 12.48 is more than L40S has left"),
    # what does not fit names the layout, and a layout of one server that holds it
    ("{gpu: L4, model: Llama-3.3-70B, pp: 4}", r"deployments\.bad:",
     r"does not fit on L4 with tp 1 x pp 4: .* expected tp 8 x pp 1 \(8 GPUs\)"),
    ("{gpu: L40S, model: Qwen3-32B, pp: 2, engine: {max_num_batched_tokens: 98304, "
     "max_num_seqs: 1024}}", r"deployments\.bad:", r"expected tp 1 x pp 3 \(3 GPUs\)"),
    # the sizes offered for tp keep each server's stages whole: tp 8 x pp 2 on two servers
    ("{gpu: H100-SXM, model: Llama-3.3-70B, tp: 3, pp: 2}", r"deployments\.bad\.tp:",
     "expected tp one of 1, 2, 4, 8 for"),
    ("{gpu: H100-SXM, model: Llama-3.3-70B, tp: 3, pp: 3}", r"deployments\.bad\.tp:",
     "expected tp one of 1, 2, 4, 8 for"),
    # before vLLM 0.11.1 stages stay in one server: only the sizes that fit one
    ("{gpu: H100-SXM, model: Llama-3.3-70B, tp: 3, pp: 3, engine: {vllm_version: '0.11.0'}}",
     r"deployments\.bad\.tp:", "expected tp one of 1, 2 for"),
    # no one-server layout holds DeepSeek-V3 on H100s: the fewest GPUs on two servers
    ("{gpu: H100-SXM, model: DeepSeek-V3, tp: 8, engine: {weights_dtype: fp8}}",
     r"deployments\.bad:", r"expected tp 8 x pp 2 \(16 GPUs, 2 servers\)"),
])
def test_what_does_not_fit_names_the_stages_and_what_would(deployment: str, where: str,
                                                           why: str) -> None:
    text = SCENARIO.format(rate=0.1).split("deployments:")[0] + \
        f"deployments:\n  bad: {deployment}\n"
    with pytest.raises(InputError, match=where) as err:
        load_scenario_text(textwrap.dedent(text), base_dir=ROOT)
    assert re.search(why, str(err.value).replace("\n", " "))


@pytest.mark.parametrize(("deployment", "why"), [
    # vLLM before 0.11.1 spans servers only through Ray, which the stack does not build
    ("{gpu: L40S, model: Llama-3.1-8B, tp: 4, pp: 4, engine: {vllm_version: '0.11.0'}}",
     r"tp 4 x pp 4 spans 2 L40S servers, and vLLM 0.11.0 .* expected vllm_version >= "
     r"0.11.1 or tp x pp <= 8"),
    ("{gpu: L40S, model: Qwen3-30B-A3B, tp: 2, pp: 2, engine: {expert_parallel: true, "
     "data_parallel_attention: true}}", "pp with engine.data_parallel_attention"),
    ("{gpu: L40S, model: Llama-3.1-8B, pp: 2, engine: {speculative: {method: ngram, "
     "num_speculative_tokens: 3, mean_acceptance_length: 2}}}", "pp with engine.speculative"),
    ("{gpu: L40S, model: Llama-3.1-8B, pp: 2, engine: {prefix_caching: per_slot}}",
     "llama.cpp's cache"),
    ("{gpu: L40S, model: Llama-3.1-8B, pp: 2, engine: {vllm_version: '0.11.0', "
     "async_scheduling: true}}", "Async scheduling is not supported with pipeline"),
])
def test_stages_vllm_or_the_stack_cannot_run_are_refused_at_pp(deployment: str,
                                                              why: str) -> None:
    text = SCENARIO.format(rate=0.1).split("deployments:")[0] + \
        f"deployments:\n  bad: {deployment}\n"
    with pytest.raises(InputError, match=r"deployments\.bad\.pp") as err:
        evaluate(load_scenario_text(textwrap.dedent(text), base_dir=ROOT))
    assert re.search(why, str(err.value).replace("\n", " "))


def test_a_heavy_micro_batch_holds_the_others_and_a_long_prompt_pipelines() -> None:
    """Each stage takes the micro-batches in turn, so a round with a prompt's chunk lasts
    at least that chunk's whole pass, decodes beside it or not. A prompt longer than one
    micro-batch's budget fills the round's micro-batches one stage apart (V1 schedules its
    next chunk while the last is in flight): the first chunk's pass and one stage of each
    other, not a pass each."""
    setup = _setup("Llama-3.3-70B", "L40S", 1, 4, weights_dtype="fp8",
                   max_num_batched_tokens=2048)
    staged = StepModel(**build_step_time(setup, RooflineStepTime()).coefficients())
    whole = _whole_model(setup)
    chunk, pairs = 2000, 2000 * 2000 // 2
    lone = dict(lone_tokens=chunk, lone_pairs=pairs)
    alone = staged.step_s(chunk, 0, 0, pairs, **lone)
    beside = staged.step_s(chunk, 16, 16 * 1500, pairs, **lone)
    assert alone == pytest.approx(whole.step_s(chunk, 0, 0, pairs), rel=0.02)
    assert alone <= beside < alone + whole.step_s(0, 16, 16 * 1500)
    # four budgets of one 8,192-token prompt in one round
    long, long_pairs = 8192, 8192 * 8193 // 2
    one_pass = whole.step_s(2048, 0, 0, 2048 * 2049 // 2)
    piped = staged.step_s(long, 0, 0, long_pairs, lone_tokens=long, lone_pairs=long_pairs)
    assert one_pass * 1.5 < piped < one_pass * 3.0     # about 1 + 3/4 passes, not 4
