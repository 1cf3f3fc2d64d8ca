"""Step-time models: the coefficients of llmplan/sim/stepmodel.py for one replica.

A builder per `step_time.kind` turns the scenario's choice into `StepTime` coefficients
(seconds): `roofline` derives them from the catalog (datasheet peaks times achievable
efficiencies), `linear` takes them as given, `tabulated` takes a measured step time per
number of tokens in the step, `calibrated` reads either from a calibration file. The
simulator evaluates them (max of overlapping parts plus serial parts, see stepmodel.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from llmplan.catalog import GpuSpec, ModelSpec
from llmplan.perf.drafter import drafter
from llmplan.perf.memory import stage_layers
from llmplan.perf.mxfp4_layout import MXFP4_TRITON_ON_HOPPER, expert_padding
from llmplan.perf.setup import MLA_BLOCK_KEPT_RELEASE, ReplicaSetup
from llmplan.perf.steptime_spec import (
    CalibratedStepTime,
    LinearStepTime,
    RooflineStepTime,
    StepTimeSpec,
    TabulatedStepTime,
)


@dataclass(frozen=True)
class StepTime:
    """Coefficients of the step model (seconds), their source, the client-side overhead."""

    serial_s: float = 0.0
    serial_per_token_s: float = 0.0
    serial_per_prefill_token_s: float = 0.0
    serial_per_seq_s: float = 0.0
    serial_per_kv_token_s: float = 0.0
    serial_per_pair_s: float = 0.0
    serial_tokens_s: tuple[float, ...] = ()   # measured: index = tokens in the step
    table_points_ms: tuple[tuple[int, float], ...] = ()   # ... the points it was read from
    compute_per_token_s: float = 0.0
    compute_per_pair_s: float = 0.0
    compute_per_prefill_pair_s: float = 0.0     # the prefill chunks' pairs (MLA: cheaper)
    compute_per_window_seq_s: float = 0.0      # a whole window, per query token
    window_tokens: int = 0                      # W (0: a window per decoding sequence)
    compute_per_sampled_s: float = 0.0          # the output head, per sampled token
    upproject_per_context_token_s: float = 0.0  # MLA: a prefill chunk's context, per token
    weights_s: float = 0.0
    experts_s: float = 0.0
    experts: int = 0
    experts_per_token: int = 0
    memory_per_kv_token_s: float = 0.0
    memory_per_seq_s: float = 0.0
    cpu_s: float = 0.0
    cpu_per_seq_s: float = 0.0
    async_cpu: bool = False
    frontend_per_seq_s: float = 0.0
    verify_tokens: int = 1
    accepted: float = 1.0
    draft_per_token_s: float = 0.0   # the drafter's FLOP time per token of a pass
    draft_weights_s: float = 0.0     # ... and its weight reads per pass
    ranks: int = 1                   # data-parallel attention ranks
    rank_dense_per_token_s: float = 0.0   # the dense layers' share of compute_per_token_s
    stages: int = 1                  # pipeline stages (a round of as many micro-batches)
    stage_tokens: int = 0            # ... each with this token budget (0: no stages)
    stage_weights_s: float = 0.0     # ... and the busiest stage's weight reads per one
    launch_s: float = 0.0            # eager mode: the CPU's kernel launches, a GPU floor
    source: str = "roofline"
    client_overhead_s: float = 0.0   # HTTP, tokenisation, queueing outside the engine

    def coefficients(self) -> dict[str, Any]:
        """Keyword arguments of the simulator's StepModel."""
        data = asdict(self)
        del data["source"], data["client_overhead_s"], data["table_points_ms"]
        return data


