"""Speculative decoding on MLA models: releases whose MLA backend runs a verify request of
1 + k tokens down the prefill path (reorder_batch_threshold 1, vLLM 0.11.0's
MLACommonMetadataBuilder) up-project every decoding sequence's context every step."""

from __future__ import annotations

import dataclasses

import pytest

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.steptime import build_step_time, gemm_flops_per_s, mla_verifies_as_prefill
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.scenario.models import LocalDeployment
from llmplan.sim.stepmodel import StepModel

MTP = {"method": "mtp", "num_speculative_tokens": 1, "mean_acceptance_length": 1.8}


def _setup(version: str, gpu: str = "H200", model: str = "DeepSeek-R1",
           speculative: dict[str, object] | None = MTP, block: int = 16):
    engine = EngineSpec(vllm_version=version, weights_dtype="fp8", speculative=speculative,
                        block_size_tokens=block)
    return LocalDeployment(gpu=gpu, model=model, tp=8, engine=engine).setup(builtin_catalog())


@pytest.mark.parametrize(("gpu", "version", "expected"), [
    ("H200", "0.11.0", True),        # FlashMLA at reorder_batch_threshold 1
    ("H200", "0.11.1", False),       # FlashMLA's query_len_support UNIFORM
    ("H100-SXM", "0.11.0", True),
    ("B200", "0.14.1", True),        # CUTLASS MLA, SINGLE_ONLY, still the default
    ("B200", "0.15.0", False),       # FlashInfer MLA (UNIFORM) ahead of it
    ("A100-80GB", "0.30.0", True),   # Triton MLA, SINGLE_ONLY
    ("A100-80GB", "0.31.0", False),  # Triton MLA UNIFORM
    ("MI300X", "0.30.0", True),      # ROCm's default MLA backend is Triton's too
])
def test_which_releases_verify_as_prefill_by_gpu(gpu: str, version: str,
                                                 expected: bool) -> None:
    assert mla_verifies_as_prefill(_setup(version, gpu)) is expected


@pytest.mark.parametrize(("version", "block", "expected"), [
    ("0.17.1", 16, False),   # 16 forced to 64: FlashInfer MLA
    ("0.18.0", 16, True),    # 16 kept: only Triton MLA takes it, SINGLE_ONLY
    ("0.18.0", 32, False),   # FlashInfer MLA takes 32
    ("0.30.0", 16, True),
    ("0.31.0", 16, False),   # Triton MLA UNIFORM
    ("0.33.0", 64, False),
])
def test_blackwell_backend_follows_the_block_vllm_keeps(version: str, block: int,
                                                        expected: bool) -> None:
    assert mla_verifies_as_prefill(_setup(version, "B200", block=block)) is expected


def test_only_mla_models_with_speculation() -> None:
    assert not mla_verifies_as_prefill(_setup("0.11.0", speculative=None))
    eagle = {"method": "eagle3", "num_speculative_tokens": 1, "draft_params_b": 0.8,
             "mean_acceptance_length": 1.8}
    assert not mla_verifies_as_prefill(_setup("0.11.0", model="Llama-3.3-70B",
                                              speculative=eagle))


def test_deepseek_r1_mtp_decode_step_on_eight_h200s_by_hand() -> None:
    """D = 64 sequences at 8,000 tokens of context each, one draft token (2 verify tokens).

    vLLM 0.11.1 decodes them in the latent: per context token and layer 2 x 2 x 128 heads
    x (512 + 512 + 64) FLOPs at the 16-bit rate and the 1,152-byte latent read on each of
    the 8 GPUs. 0.11.0 prefills them: per context token the up-projection (the prefill
    chunks' coefficient, worked on paper in test_single_request.py), then 2 x 2 x 128 x
    (192 + 128) FLOPs and FlashAttention reading 128 x (192 + 128) 16-bit keys and values
    a layer. Everything else in the step is the same."""
    spec = RooflineStepTime()
    old, new = _setup("0.11.0"), _setup("0.11.1")
    old_step, new_step = build_step_time(old, spec), build_step_time(new, spec)
    h200 = builtin_catalog().gpus["H200"]
    bandwidth = h200.bandwidth_bytes_per_s * 8 * spec.memory_efficiency
    attention_flops = gemm_flops_per_s(new, spec, experts=False, dtype="bf16")
    upproject = new_step.upproject_per_context_token_s
    assert upproject == old_step.upproject_per_context_token_s > 0.0
    q, d, context = 2, 64, 8_000
    kv = d * context
    latent = max(q * 61 * 2 * 128 * (2 * 512 + 64) / attention_flops,
                 61 * 1_152 * 8 / bandwidth) * kv
    prefill = upproject * kv + max(q * 61 * 2 * 128 * (2 * 128 + 64) / attention_flops,
                                   61 * 128 * (192 + 128) * 2 / bandwidth) * kv
    # the rest of the step is the same in both releases
    assert dataclasses.replace(old_step, compute_per_pair_s=0.0, memory_per_kv_token_s=0.0) \
        == dataclasses.replace(new_step, compute_per_pair_s=0.0, memory_per_kv_token_s=0.0)
    old_model = StepModel(**old_step.coefficients())
    new_model = StepModel(**new_step.coefficients())
    # a simulated step is 1/accepted of a verify step
    gap = (old_model.step_s(0, d, kv) - new_model.step_s(0, d, kv)) * 1.8
    assert gap == pytest.approx(prefill - latent, rel=1e-9)
    assert prefill > 10 * latent          # 0.45 us of up-projection a context token
    # a decode run stays linear in the context (the fast scheduler's closed form)
    first, growth, _ = old_model.decode_run(d, kv)
    assert first == pytest.approx(old_model.step_s(0, d, kv), rel=1e-12)
    assert old_model.step_s(0, d, kv + 10 * d) == pytest.approx(first + 10 * growth,
                                                                rel=1e-12)
