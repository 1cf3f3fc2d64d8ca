"""What a replica is given: its engine limits and the requests it may be sent."""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmplan.perf.memory import window_reserve_blocks
from llmplan.sim.records import Records
from llmplan.sim.stepmodel import StepModel


@dataclass(frozen=True)
class ReplicaConfig:
    """Limits of one serving replica, resolved from the scenario and the catalog."""

    step: StepModel
    blocks: int                  # KV-cache blocks
    block_size: int              # tokens per block
    max_num_seqs: int
    max_num_batched_tokens: int
    chunked_prefill: bool
    max_model_len: int           # prompt + output accepted
    queue_limit: int | None      # waiting requests before rejecting
    queue_timeout_s: float | None
    prefix_caching: str = "off"  # a policy of llmplan.sim.prefix_cache
    slot_prompt_similarity: float = 0.1
    host_cache_tokens: int = 0   # per_slot: prompt tokens the host-memory cache holds
    # sliding-window layers (KvCapacity.window_reserve_blocks): a running request also holds
    # ceil(sliding_groups x min(ceil(tokens / block), window_blocks) / full_groups) blocks
    sliding_groups: int = 0
    full_groups: int = 1
    window_blocks: int = 0
    # data-parallel ranks pool their budgets; a request runs on one rank, so its chunk of a
    # step is at most one rank's budget (0: the whole max_num_batched_tokens)
    max_chunk_tokens: int = 0
    # admit a request only when its whole prompt's blocks are free, not just its first
    # chunk's (vLLM 0.19 on: engine.WHOLE_PROMPT_ADMISSION_RELEASE)
    admit_whole_prompt: bool = False
    # async scheduling (vLLM's batch queue of two): a step is scheduled when the one before
    # it starts, so a request arriving during a step first runs in the step after the next
    async_admission: bool = False

    def window_reserve_blocks(self, request_tokens: int) -> int:
        """Blocks a running request of `request_tokens` (prompt + output) holds for its
        sliding-window layers, from its admission to its end."""
        return window_reserve_blocks(request_tokens, block=self.block_size,
                                     sliding_groups=self.sliding_groups,
                                     full_groups=self.full_groups,
                                     window_blocks=self.window_blocks)


@dataclass(frozen=True)
class Workload:
    """Request columns (plain lists for fast indexing) and where outcomes are written."""

    prompts: list[int]
    outputs: list[int]
    arrivals: list[float]
    records: Records
    #: per request, its prefix group (-1: none) and the prompt tokens it shares with what
    #: the group's earlier requests computed (None: no request shares anything)
    groups: list[int] | None = None
    shared: list[int] | None = None
    #: per request, the group its computed tokens extend (its conversation's; None: groups)
    keep_groups: list[int] | None = None
    #: per request, whether it is a conversation's turn (None: no conversations)
    turns: list[bool] | None = None
    #: per request, whether it is a fanned-out turn's call after its first: its keep group
    #: (its conversation) goes on from the first call, so what it computes extends that
    #: group's cache only as far as the tokens it shares (`RequestStream.side_calls`; None:
    #: no turn fans out)
    side_calls: list[bool] | None = None
    #: per request, the group and shared tokens of its conversation's first turn (its
    #: system prompt: what a replica that never saw the conversation may still have)
    base_groups: list[int] | None = None
    base_shared: list[int] | None = None
    #: the tokens a chat template puts in front of every chat prompt of the model (its
    #: default system prompt and the first message's opening: the same text whatever the
    #: group), and the prefix groups of chat requests that begin with them
    head_tokens: int = 0
    head_groups: frozenset[int] = frozenset()

    def on_ranks(self, ranks: int) -> Workload:
        """The requests as the caches of `ranks` data-parallel ranks see them: each request
        runs on one rank (`rank_of`), which caches what it computes for its own requests
        only, so a prefix group g of a request on rank r is group g x ranks + r."""
        if ranks <= 1 or self.groups is None:
            return self

        def ranked(groups: list[int] | None) -> list[int] | None:
            if groups is None:
                return None
            return [g * ranks + rank_of(rid, ranks) if g >= 0 else g
                    for rid, g in enumerate(groups)]

        return replace(self, groups=ranked(self.groups), keep_groups=ranked(self.keep_groups),
                       base_groups=ranked(self.base_groups),
                       head_groups=frozenset(g * ranks + r for g in self.head_groups
                                             for r in range(ranks)))


def rank_of(rid: int, ranks: int) -> int:
    """The data-parallel rank request `rid` runs on. vLLM's front end sends a request to the
    rank with the fewest waiting x 4 + running requests (DPLBAsyncMPClient,
    vllm/v1/engine/core_client.py), whatever that rank has cached; a mixed hash of the
    request's index stands in for that choice: even over the ranks, deterministic, and
    independent of the request's prefix and of how requests were spread over replicas."""
    x = (rid * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = (x ^ (x >> 29)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
    return (x >> 32) % ranks
