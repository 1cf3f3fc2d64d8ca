"""How vLLM lays out a mixture of experts' MXFP4 experts in GPU memory: padded to the tile
its MoE kernel needs.

vLLM allocates each GPU's gate-up and down matrices of the routed experts with the hidden
size and the expert width it holds (`moe_intermediate_size / tp`, whole with expert
parallelism) rounded up to the kernel's alignment, zeros in the padding, before the
checkpoint is loaded into them (`Mxfp4MoEMethod.create_weights` until 0.18,
`mxfp4_round_up_hidden_size_and_intermediate_size` in fused_moe/oracle/mxfp4.py from
0.19). gpt-oss's 2,880 is no multiple of 256, so on Marlin its experts take 9% more memory
at tp 1 (2,880 x 2,880 -> 3,072 x 2,944) and 14% at tp 4 (720 -> 768 columns a GPU). The
padding is read and multiplied like the rest of the matrix.

Which kernel, and so which alignment (hidden, expert width), read in the wheels of 0.10.1.1,
0.11.0, 0.12.0, 0.13.0, 0.15.0, 0.17.0, 0.19.0, 0.20.0, 0.22.0, 0.24.0, 0.26.0, 0.27.1 and
0.34.0:
* Marlin (NVIDIA below Hopper, and RTX Blackwell, capability 12: OpenAI's triton_kernels
  are confirmed only for 9.0 to 10.x, `get_mxfp4_backend`): (256, 128);
* Hopper: the Triton matmul, which pads only the width, to 64 (its Hopper swizzle packs
  16 x 32 tiles, which gpt-oss's dimensions already fill), whenever OpenAI's triton_kernels
  can be imported: in the wheel from 0.12 (MXFP4_TRITON_ON_HOPPER), and before that in the
  images most runs used. A pip install without them runs Marlin and pads (a Kaggle log of
  0.11.2 on an 80 GB card: "Using Marlin backend", 65.97 GiB of weights); GPUStack's
  gpt-oss-120b ran on one H100 under 0.10.2 at the default 0.9 of its memory with 1,024
  sequences, and even with 16,384 batched tokens, which Marlin's 65.9 GiB would not have
  left room for (their 7.4 GiB profiling peak: llm-d's measured 7.38), so the model keeps
  Hopper's weights unpadded in every release, with a swizzled second copy of their
  scales from 0.12 (`hopper_scale_bytes`). (steptime still times the experts of
  releases before 0.12 at Marlin's rate: the record's H100 rows fit it better; the two
  readings disagree, FIDELITY.md.)
* data-centre Blackwell (capability 10): FlashInfer's TensorRT-LLM MoE, the default when
  FlashInfer is installed, as vLLM's images have it: (256, 256), the width to 128 from 0.27;
* ROCm: the width to 128 in 0.10; (256, 256) in 0.11; 256 on gfx950 (CDNA4: the catalog's
  AMD GPUs with FP4 tensor cores) and 128 elsewhere, both dimensions, from 0.12 to 0.18
  (`get_padding_alignment`); (256, 256) from 0.19.

Checked against published loads: gpt-oss-120b under 0.11.2 with Marlin on an 80 GB card,
"Model loading took 65.9651 GiB" (the checkpoint's 60.8 GiB padded: 65.9); on four
A100-80GBs under 0.10.1.1, 17.2217 GiB a GPU (padded: 17.15; unpadded: 15.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmplan.perf.setup import ReplicaSetup

#: the first vLLM release whose wheel carries OpenAI's triton_kernels
#: (vllm/third_party/triton_kernels; `has_triton_kernels` finds it), so that
#: `get_mxfp4_backend` runs MXFP4 experts on Hopper through its Triton matmul rather than
#: Marlin (read in the 0.11.2 and 0.12.0 wheels: 0.11.2 looks for the package alone)
MXFP4_TRITON_ON_HOPPER = (0, 12, 0)

#: the release from which FlashInfer's TensorRT-LLM MoE pads the expert width to 128
#: rather than 256 (fused_moe/oracle/mxfp4.py: 256 in 0.26.0, 128 in 0.27.1)
TRTLLM_WIDTH_128 = (0, 27, 0)


def mxfp4_alignment(setup: ReplicaSetup) -> tuple[int, int]:
    """(hidden, expert width) multiples vLLM pads MXFP4 experts to on this GPU and
    release (1: not padded)."""
    gpu, release = setup.gpu, setup.engine.release
    if gpu.vendor == "amd":
        if release < (0, 11, 0):
            return 1, 128
        if (0, 12, 0) <= release < (0, 19, 0):
            align = 256 if gpu.fp4_dense_tflops is not None else 128
            return align, align
        return 256, 256
    capability = gpu.capability or (0, 0)
    if (10, 0) <= capability < (12, 0):
        return 256, 128 if release >= TRTLLM_WIDTH_128 else 256
    if capability == (9, 0):
        return 1, 64
    return 256, 128


#: On Hopper the Triton matmul takes its block scales swizzled, a new tensor whose rows are
#: padded to 256 (HopperMXScaleLayout: SWIZZLE_ALIGN_M = 2 x num_warps 8 x 2 x 8) and its
#: scale groups to 2, built in process_weights_after_loading while the checkpoint's scale
#: parameters stay allocated: two copies, until 0.25.0 deletes the old ones ("drop the
#: now-dead weight/scale Parameters"); from 0.26.0 the groups are padded to 4 on SM90 (read
#: in the wheels from 0.12.0 to 0.34.0). gpt-oss-120b on one H100 then holds 64.3 GiB of
#: weights, as logged under 0.14.1 (vllm#33155) and by llm-d: "Model loading took 64.38 GiB".
HOPPER_SCALES_FREED = (0, 25, 0)
HOPPER_SCALE_GROUPS_4 = (0, 26, 0)
SCALE_BLOCK = 32
SWIZZLE_ROWS = 256


def hopper_scale_bytes(setup: ReplicaSetup) -> float:
    """Bytes one GPU holds for its MXFP4 experts' block scales (one uint8 per 32 weights)
    beyond the checkpoint's, which the weights' 4.25 bits count: the swizzled copy of the
    Triton matmul on Hopper, all MoE layers; 0 elsewhere. (Its float32 copies of the
    experts' biases, 2 MB a layer for gpt-oss-120b, are left out.)"""
    model, release = setup.model, setup.engine.release
    if setup.weights_dtype != "mxfp4" or not model.is_moe or setup.gpu.vendor == "amd" \
            or setup.gpu.capability != (9, 0) or release < MXFP4_TRITON_ON_HOPPER:
        return 0.0
    assert model.moe_intermediate_size is not None and model.experts
    ep = setup.expert_parallel > 1
    # the Triton path pads the expert width to 64 first (mxfp4_alignment on Hopper)
    width = _round_up(model.moe_intermediate_size // (1 if ep else setup.tp), 64)
    experts = -(-model.experts // setup.tp) if ep else model.experts
    hidden = model.hidden_size
    group = 4 if release >= HOPPER_SCALE_GROUPS_4 else 2
    up_groups, down_groups = hidden // SCALE_BLOCK, width // SCALE_BLOCK
    unpadded = model.moe_intermediate_size // (1 if ep else setup.tp)
    checkpoint = 2 * unpadded * up_groups + hidden * (unpadded // SCALE_BLOCK)
    swizzled = _round_up(2 * width, SWIZZLE_ROWS) * _round_up(up_groups, group) \
        + _round_up(hidden, SWIZZLE_ROWS) * _round_up(down_groups, group)
    extra = swizzled if release < HOPPER_SCALES_FREED else swizzled - checkpoint
    return float(extra * experts * model.moe_layer_count)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def expert_padding(setup: ReplicaSetup) -> float:
    """Bytes (and FLOPs) of one GPU's routed experts as vLLM allocates them over the
    checkpoint's: 1.0 unless the experts are MXFP4."""
    model = setup.model
    if setup.weights_dtype != "mxfp4" or not model.is_moe:
        return 1.0
    assert model.moe_intermediate_size is not None
    hidden_align, width_align = mxfp4_alignment(setup)
    moe_tp = 1 if setup.expert_parallel > 1 else setup.tp
    width = model.moe_intermediate_size // moe_tp
    if width == 0:
        return 1.0
    return (_round_up(model.hidden_size, hidden_align) * _round_up(width, width_align)
            / (model.hidden_size * width))
