"""What a pinned vLLM release can serve: the model's architecture, its weights' format, and
with Model Runner V2 forced (`engine.model_runner: v2`) the drafts V2 runs.

Each boundary is the first published wheel whose file has it, read in every wheel on PyPI
from 0.6.4 to 0.11.0 (HTTP range reads of the wheel; nothing run):
- architectures: `vllm/model_executor/models/registry.py`, the name under which a checkpoint's
  config.json `architectures` is looked up (an unlisted one is refused at start-up:
  "Model architectures [...] are not supported for now"). Those already listed in 0.6.4
  (Llama, Mistral, Mixtral, Qwen2) are left out: older wheels were not read.
- formats: `vllm/model_executor/layers/quantization/__init__.py` (the method names vLLM
  reads from a checkpoint's quantization_config), `modelopt.py` and `fp8.py`.
A model a scenario adds without `architecture`, or with one not listed here, is not checked.
"""

from __future__ import annotations

from llmplan.perf.engine import dotted
from llmplan.perf.runner import v2_lacks
from llmplan.perf.setup import ReplicaSetup

Release = tuple[int, int, int]

#: The first release whose model registry lists each architecture.
ARCHITECTURE_RELEASES: dict[str, Release] = {
    "DeepseekV3ForCausalLM": (0, 6, 6),
    "Gemma3ForCausalLM": (0, 8, 0),
    "Gemma3ForConditionalGeneration": (0, 8, 0),
    "Llama4ForConditionalGeneration": (0, 8, 3),
    "Mistral3ForConditionalGeneration": (0, 8, 3),
    "Qwen3ForCausalLM": (0, 8, 4),
    "Qwen3MoeForCausalLM": (0, 8, 4),
    "GptOssForCausalLM": (0, 10, 1),
}

#: The catalog's architectures already in 0.6.4's registry, the oldest read (no boundary).
LISTED_IN_0_6_4 = frozenset({"LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM",
                             "Qwen2ForCausalLM"})

#: FP8 checkpoints with block scales (Fp8Config's weight_block_size): 0.6.6, with DeepSeek-V3.
FP8_BLOCK_RELEASE: Release = (0, 6, 6)
#: MXFP4 (Mxfp4Config, "mxfp4"): 0.10.1, with gpt-oss.
MXFP4_RELEASE: Release = (0, 10, 1)
#: NVIDIA Model Optimizer NVFP4 checkpoints (ModelOptNvFp4Config): 0.8.0, for linear layers
#: on compute capability 10.0 and up (its get_min_capability: 100). 0.9.0 brought the experts
#: (ModelOptNvFp4FusedMoE) and Marlin's FP4 kernels, which run it from capability 8.0.
NVFP4_RELEASE: Release = (0, 8, 0)
NVFP4_EXPERTS_RELEASE: Release = (0, 9, 0)
NVFP4_MARLIN_RELEASE: Release = (0, 9, 0)


def _weights_need(setup: ReplicaSetup) -> tuple[Release, str] | None:
    """The release the weights' format needs, and why (None: any release read)."""
    dtype, model = setup.weights_dtype, setup.model
    if dtype == "mxfp4":
        return MXFP4_RELEASE, "MXFP4 weights came in 0.10.1"
    if dtype == "nvfp4":
        capability = setup.gpu.capability
        if model.is_moe:
            return NVFP4_EXPERTS_RELEASE, "NVFP4 experts (ModelOptNvFp4FusedMoE) came in 0.9.0"
        if capability is not None and capability < (10, 0):
            return NVFP4_MARLIN_RELEASE, (
                f"NVFP4 on compute capability {setup.gpu.compute_capability} "
                f"({setup.gpu_name}) runs through Marlin's FP4 kernels, from 0.9.0 (before, "
                f"NVFP4 needs 10.0)")
        return NVFP4_RELEASE, "NVFP4 checkpoints came in 0.8.0"
    if dtype == "fp8" and model.weight_block(dtype) is not None:
        return FP8_BLOCK_RELEASE, "FP8 checkpoints with block scales came in 0.6.6"
    return None


#: The first NVIDIA compute capability whose CUTLASS scaled-mm build has no INT8 kernel:
#: Blackwell's dispatchers (sm100, sm120) wire only FP8 (see `format_error`).
NO_CUTLASS_INT8_CAPABILITY = 10


