"""How much KV cache one replica has, counted the way vLLM counts it at start-up.

Per GPU (vllm/v1/worker/gpu_worker.py `determine_available_memory`, read in v0.11.0,
v0.21.0 and v0.33.0):

    budget    = total memory the runtime reports x gpu_memory_utilization
    available = budget - weights - activation peak - non-torch memory
                - CUDA graphs (their estimate, from v0.20.0; from 0.29.0 on Model
                  Runner V2, whose estimate was a stub returning 0 before)

`weights` are this GPU's share (tensor parallel splits every matrix, expert parallel the
experts; with data-parallel attention each rank holds the layers outside the experts
whole). The activation peak is vLLM's profiling run: a forward pass of
max_num_batched_tokens tokens (a mixture of experts also holds the fused-MoE kernel's
caches, for every rank's tokens with data-parallel attention), then the sampler on
min(max_num_seqs, those tokens) rows of fp32 logits over the vocabulary, whose sort and
softmax copies dominate in V1; the forward pass's temporaries are freed before the
sampler runs (only its output hidden states stay), so the peak is the larger of the two
phases, not their sum. Non-torch memory (CUDA context growth, NCCL buffers) grows with
tensor parallelism. CUDA graphs: since v0.20.0 vLLM captures a few of the graphs it will
use while profiling (on Model Runner V2, which serves every dense model from 0.25.0, only
from 0.29.0: llmplan.perf.runner) and takes its estimate of their pool out of the budget
(VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS, on by default; gpu_worker.py
`determine_available_memory` in v0.27.1: available = requested - non-KV memory - the
applied estimate). A v0.26.0 log on a B300 adds up that way: 246.27 GiB requested = 58.99
weights + 0.25 non-torch + 3.9 peak activation + the 0.76 GiB "Estimated CUDA graph
memory" + 182.37 KV cache (the pool it then captured: 0.70 GiB). Earlier releases capture
the graphs after the KV cache is allocated, outside the budget (`cuda_graph_bytes`).

Pipeline stages (pp > 1) hold runs of the layers, vLLM's split (vllm/distributed/utils.py
`get_pp_indices`: L // pp layers each, the remainder one more each on the stages before the
last, counting back from the second-to-last); the first stage also holds the input
embedding, the last the final norm, the output head and the sampler (PPMissingLayer
elsewhere; with tied embeddings the last stage loads its own copy, which is its head).
Each stage's workers
profile their own memory and size a cache of their own layers' pages, and the engine
takes the fewest blocks any worker has (vllm/v1/core/kv_cache_utils.py
`get_kv_cache_configs`, v0.11.0; every worker's tensors shrunk to that count by 0.27.1,
re-planned to it in v0.34's kv_cache_planning.py), so the replica's cache is its tightest
stage's.

The available bytes become blocks of `block_size` tokens: one block holds a page of every
layer of a KV-cache group. Dense models have one group of all layers; models mixing
sliding-window and full-attention layers (gpt-oss, Gemma 3) have groups of equal size
(vllm/v1/core/kv_cache_utils.py), and a block holds one page of each layer of one group.
A page is 2 (K and V) x block x KV heads on this GPU x head dim x bytes for GQA, and
block x (latent rank + rope dims) x bytes for MLA (one latent vector, on every GPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from llmplan.catalog.catalog import DTYPE_BYTES, WEIGHT_BITS
from llmplan.perf.drafter import drafter
from llmplan.perf.engine import GIB
from llmplan.perf.mxfp4_layout import expert_padding, hopper_scale_bytes
from llmplan.perf.parallel import pp_error, setup_allowed_tp, tp_error
from llmplan.perf.runner import model_runner
from llmplan.perf.setup import ReplicaSetup, servers_for
from llmplan.perf.support import format_error, release_error

#: vLLM V1 sampler warm-up: fp32 logits copies of max_num_seqs x vocab alive at the peak
#: (sort keys, indices, softmax), next to the forward pass's output hidden states. The count
#: changed between releases; from published start-up logs (benchmarks/kv_record.yaml and the
#: activation lines of llm-d's H100 table): v0.10.2-v0.11 show 9.6 copies within 0.5%
#: (Llama-3.1-8B 4.76 GiB, Qwen3-0.6B 5.56, Qwen3-32B 5.64, gpt-oss 7.38 GiB at 1024
#: sequences: Qwen3-32B's peak exceeds Qwen3-0.6B's by just their hidden states' difference,
#: 0.06 GiB); v0.9-v0.10.1 logs leave 0.4-0.8 GiB for activations and non-torch memory
#: together (about 4 copies); v0.17 and later (below), whose budgets from v0.20 also hold
#: the CUDA graphs' estimate (`cuda_graph_bytes`), 1.55: Llama-3.1-8B on one H100 at v0.21.0
#: leaves 1.59 GiB
#: for the peak and the graphs at 1024 sequences, 0.77 of it the graphs' (fitted there, on
#: one GPU, clear of tensor parallelism's non-torch memory). Calibrate with your server's
#: "Available KV cache memory" line. These are the V1 model runner's; Model Runner V2's
#: warm-up is in `activation_bytes`.
#: The release boundaries follow vLLM's sampler (vllm/v1/sample/ops/topk_topp_sampler.py, read
#: in the published wheels): a PyTorch sort over the logits (about six fp32 copies alive)
#: from 0.11.1 to 0.16 (and before, where FlashInfer was not installed: the v0.10.2-v0.11
#: fit stands for those releases up to 0.16); a Triton kernel
#: working in place from 0.17 and FlashInfer's from 0.21 (about three each), so the v0.21
#: fit holds from 0.17.
LOGIT_COPIES = (((0, 17), 1.55), ((0, 10, 2), 9.6), ((0, 9), 4.0))
#: From 0.33 Model Runner V2's warm-up samples a second time with every sampling parameter
#: set ("pays for the fp32 logits pipeline", `_dummy_sampler_run`,
#: SamplingParams.for_sampler_warmup): an fp32 copy of the logits and the top-k/top-p
#: sampler's own, for which V1's fitted copies (the same FlashInfer sampler) stand in.
V2_FP32_WARMUP_RELEASE = (0, 33)
#: Until 0.26 Model Runner V2's sampler copied the logits to fp32 whatever the requests asked
#: (sample/sampler.py `apply_sampling_params`, 0.22-0.25); from 0.26 only when they ask for
#: processing, which the warm-up's empty requests do not
V2_IN_PLACE_SAMPLER_RELEASE = (0, 26)
#: Non-torch memory per GPU (GiB): CUDA context growth, and communication buffers with tensor
#: parallelism (see `non_torch_bytes`).
NON_TORCH_ONE_GPU_GIB, NON_TORCH_TP_GIB = 0.13, 0.55
#: vLLM's default largest CUDA-graph batch (1024 on data-centre Blackwell, compute capability
#: 10.x, from 0.28.0: vllm/config/vllm.py), and the graph pool's fit (see `cuda_graph_bytes`).
MAX_CAPTURE_TOKENS, BLACKWELL_CAPTURE_TOKENS, BLACKWELL_CAPTURE_RELEASE = 512, 1024, (0, 28)
GRAPH_POOL_FIXED_GIB, GRAPH_POOL_PER_TOKEN_MIB, MOE_GRAPH_FACTOR = 0.05, 1.43, 2.0
#: From these releases the graphs' estimate is part of the budget (VLLM_MEMORY_PROFILER_
#: ESTIMATE_CUDAGRAPHS on by default from 0.20.0, vllm/envs.py; vllm/v1/worker/gpu_worker.py
#: skipped it on ROCm until 0.26.0, vllm-project/vllm#44825).
GRAPHS_IN_BUDGET_RELEASE, ROCM_GRAPHS_IN_BUDGET_RELEASE = (0, 20), (0, 26)
#: Model Runner V2's profile_cudagraph_memory returned 0 ("TBD") until 0.29.0
#: (vllm/v1/worker/gpu/model_runner.py)
V2_ESTIMATES_GRAPHS_RELEASE = (0, 29)
#: From 0.32 Model Runner V2 drafts n-grams on the GPU and keeps the token ids there
#: (vllm/v1/worker/gpu/model_runner.py `use_dense_all_token_ids`)
NGRAM_TOKENS_ON_GPU_RELEASE = (0, 32)
#: From this release `--max-model-len auto` fits an unset context to the KV cache (vLLM
#: 0.14.0: `human_readable_int_or_auto` in vllm/engine/arg_utils.py, `_auto_fit_max_model_len`
#: in vllm/v1/core/kv_cache_utils.py; 0.13.0's parser refuses `auto`).
AUTO_MAX_MODEL_LEN_RELEASE = (0, 14)
#: From this release an fp8_e5m2 KV cache on Hopper gets a backend that takes it: before,
#: FlashAttention, vLLM's choice there for fp8 caches, read it as e4m3 (0.8-0.10.0) or
#: refused it (0.10.1-0.21: `get_fp8_dtype_for_flashattn`), vllm/v1/attention/backends/
#: flash_attn.py and vllm/platforms/cuda.py read in the published wheels.
E5M2_ON_HOPPER_RELEASE = (0, 22)
def rocm_error(setup: ReplicaSetup) -> str | None:
    """Why vLLM's ROCm build cannot serve these formats on an AMD GPU (None: it can).

    Read in 0.11.0: `RocmPlatform.supported_quantization` has no modelopt_fp4, the format of
    NVFP4 checkpoints, whose only ROCm path is petit_nvfp4, on the separate petit-kernel
    package (not in vLLM; llmplan's stack does not install it); and --kv-cache-dtype's help
    (vllm/config/cache.py): "ROCm (AMD GPU) supports fp8 (=fp8_e4m3)", not fp8_e5m2."""
    if setup.gpu.vendor != "amd":
        return None
    if setup.weights_dtype == "nvfp4":
        return (f"weights_dtype nvfp4 on {setup.gpu_name}: vLLM's ROCm build serves NVFP4 "
                f"checkpoints only through the separate petit-kernel package "
                f"(petit_nvfp4), which the stack does not install; expected weights_dtype "
                f"fp8, mxfp4, int4 or bf16 on AMD GPUs")
    if setup.engine.kv_cache_dtype_flag == "fp8_e5m2":
        return (f"kv_dtype fp8_e5m2 on {setup.gpu_name}: vLLM on ROCm takes fp8 (= fp8_e4m3) "
                f"KV caches only; expected kv_dtype fp8 (or fp8_e4m3)")
    return None


#: Device memory in use when vLLM starts (CUDA context, before any tensor): vLLM refuses a
#: budget larger than the free memory it finds (vllm/v1/worker/utils.py, "Free memory on
#: device ... is less than desired GPU memory utilization"); 267.69 - 267.08 GiB on a B300
#: in a v0.26.0 log ("Free memory on device (267.08/267.69 GiB) on startup").
CUDA_CONTEXT_GIB = 0.6
#: Tokens the fused-MoE kernel runs at once (VLLM_FUSED_MOE_CHUNK_SIZE's default, 32768).
FUSED_MOE_CHUNK_TOKENS = 32768
#: Forward-pass activations per batched token: the widest live tensors of one layer,
#: 16-bit: its hidden-sized input and output, and in a dense MLP the gate and up
#: projections' output (2 x intermediate) next to the activation's (1 x intermediate)
#: written from it (vllm/model_executor/layers/activation.py SiluAndMul: out = d / 2).
FORWARD_WIDTHS = 2
MLP_WIDTHS = 3
#: What a pipeline stage after the first receives per token: the hidden states and the
#: residual (IntermediateTensors of the decoder models), 16-bit.
RECEIVED_WIDTHS = 2


@dataclass(frozen=True)
class Stage:
    """The layers one pipeline stage holds (the whole model without pipeline parallelism),
    whether it holds the input embedding and the output head with the sampler, and
    whether it receives the previous stage's hidden states."""

    layers: int
    full_layers: int
    sliding_layers: int
    embedding: bool
    head: bool
    receives: bool = False


def stage_layers(layers: int, pp: int) -> list[int]:
    """vLLM's split of `layers` over `pp` stages (get_pp_indices): the remainder goes one
    layer each to the stages before the last, from the second-to-last backwards."""
    parts = [layers // pp] * pp
    for i in range(layers % pp):
        parts[-2 - i] += 1
    return parts


def stages(setup: ReplicaSetup) -> list[Stage]:
    """The replica's pipeline stages; a mix of sliding-window and full layers is spread in
    proportion (the catalog does not order them)."""
    model, pp = setup.model, setup.pp
    if pp == 1:
        return [Stage(model.layers, model.full_layers, model.sliding_layers, True, True)]
    out = []
    for i, count in enumerate(stage_layers(model.layers, pp)):
        sliding = round(model.sliding_layers * count / model.layers)
        out.append(Stage(count, count - sliding, sliding, embedding=i == 0
                         or (i == pp - 1 and model.tie_word_embeddings), head=i == pp - 1,
                         receives=i > 0))
    return out


@dataclass(frozen=True)
class MemoryBudget:
    """Where one GPU's memory goes (bytes)."""

    total_bytes: float
    budget_bytes: float
    weights_bytes: float
    activation_bytes: float
    non_torch_bytes: float
    cuda_graph_bytes: float
    graphs_in_budget: bool = False   # vLLM >= 0.20 (ROCm: 0.26): the estimate is budgeted
    runner_buffers_bytes: float = 0.0    # Model Runner V2's sampler and request buffers

    @property
    def budgeted_graph_bytes(self) -> float:
        """The CUDA graphs' share of the budget (vLLM >= 0.20, on ROCm 0.26; before, they
        live outside)."""
        return self.cuda_graph_bytes if self.graphs_in_budget else 0.0

    @property
    def available_bytes(self) -> float:
        """What the KV cache gets."""
        return self.budget_bytes - self.weights_bytes - self.activation_bytes \
            - self.non_torch_bytes - self.budgeted_graph_bytes - self.runner_buffers_bytes


@dataclass(frozen=True)
class KvCapacity:
    """KV capacity of one replica, or why there is none.

    `blocks` is what the simulator's paged cache holds (one block: `block_size_tokens`
    tokens of every full-attention layer); `logged_tokens` and `max_concurrency` are the
    figures vLLM prints at start-up for `max_model_len`.
    """

    blocks: int
    block_size_tokens: int
    kv_bytes_per_token: float        # one GPU, every layer (as vLLM pages them)
    kv_cache_bytes: float            # one GPU: the whole blocks vLLM allocates
    block_bytes: float               # one GPU, one block: a page of each layer of a group
    budget: MemoryBudget
    max_model_len: int
    vllm_blocks: int                  # "# GPU blocks": pages of one group
    kv_groups: int
    logged_tokens: int                # "GPU KV cache size: N tokens"
    max_concurrency: float            # "Maximum concurrency for max_model_len tokens"
    error: str | None = None
    full_groups: int = 1              # KV-cache groups of full-attention layers
    sliding_groups: int = 0           # and of sliding-window layers
    window_blocks: int = 0            # pages a sliding group holds per request, at most

    @property
    def tokens(self) -> int:
        return self.blocks * self.block_size_tokens

    def window_reserve_blocks(self, request_tokens: int) -> int:
        """Blocks (of `blocks`) a request of this many tokens holds for its sliding-window
        layers (see `window_reserve_blocks`)."""
        return window_reserve_blocks(request_tokens, block=self.block_size_tokens,
                                     sliding_groups=self.sliding_groups,
                                     full_groups=self.full_groups,
                                     window_blocks=self.window_blocks)

    def concurrency_at(self, request_tokens: float) -> float:
        """Requests of `request_tokens` tokens the KV cache holds at once."""
        tokens = max(1, math.ceil(request_tokens))
        per_request = -(-tokens // self.block_size_tokens) + self.window_reserve_blocks(tokens)
        return self.blocks / per_request

    @property
    def weights_gb_per_gpu(self) -> float:
        return self.budget.weights_bytes / 1e9


def weights_bytes_per_gpu(setup: ReplicaSetup, stage: Stage | None = None) -> float:
    """This GPU's share of the weights and of a speculative drafter's (llmplan.perf.drafter:
    an EAGLE head, a draft model, the model's MTP modules): the fullest GPU's share of the
    routed experts, and the rest split over the GPUs one rank's attention runs on (with
    data-parallel attention each rank holds it whole) but for what every GPU holds whole
    (ModelSpec.replicated_params: routers, MLA's down-projections); of a pipeline stage's layers (in
    proportion to their count), and the 16-bit vocabulary matrices it holds. MXFP4 experts
    take the room their kernel's padding gives them, and on Hopper a second copy of their
    scales (llmplan.perf.mxfp4_layout)."""
    model, dtype = setup.model, setup.weights_dtype
    stage = stage or stages(setup)[0]
    experts = model.weight_bytes(dtype) - model.weight_bytes_without_experts(dtype)
    matrix = model.vocab_size * model.hidden_size * 2.0
    vocab = model.embedding_params * 2.0
    share = stage.layers / model.layers
    # a stage holds one vocabulary matrix, the embedding or the head (with tied embeddings
    # the last stage's head is its own copy of the embedding, one matrix: lm_head is
    # tied to embed_tokens there)
    held = matrix * (stage.embedding or stage.head) if setup.pp > 1 else vocab
    replicated = model.replicated_bytes(dtype) * share
    rest = (model.weight_bytes(dtype) - experts - vocab) * share - replicated + held \
        + drafter(setup).weights_bytes
    return experts * expert_padding(setup) * share * setup.fullest_expert_share \
        + hopper_scale_bytes(setup) * share + rest / setup.attention_tp + replicated


def activation_bytes(setup: ReplicaSetup, stage: Stage | None = None) -> float:
    """Peak of vLLM's profiling run on one GPU (see the module docstring); a stage without
    the output head runs no sampler. A stage after the first keeps a buffer for the hidden
    states and residual it receives, sized for the largest batch, through the whole run
    (make_empty_intermediate_tensors(batch_size=max_num_tokens): the V1 runner's first
    `_dummy_run`, V2's `load_model`; read in 0.27.1)."""
    received = setup.rank_max_num_batched_tokens * RECEIVED_WIDTHS \
        * setup.model.hidden_size * 2.0 if stage is not None and stage.receives else 0.0
    return received + _profiling_peak_bytes(setup, stage)


def _profiling_peak_bytes(setup: ReplicaSetup, stage: Stage | None) -> float:
    """The profiling run's own peak, the forward pass's or the sampler's (no buffers)."""
    model, engine = setup.model, setup.engine
    tokens = setup.rank_max_num_batched_tokens
    rows = min(setup.rank_max_num_seqs, tokens)
    # a layer holds its input and output for every token it runs (a routed layer with
    # data-parallel attention: every rank's, all-gathered), and its MLP's intermediates
    forward = tokens * setup.attention_ranks * FORWARD_WIDTHS * model.hidden_size * 2.0
    forward += moe_workspace_bytes(setup) if model.is_moe \
        else tokens * MLP_WIDTHS * model.intermediate_size / setup.tp * 2.0
    if stage is not None and not stage.head:
        return forward
    logits = rows * model.vocab_size * 4.0
    hidden = tokens * model.hidden_size * 2.0       # the forward pass's output, kept
    release = engine.release
    if model_runner(setup) == "v2":
        # V2's warm-up samples the 16-bit logits (a Gumbel argmax per block: sample/
        # sampler.py, gumbel.py): each rank's slice of the vocabulary and, under tensor
        # parallelism, the gathered whole (layers/logits_processor.py); before 0.26 its
        # sampler always copied them to fp32 first; from 0.33 a second pass runs the fp32
        # pipeline
        slices = 1.0 + (1.0 / setup.attention_tp if setup.attention_tp > 1 else 0.0)
        fp32 = LOGIT_COPIES[0][1] * logits if release >= V2_FP32_WARMUP_RELEASE \
            else logits if release < V2_IN_PLACE_SAMPLER_RELEASE else 0.0
        return max(forward, hidden + slices * logits / 2 + fp32)
    for since, copies in LOGIT_COPIES:
        if release >= since:
            return max(forward, hidden + copies * logits)
    return forward + logits          # V0: the forward pass dominates, one logits copy


def moe_workspace_bytes(setup: ReplicaSetup) -> float:
    """The fused-MoE kernel's intermediate caches in the profiling run: for M tokens, each
    with its top-k expert slots, one 16-bit buffer of M x k x max(2N, hidden) (the gate and
    up projections, reused for the down projection's output) and one of M x k x N (after
    the activation), N the expert width one GPU computes (whole with expert parallelism),
    M at most VLLM_FUSED_MOE_CHUNK_SIZE tokens at a time (vllm/model_executor/layers/
    fused_moe/fused_moe.py, fused_experts_impl). With data-parallel attention the routed
    layers run every rank's tokens (the all-gather), so M is the ranks' budgets together."""
    model = setup.model
    assert model.moe_intermediate_size is not None and model.experts_per_token is not None
    width: float = model.moe_intermediate_size
    if setup.expert_parallel == 1:
        width = width / setup.tp
    tokens = min(setup.rank_max_num_batched_tokens * setup.attention_ranks,
                 FUSED_MOE_CHUNK_TOKENS)
    slots = tokens * model.experts_per_token
    return slots * (max(2 * width, model.hidden_size) + width) * 2.0


def non_torch_bytes(setup: ReplicaSetup) -> float:
    """CUDA context growth and communication buffers: about 0.13 GiB on one GPU and 0.55
    GiB per GPU with tensor parallelism (v0.11 start-up logs of Llama-3.1-8B, Qwen3-32B,
    Llama-3.3-70B on H100)."""
    return (NON_TORCH_TP_GIB if setup.gpus > 1 else NON_TORCH_ONE_GPU_GIB) * GIB


def cuda_graph_bytes(setup: ReplicaSetup) -> float:
    """CUDA-graph pool of one GPU (0 with enforce_eager), every pipeline stage capturing the
    same batch sizes: vLLM's own estimate, inside the budget from v0.20 on.

    The pool grows with the largest batch captured, vLLM's max_cudagraph_capture_size:
    min(2 x max_num_seqs x (1 + speculative tokens), 512, max_num_batched_tokens)
    (vllm/config/vllm.py, v0.27.1), and hardly with the model: the published estimates
    ("Estimated CUDA graph memory: N GiB total", v0.22-v0.26 logs of dense models from
    1.2B to 31B parameters) are 0.13 GiB at 40 tokens, 0.37-0.40 at 256 and 0.58-0.79 at
    512; a least-squares line through the four of plain decoders gives 0.05 GiB plus 1.43
    MiB per token. A mixture of experts' fused-expert workspaces are captured too: its
    pools measured about twice a dense model's (v0.11: 1.3 GiB for Qwen3-30B-A3B, 1.9 GiB
    per GPU for gpt-oss-120b at tp 4, against 0.23-0.68 GiB for 7-8B dense models).
    """
    if setup.engine.enforce_eager:
        return 0.0
    capture = capture_tokens(setup)
    pool = GRAPH_POOL_FIXED_GIB * GIB + capture * GRAPH_POOL_PER_TOKEN_MIB * (1 << 20)
    return pool * (MOE_GRAPH_FACTOR if setup.model.is_moe else 1)


def batches_in_flight(setup: ReplicaSetup) -> int:
    """Batches whose tokens a sliding-window layer's pages must cover per request, as vLLM
    reserves them from 0.26.0 (vllm/config/vllm.py `max_concurrent_batches`, `max_in_flight_
    tokens`; one batch before): a batch per pipeline stage, and with async scheduling one
    more on Model Runner V2 (llmplan.perf.runner) or two without stages on the V1
    runner."""
    engine = setup.engine
    if engine.release < (0, 26):
        return 1
    if setup.async_scheduling:
        if model_runner(setup) == "v2":
            return setup.pp + 1
        if setup.pp <= 1:
            return 2
    return setup.pp


def capture_tokens(setup: ReplicaSetup) -> int:
    """The largest batch vLLM captures a CUDA graph of, by release (vllm/config/vllm.py
    and, before 0.11.1, vllm/config/scheduler.py `cuda_graph_sizes`, read in the published
    wheels): up to 512 whatever the sequences before 0.10; twice max_num_seqs, at most 512,
    from 0.10; times the tokens a speculative step verifies from 0.13; at most 1024 on
    data-centre Blackwell from 0.28; never past max_num_batched_tokens."""
    engine = setup.engine
    cap = BLACKWELL_CAPTURE_TOKENS if engine.release >= BLACKWELL_CAPTURE_RELEASE \
        and setup.gpu.capability_major == 10 else MAX_CAPTURE_TOKENS
    speculative = engine.speculative
    query = 1 + (speculative.num_speculative_tokens
                 if speculative is not None and engine.release >= (0, 13) else 0)
    largest = cap if engine.release < (0, 10) else min(2 * setup.rank_max_num_seqs * query, cap)
    return min(largest, setup.rank_max_num_batched_tokens)


def memory_budget(setup: ReplicaSetup, stage: Stage | None = None) -> MemoryBudget:
    """One GPU's budget (of `stage`; without one, of the first stage)."""
    total = setup.gpu.memory_bytes
    stage = stage or stages(setup)[0]
    return MemoryBudget(
        total_bytes=total, budget_bytes=total * setup.gpu_memory_utilization,
        weights_bytes=weights_bytes_per_gpu(setup, stage),
        activation_bytes=activation_bytes(setup, stage),
        non_torch_bytes=non_torch_bytes(setup),
        cuda_graph_bytes=cuda_graph_bytes(setup),
        graphs_in_budget=graphs_in_budget(setup),
        runner_buffers_bytes=runner_buffers_bytes(setup, stage))


def runner_buffers_bytes(setup: ReplicaSetup, stage: Stage | None = None) -> float:
    """Buffers Model Runner V2 allocates when it starts, before vLLM profiles (so its
    budget counts them), that grow with max_num_seqs (vllm/v1/worker/gpu/, read in the
    published wheels from 0.22):
    - on the stage with the output head, the sampler's penalty counts
      (sample/penalties.py `output_bin_counts`: int32 per sequence and vocabulary entry,
      and `prompt_bin_mask`, a bit each), allocated whatever the requests ask, and the
      structured-output worker's grammar bitmask (structured_outputs.py: a bit per
      vocabulary entry for each sequence and each of its draft positions);
    - from 0.32 with n-gram drafts, every request's token ids on the GPU (states.py
      `all_token_ids`, int32 per sequence and position up to max_model_len as vLLM first
      sets it, the model's whole context when it is left to `auto`; host memory
      otherwise).
    The V1 runner allocates neither."""
    if model_runner(setup) != "v2":
        return 0.0
    model, engine = setup.model, setup.engine
    seqs = setup.rank_max_num_seqs
    total = 0.0
    if stage is None or stage.head:
        words = -(-model.vocab_size // 32)
        drafts = engine.speculative.num_speculative_tokens if engine.speculative else 0
        total += seqs * (model.vocab_size + words * (2 + drafts)) * 4.0
    speculative = engine.speculative
    if speculative is not None and speculative.method == "ngram" \
            and engine.release >= NGRAM_TOKENS_ON_GPU_RELEASE:
        total += seqs * (engine.max_model_len or model.max_context_tokens) * 4.0
    return total


def graphs_in_budget(setup: ReplicaSetup) -> bool:
    """Whether vLLM takes its CUDA graphs' estimate out of the budget: as the engine sets
    VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS, else by release; vLLM estimates nothing on
    ROCm before 0.26, nor on Model Runner V2 before 0.29 (llmplan.perf.runner), whatever
    the variable says."""
    release = setup.engine.release
    if setup.gpu.vendor == "amd" and release < ROCM_GRAPHS_IN_BUDGET_RELEASE:
        return False
    if release < V2_ESTIMATES_GRAPHS_RELEASE and model_runner(setup) == "v2":
        return False             # Model Runner V2's estimate was a stub returning 0
    estimate = setup.engine.cuda_graph_estimate
    return release >= GRAPHS_IN_BUDGET_RELEASE if estimate is None else estimate


@dataclass(frozen=True)
class KvLayout:
    """How vLLM pages one GPU's KV cache: layers per group, groups, page bytes."""

    page_bytes: float          # one layer, one block
    group_size: int            # layers whose pages share a block
    full_groups: int
    sliding_groups: int
    drafter_bytes: float = 0.0     # a draft model's pages of one block, spread over the groups

    @property
    def groups(self) -> int:
        return self.full_groups + self.sliding_groups

    def block_bytes(self) -> float:
        return self.group_size * self.page_bytes + self.drafter_bytes


#: Releases whose hybrid KV cache manager is off for chunked local attention (Llama 4) by
#: default: VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE defaults to "0" from 0.10.1
#: ("There is a latency regression ... Disabling it, by default": config/vllm.py) and to
#: "1" from 0.14.0 (envs.py of each wheel)
CHUNKED_HYBRID_OFF_RELEASES = ((0, 10, 1), (0, 14, 0))
#: drafters that keep it off with chunked local attention in every release, 0.10.0 too
#: (speculative_config.use_eagle(), uses_target_hidden_states in 0.34)
HIDDEN_STATE_DRAFTERS = ("eagle", "eagle3", "mtp")


def pages_local_layers_whole(setup: ReplicaSetup) -> bool:
    """vLLM pages the chunked-local-attention layers as full attention (every layer a page
    per block of the whole context: kv_cache_utils.unify_hybrid_kv_cache_specs), with its
    hybrid KV cache manager off; attention still reads a chunk's worth."""
    engine, model = setup.engine, setup.model
    if model.local_attention != "chunked" or not model.sliding_layers:
        return False
    low, high = CHUNKED_HYBRID_OFF_RELEASES
    speculative = engine.speculative
    return low <= engine.release < high or (
        speculative is not None and speculative.method in HIDDEN_STATE_DRAFTERS)


def kv_layout(setup: ReplicaSetup, stage: Stage | None = None) -> KvLayout:
    model, block = setup.model, setup.block_size_tokens
    stage = stage or stages(setup)[0]
    if pages_local_layers_whole(setup):
        stage = replace(stage, full_layers=stage.full_layers + stage.sliding_layers,
                        sliding_layers=0)
    page = block * model.kv_bytes_per_token_per_layer(setup.kv_dtype, setup.attention_tp)
    # the drafter's attention layers take pages of the same blocks: MTP modules and EAGLE
    # heads are layers of the model's shape; a draft model's pages (its own shape) add to
    # every block, spread over the groups (exact for dense models, one group)
    draft = drafter(setup)
    extra = draft.kv_layers if draft.same_shape else 0
    full = stage.full_layers + extra
    sliding = stage.sliding_layers
    if sliding == 0 or full == 0:
        groups = (1 if full else 0, 1 if sliding else 0)
        group = full + sliding
    else:
        group = min(full, sliding)
        if max(full, sliding) < 1.5 * group:        # v0.33: one group size for both kinds
            group = max(full, sliding)
        groups = (math.ceil(full / group), math.ceil(sliding / group))
    own = 0.0 if draft.same_shape else block * draft.kv_layers * draft.kv_layer_bytes
    return KvLayout(page, group, *groups, drafter_bytes=own / max(1, sum(groups)))


def kv_capacity(setup: ReplicaSetup) -> KvCapacity:
    """KV blocks of one replica (all its GPUs), or the reason there is no room for any.

    With data-parallel attention each GPU is a rank with a cache of its own: the replica
    holds every rank's blocks (the simulator pools them, as if the ranks' loads stayed
    even), a request at most one rank's, and the logged figures are one rank's, as each
    rank prints them."""
    model, engine = setup.model, setup.engine
    block = setup.block_size_tokens
    budget, layout, available, vllm_blocks = _tightest_stage(setup)
    # a sequence needs a page of every full-attention group per block of its tokens
    # (`blocks` counts those), and a page of every sliding-window group per block of its
    # last window (KvCapacity.window_reserve_blocks, held while it runs)
    rank_blocks = vllm_blocks // max(1, layout.full_groups)
    blocks = rank_blocks * setup.attention_ranks
    if engine.kv_cache_tokens is not None:
        # set by hand: one rank's tokens, as the other per-rank settings
        rank_blocks = math.ceil(engine.kv_cache_tokens / block)
        blocks = rank_blocks * setup.attention_ranks
    capacity_tokens = rank_blocks * block
    window = (model.sliding_window_tokens or 0) - 1 \
        + setup.rank_max_num_batched_tokens * batches_in_flight(setup)

    def pages(tokens: int) -> int:
        """Pages one request of `tokens` holds at most: a page of every full-attention
        group per block of its tokens, and of every sliding-window group per block of its
        last window and the batches in flight (vLLM's `max_memory_usage_bytes` per
        group, summed over the groups: kv_cache_utils.py `_max_memory_usage_bytes_from_
        groups`, 0.19 on; per layer before 0.14; the first group alone between)."""
        held = layout.full_groups * math.ceil(tokens / block)
        if layout.sliding_groups:
            held += layout.sliding_groups * (math.ceil(min(window, tokens) / block) + 1)
        return held

    # the longest request one rank's cache holds whole, its window pages included (what
    # vLLM's `--max-model-len auto` finds by the same binary search; a hybrid model's
    # window pages make it shorter than the full-attention pages alone would)
    held = vllm_blocks if engine.kv_cache_tokens is None \
        else rank_blocks * max(1, layout.full_groups)       # one rank's, as set by hand
    fits_len = _longest(pages, held, model.max_context_tokens)
    if layout.sliding_groups and AUTO_MAX_MODEL_LEN_RELEASE <= engine.release < (0, 19):
        # 0.14 to 0.18 sized a hybrid model's request by its first KV-cache group alone
        # (`_max_memory_usage_bytes_from_groups`: `any_spec = kv_cache_groups[0]`), the
        # sliding-window group of every hybrid model llmplan knows (their first layer
        # slides): a window's pages, so auto-fit and the start-up check take the whole
        # context, whatever the cache holds of it
        fits_len = model.max_context_tokens \
            if math.ceil(min(window, model.max_context_tokens) / block) + 1 <= held else 0
    max_len = engine.max_model_len or min(model.max_context_tokens, max(fits_len, 1))
    # vLLM 0.14 and later fit an unset length to the cache (`--max-model-len auto`, which
    # the stack passes then) and log their figures at that length
    logged_len = engine.max_model_len or (
        max_len if engine.version >= AUTO_MAX_MODEL_LEN_RELEASE else model.max_context_tokens)
    per_request = pages(logged_len)
    concurrency = held / per_request if per_request else 0.0
    logged = int(concurrency * logged_len) if engine.version >= (0, 20) \
        else vllm_blocks // max(1, layout.groups) * block
    bytes_per_token = layout.groups * layout.block_bytes() / block
    # one pool of blocks serves every group (a block is a page of each layer of one group),
    # so the groups share the memory rather than multiply it: vLLM allocates `group_size`
    # tensors of num_blocks pages, each shared by one layer of every group
    # (vllm/v1/core/kv_cache_utils.py `get_kv_cache_config_from_groups`). With
    # kv_cache_tokens set: the blocks holding those tokens' full-attention pages.
    pool_blocks = vllm_blocks if engine.kv_cache_tokens is None \
        else rank_blocks * max(1, layout.full_groups)
    error = None
    if (problem := drafter(setup).error) is not None:
        error = problem
    elif engine.max_model_len is not None and engine.max_model_len > model.max_context_tokens:
        # vLLM refuses a max_model_len past the model's own (vllm/config/model.py,
        # _get_and_verify_max_len) unless VLLM_ALLOW_LONG_MAX_MODEL_LEN is set
        error = (f"engine.max_model_len {engine.max_model_len} exceeds {setup.model_name}'s "
                 f"context window ({model.max_context_tokens} tokens), which vLLM refuses; "
                 f"expected max_model_len <= {model.max_context_tokens}")
    elif (problem := setup.scheduler_error()) is not None:
        error = problem
    elif engine.kv_cache_dtype_flag == "fp8_e5m2" and (0, 8) <= engine.release \
            < E5M2_ON_HOPPER_RELEASE and setup.gpu.capability_major == 9:
        error = (f"kv_dtype fp8_e5m2 on {setup.gpu_name}: vLLM {engine.vllm_version} serves "
                 f"an fp8 KV cache on Hopper with FlashAttention, which takes only e4m3 "
                 f"(\"Unrecognized FP8 dtype: fp8_e5m2\" from 0.10.1; read as e4m3 before) "
                 f"until 0.22 picks another backend for it; expected kv_dtype fp8 (or "
                 f"fp8_e4m3), or vllm_version >= 0.22")
    elif (problem := rocm_error(setup)) is not None:
        error = problem
    elif engine.kv_cache_tokens is None and available <= 0:
        error = _does_not_fit(setup, budget)
    elif engine.kv_cache_tokens is not None and \
            (need := CUDA_CONTEXT_GIB * GIB + budget.weights_bytes + budget.activation_bytes
             + budget.non_torch_bytes + budget.cuda_graph_bytes + budget.runner_buffers_bytes
             + pool_blocks * layout.block_bytes()) > budget.total_bytes:
        # the tokens replace the KV budget, not the card: the weights, those tokens' pages
        # and the CUDA graphs captured next to them must still be on it
        error = (f"{setup.model_name} in {setup.weights_dtype} with engine.kv_cache_tokens "
                 f"{engine.kv_cache_tokens} does not fit on {setup.gpu_name} with "
                 f"{_layout(setup.tp, setup.pp)}: needs {need / GIB:.1f} GiB per GPU (CUDA "
                 f"context {CUDA_CONTEXT_GIB:g}, weights {budget.weights_bytes / GIB:.1f}, "
                 f"KV cache "
                 f"{pool_blocks * layout.block_bytes() / GIB:.1f}, CUDA graphs "
                 f"{budget.cuda_graph_bytes / GIB:.2f}{_buffers(budget)}), the card has "
                 f"{budget.total_bytes / GIB:.1f}; expected fewer kv_cache_tokens, a larger "
                 f"tp, a bigger GPU or a smaller weights_dtype")
    elif engine.kv_cache_tokens is None and (problem := _room_error(setup, budget)) is not None:
        error = problem
    elif engine.max_model_len is None and engine.version < AUTO_MAX_MODEL_LEN_RELEASE \
            and concurrency < 1:
        # before `auto`, an unset length is the model's whole context, and vLLM refuses to
        # start when its cache cannot hold one request of it (V1: kv_cache_utils.py
        # `check_enough_kv_cache_memory`; V0: "The model's max seq len ... is larger than
        # the maximum number of tokens that can be stored in KV cache")
        error = (f"vLLM {engine.vllm_version} starts {setup.model_name} with its whole context "
                 f"({model.max_context_tokens} tokens) as max_model_len, and its KV cache "
                 f"({capacity_tokens} tokens) cannot hold one such request, so it refuses to "
                 f"start; expected engine.max_model_len <= {fits_len} (or "
                 f"vllm_version >= 0.14, whose --max-model-len auto fits it)")
    elif engine.max_model_len is not None and concurrency < 1:
        # vLLM refuses to start when its cache cannot hold one request of max_model_len
        # (kv_cache_utils.py `check_enough_kv_cache_memory`), window pages included
        error = (f"engine.max_model_len {engine.max_model_len} exceeds what the KV cache "
                 f"holds of one request ({fits_len} tokens"
                 + (", its sliding-window pages included" if layout.sliding_groups else "")
                 + f"); expected max_model_len <= {fits_len}")
    elif capacity_tokens < block or fits_len < block:
        error = ("KV cache has no room for one request of a single block"
                 + (" and its sliding-window pages" if layout.sliding_groups else "")
                 + "; expected more GPU memory, a larger tp or a smaller weights_dtype")
    return KvCapacity(blocks=blocks, block_size_tokens=block, kv_bytes_per_token=bytes_per_token,
                      kv_cache_bytes=pool_blocks * layout.block_bytes(),
                      block_bytes=layout.block_bytes(),
                      budget=budget, max_model_len=max_len, vllm_blocks=vllm_blocks,
                      kv_groups=layout.groups, logged_tokens=logged,
                      max_concurrency=concurrency, error=error,
                      full_groups=layout.full_groups if layout.full_groups else 1,
                      sliding_groups=layout.sliding_groups if layout.full_groups else 0,
                      window_blocks=_window_blocks(model.sliding_window_tokens, block))


def _longest(pages: Callable[[int], int], blocks: int, context: int) -> int:
    """The longest request (at most `context` tokens) whose `pages` fit in `blocks`, by
    binary search as vLLM's auto-fit does (0 when not even one token fits)."""
    if pages(1) > blocks:
        return 0
    low, high = 1, context
    while low < high:
        mid = (low + high + 1) // 2
        if pages(mid) <= blocks:
            low = mid
        else:
            high = mid - 1
    return low


def _tightest_stage(setup: ReplicaSetup) -> tuple[MemoryBudget, KvLayout, float, int]:
    """The budget, page layout, KV bytes and blocks of the pipeline stage with the fewest
    blocks: the replica's cache (the whole model's without pipeline stages)."""
    engine = setup.engine
    found = []
    for stage in stages(setup):
        budget, layout = memory_budget(setup, stage), kv_layout(setup, stage)
        available = budget.available_bytes if engine.kv_cache_memory_gib is None \
            else engine.kv_cache_memory_gib * GIB
        blocks = max(0, math.floor(available / layout.block_bytes()))
        found.append((budget, layout, available, blocks))
    # the fewest blocks; among stages with as many (none, or a cache set by hand), the one
    # with the least memory of its own left, which a check of the room must look at
    return min(found, key=lambda f: (f[3], f[0].available_bytes))


def window_reserve_blocks(request_tokens: int, *, block: int, sliding_groups: int,
                          full_groups: int, window_blocks: int) -> int:
    """Blocks of full-attention pages' worth a running request holds for its sliding-window
    layers: each sliding group pages the request's last window of tokens, at most
    `window_blocks` pages (vLLM's SlidingWindowManager frees the pages that fall out of the
    window), shorter requests their whole length; one block of the simulator's pool holds a
    page of each of the `full_groups`."""
    if not sliding_groups:
        return 0
    pages = min(-(-request_tokens // block), window_blocks)
    return -(-sliding_groups * pages // max(1, full_groups))


def _window_blocks(window_tokens: int | None, block: int) -> int:
    """Pages one sliding-window group holds for a decoding request: its last window - 1
    tokens and the new one, straddling at most one more block than they fill
    (vllm/v1/core/single_type_kv_cache_manager.py, SlidingWindowManager
    .remove_skipped_blocks; a prefill chunk holds its own tokens on top while it runs,
    which is not counted)."""
    if not window_tokens:
        return 0
    return -(-(window_tokens - 1) // block) + 1


def _room_error(setup: ReplicaSetup, budget: MemoryBudget) -> str | None:
    """Why vLLM would run out of memory starting (None: it would not): a KV cache set by
    hand (--kv-cache-memory-bytes, which skips the budget: vLLM's gpu_worker only warns "If
    OOM'ed, ...") larger than what the card has left after the CUDA context, the weights,
    the activation peak, non-torch memory and the CUDA graphs; or a gpu_memory_utilization
    leaving less outside its budget than the CUDA context and, before vLLM 0.21, the CUDA
    graphs captured there after the KV cache."""
    engine, gib = setup.engine, budget.total_bytes / GIB
    used = budget.weights_bytes + budget.activation_bytes + budget.non_torch_bytes \
        + budget.runner_buffers_bytes
    if engine.kv_cache_memory_gib is not None:
        room = budget.total_bytes - CUDA_CONTEXT_GIB * GIB - used - budget.cuda_graph_bytes
        if engine.kv_cache_memory_gib * GIB <= room:
            return None
        expected = f"kv_cache_memory_gib <= {math.floor(room / GIB * 100) / 100:g}" \
            if room > 0 else "a larger tp or a smaller weights_dtype"
        return (f"engine.kv_cache_memory_gib {engine.kv_cache_memory_gib:g} is more than "
                f"{setup.gpu_name} has left per GPU ({max(0.0, room) / GIB:.1f} of its "
                f"{gib:.1f} GiB after the CUDA context {CUDA_CONTEXT_GIB:g}, weights "
                f"{budget.weights_bytes / GIB:.1f}, activations "
                f"{budget.activation_bytes / GIB:.1f}, non-torch memory "
                f"{budget.non_torch_bytes / GIB:.2f}{_buffers(budget)} and CUDA graphs "
                f"{budget.cuda_graph_bytes / GIB:.2f}): vLLM would run out of memory "
                f"allocating it; expected {expected}")
    outside = budget.total_bytes - budget.budget_bytes
    graphs = budget.cuda_graph_bytes - budget.budgeted_graph_bytes     # captured outside
    needed = CUDA_CONTEXT_GIB * GIB + graphs
    if needed <= outside:
        return None
    highest = math.floor((1 - needed / budget.total_bytes) * 100) / 100
    what = (f"the CUDA context it starts with (about {CUDA_CONTEXT_GIB:g} GiB) and the "
            f"CUDA graphs it captures there after allocating the KV cache (about "
            f"{graphs / GIB:.2f} GiB): it would run out of memory capturing them"
            if graphs else
            f"the CUDA context it starts with needs about {CUDA_CONTEXT_GIB:g} GiB: vLLM "
            f"refuses to start (free memory on the device is less than the desired "
            f"utilisation)")
    return (f"engine.gpu_memory_utilization {setup.gpu_memory_utilization:g} leaves "
            f"{outside / GIB:.2f} of {setup.gpu_name}'s {gib:.1f} GiB outside vLLM's budget, "
            f"where {what}; expected gpu_memory_utilization <= {highest:g}"
            + (" (or engine.enforce_eager: true, no graphs)" if graphs else ""))


def fits(setup: ReplicaSetup) -> bool:
    """The weights, activations and non-torch memory leave room for a KV cache (on every
    pipeline stage)."""
    return all(memory_budget(setup, stage).available_bytes > 0 for stage in stages(setup))


def _layout(tp: int, pp: int) -> str:
    return f"tp={tp}" if pp == 1 else f"tp {tp} x pp {pp}"


def _fitting_layout(setup: ReplicaSetup) -> str | None:
    """The layout with the fewest GPUs, more than the replica has, that holds the model: a
    larger tp (as the scenario has no stages), else tp x pp stages in one server, else
    stages over the fewest servers, as vLLM advises laying them out (its distributed
    serving guide: the tensor-parallel size the GPUs of a server, the pipeline size the
    servers)."""
    if setup.pp == 1:
        min_tp = next((t for t in setup_allowed_tp(setup) if t > setup.tp
                       and fits(replace(setup, tp=t))), None)
        if min_tp is not None:
            return f"tp >= {min_tp}"
    # fewest GPUs first; of as many, the fewest stages
    node = setup.gpus_per_node
    layouts = sorted(((t, p) for t in setup_allowed_tp(setup) for p in range(1, 17)
                      if t * p > setup.gpus and t <= node),
                     key=lambda layout: _preference(layout[0], layout[1], node))
    for tp, pp in layouts:
        staged = replace(setup, tp=tp, pp=pp)
        if pp_error(staged) is None and fits(staged):
            servers = f", {staged.servers} servers" if staged.servers > 1 else ""
            return f"tp {tp} x pp {pp} ({tp * pp} GPUs{servers})" \
                if pp > 1 or setup.pp > 1 else f"tp >= {tp}"
    return None


def _preference(tp: int, pp: int, node: int) -> tuple[int, int, int]:
    """Fewest servers first; on one, the fewest GPUs; over several, the widest tp."""
    servers = servers_for(tp, pp, node)
    return (servers, tp * pp if servers == 1 else -tp, pp)


def build_error(setup: ReplicaSetup) -> str | None:
    """Why the replica cannot be built as set (None: it can): the pinned vLLM release, its
    tp, its stages, its memory."""
    return format_error(setup) or release_error(setup) or tp_error(setup, fits) \
        or pp_error(setup) or kv_capacity(setup).error


def _buffers(budget: MemoryBudget) -> str:
    """Model Runner V2's buffers in a list of what a GPU holds ("" when there are none)."""
    buffers = budget.runner_buffers_bytes
    return f", Model Runner V2's buffers {buffers / GIB:.2f}" if buffers else ""


def _does_not_fit(setup: ReplicaSetup, budget: MemoryBudget) -> str:
    graphs = budget.budgeted_graph_bytes
    need = budget.weights_bytes + budget.activation_bytes + budget.non_torch_bytes + graphs \
        + budget.runner_buffers_bytes
    fitting = _fitting_layout(setup)
    draft = drafter(setup).weights_bytes / setup.attention_tp
    of_which = f", the drafter's {draft / GIB:.1f} of them" if draft else ""
    in_budget = f", CUDA graphs {graphs / GIB:.2f}" if graphs else ""
    tokens = setup.rank_max_num_batched_tokens
    peak = (f", profiling peak {budget.activation_bytes / GIB:.1f} at {tokens} batched "
            f"tokens")
    if budget.runner_buffers_bytes > max(budget.weights_bytes, budget.activation_bytes):
        # n-gram drafts on V2 keep max_num_seqs x max_model_len token ids on the GPU
        advice = (f"engine.max_model_len set (Model Runner V2 keeps max_num_seqs x "
                  f"max_model_len token ids on the GPU for n-gram drafts, now "
                  f"{setup.rank_max_num_seqs} x "
                  f"{setup.engine.max_model_len or setup.model.max_context_tokens}) or a "
                  f"smaller engine.max_num_seqs")
    elif budget.activation_bytes > budget.weights_bytes:
        # the step's token budget, not the model, is what does not fit
        advice = f"a smaller engine.max_num_batched_tokens (now {tokens})" \
            if setup.engine.chunked_prefill else (
                f"engine.max_model_len set (without chunked prefill the step's token budget "
                f"holds a whole context, now {tokens} tokens) or chunked_prefill: true")
    else:
        # a 4-bit format is already the smallest vLLM serves
        smaller = " or a smaller weights_dtype" \
            if WEIGHT_BITS[setup.weights_dtype] > min(WEIGHT_BITS.values()) + 0.5 else ""
        advice = (fitting or "a bigger GPU") + smaller
    return (f"{setup.model_name} in {setup.weights_dtype} does not fit on {setup.gpu_name} "
            f"with {_layout(setup.tp, setup.pp)}: needs {need / GIB:.1f} GiB per GPU "
            f"(weights {budget.weights_bytes / GIB:.1f}{of_which}{peak}{in_budget}"
            f"{_buffers(budget)}), "
            f"{budget.budget_bytes / GIB:.1f} GiB usable at "
            f"gpu_memory_utilization {setup.gpu_memory_utilization:g}; expected {advice}")


__all__ = ["DTYPE_BYTES", "KvCapacity", "MemoryBudget", "Stage", "build_error", "fits",
           "kv_capacity",
           "memory_budget", "stage_layers", "stages", "window_reserve_blocks"]