def roofline(setup: ReplicaSetup, spec: RooflineStepTime, *,
             datasheet: bool = False) -> StepTime:
    """Datasheet peaks times achievable efficiencies, part by part.

    GEMMs: 2 FLOPs per active parameter per token (the output head's only for the tokens
    a step samples, at the 16-bit rate) on the tensor cores of the weight
    format (dequantising kernels where the GPU has none), at compute_efficiency times the
    GPU's measured GEMM share of peak over an H100's (catalog gemm_efficiency_vs_h100),
    plus a fixed cost per routed token-slot at the 16-bit rate on every GPU
    (`_expert_slot_params`: narrow expert slices run well below the dense rate);
    attention (its own roofline, the kernels run one after the other): 4 FLOPs per
    (query, key) pair per head dimension per query head and layer; sliding-window layers
    attend at most their window; MLA (vLLM's common MLA backend) decodes over the latent
    (2 x kv_lora_rank + rope dims per pair) and prefills over keys and values it
    up-projects from it (2 x head_dim + rope dims; values padded to the q.k width where
    its prefill kernel needs one width, `mla_prefill_pads_values`); every prefill chunk
    also up-projects the context already in the cache (`mla_upproject_per_context_token_s`);
    where vLLM runs speculative decoding's verify requests down MLA's prefill path
    (`mla_verifies_as_prefill`), each decoding sequence's context is up-projected and its
    pairs computed at the prefill rate every step (in the per-pair and per-KV-token parts).
    memory: every step reads the dense weights once (those every GPU holds whole, the
    routers and MLA's down-projections, on each GPU; not a vision encoder), the
    experts its tokens touch, and the KV cache of every decoding sequence (full layers: the
    whole context; window layers: min(context, window)); with data-parallel attention
    every rank reads the weights outside the experts whole. serial: tensor-parallel
    all-reduces (two per layer of one hidden vector per token, ring algorithm; with
    data-parallel attention an all-gather and a reduce-scatter per routed layer), a fixed
    gap, and the latency of
    the short kernels MoE and MLA layers add to a dense layer (per layer, whatever the
    batch). cpu: per step and per sequence, hidden behind the GPU with async scheduling.
    drafter (speculative decoding, llmplan.perf.drafter): 2 FLOPs per parameter a token goes
    through at the 16-bit rate, those weights read once per pass (stepmodel.py says which
    passes): an EAGLE head's 16-bit weights, a draft model's active ones in its format, an
    MTP module's active ones in the model's; and every pass reads the drafter's own KV
    cache of the decoding contexts (serial_per_kv_token: num_speculative_tokens passes x
    its layers' bytes a token; a 0.6 B draft model of 28 layers holds 44% of Qwen3-32B's
    KV bytes, so at long contexts its reads rival the model's).
    frontend: the API server's time per streamed token, a pipeline stage of its own.
    ranks: with data-parallel attention the dense layers' GEMMs (everything a token goes
    through but its routed experts and their slots) are also given apart, for the step's
    costliest chunk, which one rank runs on its own GPU, and the decodes' attention is
    charged to the busiest rank (stepmodel.py). The linear, tabulated and calibrated kinds
    are fitted on a whole server and keep their pooled figures.
    """
    gpu, model, tp = setup.gpu, setup.model, setup.tp
    weights = setup.weights_dtype
    flops = gemm_flops_per_s(setup, spec, experts=False, datasheet=datasheet)
    expert_flops = gemm_flops_per_s(setup, spec, experts=True, datasheet=datasheet)
    attention_flops = gemm_flops_per_s(setup, spec, experts=False, datasheet=datasheet,
                                       dtype="bf16")
    head_flops = attention_flops          # embeddings and the head stay 16-bit
    bandwidth = gpu.bandwidth_bytes_per_s * tp * spec.memory_efficiency
    # linear layers: the dense part and the routed experts a token uses; the output head
    # runs only on the rows vLLM computes logits for (logits_indices in its model runner)
    head_params = model.vocab_size * model.hidden_size
    matmul_params = _layer_params(model)
    # what a token goes through outside its routed experts (those run their own kernels)
    dense_params = max(0.0, matmul_params - model.routed_active_params)
    slot_params = _expert_slot_params(setup, spec)
    # what every GPU of a tensor-parallel group holds and multiplies whole (routers, MLA's
    # down-projections): read and computed attention_tp times over
    extra_replicated = model.replicated_params * (setup.attention_tp - 1)
    prefill_pair_dims = 2 * model.head_dim
    if model.attention == "mla":
        assert model.kv_lora_rank is not None and model.qk_rope_head_dim is not None
        # decode attends in the latent space (absorbed QK and V); prefill up-projects the
        # latents to keys and values and runs ordinary attention, q.k over nope + rope dims
        pair_dims = 2 * model.kv_lora_rank + model.qk_rope_head_dim
        prefill_pair_dims = 2 * model.head_dim + model.qk_rope_head_dim
        if mla_prefill_pads_values(setup.gpu):
            # the values padded with zeros to the q.k width: as many again
            prefill_pair_dims = 2 * (model.head_dim + model.qk_rope_head_dim)
    else:
        pair_dims = prefill_pair_dims
    upproject_s = mla_upproject_per_context_token_s(setup, flops, bandwidth) \
        if model.attention == "mla" else 0.0
    pair_flops = 2.0 * model.attention_heads * pair_dims
    prefill_pair_flops = 2.0 * model.attention_heads * prefill_pair_dims
    compute_per_pair_s = pair_flops * model.full_layers / attention_flops
    compute_per_prefill_pair_s = prefill_pair_flops * model.full_layers / attention_flops
    window = model.sliding_window_tokens or 0
    # KV bytes a token's context costs the replica: each GPU's heads (replicated ones too:
    # MLA's latent on every GPU of a tensor-parallel group) x the GPUs holding them
    ranks = setup.attention_ranks
    kv_layer_bytes = model.kv_bytes_per_token_per_layer(setup.kv_dtype, setup.attention_tp) \
        * setup.attention_tp
    # all weights but the experts are read every step, by every data-parallel rank; the
    # experts as the tokens touch them
    all_weights = model.weight_bytes(weights)
    expert_bytes = all_weights - model.weight_bytes_without_experts(weights)
    # the experts as vLLM lays them out: MXFP4 padded to its kernel's tile, read and
    # multiplied with the rest (llmplan.perf.mxfp4_layout)
    padding = expert_padding(setup)
    # the input table is looked up, not read, unless it is also the output head (tied)
    embedding_rows = 0.0 if model.tie_word_embeddings else head_params * 2.0
    tokens_comm = 0.0
    sync_s = 0.0
    if tp > 1:
        link = all_reduce_bus_bytes_per_s(setup, spec)
        if ranks > 1:
            # data-parallel attention: only the routed layers talk, an all-gather of the
            # ranks' hidden vectors before the experts and a reduce-scatter after (vLLM's
            # default all2all backend, allgather_reducescatter), (tp - 1) / tp of a 16-bit
            # hidden vector per token each
            tokens_comm = (2 * model.moe_layer_count * model.hidden_size * 2.0
                           * (tp - 1) / tp / link)
            sync_s = model.moe_layer_count * layer_sync_us(setup, spec) * 1e-6
        else:
            ring = 2.0 * (tp - 1) / tp
            tokens_comm = 2 * model.layers * model.hidden_size * 2.0 * ring / link
            sync_s = model.layers * layer_sync_us(setup, spec) * 1e-6
    # the extra kernels of routed and latent-attention layers: a floor per layer per step
    layer_s = (model.moe_layer_count * spec.moe_layer_us
               + (model.layers if model.attention == "mla" else 0) * spec.mla_layer_us) * 1e-6
    speculative = setup.engine.speculative
    verify, accepted = 1, 1.0
    if speculative is not None:
        verify = speculative.num_speculative_tokens + 1
        accepted = speculative.mean_acceptance_length
    memory_per_kv_token_s = kv_layer_bytes * model.full_layers / bandwidth
    if mla_verifies_as_prefill(setup):
        # each decoding sequence's verify step is a prefill of its verify tokens: its
        # whole context up-projected (once a step, whatever the tokens: per query token
        # 1/verify of it, the decodes' pairs being verify x context) and the verify
        # tokens attending over the up-projected keys and values at the prefill pair
        # rate, FlashAttention reading them from the 16-bit workspace (q.k and value
        # widths: prefill_pair_dims per head) in place of the latent
        compute_per_pair_s = compute_per_prefill_pair_s + upproject_s / verify
        memory_per_kv_token_s = upproject_s + model.attention_heads * prefill_pair_dims \
            * 2.0 * model.full_layers / bandwidth
    draft = drafter(setup)       # the weights memory.py holds (none without speculation)
    # each drafting pass attends over the drafter's own KV cache of every decoding
    # sequence's context (its layers' pages in the model's blocks: drafter.py)
    draft_kv_s = (verify - 1) * draft.kv_layers * draft.kv_layer_bytes * tp / bandwidth
    # eager mode (no CUDA graphs, no torch.compile): every kernel is launched from Python,
    # a floor under the step's GPU work, and the short kernels' launch gaps add on top
    eager = setup.engine.enforce_eager
    launch_s = model.layers * spec.eager_launch_us_per_layer * 1e-6 if eager else 0.0
    layer_s += model.layers * spec.eager_gap_us_per_layer * 1e-6 if eager else 0.0
    return StepTime(
        serial_s=spec.gpu_fixed_ms * 1e-3 + sync_s + layer_s,
        launch_s=launch_s,
        serial_per_token_s=tokens_comm,
        serial_per_kv_token_s=draft_kv_s,
        compute_per_token_s=(2.0 * (dense_params + extra_replicated) / flops
                             + 2.0 * model.routed_active_params * padding / expert_flops
                             + 2.0 * slot_params / attention_flops),
        compute_per_pair_s=compute_per_pair_s,
        compute_per_prefill_pair_s=compute_per_prefill_pair_s,
        compute_per_window_seq_s=pair_flops * model.sliding_layers * window / attention_flops,
        window_tokens=window,
        compute_per_sampled_s=2.0 * head_params / head_flops,
        upproject_per_context_token_s=upproject_s,
        # a vision encoder is loaded but runs only on images: a step of text skips it
        weights_s=(all_weights - expert_bytes - embedding_rows - model.vision_bytes(weights)
                   + model.replicated_bytes(weights) * (setup.attention_tp - 1))
        * ranks / bandwidth,
        # the step waits for the GPU holding the most experts
        experts_s=expert_bytes * padding * setup.fullest_expert_share * tp / bandwidth,
        experts=model.experts or 0, experts_per_token=model.experts_per_token or 0,
        memory_per_kv_token_s=memory_per_kv_token_s,
        memory_per_seq_s=kv_layer_bytes * model.sliding_layers * window / bandwidth,
        # each data-parallel rank's engine process schedules its own sequences
        cpu_s=spec.cpu_fixed_ms * 1e-3, cpu_per_seq_s=spec.cpu_per_seq_us * 1e-6 / ranks,
        async_cpu=setup.async_scheduling,
        frontend_per_seq_s=spec.frontend_per_token_us * 1e-6 / setup.api_server_count,
        verify_tokens=verify, accepted=accepted,
        # the drafter's GEMMs in its own format (an MTP module in the model's, a draft
        # model in its checkpoint's, an EAGLE head in 16 bits), as dense layers
        draft_per_token_s=2.0 * draft.pass_params / gemm_flops_per_s(
            setup, spec, experts=False, datasheet=datasheet, dtype=draft.dtype),
        draft_weights_s=draft.pass_bytes / bandwidth, ranks=ranks,
        rank_dense_per_token_s=2.0 * dense_params / flops if ranks > 1 else 0.0,
        source="roofline")


