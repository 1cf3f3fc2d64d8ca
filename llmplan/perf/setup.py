"""One serving replica's hardware, model and engine: what its memory and step time depend on.

Engine settings the scenario leaves out resolve here to what vLLM would pick on this GPU
(see llmplan.perf.engine), so the simulator, the memory check and the provisioned stack all
use the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from llmplan.catalog import GpuSpec, ModelSpec
from llmplan.perf.engine import EngineSpec, async_takes, default_limits


def servers_for(tp: int, pp: int, gpus_per_node: int) -> int:
    """The fewest servers a replica of tp x pp GPUs runs on with pp / servers whole stages
    on each, as vLLM's multiprocessing executor places them over `--nnodes` (the world size
    divides by the nodes; each node takes world / nodes consecutive ranks, tp innermost, so
    whole stages keep every tensor-parallel group in one server). A tp wider than a server
    has no such split (parallel.py refuses it): the servers its GPUs fill."""
    least = -(-tp * pp // gpus_per_node)
    if tp > gpus_per_node:
        return least
    return next(n for n in range(least, pp + 1) if pp % n == 0)


@dataclass(frozen=True)
class CatalogDrafter:
    """A speculative drafter that is a catalog model: its architecture and the format the
    named repository holds it in."""

    name: str
    model: ModelSpec
    dtype: str


#: The releases that change the KV block vLLM's CUDA platform forces for an MLA model
#: (vllm/platforms/cuda.py `check_and_update_config`, read in the published wheels 0.9.0,
#: 0.9.2, 0.10.0, 0.10.1, 0.10.1.1, 0.10.2, 0.11.0, 0.11.1, 0.12.0, 0.13.0, 0.14.0, 0.14.1,
#: 0.15.0, 0.15.1, 0.16.0, 0.17.0, 0.17.1, 0.18.0). The forcing comes before the backend is
#: chosen and whatever --block-size says:
#: FlashMLA's 64 on Hopper ("Forcing kv cache block size to 64 for FlashMLA backend", 0.8.3;
#: `is_flashmla_supported` / `is_flashmla_dense_supported`: capability 9 only, in every one)
FLASHMLA_BLOCK_RELEASE = (0, 8, 3)
#: CUTLASS MLA's 128 on Blackwell, the default there: capability exactly 10.0
#: (`is_device_capability(100)`) from 0.10.1
CUTLASS_MLA_BLOCK_RELEASE = (0, 10, 1)
#: a block already a multiple of the forced one stays (`% 64`, `% 128`; before: `!= 64`,
#: `!= 128`, so 128 became 64 on Hopper)
MLA_BLOCK_MULTIPLE_RELEASE = (0, 11, 1)
#: every capability 10.x (`is_device_capability_family(100)`), not only 10.0
CUTLASS_MLA_FAMILY_RELEASE = (0, 13, 0)
#: FlashInfer MLA on Blackwell where qk_nope_head_dim is 128 (CUTLASS MLA otherwise): 32
#: or a multiple of 64 stays, any other block becomes 64
FLASHINFER_MLA_BLOCK_RELEASE = (0, 15, 0)
#: the forcing is gone (0.17.1 the last to have it): a --block-size given is kept
#: (platforms/interface.py `update_block_size_for_backend` returns at
#: `user_specified_block_size`; 0.33.0 the same) and the backend is chosen among those
#: that take it (`supports_block_size`)
MLA_BLOCK_KEPT_RELEASE = (0, 18, 0)


def mla_block_tokens(asked: int, gpu: GpuSpec, model: ModelSpec,
                     release: tuple[int, int, int]) -> int:
    """The KV block vLLM runs an MLA model with when started with --block-size `asked`
    (the release windows above). The catalog's head_dim is an MLA model's
    qk_nope_head_dim (DeepSeek-V3: 128)."""
    capability = gpu.capability if gpu.vendor == "nvidia" else None
    if capability is None or not FLASHMLA_BLOCK_RELEASE <= release < MLA_BLOCK_KEPT_RELEASE:
        return asked
    multiples = release >= MLA_BLOCK_MULTIPLE_RELEASE
    blackwell = capability[0] == 10 if release >= CUTLASS_MLA_FAMILY_RELEASE \
        else capability == (10, 0)
    if capability[0] == 9:
        forced = 64
    elif blackwell and release >= FLASHINFER_MLA_BLOCK_RELEASE and model.head_dim == 128:
        return asked if asked == 32 or asked % 64 == 0 else 64
    elif blackwell and release >= CUTLASS_MLA_BLOCK_RELEASE:
        forced = 128
    else:
        return asked
    kept = asked % forced == 0 if multiples else asked == forced
    return asked if kept else forced


@dataclass(frozen=True)
class ReplicaSetup:
    """`tp` x `pp` GPUs of one kind serving one model with one engine configuration: `pp`
    pipeline stages, each a run of the model's layers split over `tp` GPUs."""

    gpu_name: str
    model_name: str
    gpu: GpuSpec
    model: ModelSpec
    engine: EngineSpec
    tp: int
    #: GPUs one of the deployment's servers holds (its costs.gpus_per_server; None: the
    #: catalog's node_gpus alone bounds the replica)
    gpus_per_server: int | None = None
    #: the speculative drafter, when engine.speculative.drafter is a catalog model's repository
    drafter: CatalogDrafter | None = None
    #: pipeline stages (vLLM's --pipeline-parallel-size)
    pp: int = 1

    @property
    def weights_dtype(self) -> str:
        return self.engine.weights_dtype or self.model.default_dtype

    @property
    def kv_dtype(self) -> str:
        """KV cache element type: vLLM's `auto` keeps the model's activation dtype (16-bit,
        also for FP8 or 4-bit weights)."""
        if self.engine.kv_dtype is not None:
            return self.engine.kv_dtype
        return "fp16" if self.weights_dtype == "fp16" else "bf16"

    @cached_property
    def _defaults(self) -> tuple[int, int]:
        return default_limits(self.engine, self.gpu.memory_bytes, self.gpu_name,
                              self.model.max_context_tokens)

    @property
    def attention_ranks(self) -> int:
        """Data-parallel ranks of the replica's attention (engine.data_parallel_attention:
        one per GPU, each with its own scheduler and KV cache; 1: one tensor-parallel
        engine over all the GPUs)."""
        return self.tp if self.engine.data_parallel_attention and self.model.is_moe else 1

    @property
    def attention_tp(self) -> int:
        """GPUs one rank's attention heads (and dense layers) are split over."""
        return self.tp // self.attention_ranks

    @property
    def fullest_expert_share(self) -> float:
        """Share of the routed experts' weights the fullest GPU holds: 1/tp of every expert
        without expert parallelism; with it, whole experts, the first E mod tp GPUs one
        more (vLLM's expert map)."""
        experts = self.model.experts
        if self.expert_parallel == 1 or not experts:
            return 1.0 / self.tp
        return math.ceil(experts / self.tp) / experts

    @property
    def api_server_count(self) -> int:
        """API-server processes: as set, else vLLM's default: one per data-parallel rank
        ("Defaulting api_server_count to data_parallel_size (N)", vllm/entrypoints/cli/
        serve.py, internal load balancing, from 0.15.0: read in the published wheels), one
        before it and without data parallelism."""
        if self.engine.api_server_count is not None:
            return self.engine.api_server_count
        return self.attention_ranks if self.engine.version >= (0, 15) else 1

    @property
    def rank_max_num_batched_tokens(self) -> int:
        """One rank's token budget per step (vLLM's --max-num-batched-tokens)."""
        tokens = self.engine.max_num_batched_tokens or self._defaults[0]
        return max(tokens, self.rank_max_num_seqs)

    @property
    def rank_max_num_seqs(self) -> int:
        """One rank's running sequences (vLLM's --max-num-seqs). Left to vLLM, its default
        for the GPU, but no more than the token budget: `min(default, max_num_batched_
        tokens)` (vllm/engine/arg_utils.py, read in 0.11.0 and 0.27.1), so that a budget
        of 512 runs at most 512 sequences rather than being refused."""
        if self.engine.max_num_seqs is not None:
            return self.engine.max_num_seqs
        budget = self.engine.max_num_batched_tokens or self._defaults[0]
        return min(self._defaults[1], budget)

    @property
    def max_num_batched_tokens(self) -> int:
        """The replica's token budget per step: every rank's; with pipeline stages, a
        simulated step is a round of pp batches, each with a budget of its own (V1's
        scheduler resets it per batch: vllm/v1/core/sched/scheduler.py `schedule`)."""
        return self.rank_max_num_batched_tokens * self.attention_ranks * self.pp

    @property
    def max_num_seqs(self) -> int:
        """The replica's running sequences: every rank's (one scheduler's limit over all its
        batches in flight with pipeline stages)."""
        return self.rank_max_num_seqs * self.attention_ranks

    def scheduler_error(self) -> str | None:
        """Why vLLM's scheduler refuses these settings (None: it takes them). Without chunked
        prefill a whole prompt runs in one step, so SchedulerConfig refuses a token budget
        below max_model_len ("max_num_batched_tokens (4096) is smaller than max_model_len
        (131072)...", vllm/config/scheduler.py `_verify_args`); max_model_len is the model's
        context unless set."""
        if self.engine.chunked_prefill:
            return None
        length = self.engine.max_model_len or self.model.max_context_tokens
        tokens = self.rank_max_num_batched_tokens
        if tokens >= length:
            return None
        which = "engine.max_model_len" if self.engine.max_model_len else \
            f"{self.model_name}'s context; engine.max_model_len unset"
        return (f"engine.max_num_batched_tokens {tokens} is below max_model_len {length} "
                f"({which}) with engine.chunked_prefill: false, which vLLM refuses (a whole "
                f"prompt must fit one step); expected max_num_batched_tokens >= {length}, "
                f"max_model_len <= {tokens} or chunked_prefill: true")

    @property
    def gpu_memory_utilization(self) -> float:
        """As set, else vLLM's default: 0.92 from 0.20.0, 0.9 before (vllm/config/cache.py)."""
        if self.engine.gpu_memory_utilization is not None:
            return self.engine.gpu_memory_utilization
        return 0.92 if self.engine.version >= (0, 20) else 0.9

    @property
    def block_size_tokens(self) -> int:
        """Tokens per KV block: --block-size, except where vLLM forces an MLA kernel's block
        (`mla_block_tokens`: FlashMLA's 64 on Hopper from 0.8.3, CUTLASS MLA's 128 and then
        FlashInfer MLA's 64 on Blackwell from 0.10.1 and 0.15.0, none from 0.18.0)."""
        block = self.engine.block_size_tokens
        if self.model.attention == "mla":
            return mla_block_tokens(block, self.gpu, self.model, self.engine.release)
        return block

    @property
    def async_scheduling(self) -> bool:
        """As set, else vLLM's default (vllm/config/vllm.py, read in the published wheels):
        on from 0.14.0 unless something it cannot run with is on: pipeline stages before
        0.15.0, n-gram drafts before 0.32.0, a draft model before 0.28.0."""
        engine = self.engine
        if engine.async_scheduling is not None:
            return engine.async_scheduling
        if engine.version < (0, 14) or (self.pp > 1 and engine.version < (0, 15)):
            return False
        return async_takes(engine.speculative, engine.release)

    @property
    def gpus(self) -> int:
        """The GPUs one replica runs on: tp x pp."""
        return self.tp * self.pp

    @property
    def servers(self) -> int:
        """Servers one replica spans: 1, or, when its tp x pp GPUs outgrow one, the fewest
        that hold them with the same number of whole stages each (`servers_for`)."""
        return servers_for(self.tp, self.pp, self.gpus_per_node)

    @property
    def server_gpus(self) -> int:
        """GPUs one pod of the replica holds (all of them on one server)."""
        return self.gpus // self.servers

    @property
    def gpus_per_node(self) -> int:
        """The most GPUs one replica's pod gets: one server's, the catalog's or the
        deployment's, whichever is fewer."""
        return min(self.gpu.node_gpus, self.gpus_per_server or self.gpu.node_gpus)

    @property
    def expert_parallel(self) -> int:
        """GPUs the experts are spread over (1: every GPU holds a slice of every expert)."""
        return self.tp if self.engine.expert_parallel and self.model.is_moe else 1
