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


#: the oldest release whose FlashMLA forces its 64-token blocks, as its start-up log says
#: ("Forcing kv cache block size to 64 for FlashMLA backend", vLLM 0.8.3)
FLASHMLA_BLOCK_RELEASE = (0, 8, 3)


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
        """Tokens per KV block: --block-size, except where vLLM's MLA kernels force theirs
        (platforms/cuda.py, check_and_update_config, 0.8.3 to today: FlashMLA, the default
        MLA backend where it runs, on Hopper and data-centre Blackwell, takes a multiple of
        64 and turns any other block into 64; releases around 0.9-0.10 gave Blackwell
        CUTLASS MLA's 128 instead, not followed)."""
        block = self.engine.block_size_tokens
        if self.model.attention == "mla" and self.gpu.vendor == "nvidia" \
                and self.gpu.capability_major in (9, 10) and block % 64 \
                and self.engine.release >= FLASHMLA_BLOCK_RELEASE:
            return 64
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