def gemm_flops_per_s(setup: ReplicaSetup, spec: RooflineStepTime, experts: bool, *,
                     datasheet: bool = False, dtype: str | None = None) -> float:
    """The replica's GEMM rate for its routed experts (`experts`) or for the layers outside
    them, in the format each is stored in (ModelSpec.dense_dtype: gpt-oss keeps its
    attention in BF16).

    A format the GPU has no tensor cores for runs vLLM's dequantising kernels: the routed
    experts fused Marlin MoE on every NVIDIA GPU (AWQMoEMethod, GPTQMarlinMoEMethod,
    compressed-tensors WNA16; MXFP4 experts on Hopper until MXFP4_TRITON_ON_HOPPER), the
    dense INT4 layers Machete on Hopper (choose_mp_linear_kernel tries it first;
    MacheteLinearKernel needs capability 9.0), every other dequantised layer Marlin (NVFP4
    on Hopper and Ada: Marlin's FP4 kernels), all read in vLLM 0.11.0. Marlin reaches the
    GPU's marlin_vs_bf16_gemm share of the BF16 GEMM rate where the catalog has it;
    Machete, Triton's MXFP4 kernels and GPUs without the figure take dequant_efficiency.
    Not followed: AWQ checkpoints' dense layers run Marlin on Hopper too (awq_marlin.py
    does not go through the kernel choice).

    An MXFP4 checkpoint of weights alone (ModelSpec.mxfp4_activations bf16: gpt-oss)
    multiplies 16-bit activations on GPUs with FP4 tensor cores too: vLLM's default for it
    is FlashInfer's MXFP4 x BF16 MoE on data-centre Blackwell (SM100_FI_MXFP4_BF16 in
    get_mxfp4_backend, 0.10 to 0.18, "For faster performance ... consider setting
    VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1"; fused_moe/oracle/mxfp4.py's default list: BF16
    activations only in 0.19, FLASHINFER_TRTLLM_MXFP4_BF16 first for gpt-oss to 0.34), Marlin on RTX
    Blackwell (capability 12: OpenAI's triton_kernels are confirmed for 9.0 to 10.x only),
    AITER's W4A16 kernel on ROCm (0.27 on). MXFP8 activations, an environment setting, are
    not modelled.
    `datasheet`: the peak of the tensor cores the format runs on, with no kernel's or GPU's
    measured share (what MFU divides by). `dtype`: another format than the model's (a
    speculative drafter's)."""
    gpu = setup.gpu
    if dtype is None:
        dtype = setup.weights_dtype if experts else \
            setup.model.dense_dtype(setup.weights_dtype)
    weights_only = dtype == "mxfp4" and setup.model.mxfp4_activations == "bf16"
    computes_in = "bf16" if weights_only else dtype
    rate = gpu.flops_per_s(computes_in) * setup.tp * spec.compute_efficiency
    if datasheet:
        return rate
    rate *= gpu.gemm_efficiency(computes_in)
    if gpu.runs_natively(dtype) and not weights_only:
        return rate
    hopper = gpu.capability == (9, 0)
    machete = not experts and hopper and dtype == "int4"
    triton = experts and hopper and dtype == "mxfp4" and \
        setup.engine.release >= MXFP4_TRITON_ON_HOPPER
    # data-centre Blackwell: FlashInfer's TensorRT-LLM MoE, MXFP4 x BF16 (fused, not Marlin)
    flashinfer = experts and dtype == "mxfp4" and gpu.capability_major == 10
    if gpu.marlin_vs_bf16_gemm is None or machete or triton or flashinfer:
        return rate * spec.dequant_efficiency
    return rate * gpu.marlin_vs_bf16_gemm


