"""A local engine's prefix cache: which prompt tokens a replica need not compute again.

Requests carry a prefix group (a system prompt, a RAG document, a conversation so far; -1:
none) and how many leading prompt tokens they share with what the group's earlier requests
computed. One class per engine policy, one registry (`PREFIX_CACHES`):

* `vllm` (automatic prefix caching, vLLM's default since V1): KV blocks are hashed by their
  content and the tokens before them, so a group's cached prefix is a chain of full blocks.
  A request reuses the chain's blocks up to its shared length, and always computes at least
  its last prompt token. Blocks used by a running request are shared, not copied: the chain
  counts once however many requests read it ("pinned"). Blocks no running request uses stay
  cached but count as free: an allocation that needs them evicts them, least recently used
  first (vLLM's free-block queue), so the cache holds at most the free blocks.
* `per_slot` (llama.cpp's server, `cache_prompt`): each slot keeps the tokens of the last
  request it served. A request goes to the idle slot whose cache shares the longest prefix
  with it when that covers more than `slot_prompt_similarity` of its prompt, otherwise to
  the idle slot used longest ago; the shared tokens (all but the last prompt token) are not
  computed again. Memory is the slot's own: nothing is shared between slots.

Both replicas (fast and reference) drive the same cache objects; the block accounting that
surrounds them is each replica's own.
"""

from __future__ import annotations

from typing import Literal, Protocol

PrefixCaching = Literal["vllm", "per_slot", "off"]

#: llama.cpp's default for --slot-prompt-similarity (common/common.h, 2025-2026 releases)
DEFAULT_SLOT_SIMILARITY = 0.1


class PrefixCache(Protocol):
    """What a replica asks of its prefix cache."""

    pinned_blocks: int    # blocks of cached chains running requests use (counted once)

    def shared_blocks(self, group: int, shared_tokens: int, prompt_tokens: int) -> int:
        """Blocks of the request's prompt that belong to its group's shared chain (counted
        with the chain, not with the request; 0 when nothing is shared)."""

    def peek(self, group: int, shared_tokens: int, prompt_tokens: int) -> tuple[int, int]:
        """(prompt tokens found cached, blocks newly pinned) if admitted now; changes nothing."""

    def take(self, group: int, shared_tokens: int, prompt_tokens: int,
             now_s: float) -> tuple[int, int]:
        """Admit a request: what `peek` said, now in use by it (pinned / in its slot)."""

    def release(self, group: int, shared: int, *, keep_group: int, context_tokens: int,
                now_s: float, slot: int) -> int:
        """A request of `group` stops running with `context_tokens` computed (0: its KV was
        dropped), kept under `keep_group` (its conversation's, for the next turn); returns
        the blocks unpinned."""

    def computed(self, group: int, tokens: int, now_s: float) -> None:
        """A running request of `group` has its first `tokens` in the KV cache."""

    def evict_to(self, free_blocks: int) -> None:
        """Keep at most `free_blocks` blocks of cache no running request uses."""

    def reads(self, group: int, shared_tokens: int, base_group: int,
              base_tokens: int) -> tuple[int, int]:
        """The (group, shared tokens) a request looks up: a conversation's later turn reads
        its own history, or (on a replica that never saw the conversation) the system
        prompt its first turn began with (`base_group`, -1: none)."""

    def last_slot(self) -> int:
        """The slot `take` chose (per_slot), -1 otherwise."""


class BlockPrefixCache:
    """vLLM's automatic prefix caching, as chains of full blocks per group.

    Per group: `cached` blocks computed (hits read them), `pin` blocks held for the running
    requests of the group (the longest shared part among them: memory, counted once).
    Cache no running request holds is evictable: sum of max(0, cached - pin).
    """

    def __init__(self, block_size: int) -> None:
        self.B = block_size
        self.cached: dict[int, int] = {}     # group -> computed blocks
        self.used_s: dict[int, float] = {}   # group -> last use (LRU: oldest evicted first)
        self.users: dict[int, int] = {}      # group -> running requests holding its chain
        self.pins: dict[int, int] = {}       # group -> blocks they hold
        self.pinned_blocks = 0
        self.evictable = 0

    def _spare(self, group: int) -> int:
        return max(0, self.cached.get(group, 0) - self.pins.get(group, 0))

    def shared_blocks(self, group: int, shared_tokens: int, prompt_tokens: int) -> int:
        if group < 0:
            return 0
        return min(shared_tokens, prompt_tokens - 1) // self.B

    def reads(self, group: int, shared_tokens: int, base_group: int,
              base_tokens: int) -> tuple[int, int]:
        if base_group >= 0 and group not in self.cached and group not in self.pins:
            return base_group, base_tokens
        return group, shared_tokens

    def peek(self, group: int, shared_tokens: int, prompt_tokens: int) -> tuple[int, int]:
        shared = self.shared_blocks(group, shared_tokens, prompt_tokens)
        if shared == 0:
            return 0, 0
        hit = min(self.cached.get(group, 0), shared)
        return hit * self.B, max(0, shared - self.pins.get(group, 0))

    def take(self, group: int, shared_tokens: int, prompt_tokens: int,
             now_s: float) -> tuple[int, int]:
        hit_tokens, new_pin = self.peek(group, shared_tokens, prompt_tokens)
        shared = self.shared_blocks(group, shared_tokens, prompt_tokens)
        if shared == 0:
            return 0, 0
        self.used_s[group] = now_s
        self.users[group] = self.users.get(group, 0) + 1
        if new_pin:
            before = self._spare(group)
            self.pins[group] = shared
            self.pinned_blocks += new_pin
            self.evictable += self._spare(group) - before
        return hit_tokens, new_pin

    def release(self, group: int, shared: int, *, keep_group: int, context_tokens: int,
                now_s: float, slot: int) -> int:
        unpinned = 0
        if shared and group >= 0:
            users = self.users[group] - 1
            if users:
                self.users[group] = users
            else:   # nobody holds the chain any more: what was computed stays, evictable
                del self.users[group]
                before = self._spare(group)
                unpinned = self.pins.pop(group)
                self.pinned_blocks -= unpinned
                self.evictable += self._spare(group) - before
        if context_tokens:
            self.computed(keep_group, context_tokens, now_s)
        return unpinned

    def computed(self, group: int, tokens: int, now_s: float) -> None:
        if group < 0:
            return
        blocks = tokens // self.B
        before = self._spare(group)
        self.cached[group] = max(self.cached.get(group, 0), blocks)
        self.used_s[group] = now_s
        self.evictable += self._spare(group) - before

    def evict_to(self, free_blocks: int) -> None:
        excess = self.evictable - max(0, free_blocks)
        if excess <= 0:
            return
        # least recently used first; ties (same step) by group, whatever the call order
        used = self.used_s
        for group in sorted(self.cached, key=lambda g: (used[g], g)):
            spare = self._spare(group)
            if spare <= 0:
                continue
            cut = min(spare, excess)
            left = self.cached[group] - cut
            if left:
                self.cached[group] = left
            else:
                del self.cached[group]
                del used[group]
            self.evictable -= cut
            excess -= cut
            if excess <= 0:
                return

    def last_slot(self) -> int:
        return -1


