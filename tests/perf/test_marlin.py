"""Formats a GPU has no tensor cores for run vLLM's dequantising kernels, at the rate those
kernels reach on that GPU.

vLLM runs a mixture of experts' W4A16 experts through fused Marlin MoE on every NVIDIA GPU
(and gpt-oss's MXFP4 experts on Hopper until 0.12.0 vendored triton_kernels), and dense
INT4 layers through Machete on Hopper, Marlin elsewhere (read in vLLM 0.11.0). Marlin's
Ampere-style mma.sync GEMMs do about the same work per SM and clock on every generation,
so on Hopper they reach 0.61 of the BF16 GEMM (humming's benchmark, H100 and H200) where
A100-class cards reach about 0.9 (the roofline's dequant_efficiency 0.84 stands for
those)."""

from __future__ import annotations

import pytest

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.steptime import build_step_time, gemm_flops_per_s
from llmplan.perf.steptime_spec import RooflineStepTime

CATALOG = builtin_catalog()
SPEC = RooflineStepTime()


def _setup(gpu: str, model: str, weights: str, tp: int = 1,
           vllm: str = "0.11.0") -> ReplicaSetup:
    return ReplicaSetup(gpu_name=gpu, model_name=model, gpu=CATALOG.gpus[gpu],
                        model=CATALOG.models[model],
                        engine=EngineSpec(weights_dtype=weights, vllm_version=vllm), tp=tp)


def _bf16_gemm(gpu: str) -> float:
    """The GPU's BF16 GEMM rate: its peak x the roofline's H100 share x its own measured
    share over the H100's (an A100's 1.08)."""
    spec = CATALOG.gpus[gpu]
    return spec.bf16_dense_tflops * 1e12 * SPEC.compute_efficiency * spec.gemm_efficiency("bf16")


@pytest.mark.parametrize(("gpu", "model", "weights", "dense_share", "expert_share"), [
    # Hopper: Machete for dense layers, Marlin for the experts
    ("H100-SXM", "Qwen3-30B-A3B", "int4", SPEC.dequant_efficiency, 0.61),
    ("H200", "Qwen3-30B-A3B", "int4", SPEC.dequant_efficiency, 0.61),
    # gpt-oss quantises only its experts: attention runs at the BF16 rate
    ("H100-SXM", "gpt-oss-20b", "mxfp4", 1.0, 0.61),
    # NVFP4 on Hopper: Marlin's FP4 kernels for the dense layers too (no Machete)
    ("H100-SXM", "Qwen3-8B", "nvfp4", 0.61, 0.61),
    # Blackwell: no Machete, Marlin for both (from a B300's measured absolute rate)
    ("B200", "Qwen3-30B-A3B", "int4", 0.27, 0.27),
    # A100: no figure in the catalog, the roofline's
    ("A100-80GB", "Qwen3-30B-A3B", "int4", SPEC.dequant_efficiency, SPEC.dequant_efficiency),
    ("A100-80GB", "gpt-oss-120b", "mxfp4", 1.0, SPEC.dequant_efficiency),
])
def test_dequantising_kernels_run_at_their_share_of_the_bf16_gemm(
        gpu: str, model: str, weights: str, dense_share: float, expert_share: float) -> None:
    setup = _setup(gpu, model, weights)
    assert gemm_flops_per_s(setup, SPEC, experts=False) == pytest.approx(
        _bf16_gemm(gpu) * dense_share)
    assert gemm_flops_per_s(setup, SPEC, experts=True) == pytest.approx(
        _bf16_gemm(gpu) * expert_share)


def test_mxfp4_experts_on_hopper_leave_marlin_when_vllm_ships_triton_kernels() -> None:
    """From 0.12.0 vLLM's wheel carries triton_kernels, and get_mxfp4_backend runs MXFP4
    experts on Hopper through its Triton matmul: no Marlin share (dequant_efficiency)."""
    for version, share in (("0.11.2", 0.61), ("0.12.0", SPEC.dequant_efficiency),
                           ("0.33.0", SPEC.dequant_efficiency)):
        setup = _setup("H100-SXM", "gpt-oss-120b", "mxfp4", vllm=version)
        assert gemm_flops_per_s(setup, SPEC, experts=True) == pytest.approx(
            _bf16_gemm("H100-SXM") * share), version
    # INT4 experts stay on fused Marlin MoE
    later = _setup("H100-SXM", "Qwen3-30B-A3B", "int4", vllm="0.33.0")
    assert gemm_flops_per_s(later, SPEC, experts=True) == pytest.approx(
        _bf16_gemm("H100-SXM") * 0.61)


