"""Step time of one continuous-batching iteration.

    step_s = fixed_s + per_prefill_token_s * P + per_decode_seq_s * D + per_kv_token_s * K

P prefill tokens computed this step, D sequences decoding one token each, K KV-cache tokens
read by attention. The simulator relies on the time being affine in K for a fixed (P, D):
that is what lets it jump over many decode steps in closed form. Every model is turned into
these four coefficients by a builder registered in STEP_TIME_BUILDERS, keyed by the
`step_time.kind` of the scenario; a calibrated model is just another builder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmplan.catalog.catalog import DTYPE_BYTES
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.steptime_spec import (
    CalibratedStepTime,
    LinearStepTime,
    RooflineStepTime,
    StepTimeSpec,
)


@dataclass(frozen=True)
class StepTime:
    """Coefficients of the affine step-time model (seconds)."""

    fixed_s: float
    per_prefill_token_s: float
    per_decode_seq_s: float
    per_kv_token_s: float
    source: str = "roofline"
    client_overhead_s: float = 0.0   # HTTP, tokenisation, queueing outside the engine

    def step_s(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int) -> float:
        return (self.fixed_s + self.per_prefill_token_s * prefill_tokens
                + self.per_decode_seq_s * decode_seqs + self.per_kv_token_s * kv_tokens)



def roofline(setup: ReplicaSetup, spec: RooflineStepTime) -> StepTime:
    """Datasheet peaks times achievable fractions.

    Prefill is compute bound: 2 x active params FLOPs per token. Decode reads the weights
    once per step (memory bound, in fixed_s since every step reads them) plus each running
    sequence's KV bytes, and spends 2 x active params FLOPs per sequence.
    """
    gpu, model, tp = setup.gpu, setup.model, setup.tp
    weights_dtype, kv_dtype = setup.weights_dtype, setup.kv_dtype
    flops = gpu.bf16_dense_tflops * 1e12 * tp
    bandwidth = gpu.bandwidth_bytes_per_s * tp
    # FP8 weights run on FP8 tensor cores at twice the BF16 rate where the GPU has them
    # (Hopper, Ada); elsewhere (Ampere) they only halve the bytes read.
    low_precision = DTYPE_BYTES[weights_dtype] <= 1.0
    compute_speedup = (2.0 if gpu.fp8_dense_tflops else spec.dequant_efficiency) \
        if low_precision else 1.0
    flops_per_token = 2.0 * model.active_params_b * 1e9
    sync_s = model.layers * spec.tp_sync_us_per_layer * 1e-6 if tp > 1 else 0.0
    # tensor parallel: 2 all-reduces per layer of one hidden vector (bf16) per token;
    # a ring all-reduce moves 2 (tp-1)/tp of it through each GPU's links
    comm_s_per_token = (2 * model.layers * model.hidden_size * 2.0 * 2 * (tp - 1) / tp
                        / (spec.allreduce_gb_per_s * 1e9)) if tp > 1 else 0.0
    return StepTime(
        fixed_s=spec.cpu_fixed_ms * 1e-3 + sync_s
        + model.weight_bytes(weights_dtype) / (bandwidth * spec.decode_mbu),
        per_prefill_token_s=flops_per_token / (flops * compute_speedup * spec.prefill_mfu)
        + comm_s_per_token,
        per_decode_seq_s=flops_per_token / (flops * compute_speedup * spec.decode_mfu)
        + comm_s_per_token + spec.cpu_per_seq_us * 1e-6,
        per_kv_token_s=model.kv_bytes_per_token(kv_dtype) / (bandwidth * spec.decode_mbu),
        source="roofline",
    )


def linear(setup: ReplicaSetup, spec: LinearStepTime) -> StepTime:
    """Coefficients given directly (or fitted by `llmplan calibrate`)."""
    return StepTime(spec.fixed_ms * 1e-3, spec.per_prefill_token_us * 1e-6,
                    spec.per_decode_seq_us * 1e-6, spec.per_kv_token_ns * 1e-9, source="linear")


def calibrated(setup: ReplicaSetup, spec: CalibratedStepTime) -> StepTime:
    """Coefficients measured on a real server by `llmplan calibrate`."""
    assert spec.calibration is not None  # loaded when the scenario was validated
    fitted = linear(setup, spec.calibration.step_time)
    return StepTime(fitted.fixed_s, fitted.per_prefill_token_s, fitted.per_decode_seq_s,
                    fitted.per_kv_token_s, source=f"calibrated: {spec.resolved_path or spec.file}",
                    client_overhead_s=spec.calibration.client_overhead_ms * 1e-3)


STEP_TIME_BUILDERS: dict[str, Callable[..., StepTime]] = {
    "roofline": roofline,
    "linear": linear,
    "calibrated": calibrated,
}


def build_step_time(setup: ReplicaSetup, spec: StepTimeSpec) -> StepTime:
    """The step-time model a deployment asks for."""
    return STEP_TIME_BUILDERS[spec.kind](setup, spec)
