"""MXFP4 experts take the room vLLM allocates them: padded to their MoE kernel's tile
(llmplan/perf/mxfp4_layout.py, read in vLLM's wheels), and checked against two published
loads of gpt-oss-120b on Marlin."""

from __future__ import annotations

import pytest

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import weights_bytes_per_gpu
from llmplan.perf.mxfp4_layout import expert_padding, mxfp4_alignment
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.steptime import build_step_time
from llmplan.perf.steptime_spec import RooflineStepTime

CATALOG = builtin_catalog()
GIB = 2**30


def _setup(gpu: str, model: str = "gpt-oss-120b", weights: str = "mxfp4", tp: int = 1,
           vllm: str = "0.11.0", expert_parallel: bool = False) -> ReplicaSetup:
    return ReplicaSetup(gpu_name=gpu, model_name=model, gpu=CATALOG.gpus[gpu],
                        model=CATALOG.models[model],
                        engine=EngineSpec(weights_dtype=weights, vllm_version=vllm,
                                          expert_parallel=expert_parallel), tp=tp)


@pytest.mark.parametrize(("gpu", "vllm", "alignment"), [
    ("A100-80GB", "0.11.0", (256, 128)),       # Marlin below Hopper
    ("L40S", "0.27.1", (256, 128)),
    ("RTX-PRO-6000", "0.20.0", (256, 128)),    # capability 12: triton_kernels not used
    ("H100-SXM", "0.12.0", (1, 64)),           # Triton's matmul
    ("B200", "0.11.0", (256, 256)),            # FlashInfer's TensorRT-LLM MoE
    ("B200", "0.27.1", (256, 128)),
    ("MI300X", "0.10.2", (1, 128)),            # ROCm
    ("MI300X", "0.11.0", (256, 256)),
    ("MI300X", "0.15.0", (128, 128)),          # get_padding_alignment, CDNA3
    ("MI355X", "0.15.0", (256, 256)),          # ... and gfx950
    ("MI300X", "0.19.0", (256, 256)),
])
def test_each_kernel_pads_to_its_own_tile(gpu: str, vllm: str,
                                          alignment: tuple[int, int]) -> None:
    assert mxfp4_alignment(_setup(gpu, vllm=vllm)) == alignment


def test_only_mxfp4_experts_are_padded() -> None:
    assert expert_padding(_setup("A100-80GB", model="Qwen3-30B-A3B", weights="int4")) == 1.0
    assert expert_padding(_setup("A100-80GB", model="Qwen3-8B", weights="bf16")) == 1.0
    # gpt-oss's 2,880 x 2,880 experts on Marlin: 3,072 x 2,944 at tp 1, 3,072 x 768 per
    # GPU of four (720 columns each), whole experts (2,944) with expert parallelism
    assert expert_padding(_setup("A100-80GB")) == pytest.approx(3072 * 2944 / 2880**2)
    assert expert_padding(_setup("A100-80GB", tp=4)) == pytest.approx(3072 * 768 / (2880 * 720))
    assert expert_padding(_setup("A100-80GB", tp=4, expert_parallel=True)) == \
        pytest.approx(3072 * 2944 / 2880**2)


def test_published_loads_of_gpt_oss_120b_on_marlin() -> None:
    """'Model loading took 17.2217 GiB' a GPU on four A100-80GBs under vLLM 0.10.1.1
    (dennislee22/vLLM-benchmarking, as in benchmarks/kv_record.yaml) and 65.9651 GiB on
    one 80 GB card under 0.11.2 with "Using Marlin backend" (a Kaggle log,
    tonghuikang/blog _posts/2025-12-28-vllm-logs.md): the unpadded checkpoint is 15.2 and
    60.8 GiB."""
    four = weights_bytes_per_gpu(_setup("A100-80GB", tp=4, vllm="0.10.1")) / GIB
    assert four == pytest.approx(17.2217, rel=0.01)
    one = weights_bytes_per_gpu(_setup("A100-80GB", vllm="0.11.2")) / GIB
    assert one == pytest.approx(65.9651, rel=0.01)


def test_the_padding_is_read_and_multiplied() -> None:
    spec = RooflineStepTime()
    padded = build_step_time(_setup("A100-80GB"), spec)
    factor = expert_padding(_setup("A100-80GB"))
    assert factor > 1.05
    # the experts' reads carry the factor (Hopper's Triton layout at tp 1 has none)
    catalog_bytes = (CATALOG.models["gpt-oss-120b"].weight_bytes("mxfp4")
                     - CATALOG.models["gpt-oss-120b"].weight_bytes_without_experts("mxfp4"))
    bandwidth = CATALOG.gpus["A100-80GB"].bandwidth_bytes_per_s * spec.memory_efficiency
    assert padded.experts_s == pytest.approx(catalog_bytes * factor / bandwidth)
    hopper = build_step_time(_setup("H100-SXM", vllm="0.12.0"), spec)
    h100_bandwidth = CATALOG.gpus["H100-SXM"].bandwidth_bytes_per_s * spec.memory_efficiency
    assert hopper.experts_s == pytest.approx(catalog_bytes / h100_bandwidth)