#: the releases in which a replica over several servers (`--nnodes` > 1) turns vLLM's
#: custom all-reduce off for every group (vllm/config/parallel.py, 0.11.1 to 0.26.x; from
#: 0.27.0 each tensor-parallel group decides for itself, and it stays within one server)
NODES_DISABLE_CUSTOM_ALL_REDUCE = ((0, 11, 1), (0, 27, 0))


def nccl_across_servers(setup: ReplicaSetup) -> bool:
    """Whether a replica over several servers runs its tensor-parallel all-reduces on NCCL
    because it spans servers (NODES_DISABLE_CUSTOM_ALL_REDUCE)."""
    first, last = NODES_DISABLE_CUSTOM_ALL_REDUCE
    return setup.servers > 1 and setup.tp > 1 and first <= setup.engine.release < last


def nccl_all_reduce(setup: ReplicaSetup) -> bool:
    """Whether vLLM's tensor-parallel all-reduces go through NCCL rather than its custom
    kernel (vllm/distributed/device_communicators/custom_all_reduce.py, read in 0.27.1):
    between PCIe-only cards when more than two ("Custom allreduce is disabled because it's
    not supported on more than two PCIe-only GPUs") or when they cannot reach each other
    peer-to-peer (its `_can_p2p` check), and across servers in the releases that turn it
    off there (`nccl_across_servers`)."""
    if nccl_across_servers(setup):
        return True
    gpu = setup.gpu
    return gpu.interconnect == "pcie" and (setup.tp > 2 or not gpu.peer_to_peer)


