"""W8A8 INT8 weights on Blackwell: vLLM's CUTLASS scaled-mm has no INT8 kernel from compute
capability 10.0 ("Int8 not supported on SM100. Use FP8 quantization instead"), so such a
replica cannot start; earlier NVIDIA GPUs and AMD's (ROCm's own INT8 kernels) serve it."""

from __future__ import annotations

import pytest

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import build_error
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.support import NO_CUTLASS_INT8_CAPABILITY
from llmplan.scenario import load_scenario_text

CATALOG = builtin_catalog()


def _setup(gpu: str, weights: str, model: str = "Qwen3-8B") -> ReplicaSetup:
    return ReplicaSetup(gpu_name=gpu, model_name=model, gpu=CATALOG.gpus[gpu],
                        model=CATALOG.models[model], engine=EngineSpec(weights_dtype=weights),
                        tp=1)


BLACKWELL = sorted(name for name, gpu in CATALOG.gpus.items() if gpu.vendor == "nvidia"
                   and (gpu.capability_major or 0) >= NO_CUTLASS_INT8_CAPABILITY)
EARLIER = sorted(name for name, gpu in CATALOG.gpus.items() if gpu.vendor == "nvidia"
                 and gpu.capability is not None and gpu.capability >= (7, 5)
                 and gpu.capability[0] < NO_CUTLASS_INT8_CAPABILITY)


def test_the_catalog_has_gpus_on_both_sides_of_the_boundary() -> None:
    assert {"B200", "RTX-PRO-6000"} <= set(BLACKWELL)
    assert {"H100-SXM", "H200", "A100-80GB", "L40S"} <= set(EARLIER)


@pytest.mark.parametrize("gpu", BLACKWELL)
def test_int8_weights_are_refused_on_blackwell(gpu: str) -> None:
    error = build_error(_setup(gpu, "int8"))
    assert error is not None
    major, minor = CATALOG.gpus[gpu].capability or (0, 0)
    assert f"weights_dtype int8 on {gpu}" in error
    assert f"Int8 not supported on SM{major}{minor}" in error
    assert "expected engine.weights_dtype fp8" in error
    # the advice holds: FP8 weights of the same model build there
    assert build_error(_setup(gpu, "fp8")) is None


@pytest.mark.parametrize("gpu", [*EARLIER, "MI300X"])
def test_int8_weights_build_before_blackwell_and_on_amd(gpu: str) -> None:
    assert build_error(_setup(gpu, "int8")) is None


def test_a_scenario_names_the_field_and_keeps_what_can_be_built() -> None:
    loaded = load_scenario_text("""
name: int8-blackwell
seed: 1
duration: 1m
traffic: {kind: poisson, rate_per_s: 1}
tasks:
  - name: chat
    prompt_tokens: {kind: fixed, tokens: 400}
    output_tokens: {kind: fixed, tokens: 100}
deployments:
  pro: {gpu: RTX-PRO-6000, model: Qwen3-32B, engine: {weights_dtype: int8}}
  hopper: {gpu: H200, model: Qwen3-32B, engine: {weights_dtype: int8}}
""")
    assert "hopper" in loaded.scenario.deployments
    problem = loaded.unbuildable["pro"]
    assert problem.startswith("deployments.pro.engine.weights_dtype: weights_dtype int8 on "
                              "RTX-PRO-6000 (compute capability 12.0)")
    assert "SM120" in problem
