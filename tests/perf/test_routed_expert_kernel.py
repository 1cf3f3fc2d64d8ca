"""The routed experts' charge against a kernel measured at DeepSeek-R1's tp-8 shape on an H200
(FIDELITY.md, DeepSeek-R1 under vLLM, "Kernel measurements at this shape bracket the decode
charge"). datacrunch-research/blogs, deepseek-sglang-optimiz/fused-moe-performance.csv
(April 2025): SGLang v0.4.3.post2's benchmark_vllm_vs_sglang_fused_moe_triton.py on one H200,
DeepSeek-V3 at tp 8 (256 experts, top 8, hidden 7,168, 256 columns of each expert, block
FP8 128 x 128), the whole fused_moe call (top-k, sort, both grouped GEMMs, activation,
quantisation, sum) on uniformly random gating, SGLang's tuned Triton kernel and vLLM's of
the day; milliseconds at a few of its 512 token counts."""

from __future__ import annotations

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.steptime import gemm_flops_per_s, roofline
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.scenario.models import LocalDeployment

#: tokens: (SGLang's tuned fused_moe ms, vLLM's fused_moe ms), read from the CSV
FUSED_MOE_H200_DSV3_TP8_MS = {
    64: (0.376496, 0.537824),
    128: (0.385152, 0.571936),
    256: (0.415616, 0.679504),
    384: (0.429456, 0.827328),
    512: (0.507840, 1.012992),
}


def test_a_deepseek_moe_layer_is_charged_between_the_two_measured_kernels() -> None:
    """A MoE layer of DeepSeek-R1 on eight H200s (vLLM 0.11.0, Triton's fused_moe with a
    tuned H200 configuration) at decode-sized steps: the roofline's routed part, the larger
    of the experts' GEMMs plus their slot cost and the reads of the experts the tokens touch
    (1 - (1 - k/E)^M of them, as stepmodel.py), plus the MoE layer's short-kernel floor,
    lies between the two kernels measured at this shape. So the kernel data do not show
    the decode-side slot charge too low (nor too high: it is above the faster kernel). They
    stop at 512 tokens, 16 slots an expert; an 8,192-token prefill chunk (256 an expert)
    is outside them."""
    spec = RooflineStepTime()
    setup = LocalDeployment(gpu="H200", model="DeepSeek-R1", tp=8,
                            engine=EngineSpec(weights_dtype="fp8", vllm_version="0.11.0"),
                            step_time=spec).setup(builtin_catalog())
    model = setup.model
    assert (model.experts, model.experts_per_token, model.hidden_size) == (256, 8, 7168)
    layers = model.moe_layer_count
    step = roofline(setup, spec)
    without_slots = roofline(setup, spec.model_copy(update={"expert_slot_overhead_width": 0.0}))
    slot_per_token_s = (step.compute_per_token_s - without_slots.compute_per_token_s) / layers
    gemm_per_token_s = 2.0 * model.routed_active_params \
        / gemm_flops_per_s(setup, spec, experts=True) / layers
    untouched = 1.0 - model.experts_per_token / model.experts
    for tokens, (sglang_ms, vllm_ms) in FUSED_MOE_H200_DSV3_TP8_MS.items():
        compute_s = tokens * (gemm_per_token_s + slot_per_token_s)
        read_s = step.experts_s / layers * (1.0 - untouched ** tokens)
        charged_ms = (max(compute_s, read_s) + spec.moe_layer_us * 1e-6) * 1e3
        assert sglang_ms < charged_ms < vllm_ms, (tokens, sglang_ms, charged_ms, vllm_ms)