def all_reduce_bus_bytes_per_s(setup: ReplicaSetup, spec: RooflineStepTime) -> float:
    """The bus bandwidth a replica's large all-reduces (and data-parallel attention's
    all-gathers and reduce-scatters) reach, in bytes per second: the GPUs' link at
    allreduce_efficiency, or, between PCIe cards without peer-to-peer, what NCCL moves
    through host memory (the catalog's host_allreduce_bus_gb_per_s: 2-4 GB/s on
    consumer boxes where the link would give 19)."""
    gpu = setup.gpu
    if gpu.interconnect == "pcie" and not gpu.peer_to_peer:
        return gpu.host_allreduce_bus_gb_per_s * 1e9
    return gpu.interconnect_gb_per_s * 1e9 * spec.allreduce_efficiency


def layer_sync_us(setup: ReplicaSetup, spec: RooflineStepTime) -> float:
    """The latency of a layer's two tensor-parallel all-reduces (or, with data-parallel
    attention, its all-gather and reduce-scatter) in a step, whatever its tokens, by the
    path `nccl_all_reduce` says: on NVLink and xGMI tp_sync_us_per_layer, times
    nccl_allreduce_factor on NCCL (a replica over several servers, whichever link carries
    the all-reduces); between PCIe cards two of the custom kernel's or two of NCCL's. Not
    followed: the custom kernel takes messages under 8 MiB only, so a prefill chunk's
    all-reduces (5,120 x 2 bytes a token: from about 800 tokens) go to NCCL."""
    if setup.gpu.interconnect != "pcie":
        factor = spec.nccl_allreduce_factor if nccl_across_servers(setup) else 1.0
        return spec.tp_sync_us_per_layer * factor
    one = spec.pcie_nccl_allreduce_us if nccl_all_reduce(setup) else spec.pcie_custom_allreduce_us
    return 2.0 * one


def mla_upproject_per_context_token_s(setup: ReplicaSetup, flops: float,
                                      bandwidth: float) -> float:
    """Seconds a prefill chunk's MLA layers spend on one token of the context before it.

    vLLM's common MLA backend (`_compute_prefill_context` in
    vllm/v1/attention/backends/mla/common.py, 0.11.0) attends a prefilling request's new
    tokens to its computed or cached ones (num_computed_tokens) by rebuilding their keys
    and values in every layer, every step, in workspace-sized pieces: it gathers the
    latents from the cache into a 16-bit workspace (`gather_and_maybe_dequant_cache`),
    runs kv_b_proj over them (kv_lora_rank to heads x (nope + value dims), at the dense
    layers' GEMM rate `flops` in the checkpoint's format, 16-bit output), concatenates the
    keys with the rope part (`torch.cat`) and, where the kernel takes one width
    (`mla_prefill_pads_values`), pads the values. Each kernel runs after the other, bound
    by its own FLOPs or bytes; the attention over those keys (the chunk's pairs) is
    charged apart. Each GPU of a tensor-parallel group gathers the whole latent and
    up-projects its own heads. `bandwidth` is the replica's achievable bytes per second.
    Not counted: kv_b_proj's weights read once per workspace piece and layer (tens of us
    a step) and the activations' FP8 quantisation before the GEMM."""
    model = setup.model
    assert model.kv_lora_rank is not None and model.qk_rope_head_dim is not None
    heads, head, rope = model.attention_heads, model.head_dim, model.qk_rope_head_dim
    gpus = setup.attention_tp
    # the latent read from the cache in its format, written into the 16-bit workspace
    gather = (model.kv_bytes_per_token_per_layer(setup.kv_dtype)
              + (model.kv_lora_rank + rope) * 2.0) * gpus
    # kv_b_proj: 2 FLOPs per weight (kv_lora_rank x heads x (nope + value dims)); reads
    # the latent on every GPU, writes 16-bit keys and values
    gemm_flops = 2.0 * model.kv_lora_rank * heads * 2 * head
    gemm_bytes = model.kv_lora_rank * 2.0 * gpus + heads * 2 * head * 2.0
    # keys: the nope part read, nope + rope written; values padded to that width likewise
    cat = heads * (2 * head + rope) * 2.0
    pad = heads * (2 * head + rope) * 2.0 if mla_prefill_pads_values(setup.gpu) else 0.0
    per_layer = max(gemm_flops / flops, gemm_bytes / bandwidth) + (gather + cat + pad) / bandwidth
    return per_layer * model.full_layers


