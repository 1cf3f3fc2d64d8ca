"""What a replica is given: its engine limits and the requests it may be sent."""

from __future__ import annotations

from dataclasses import dataclass

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
    #: per request, the group and shared tokens of its conversation's first turn (its
    #: system prompt: what a replica that never saw the conversation may still have)
    base_groups: list[int] | None = None
    base_shared: list[int] | None = None
    #: the tokens a chat template puts in front of every chat prompt of the model (its
    #: default system prompt and the first message's opening: the same text whatever the
    #: group), and the prefix groups of chat requests that begin with them
    head_tokens: int = 0
    head_groups: frozenset[int] = frozenset()
