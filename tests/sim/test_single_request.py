"""One request alone: exactly one prefill (or its chunks) plus n-1 decode steps."""

from __future__ import annotations

import dataclasses
import math

import pytest
from helpers import run_first, scenario_from

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.steptime import build_step_time, gemm_flops_per_s
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.scenario.models import LocalDeployment, SimulationMode
from llmplan.sim.metrics import summarise_run
from llmplan.sim.stepmodel import StepModel
from llmplan.sim.table import request_table

# Linear step model used below: 2 ms fixed, 10 us per prefill token, 100 us per decoding
# sequence, 50 ns per KV token read.
ONE_REQUEST = """
    seed: 1
    duration: 100
    traffic: {{kind: constant, rate_per_s: 0.001}}   # a single arrival at t = 0
    tasks:
      - name: only
        prompt_tokens: {{kind: fixed, tokens: {prompt}}}
        output_tokens: {{kind: fixed, tokens: {output}}}
    slo: {{ttft_ms: {ttft_slo}}}
    deployments:
      one:
        gpu: H100-SXM
        model: Llama-3.1-8B
        engine: {{max_num_batched_tokens: {budget}, max_num_seqs: 8}}
        step_time: {{kind: linear, fixed_ms: 2, per_prefill_token_us: 10,
                    per_decode_seq_us: 100, per_kv_token_ns: 50}}
"""


def _one(prompt: int, output: int, budget: int = 8192, ttft_slo: float = 1000.0,
         mode: str = "fast") -> dict[str, float | None]:
    loaded = scenario_from(ONE_REQUEST.format(prompt=prompt, output=output, budget=budget,
                                              ttft_slo=ttft_slo))
    run, stream = run_first(loaded, SimulationMode(mode))
    assert len(stream) == 1 and stream.arrival_s[0] == 0.0
    table = request_table(run, stream)
    summary = summarise_run(run, stream, loaded.scenario)
    return {"ttft": float(table.ttft_s[0]), "e2e": float(table.e2e_s[0]),
            "tpot": float(table.tpot_s[0]),
            "goodput": summary.slo.goodput_fraction}


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_prefill_then_n_minus_one_decode_steps(mode: str) -> None:
    got = _one(prompt=100, output=10, mode=mode)
    # prefill: 2 ms + 100 tokens x 10 us = 3 ms (nothing cached yet)
    assert got["ttft"] == pytest.approx(0.003, rel=1e-12)
    # decode step j = 1..9 reads 100 + j KV tokens: 2 ms + 0.1 ms + (100 + j) x 50 ns
    decode = 9 * 0.0021 + 50e-9 * (9 * 100 + 45)
    assert decode == pytest.approx(0.01894725)
    assert got["e2e"] == pytest.approx(0.003 + decode, rel=1e-12)
    assert got["tpot"] == pytest.approx(decode / 9, rel=1e-12)


def test_single_output_token_finishes_with_prefill() -> None:
    got = _one(prompt=50, output=1)
    assert got["ttft"] == pytest.approx(0.0025)
    assert got["e2e"] == got["ttft"]
    assert math.isnan(got["tpot"])


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_chunked_prefill_splits_prompt_by_token_budget(mode: str) -> None:
    got = _one(prompt=1000, output=2, budget=256, mode=mode)
    # chunks 256, 256, 256, 232; each also reads the KV of the chunks before it
    chunks = [(256, 0), (256, 256), (256, 512), (232, 768)]
    ttft = sum(0.002 + n * 10e-6 + kv * 50e-9 for n, kv in chunks)
    assert got["ttft"] == pytest.approx(ttft, rel=1e-12)
    # one decode step reading 1000 + 1 tokens
    assert got["e2e"] - got["ttft"] == pytest.approx(0.0021 + 1001 * 50e-9, rel=1e-9)


def test_goodput_counts_the_ttft_bound() -> None:
    assert _one(prompt=100, output=10, ttft_slo=2.9)["goodput"] == 0.0
    assert _one(prompt=100, output=10, ttft_slo=3.1)["goodput"] == 1.0