#: The first vLLM release whose default MLA backend decodes a verify request of 1 + k
#: tokens as a decode, by the GPU's backend (its metadata builder's query_len_support
#: UNIFORM or VARLEN, which lifts reorder_batch_threshold to 1 + num_speculative_tokens;
#: read in the published wheels): Hopper's FlashMLA from 0.11.1 (FlashAttention MLA, VARLEN,
#: its default from 0.12.0); data-centre Blackwell's CUTLASS MLA never (SINGLE_ONLY up to
#: 0.33.0), FlashInfer MLA (UNIFORM) its default from 0.15.0; Triton MLA, every other GPU's
#: (Ampere, Ada, capability 12; ROCm's unless AITER's MLA is turned on), from 0.31.0.
SPEC_AS_DECODE_HOPPER = (0, 11, 1)
SPEC_AS_DECODE_BLACKWELL = (0, 15, 0)
SPEC_AS_DECODE_TRITON = (0, 31, 0)


def mla_verifies_as_prefill(setup: ReplicaSetup) -> bool:
    """Whether vLLM runs a speculative-decoding verify request (1 + num_speculative_tokens
    tokens) of an MLA model down the prefill path.

    The MLA metadata builder splits a batch into decodes and prefills at
    reorder_batch_threshold tokens a request (`split_decodes_and_prefills`): 1 in 0.11.0
    for every MLA backend but FlashAttention MLA (vllm/v1/attention/backends/mla/common.py
    `MLACommonMetadataBuilder`; FlashMLA, CUTLASS MLA, FlashInfer MLA, Triton MLA and AITER
    MLA keep it; FlashAttention MLA is never the default where FlashMLA runs), so every
    decoding sequence's verify request is a prefill of its 1 + k tokens: it up-projects its
    whole context in every layer (`_compute_prefill_context`) and attends over the
    up-projected keys and values (vLLM issue #21984). From the releases above
    (`SPEC_AS_DECODE_*`), the default backend takes them as decodes in the latent space.

    From 0.18.0, where vLLM keeps the --block-size given, Blackwell's default backend is
    the first that takes that block (platforms/cuda.py `get_attn_backend_cls`, read in
    0.18.0 and 0.33.0): FlashInfer MLA (32, 64), TokenSpeed MLA (32, 64), CUTLASS MLA
    (128) and FlashMLA (64) all refuse a 16-token block ("block_size not supported"),
    so it runs on Triton MLA."""
    if setup.model.attention != "mla" or setup.engine.speculative is None:
        return False
    gpu, release = setup.gpu, setup.engine.release
    major = gpu.capability_major if gpu.vendor == "nvidia" else None
    if major == 9:
        return release < SPEC_AS_DECODE_HOPPER
    if major == 10:
        if release >= MLA_BLOCK_KEPT_RELEASE and setup.block_size_tokens % 32:
            return release < SPEC_AS_DECODE_TRITON
        return release < SPEC_AS_DECODE_BLACKWELL
    return release < SPEC_AS_DECODE_TRITON


def mla_prefill_pads_values(gpu: GpuSpec) -> bool:
    """Whether vLLM's MLA prefill on this GPU multiplies the attention weights by values
    padded with zeros to the query-key width (DeepSeek: 128 values to 192).

    The common MLA backend prefills with FlashAttention's varlen kernel and pads V "for
    attention backends that do not support different headdims" unless it runs FA3 on
    Hopper (`_pad_v` in vllm/v1/attention/backends/mla/common.py, 0.11.0; the same rule in
    later releases); FA3 is the default on capability 9 only, FA2 elsewhere
    (attention/utils/fa_utils.py `get_flash_attn_version`). Capability 10.0 prefills with
    FlashInfer instead (`use_flashinfer_prefill`), which takes both widths. Not followed:
    ROCm, whose MLA backends pad or not by environment (AITER's varlen kernel does not,
    the Triton one does); left unpadded."""
    if gpu.vendor != "nvidia" or gpu.capability is None:
        return False
    return gpu.capability[0] != 9 and gpu.capability != (10, 0)