class SlotPrefixCache:
    """llama.cpp's per-slot prompt cache."""

    pinned_blocks = 0

    def __init__(self, slots: int, similarity: float = DEFAULT_SLOT_SIMILARITY) -> None:
        self.similarity = similarity
        self.group = [-1] * slots            # what each slot holds: group, tokens
        self.tokens = [0] * slots
        self.last_used_s = [-1.0] * slots
        self.busy = [False] * slots
        self._chosen = -1

    def _choose(self, group: int, shared_tokens: int, prompt_tokens: int) -> tuple[int, int]:
        """(slot, reused tokens) llama.cpp's get_available_slot would pick."""
        best, best_len = -1, 0
        reusable = min(shared_tokens, prompt_tokens - 1)
        if group >= 0:
            for slot, held in enumerate(self.group):
                if not self.busy[slot] and held == group:
                    common = min(self.tokens[slot], reusable)
                    if common > best_len:
                        best, best_len = slot, common
        if best >= 0 and best_len > self.similarity * prompt_tokens:
            return best, best_len
        lru, oldest = -1, float("inf")
        for slot, busy in enumerate(self.busy):
            if not busy and self.last_used_s[slot] < oldest:
                lru, oldest = slot, self.last_used_s[slot]
        if lru < 0:
            return -1, 0
        common = min(self.tokens[lru], reusable) if self.group[lru] == group >= 0 else 0
        return lru, common

    def shared_blocks(self, group: int, shared_tokens: int, prompt_tokens: int) -> int:
        return 0

    def reads(self, group: int, shared_tokens: int, base_group: int,
              base_tokens: int) -> tuple[int, int]:
        """Slots hold conversations: a turn looks for its own."""
        return group, shared_tokens

    def peek(self, group: int, shared_tokens: int, prompt_tokens: int) -> tuple[int, int]:
        return self._choose(group, shared_tokens, prompt_tokens)[1], 0

    def take(self, group: int, shared_tokens: int, prompt_tokens: int,
             now_s: float) -> tuple[int, int]:
        slot, hit = self._choose(group, shared_tokens, prompt_tokens)
        self._chosen = slot
        if slot >= 0:
            self.busy[slot] = True
            self.group[slot] = group
            self.tokens[slot] = hit
        return hit, 0

    def last_slot(self) -> int:
        return self._chosen

    def release(self, group: int, shared: int, *, keep_group: int, context_tokens: int,
                now_s: float, slot: int) -> int:
        if slot >= 0:
            self.busy[slot] = False
            self.group[slot] = keep_group if context_tokens else -1
            self.tokens[slot] = context_tokens
            self.last_used_s[slot] = now_s
        return 0

    def computed(self, group: int, tokens: int, now_s: float) -> None:
        """Slots keep the whole prompt when the request leaves (see release)."""

    def evict_to(self, free_blocks: int) -> None:
        """A slot's cache lives in the slot's own memory: nothing to evict."""


def make_prefix_cache(policy: str, *, block_size: int, slots: int,
                      similarity: float = DEFAULT_SLOT_SIMILARITY) -> PrefixCache | None:
    """The cache of one replica (None: prefix caching off)."""
    if policy == "vllm":
        return BlockPrefixCache(block_size)
    if policy == "per_slot":
        return SlotPrefixCache(slots, similarity)
    return None


#: One class per policy name (besides "off"); the scenario schema names the same ones.
PREFIX_CACHES: dict[str, type[BlockPrefixCache] | type[SlotPrefixCache]] = {
    "vllm": BlockPrefixCache,
    "per_slot": SlotPrefixCache,
}