def format_error(setup: ReplicaSetup) -> str | None:
    """Why vLLM cannot serve the model in its weight format on this GPU (None: it can).

    vLLM's `mxfp4` method quantises a mixture of experts' routed experts only: its linear
    layers fall back to unquantized ones ("MXFP4 linear layer is not implemented",
    vllm/model_executor/layers/quantization/mxfp4.py, read in 0.27.1), so a dense model has
    no MXFP4 path on NVIDIA GPUs (AMD's Quark checkpoints carry MXFP4 dense layers to
    ROCm).

    W8A8 INT8 checkpoints run their linear layers on CUTLASS's scaled-mm
    (CutlassInt8ScaledMMLinearKernel, which accepts every CUDA GPU), whose Blackwell
    dispatchers (compute capability 10.x and 12.x) have no INT8 kernel: vLLM stops at
    start-up with "Int8 not supported on SM100. Use FP8 quantization instead, or run on
    older arch (SM < 100)" (csrc/quantization/w8a8/cutlass/c3x/scaled_mm_helper.hpp; a
    dtype assertion before vllm-project/vllm#25935; still so in 2026 with the Triton INT8
    kernel behind it unreachable, vllm-project/vllm#54311). AMD GPUs take INT8 through
    ROCm's own kernels."""
    gpu = setup.gpu
    capability = gpu.capability
    if setup.weights_dtype == "int8" and gpu.vendor == "nvidia" and capability is not None \
            and capability[0] >= NO_CUTLASS_INT8_CAPABILITY:
        sm = f"SM{capability[0]}{capability[1]}"
        return (f"weights_dtype int8 on {setup.gpu_name} (compute capability "
                f"{gpu.compute_capability}): vLLM runs W8A8 INT8 layers on CUTLASS's "
                f"scaled-mm, which has no INT8 kernel on Blackwell, and refuses to start "
                f"(\"Int8 not supported on {sm}. Use FP8 quantization instead\"); "
                f"expected engine.weights_dtype fp8 (the same bytes a weight, on "
                f"{setup.gpu_name}'s FP8 tensor cores), or a GPU before compute capability "
                f"{NO_CUTLASS_INT8_CAPABILITY}.0")
    if setup.weights_dtype != "mxfp4" or setup.model.is_moe or gpu.vendor == "amd":
        return None
    return (f"vLLM quantises only a mixture of experts' routed experts in MXFP4 (its linear "
            f"layers fall back to unquantized ones), and {setup.model_name} is dense: "
            f"expected engine.weights_dtype nvfp4 or int4 for 4-bit weights on "
            f"{setup.gpu_name}")


def release_error(setup: ReplicaSetup) -> str | None:
    """Why the pinned vLLM release cannot serve this model in this format, on the model
    runner set (None: it can, or the boundary was not read), naming every cause and the
    release that serves them all."""
    engine, model = setup.engine, setup.model
    found: list[tuple[Release, str]] = []
    architecture = model.architecture
    if architecture is not None and engine.release < (
            since := ARCHITECTURE_RELEASES.get(architecture, (0, 0, 0))):
        found.append((since, f"{setup.model_name} ({architecture}) came in {dotted(since)}"))
    if (need := _weights_need(setup)) is not None and engine.release < need[0]:
        found.append(need)
    if engine.model_runner == "v2" and (lacks := v2_lacks(setup)) is not None:
        # VLLM_USE_V2_MODEL_RUNNER=1 with what V2 cannot run yet: vLLM refuses to start
        # ("Model Runner V2 does not yet support ...", vllm/config/vllm.py)
        since = (*lacks[0], 0)
        found.append((since, f"model_runner v2 runs {lacks[1]} from {dotted(since)}"))
    if not found:
        return None
    return (f"vLLM {engine.vllm_version} cannot serve {setup.model_name} in "
            f"{setup.weights_dtype}: {'; '.join(text for _, text in found)}; expected "
            f"vllm_version >= {dotted(max(since for since, _ in found))}")


__all__ = ["ARCHITECTURE_RELEASES", "LISTED_IN_0_6_4", "NO_CUTLASS_INT8_CAPABILITY", "format_error",
           "release_error"]