def _layer_params(model: ModelSpec) -> float:
    """Parameters a token goes through in the layers (no embeddings, no output head, no
    vision encoder: it runs only on images).

    Two counts, each at least that: the total less embeddings, the routed experts a token
    skips and the catalog's vision_params_b (a vision tower it does not give stays in:
    Llama 4, Gemma 3 and Mistral Small 3.2 give theirs); the model card's active count
    less one vocab x hidden matrix also holds the head, the input embedding where the card
    counts it (gpt-oss's does not) and a vision tower where it counts one (Gemma 3's). The
    smaller is the closer.
    """
    routed_skipped = model.expert_params - model.routed_active_params
    by_total = model.params_b * 1e9 - model.embedding_params - routed_skipped \
        - model.vision_params
    by_card = model.active_params_b * 1e9 - model.vocab_size * model.hidden_size
    return min(by_total, by_card)


def _expert_slot_params(setup: ReplicaSetup, spec: RooflineStepTime) -> float:
    """What a token's slots in its routed experts cost beyond the experts' GEMMs, as
    parameters of a 16-bit GEMM (6 x hidden x `expert_slot_overhead_width` FLOPs per slot
    on each GPU that runs a slice of the expert).

    Gathering, sorting, scattering and summing a token move its 16-bit hidden vector: the
    weight format's faster tensor cores do not shorten them. Every one of the tp GPUs pays
    it for every slot: without expert parallelism each holds a slice of every expert; with
    vLLM's (tensor parallel, one data-parallel rank) every token stays on every GPU, whose
    fused_moe sorts all the slots and writes zeros for the experts other GPUs hold. Only
    engines that send each token to its experts' GPUs (attention data parallelism) spread
    it: with data-parallel attention a slot costs only the GPU of its expert.
    """
    model = setup.model
    if not model.is_moe:
        return 0.0
    slots = model.moe_layer_count * (model.experts_per_token or 0)
    return slots * setup.attention_tp * 3.0 * model.hidden_size * spec.expert_slot_overhead_width


def linear(setup: ReplicaSetup, spec: LinearStepTime) -> StepTime:
    """Coefficients given directly (or fitted by `llmplan calibrate`): all serial,
    step = fixed + per_prefill_token x P + per_decode_seq x D + per_kv_token x K
    + per_prefill_pair x A (A: the prefill chunks' (query, key) pairs)."""
    return StepTime(serial_s=spec.fixed_ms * 1e-3,
                    serial_per_prefill_token_s=spec.per_prefill_token_us * 1e-6,
                    serial_per_seq_s=spec.per_decode_seq_us * 1e-6,
                    serial_per_kv_token_s=spec.per_kv_token_ns * 1e-9,
                    serial_per_pair_s=spec.per_prefill_pair_ns * 1e-9, source="linear")


def tabulated(setup: ReplicaSetup, spec: TabulatedStepTime) -> StepTime:
    """A step time measured against the step's tokens: straight between the points (from 0
    at none), past the last one at its last segment's rate; plus KV tokens and pairs."""
    tokens = [0, *(t for t, _ in spec.tokens_ms)]
    ms = [0.0, *(v for _, v in spec.tokens_ms)]
    table = np.interp(np.arange(tokens[-1] + 1), tokens, ms) * 1e-3
    rate_s = max(0.0, (ms[-1] - ms[-2]) / (tokens[-1] - tokens[-2])) * 1e-3
    return StepTime(serial_tokens_s=tuple(float(v) for v in table), serial_per_token_s=rate_s,
                    table_points_ms=tuple((int(t), float(v)) for t, v in spec.tokens_ms),
                    serial_per_kv_token_s=spec.per_kv_token_ns * 1e-9,
                    serial_per_pair_s=spec.per_prefill_pair_ns * 1e-9, source="tabulated")


def calibrated(setup: ReplicaSetup, spec: CalibratedStepTime) -> StepTime:
    """Coefficients measured on a real server by `llmplan calibrate`."""
    assert spec.calibration is not None  # loaded when the scenario was validated
    fitted = STEP_TIME_BUILDERS[spec.calibration.step_time.kind](setup,
                                                                  spec.calibration.step_time)
    return StepTime(**{**asdict(fitted),
                       "source": f"calibrated: {spec.file}",
                       "client_overhead_s": spec.calibration.client_overhead_ms * 1e-3})


STEP_TIME_BUILDERS: dict[str, Callable[..., StepTime]] = {
    "roofline": roofline,
    "linear": linear,
    "tabulated": tabulated,
    "calibrated": calibrated,
}