def test_roofline_single_request_matches_its_own_coefficients() -> None:
    loaded = scenario_from("""
        duration: 100
        traffic: {kind: constant, rate_per_s: 0.001}
        tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 512},
                 output_tokens: {kind: fixed, tokens: 128}}]
        deployments: {h100: {gpu: H100-SXM, model: Llama-3.1-8B}}
    """)
    run, stream = run_first(loaded)
    dep = loaded.scenario.deployments["h100"]
    step = StepModel(**build_step_time(dep.setup(loaded.catalog), dep.step_time).coefficients())
    table = request_table(run, stream)
    ttft = step.step_s(512, 0, 0, 512 * 513 // 2)
    decode = sum(step.step_s(0, 1, 512 + j) for j in range(1, 128))
    assert table.ttft_s[0] == pytest.approx(ttft, rel=1e-12)
    assert table.e2e_s[0] == pytest.approx(ttft + decode, rel=1e-12)
    # sanity of the roofline itself: an 8B model on an H100 decodes at batch 1 in 5-20 ms
    assert 0.005 < step.step_s(0, 1, 512) < 0.020


def test_moe_and_mla_layers_add_their_latency_once_per_step_whatever_the_batch() -> None:
    """DeepSeek-R1 (58 MoE layers, 61 MLA layers) pays moe_layer_us x 58 + mla_layer_us x
    61 per step on top of the roofline, at one sequence as at sixteen; a dense model none."""
    catalog = builtin_catalog()

    def steps(model: str, spec: RooflineStepTime) -> list[float]:
        setup = LocalDeployment(gpu="H200", model=model, tp=8,
                                engine=EngineSpec(weights_dtype="fp8")).setup(catalog)
        sm = StepModel(**build_step_time(setup, spec).coefficients())
        return [sm.step_s(0, d, d * 1500) for d in (1, 16)] + [sm.step_s(512, 0, 0)]

    on = RooflineStepTime(moe_layer_us=70.0, mla_layer_us=50.0, cpu_fixed_ms=0.0,
                          cpu_per_seq_us=0.0)
    off = on.model_copy(update={"moe_layer_us": 0.0, "mla_layer_us": 0.0})
    extra = (58 * 70.0 + 61 * 50.0) * 1e-6
    for with_terms, without in zip(steps("DeepSeek-R1", on), steps("DeepSeek-R1", off),
                                   strict=True):
        assert with_terms - without == pytest.approx(extra, rel=1e-9)
    assert steps("Llama-3.3-70B", on) == steps("Llama-3.3-70B", off)
    # a routed model without latent attention pays the MoE part only
    qwen = catalog.models["Qwen3-235B-A22B"]
    gap = [a - b for a, b in zip(steps("Qwen3-235B-A22B", on),
                                 steps("Qwen3-235B-A22B", off), strict=True)]
    assert gap == pytest.approx([qwen.moe_layer_count * 70e-6] * 3, rel=1e-9)



def test_mla_prefills_with_ordinary_attention_and_decodes_in_the_latent_space() -> None:
    """vLLM's MLA backends (v1/attention/backends/mla/common.py): a prefill up-projects the
    latents to per-head keys and values and runs ordinary attention, q.k over 128 + 64
    dims and values of 128 (320 per pair per head); a decode absorbs the up-projections
    and attends over the 512 + 64 latent (1,088). A GQA model's pairs cost the same in both."""
    catalog = builtin_catalog()

    def coefficients(model: str) -> tuple[float, float]:
        setup = LocalDeployment(gpu="H200", model=model, tp=8,
                                engine=EngineSpec(weights_dtype="fp8")).setup(catalog)
        step = build_step_time(setup, RooflineStepTime())
        return step.compute_per_prefill_pair_s, step.compute_per_pair_s

    prefill, decode = coefficients("DeepSeek-R1")
    assert prefill / decode == pytest.approx((2 * 128 + 64) / (2 * 512 + 64), rel=1e-12)
    prefill, decode = coefficients("Llama-3.3-70B")
    assert prefill == decode
    # in the step: a 4,000-token prompt's pairs at the prefill rate, a decode's at its own
    model = StepModel(compute_per_pair_s=2e-9, compute_per_prefill_pair_s=1e-9)
    assert model.step_s(4000, 0, 0, 4000 * 4001 // 2) == pytest.approx(4000 * 4001 // 2 * 1e-9)
    assert model.step_s(0, 1, 4000) == pytest.approx(4000 * 2e-9)


def test_mla_prefill_pads_its_values_to_the_query_key_width_outside_fa3_and_flashinfer() -> None:
    """vLLM 0.11.0's MLA prefill (mla/common.py `_pad_v`) pads DeepSeek's 128-wide values
    with zeros to the 192-wide q.k head for FlashAttention 2, the kernel it runs on every
    NVIDIA GPU but Hopper (FA3, both widths) and capability 10.0 (FlashInfer, both widths):
    a prefill pair costs 2 x 192 dims a head there, 128 + 64 + 128 elsewhere, against the
    decode's 512 + 64 + 512 over the latent on each."""
    catalog = builtin_catalog()

    def ratio(gpu: str) -> float:
        setup = LocalDeployment(gpu=gpu, model="DeepSeek-R1", tp=8,
                                engine=EngineSpec(weights_dtype="fp8")).setup(catalog)
        step = build_step_time(setup, RooflineStepTime())
        return step.compute_per_prefill_pair_s / step.compute_per_pair_s

    for gpu in ("RTX-PRO-6000", "A100-80GB", "L40S"):
        assert ratio(gpu) == pytest.approx((192 + 192) / (512 + 64 + 512), rel=1e-12), gpu
    for gpu in ("H200", "H100-SXM", "B200", "MI300X"):
        assert ratio(gpu) == pytest.approx((192 + 128) / (512 + 64 + 512), rel=1e-12), gpu


def test_a_gpu_whose_gemms_reach_less_of_their_peak_computes_slower_by_that_share() -> None:
    """The MI300X's measured GEMM share of peak is 0.65 (BF16) and 0.585 (FP8) of an H100's
    (catalog, SemiAnalysis 2024-12): its compute coefficients are the datasheet's times
    those shares, its memory and fixed terms untouched; a GPU without a measurement gets the
    H100's share."""
    catalog = builtin_catalog()
    spec = RooflineStepTime()
    mi300x = catalog.gpus["MI300X"]
    for weights, share, peak in (("fp8", 0.585, mi300x.fp8_dense_tflops),
                                 ("bf16", 0.65, mi300x.bf16_dense_tflops)):
        setup = LocalDeployment(gpu="MI300X", model="Llama-3.1-70B", tp=8,
                                engine=EngineSpec(weights_dtype=weights)).setup(catalog)
        got = build_step_time(setup, spec)
        # every token: the layers (no embeddings); sampled tokens: the 16-bit output head
        head = setup.model.vocab_size * setup.model.hidden_size
        params = setup.model.active_params_b * 1e9 - 2 * head
        assert peak is not None
        assert got.compute_per_token_s == pytest.approx(
            2 * params / (peak * 1e12 * 8 * spec.compute_efficiency * share), rel=1e-12)
        assert got.compute_per_sampled_s == pytest.approx(
            2 * head / (mi300x.bf16_dense_tflops * 1e12 * 8 * spec.compute_efficiency * 0.65),
            rel=1e-12)
        unmeasured = dataclasses.replace(
            setup, gpu=mi300x.model_copy(update={"gemm_efficiency_vs_h100": {}}))
        flat = build_step_time(unmeasured, spec)
        assert got.compute_per_token_s * share == pytest.approx(flat.compute_per_token_s,
                                                                rel=1e-12)
        assert got.compute_per_pair_s * 0.65 == pytest.approx(flat.compute_per_pair_s,
                                                              rel=1e-12)
        assert (got.weights_s, got.serial_s) == (flat.weights_s, flat.serial_s)
    assert catalog.gpus["MI355X"].gemm_efficiency("fp8") == 1.0   # not measured: as an H100
    assert mi300x.gemm_efficiency("mxfp4") == 0.65    # no FP4 cores: the BF16 kernels'
    # the B200's FP4 tensor cores reach a smaller share of their peak than its BF16 ones:
    # only the 4-bit formats' GEMMs are derated, and not on a GPU that dequantises them
    b200 = catalog.gpus["B200"]
    assert b200.gemm_efficiency("nvfp4") == b200.gemm_efficiency("mxfp4") == 0.69
    assert b200.gemm_efficiency("fp8") == b200.gemm_efficiency("bf16") == 1.0
    assert catalog.gpus["H100-SXM"].gemm_efficiency("nvfp4") == 1.0
    setup = LocalDeployment(gpu="B200", model="Llama-3.3-70B", tp=1,
                            engine=EngineSpec(weights_dtype="nvfp4")).setup(catalog)
    params = (setup.model.active_params_b * 1e9
              - 2 * setup.model.vocab_size * setup.model.hidden_size)
    assert build_step_time(setup, spec).compute_per_token_s == pytest.approx(
        2 * params / (9000e12 * spec.compute_efficiency * 0.69), rel=1e-12)


def test_a_routed_token_costs_its_expert_slice_plus_a_fixed_slot() -> None:
    """Qwen3-30B-A3B: 8 of 128 experts of width 768 in each of 48 layers. Per token the
    routed GEMMs cost 6 x hidden x (width on this GPU + slot overhead) FLOPs per expert
    slot: on one GPU 768 + 1,700 columns' worth; at tp=4 each GPU's slice is 192 columns
    and pays the whole slot overhead (four times the overhead over the replica). vLLM's
    expert parallelism (one data-parallel rank) keeps every token on every GPU, which sorts
    every slot and writes zeros for the others' experts: the same overhead. It runs at the
    16-bit rate whatever the weights' format; a dense model pays nothing extra."""
    catalog = builtin_catalog()
    spec = RooflineStepTime()
    overhead = spec.expert_slot_overhead_width

    def per_token(tp: int, ep: bool, model: str = "Qwen3-30B-A3B",
                  step: RooflineStepTime = spec, weights: str | None = None) -> float:
        setup = LocalDeployment(gpu="H100-SXM", model=model, tp=tp,
                                engine=EngineSpec(expert_parallel=ep,
                                                  weights_dtype=weights)).setup(catalog)
        return build_step_time(setup, step).compute_per_token_s

    model = catalog.models["Qwen3-30B-A3B"]
    assert catalog.gpus["H100-SXM"].bf16_dense_tflops == pytest.approx(989.4, rel=1e-3)
    hidden, width = model.hidden_size, model.moe_intermediate_size
    assert (hidden, width, model.experts_per_token, model.moe_layer_count) == (2048, 768, 8, 48)
    no_overhead = RooflineStepTime(expert_slot_overhead_width=0.0)
    peak = catalog.gpus["H100-SXM"].bf16_dense_tflops * 1e12 * spec.compute_efficiency
    extra_one = 48 * 8 * 6 * hidden * overhead / peak
    assert per_token(1, False) - per_token(1, False, step=no_overhead) == pytest.approx(
        extra_one, rel=1e-9)
    # four GPUs: the GEMMs split four ways, each GPU's slot overhead does not
    assert per_token(4, False) - per_token(4, False, step=no_overhead) == pytest.approx(
        extra_one, rel=1e-9)
    assert per_token(4, True) == pytest.approx(per_token(4, False), rel=1e-12)
    # (but for the routers, which every GPU multiplies whole: 128 x 2,048 a layer)
    routers = 2.0 * 48 * 128 * hidden * 3 / (4 * peak)
    assert per_token(4, False, step=no_overhead) == pytest.approx(
        per_token(1, False, step=no_overhead) / 4 + routers, rel=1e-9)
    # at tp=4 the slot costs 1,700 / 192 of the routed GEMMs of the GPU's 192-column slice
    routed_four = 48 * 8 * 6 * hidden * (width / 4) / peak
    assert routed_four < per_token(4, False, step=no_overhead) < 2 * routed_four
    assert per_token(1, False, "Llama-3.1-8B") == per_token(1, False, "Llama-3.1-8B",
                                                            no_overhead)
    # FP8 experts halve the GEMMs' time, not the slot's: it moves 16-bit hidden vectors
    fp8 = per_token(1, False, weights="fp8") - per_token(1, False, step=no_overhead,
                                                          weights="fp8")
    assert fp8 == pytest.approx(extra_one, rel=1e-9)


def test_a_tied_head_is_read_every_step_and_computed_for_sampled_tokens() -> None:
    """Gemma-3-12B ties its output head to its input embedding: the one 262k x 3840 matrix
    is looked up for every token and multiplied for every sampled one, so every step reads
    it (an untied model's input table is only looked up); its vision tower, loaded, runs
    only on images. Per token the layers cost their parameters but the embeddings; the
    head, in 16-bit, only on sampled tokens."""
    catalog = builtin_catalog()
    spec = RooflineStepTime(compute_efficiency=1.0, memory_efficiency=1.0)
    gpu = catalog.gpus["H100-SXM"]
    for name, tied in (("Gemma-3-12B", True), ("Qwen3-8B", False)):
        model = catalog.models[name]
        assert model.tie_word_embeddings is tied
        setup = LocalDeployment(gpu="H100-SXM", model=name).setup(catalog)
        got = build_step_time(setup, spec)
        head = model.vocab_size * model.hidden_size
        read = model.weight_bytes(setup.weights_dtype) - (0 if tied else 2 * head) \
            - model.vision_params_b * 1e9 * 2
        assert (model.vision_params_b > 0) is tied       # Gemma 3 holds a vision tower
        assert got.weights_s == pytest.approx(read / gpu.bandwidth_bytes_per_s, rel=1e-12)
        peak = gpu.flops_per_s("bf16")
        assert got.compute_per_sampled_s == pytest.approx(2 * head / peak, rel=1e-12)
        # the layers, counted from the architecture: attention projections and the MLP
        # (not Gemma 3's vision tower, which its catalog total also holds)
        attention = model.hidden_size * model.head_dim * 2 * (model.attention_heads
                                                             + model.kv_heads)
        layers = model.layers * (attention + 3 * model.hidden_size * model.intermediate_size)
        assert got.compute_per_token_s == pytest.approx(2 * layers / peak, rel=0.01)


TWO_TURNS_OF_A_PREFIX = """
    seed: 1
    duration: 20
    traffic: {kind: constant, rate_per_s: 0.1}   # arrivals at 0 and 10 s: never together
    tasks:
      - name: only
        prompt_tokens: {kind: fixed, tokens: 20}
        output_tokens: {kind: fixed, tokens: 2}
        shared_prefix: {groups: 1, tokens: {kind: fixed, tokens: 100}}
    deployments:
      one:
        gpu: H100-SXM
        model: Llama-3.1-8B
        engine: {max_num_seqs: 4, prefix_caching: per_slot}
        step_time: {kind: linear, fixed_ms: 2, per_prefill_token_us: 10,
                    per_decode_seq_us: 100, per_kv_token_ns: 50, per_prefill_pair_ns: 30}
"""


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_a_prefix_hit_pays_for_its_new_tokens_attention_over_the_prefix(mode: str) -> None:
    loaded = scenario_from(TWO_TURNS_OF_A_PREFIX)
    run, stream = run_first(loaded, SimulationMode(mode))
    table = request_table(run, stream)
    prompt = int(stream.prompt_tokens[0])
    assert len(stream) == 2 and prompt == int(stream.prompt_tokens[1])
    # cold: every prompt token computed, each attending to those before it
    cold = 0.002 + prompt * 10e-6 + prompt * (prompt + 1) // 2 * 30e-9
    assert table.ttft_s[0] == pytest.approx(cold, rel=1e-9)
    # the second finds the 100-token prefix in its slot: n new tokens attend to it and to
    # each other, and the step reads the 100 cached tokens once (K)
    hit = int(run.records.cached_tokens[1])
    n = prompt - hit
    assert hit == 100
    warm = 0.002 + n * 10e-6 + (n * hit + n * (n + 1) // 2) * 30e-9 + hit * 50e-9
    assert table.ttft_s[1] == pytest.approx(warm, rel=1e-9)


def test_mla_up_projects_a_prefill_chunks_cached_context_in_every_layer() -> None:
    """vLLM 0.11.0's MLA prefill (`_compute_prefill_context`, mla/common.py) rebuilds the
    keys and values of every context token a chunk attends to, in every layer: it gathers
    the 512 + 64 latent into a 16-bit workspace on each GPU, runs kv_b_proj (2 x 512 x
    128 heads x (128 + 128) FLOPs, at the FP8 GEMM rate of the other dense layers), and
    concatenates 128 nope dims with the 64 rope dims into 192-wide keys. DeepSeek-R1 on
    eight H200s, worked from the datasheet: 33.6 MFLOP and 100 kB a token and layer."""
    catalog = builtin_catalog()
    spec = RooflineStepTime()

    def coefficient(gpu: str, model: str = "DeepSeek-R1") -> float:
        setup = LocalDeployment(gpu=gpu, model=model, tp=8,
                                engine=EngineSpec(weights_dtype="fp8")).setup(catalog)
        return build_step_time(setup, spec).upproject_per_context_token_s

    h200 = catalog.gpus["H200"]
    assert h200.fp8_dense_tflops is not None
    flops = h200.fp8_dense_tflops * 1e12 * 8 * spec.compute_efficiency \
        * h200.gemm_efficiency("fp8")
    bandwidth = h200.bandwidth_bytes_per_s * 8 * spec.memory_efficiency
    gemm = max(2 * 512 * 128 * 256 / flops, (512 * 2 * 8 + 128 * 256 * 2) / bandwidth)
    gather = (576 * 2 + 576 * 2) * 8      # 16-bit cache read, 16-bit workspace written
    cat = 128 * (128 + 192) * 2           # nope keys read, 192-wide keys written
    per_token = 61 * (gemm + (gather + cat) / bandwidth)
    assert coefficient("H200") == pytest.approx(per_token, rel=1e-12)
    assert 4e-7 < per_token < 5e-7        # 0.45 us a context token: 13 ms for 30,000
    # FlashAttention 2 (A100) pads the 128 values to 192 too (128 read, 192 written); the
    # GEMM at the rate FP8 weights run at there (Marlin: no FP8 tensor cores)
    setup = LocalDeployment(gpu="A100-80GB", model="DeepSeek-R1", tp=8,
                            engine=EngineSpec(weights_dtype="fp8")).setup(catalog)
    flops = gemm_flops_per_s(setup, spec, experts=False)
    bandwidth = catalog.gpus["A100-80GB"].bandwidth_bytes_per_s * 8 * spec.memory_efficiency
    gemm = max(2 * 512 * 128 * 256 / flops, (512 * 2 * 8 + 128 * 256 * 2) / bandwidth)
    pad = 128 * (128 + 192) * 2
    assert coefficient("A100-80GB") == pytest.approx(
        61 * (gemm + (gather + cat + pad) / bandwidth), rel=1e-12)
    # other attention keeps every chunk's keys and values: nothing to rebuild
    assert coefficient("H200", "Llama-3.3-70B") == 0.0


MLA_TURN_AFTER_A_LONG_PREFIX = """
    seed: 1
    duration: 20
    traffic: {kind: constant, rate_per_s: 0.1}   # arrivals at 0 and 10 s: never together
    tasks:
      - name: turn
        prompt_tokens: {kind: fixed, tokens: 500}
        output_tokens: {kind: fixed, tokens: 2}
        shared_prefix: {groups: 1, tokens: {kind: fixed, tokens: 30000}}
    deployments:
      r1:
        gpu: H200
        model: DeepSeek-R1
        tp: 8
        engine: {max_num_batched_tokens: 8192, max_num_seqs: 8}
"""


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_a_500_token_turn_after_a_cached_30000_token_prefix_pays_its_up_projection(
        mode: str) -> None:
    """The second turn finds the prefix's full 16-token blocks cached (all 30,000 tokens:
    vLLM 0.33.0 keeps --block-size 16 for MLA) and prefills 500 in one step, whose MLA
    layers up-project all 30,000 cached tokens; the
    first turn's 30,500 tokens go in 8,192-token chunks, each up-projecting the chunks
    before it. TTFTs against the step model, with the up-projection worked on paper in
    the test above (0.45 us a context token): about 13 ms of an 81 ms step."""
    loaded = scenario_from(MLA_TURN_AFTER_A_LONG_PREFIX)
    run, stream = run_first(loaded, SimulationMode(mode))
    table = request_table(run, stream)
    dep = loaded.scenario.deployments["r1"]
    coefficients = build_step_time(dep.setup(loaded.catalog), dep.step_time).coefficients()
    step = StepModel(**coefficients)
    without = StepModel(**{**coefficients, "upproject_per_context_token_s": 0.0})
    per_token = coefficients["upproject_per_context_token_s"]
    assert list(stream.prompt_tokens) == [30500, 30500]

    def pairs(chunk: int, context: int) -> int:
        return chunk * context + chunk * (chunk + 1) // 2

    # first turn: chunks of 8,192, each attending to (and up-projecting) those before it
    starts = [0, 8192, 16384, 24576]
    chunks = [8192, 8192, 8192, 30500 - 24576]
    cold = sum(step.step_s(n, 0, done, pairs(n, done), context_tokens=done)
               for n, done in zip(chunks, starts, strict=True))
    cold_without = sum(without.step_s(n, 0, done, pairs(n, done))
                       for n, done in zip(chunks, starts, strict=True))
    assert table.ttft_s[0] == pytest.approx(cold, rel=1e-9)
    assert cold - cold_without == pytest.approx(per_token * sum(starts), rel=1e-9)
    # second turn: one step of 500 new tokens over the 30,000 cached ones
    hit = int(run.records.cached_tokens[1])
    assert hit == 30000 // 16 * 16
    n = 30500 - hit
    warm = step.step_s(n, 0, hit, pairs(n, hit), context_tokens=hit)
    assert table.ttft_s[1] == pytest.approx(warm, rel=1e-9)
    extra = warm - without.step_s(n, 0, hit, pairs(n, hit))
    assert extra == pytest.approx(hit * per_token, rel=1e-9)
    assert 0.10 < extra / warm < 0.25