def test_tensor_cores_for_the_format_need_no_dequantising_kernel() -> None:
    """MXFP4 weights and activations (AMD Quark's W4A4, here DeepSeek-R1's) on a B200 and
    FP8 on an H100 run on their tensor cores: Marlin's share does not apply."""
    b200 = _setup("B200", "DeepSeek-R1", "mxfp4", tp=8)
    gpu = CATALOG.gpus["B200"]
    assert gemm_flops_per_s(b200, SPEC, experts=True) == pytest.approx(
        8 * gpu.flops_per_s("mxfp4") * SPEC.compute_efficiency * gpu.gemm_efficiency("mxfp4"))
    h100 = _setup("H100-SXM", "Qwen3-30B-A3B", "fp8")
    assert gemm_flops_per_s(h100, SPEC, experts=True) == pytest.approx(
        1978.9e12 * SPEC.compute_efficiency)


@pytest.mark.parametrize("gpu", ["B200", "RTX-PRO-6000", "MI355X"])
def test_gpt_oss_experts_multiply_16_bit_activations_even_with_fp4_tensor_cores(
        gpu: str) -> None:
    """gpt-oss's checkpoint quantises the experts' weights alone: vLLM's default backends
    for it multiply BF16 activations (FlashInfer's MXFP4 x BF16 MoE on a B200, Marlin on
    RTX Blackwell, AITER's W4A16 on ROCm), at the 16-bit rate, 4.4-8x below the FP4 one
    the tensor cores would give W4A4 weights."""
    setup = _setup(gpu, "gpt-oss-120b", "mxfp4", vllm="0.33.0")
    spec = CATALOG.gpus[gpu]
    assert spec.fp4_dense_tflops is not None
    rate = gemm_flops_per_s(setup, SPEC, experts=True)
    assert rate == pytest.approx(_bf16_gemm(gpu) * SPEC.dequant_efficiency)
    assert rate < spec.fp4_dense_tflops * 1e12 * SPEC.compute_efficiency / 4
    # and MFU divides by the peak of the tensor cores they run on
    assert gemm_flops_per_s(setup, SPEC, experts=True, datasheet=True) == pytest.approx(
        spec.bf16_dense_tflops * 1e12 * SPEC.compute_efficiency)


@pytest.mark.parametrize(("gpu", "tops"), [("A100-80GB", 624), ("A10G", 140),
                                           ("RTX-4090", 660.6), ("H100-SXM", 1978.9)])
def test_int8_weights_and_activations_run_on_int8_tensor_cores(gpu: str, tops: float) -> None:
    """W8A8 INT8 runs CUTLASS's INT8 GEMMs from capability 7.5: on Ampere, which has no FP8,
    at twice the BF16 rate rather than dequantised below it; on GeForce Ada at full rate
    where FP8 (FP32 accumulation) runs at half; on Hopper at the FP8 rate."""
    setup = _setup(gpu, "Llama-3.1-8B", "int8")
    rate = gemm_flops_per_s(setup, SPEC, experts=False)
    assert gemm_flops_per_s(setup, SPEC, experts=False, datasheet=True) == pytest.approx(
        tops * 1e12 * SPEC.compute_efficiency)
    assert rate > 1.8 * gemm_flops_per_s(_setup(gpu, "Llama-3.1-8B", "bf16"), SPEC,
                                         experts=False)


def test_fused_marlin_moe_on_hopper_reaches_what_was_measured() -> None:
    """A check the catalog's figure was not set from: vLLM's fused_marlin_moe on Mixtral
    INT4 at 4,096-32,768 tokens ran 291-296 TFLOP/s of routed GEMMs on a 989-TFLOP/s Hopper
    (flagos-ai/FlagGems#4350's baseline). On paper a token's slot in an expert costs its
    three GEMMs, 6 x 4,096 x 14,336 FLOPs at Marlin's rate, and the slot overhead, 6 x
    4,096 x 1,700 at the BF16 rate: 309 TFLOP/s of routed GEMMs, within 6%. The A100's
    share (0.84) would have given 428."""
    setup = _setup("H100-SXM", "Mixtral-8x7B", "int4")
    step = build_step_time(setup, SPEC)
    model = setup.model
    dense_s = 2.0 * (12_879_925_248 - model.vocab_size * model.hidden_size
                     - model.routed_active_params) / gemm_flops_per_s(setup, SPEC, False)
    routed_s = step.compute_per_token_s - dense_s
    routed_flops = 2.0 * model.routed_active_params
    achieved = routed_flops / routed_s
    assert achieved == pytest.approx(309e12, rel=0.01)
    assert 291e12 * 0.94 < achieved < 296e12 * 1.06