def build_step_time(setup: ReplicaSetup, spec: StepTimeSpec) -> StepTime:
    """The step-time model a deployment asks for."""
    step = STEP_TIME_BUILDERS[spec.kind](setup, spec)
    if setup.pp > 1 and isinstance(spec, RooflineStepTime):
        return pipelined(step, setup, spec)
    return step


def pipelined(step: StepTime, setup: ReplicaSetup, spec: RooflineStepTime) -> StepTime:
    """The roofline of tp GPUs running every layer, as rounds of pp micro-batches through pp
    stages (stepmodel.py's module docstring): a micro-batch's pass through the stages costs
    what one step of the whole model on tp GPUs costs (each stage reads its share of the
    weights at tp GPUs' bandwidth, so the stages' reads add up to the whole model's), plus
    the hand-over between stages, and a round pipelines pp of them.

    Between stages each micro-batch sends its hidden states and residual, two 16-bit
    vectors per token, every TP rank its 1/tp slice, which the next stage's ranks
    all-gather (vllm/distributed/parallel_state.py send_tensor_dict; IntermediateTensors in
    the model files), over the GPUs' link at the all-reduces' efficiency, with a
    collective's latency per hand-over; between servers the slices cross the network
    (network_gb_per_s per GPU). Pooled per round: the parts that grow with the
    tokens, the pairs and the context divided by pp; the weights, the per-layer floors
    and the fixed gap once a round (pp micro-batches each pay 1/pp of them per stage).
    The engine schedules each micro-batch while the others run (V1's batch queue), so
    the CPU's work, a schedule per micro-batch of the round (stepmodel.py), overlaps the
    GPUs'; the linear, tabulated and
    calibrated kinds are measured on a whole server and are left as they are."""
    pp, model, gpu = setup.pp, setup.model, setup.gpu
    # the hand-overs are one-way copies: between cards without peer-to-peer NCCL stages them
    # through host memory at about a copy's speed (19-20 GB/s measured on RTX 4090 boxes whose
    # all-reduces reach 2-4), so they keep the link, not host_allreduce_bus_gb_per_s
    link = gpu.interconnect_gb_per_s * 1e9 * spec.allreduce_efficiency
    # per token: a 1/tp slice sent by each rank, then (tp - 1)/tp of it gathered: one
    # whole pair of 16-bit vectors' time on one link
    vectors = 2 * model.hidden_size * 2.0
    hand_over = vectors / link
    # stages on several servers: servers - 1 of the hand-overs leave a server, each rank's
    # slice through its share of the server's network (the catalog's network_gb_per_s),
    # unless the servers share the GPUs' link domain (a GB200 NVL72 rack's trays)
    rack = gpu.node_gpus < gpu.interconnect_domain_gpus and setup.gpus <= \
        gpu.interconnect_domain_gpus
    crossings = 0 if rack else setup.servers - 1
    network = gpu.network_gb_per_s * 1e9 * spec.allreduce_efficiency
    across = vectors / setup.tp / network + vectors * (setup.tp - 1) / setup.tp / link
    pooled = step.compute_per_token_s / pp
    serial_per_token = (step.serial_per_token_s + (pp - 1 - crossings) * hand_over
                        + crossings * across) / pp
    # the busiest stage's reads per micro-batch: its run of the layers, and on the last the
    # output head (the one vocabulary matrix weights_s holds; the embedding is looked up)
    head_s = model.vocab_size * model.hidden_size * 2.0 / (
        setup.gpu.bandwidth_bytes_per_s * setup.tp * spec.memory_efficiency)
    layers_s = max(0.0, step.weights_s - head_s)
    split = stage_layers(model.layers, pp)
    busiest = max(layers_s * n / model.layers + (head_s if i == pp - 1 else 0.0)
                  for i, n in enumerate(split))
    return replace(
        step,
        serial_s=step.serial_s + (pp - 1) * spec.tp_sync_us_per_layer * 1e-6,
        serial_per_token_s=serial_per_token,
        compute_per_token_s=pooled,
        compute_per_pair_s=step.compute_per_pair_s / pp,
        compute_per_prefill_pair_s=step.compute_per_prefill_pair_s / pp,
        compute_per_window_seq_s=step.compute_per_window_seq_s / pp,
        compute_per_sampled_s=step.compute_per_sampled_s / pp,
        upproject_per_context_token_s=step.upproject_per_context_token_s / pp,
        memory_per_kv_token_s=step.memory_per_kv_token_s / pp,
        memory_per_seq_s=step.memory_per_seq_s / pp,
        async_cpu=True,
        # a round lasts at least its costliest micro-batch's whole pass, all-reduces
        # included (stepmodel.py)
        ranks=pp, rank_dense_per_token_s=pooled + serial_per_token, stages=pp,
        stage_tokens=setup.rank_max_num_batched_tokens, stage_weights_s=busiest)
