"""What vLLM's ROCm build takes on AMD GPUs (read in 0.11.0): no NVFP4 checkpoints without
the separate petit kernel, fp8 KV caches only as e4m3, and AWQ/GPTQ with float16
activations (the plain kernels: no Marlin on ROCm)."""

from __future__ import annotations

import pytest

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import kv_capacity
from llmplan.perf.setup import ReplicaSetup
from llmplan.provision.vllm_build import activation_dtype

CATALOG = builtin_catalog()


def _setup(gpu: str, weights: str = "bf16", kv: str | None = None,
           model: str = "Llama-3.3-70B") -> ReplicaSetup:
    engine = EngineSpec(weights_dtype=weights, vllm_version="0.11.0",
                        **({"kv_dtype": kv} if kv else {}))
    return ReplicaSetup(gpu_name=gpu, model_name=model, gpu=CATALOG.gpus[gpu],
                        model=CATALOG.models[model], engine=engine, tp=1)


def test_nvfp4_and_e5m2_are_refused_on_amd_only() -> None:
    nvfp4 = kv_capacity(_setup("MI300X", "nvfp4")).error
    assert nvfp4 is not None and "petit" in nvfp4 and "expected weights_dtype" in nvfp4
    e5m2 = kv_capacity(_setup("MI300X", "fp8", kv="fp8_e5m2")).error
    assert e5m2 is not None and "fp8_e4m3" in e5m2
    # the same settings on NVIDIA parts vLLM serves, and AMD's own formats on AMD
    assert kv_capacity(_setup("B200", "nvfp4")).error is None
    assert kv_capacity(_setup("MI300X", "fp8", kv="fp8")).error is None
    assert kv_capacity(_setup("MI300X", "int4")).error is None


@pytest.mark.parametrize(("gpu", "weights", "dtype"), [
    ("MI300X", "int4", "float16"), ("A100-80GB", "int4", "bfloat16"),
    ("MI300X", "fp8", "bfloat16"), ("H100-SXM", "fp16", "float16")])
def test_the_activation_type_is_one_the_kernels_take(gpu: str, weights: str,
                                                     dtype: str) -> None:
    assert activation_dtype(_setup(gpu, weights)) == dtype
