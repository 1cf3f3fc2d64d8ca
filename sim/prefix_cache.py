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

import heapq
from typing import Protocol

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

    Eviction order is kept on a heap (`_lru`) rather than sorted at each eviction: a
    replica evicts at nearly every step once its memory is full, and a cache of a few
    hundred conversations sorted that often was most of a long run's time.
    """

    @classmethod
    def build(cls, *, block_size: int, slots: int, similarity: float, host_tokens: int,
              head_tokens: int = 0, head_groups: frozenset[int] = frozenset(),
              ) -> BlockPrefixCache:
        # a chat template's opening is shared by every chat group, but as at most one full
        # block of a chain (16 tokens of a 20-30 token opening): not modelled
        return cls(block_size)

    def __init__(self, block_size: int) -> None:
        self.B = block_size
        self.cached: dict[int, int] = {}     # group -> computed blocks
        self.used_s: dict[int, float] = {}   # group -> last use (LRU: oldest evicted first)
        self.users: dict[int, int] = {}      # group -> running requests holding its chain
        self.pins: dict[int, int] = {}       # group -> blocks they hold
        self.pinned_blocks = 0
        self.evictable = 0
        #: (last use, not parked, group) each time a cached group is used: every cached
        #: group's current entry is here, with stale ones (an older use, an evicted group)
        #: skipped when popped; the order is evict_to's
        self._lru: list[tuple[float, bool, int]] = []

    def _queue(self, group: int) -> None:
        """Put a cached group's last use on the eviction heap (the heap is rebuilt from
        the cache when stale entries outnumber live ones, so it stays the cache's size)."""
        lru = self._lru
        if len(lru) > 2 * len(self.cached) + 64:
            used = self.used_s
            lru[:] = [(used[g], g < PARKED_KEY_BASE, g) for g in self.cached]
            heapq.heapify(lru)
        else:
            heapq.heappush(lru, (self.used_s[group], group < PARKED_KEY_BASE, group))

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
        if self.used_s.get(group) != now_s:
            self.used_s[group] = now_s
            if group in self.cached:
                self._queue(group)
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
        cached = self.cached
        had = cached.get(group, -1)      # -1: not cached (a chain of no block is)
        if blocks > had:
            pin = self.pins.get(group, 0)
            cached[group] = blocks
            self.evictable += max(0, blocks - pin) - max(0, had - pin)
        # called at every step a request of the group runs: a use at the same time as
        # the last is on the heap already
        if had < 0 or self.used_s[group] != now_s:
            self.used_s[group] = now_s
            self._queue(group)

    def evict_to(self, free_blocks: int) -> None:
        excess = self.evictable - max(0, free_blocks)
        if excess <= 0:
            return
        # least recently used first; ties (same step): a preempted request's own blocks
        # before the chains they follow (vLLM frees a request's blocks last first), then by
        # group, whatever the call order (the heap's order)
        used, cached, lru = self.used_s, self.cached, self._lru
        kept: list[tuple[float, bool, int]] = []    # live entries popped, still cached
        seen: set[int] = set()
        while excess > 0 and lru:
            entry = heapq.heappop(lru)
            group = entry[2]
            if group in seen or group not in cached or used[group] != entry[0]:
                continue                    # stale: an older use, or evicted since
            seen.add(group)
            cut = min(cached[group] - self.pins.get(group, 0), excess)
            if cut <= 0:
                kept.append(entry)
                continue
            left = cached[group] - cut
            if left:
                cached[group] = left
                kept.append(entry)
            else:
                del cached[group]
                del used[group]
            self.evictable -= cut
            excess -= cut
        for entry in kept:
            heapq.heappush(lru, entry)

    def last_slot(self) -> int:
        return -1

    # A preempted request's own full blocks: vLLM frees them with their hashes kept
    # (vllm/v1/core/block_pool.py free_blocks: to the free queue's tail, its last block
    # first, so evicted last-block-first and after blocks freed earlier), and the request
    # finds them again when it is scheduled (get_computed_blocks) unless an allocation took
    # them. Kept here as a chain of the request's own (`parked_key`), evictable like any.

    def park(self, key: int, blocks: int, now_s: float) -> None:
        """Keep `blocks` full blocks of a preempted request, evictable, under `key`."""
        if blocks <= 0:
            return
        self.cached[key] = blocks
        self.used_s[key] = now_s
        self._queue(key)
        self.evictable += blocks

    def parked(self, key: int) -> int:
        """Blocks of the preempted request `key` still cached."""
        return self.cached.get(key, 0)

    def unpark(self, key: int) -> None:
        """The request is running again: its blocks are its own, no longer cache."""
        blocks = self.cached.pop(key, 0)
        if blocks:
            del self.used_s[key]
            self.evictable -= blocks


class SlotPrefixCache:
    """llama.cpp's server: each slot keeps its last prompt, and a host-memory prompt cache
    (--cache-ram, 8 GiB by default since 2025) keeps the prompts slots give up.

    As its `get_available_slot` does: the idle slot sharing the longest prefix with the
    request is taken when that covers more than `similarity` of the prompt (the first of
    equals); otherwise the least recently used idle slot (the last of equals). Taking the
    least recently used slot, or a slot that would keep less than half of its prompt,
    updates the host cache
    (`server_prompt_cache`, tools/server): the slot's prompt is saved (dropping saved
    prompts it contains), then the saved prompt that beats the slot's own on both the share
    of itself kept and the share of the request covered, and keeps at least a quarter of
    itself, is moved into the slot (it leaves the host cache); with none, a least recently
    used slot is cleared. Once a request has taken its slot, every idle slot's prompt is
    copied to host memory as well (`--cache-idle-slots`, on by default). The oldest saved
    prompts go first when the cache is full.
    Prefixes match through groups: a slot or saved prompt of the same conversation shares
    the shorter of the two lengths, one of the same shared-prefix group or that began with
    the same system prompt shares that prompt, and any two chat prompts share their chat
    template's opening (`head_tokens`: SmolLM2's inserted system prompt, 25 tokens on
    llama.cpp, which then also picks such a slot by similarity, not by age). Saved prompts
    are looked up among those of the request's own system prompt only.
    """

    pinned_blocks = 0

    @classmethod
    def build(cls, *, block_size: int, slots: int, similarity: float, host_tokens: int,
              head_tokens: int = 0, head_groups: frozenset[int] = frozenset(),
              ) -> SlotPrefixCache:
        return cls(slots, similarity, host_tokens, head_tokens, head_groups)

    def __init__(self, slots: int, similarity: float = DEFAULT_SLOT_SIMILARITY,
                 host_tokens: int = 0, head_tokens: int = 0,
                 head_groups: frozenset[int] = frozenset()) -> None:
        self.similarity = similarity
        # every chat prompt begins with the template's opening (its default system prompt,
        # the first message's header), whatever its group: a slot holding any chat prompt
        # shares those tokens with any chat request
        self.head_tokens = head_tokens
        self.head_groups = head_groups
        # what each slot holds: its group and tokens, the system prompt (group, tokens) it
        # began with, when it was last used, whether a request runs in it
        self.group = [-1] * slots
        self.tokens = [0] * slots
        self.base = [-1] * slots
        self.base_tokens = [0] * slots
        self.last_used_s = [-1.0] * slots
        self.busy = [False] * slots
        self.host_tokens = host_tokens       # capacity of the host cache (0: none)
        #: saved prompts by arrival number, oldest first: (group, tokens, system prompt
        #: group, its tokens); only those of the request's system prompt can match it
        self.host: dict[int, tuple[int, int, int, int]] = {}
        self._host_by_base: dict[int, list[int]] = {}
        self._saves = 0
        self.host_used = 0
        self._chosen = -1
        self._base = (-1, 0)

    def _common(self, held: tuple[int, int, int, int],
                want: tuple[int, int, int, int]) -> int:
        group, tokens, base, base_tokens = held
        r_group, r_tokens, r_base, r_base_tokens = want
        if group >= 0 and group == r_group:
            return min(tokens, r_tokens)
        held_sys = (base, base_tokens) if base >= 0 else (group, tokens)
        want_sys = (r_base, r_base_tokens) if r_base >= 0 else (r_group, r_tokens)
        if held_sys[0] >= 0 and held_sys[0] == want_sys[0]:
            return min(held_sys[1], want_sys[1])
        if self.head_tokens and group in self.head_groups and r_group in self.head_groups:
            return min(self.head_tokens, tokens, r_tokens)    # only the template's opening
        return 0

    @staticmethod
    def _system_prompt(prompt: tuple[int, int, int, int]) -> int:
        """The group a prompt begins with: its system prompt's, else its own."""
        return prompt[2] if prompt[2] >= 0 else prompt[0]

    @staticmethod
    def _contains(held: tuple[int, int, int, int], saved: tuple[int, int, int, int]) -> bool:
        """Whether every token of the saved prompt begins the held one too (both began with
        the same system prompt)."""
        group, tokens, base, base_tokens = saved
        if base == group:        # a request of a shared-prefix group: only its prefix is common
            return tokens <= base_tokens
        return group == held[0] and tokens <= held[1]    # an earlier state of a conversation

    def store(self, saved: tuple[int, int, int, int]) -> None:
        """Put a prompt in host memory, replacing saved prompts it contains, unless a saved
        one contains it already; the oldest saved prompts go when the cache is full."""
        ids = self._host_by_base.setdefault(self._system_prompt(saved), [])
        if any(self._contains(self.host[key], saved) for key in ids):
            return          # llama.cpp: "prompt is already in the cache, skipping"
        for key in [key for key in ids if self._contains(saved, self.host[key])]:
            self._forget(key)
        self.host[self._saves] = saved
        ids.append(self._saves)
        self._saves += 1
        self.host_used += saved[1]
        while self.host_used > self.host_tokens and self.host:
            self._forget(next(iter(self.host)))

    def _forget(self, key: int) -> None:
        saved = self.host.pop(key)
        self._host_by_base[self._system_prompt(saved)].remove(key)
        self.host_used -= saved[1]

    def _host_best(self, want: tuple[int, int, int, int], prompt_tokens: int,
                   slot_common: int, slot_tokens: int) -> tuple[int, int]:
        """(key, shared tokens) of the saved prompt llama.cpp's cache would load in place
        of the slot's, (-1, 0) for none."""
        keep_best = slot_common / slot_tokens if slot_tokens > 0 else -1.0
        sim_best = slot_common / prompt_tokens
        best, best_common = -1, 0
        for i in self._host_by_base.get(self._system_prompt(want), ()):
            saved = self.host[i]
            common = self._common(saved, want)
            keep = common / saved[1]
            if keep < 0.25:                  # don't trash large prompts
                continue
            sim = common / prompt_tokens
            if keep_best < keep and sim_best < sim:
                keep_best, sim_best, best, best_common = keep, sim, i, common
        return best, best_common

    def _choose(self, want: tuple[int, int, int, int], prompt_tokens: int,
                save: bool) -> tuple[int, int]:
        """(slot, reused tokens) llama.cpp's get_available_slot would pick; with `save`,
        do its host-cache update."""
        best, best_len = -1, 0
        for slot in range(len(self.busy)):
            if not self.busy[slot]:
                common = self._common(self._held(slot), want)
                if common > best_len:
                    best, best_len = slot, common
        update = False
        by_lru = False
        if best >= 0 and best_len > self.similarity * prompt_tokens:
            chosen, common = best, best_len
            update = best_len < 0.5 * self.tokens[best]    # it would lose most of its prompt
        else:
            # the least recently used idle slot, the last of equals (llama.cpp compares
            # with <=: its first requests go to the highest-numbered unused slots)
            chosen, oldest = -1, float("inf")
            for slot, busy in enumerate(self.busy):
                if not busy and self.last_used_s[slot] <= oldest:
                    chosen, oldest = slot, self.last_used_s[slot]
            if chosen < 0:
                return -1, 0
            common = self._common(self._held(chosen), want)
            update = by_lru = True
        if update and self.host_tokens:
            if save:
                self._save(chosen)
            key, loaded = self._host_best(want, prompt_tokens, common, self.tokens[chosen])
            if key >= 0:
                common = loaded
                if save:
                    self._forget(key)
            elif by_lru and common < self.similarity * prompt_tokens:
                common = 0           # nothing better saved: the unrelated slot is cleared
        return chosen, min(common, prompt_tokens - 1)

    def _held(self, slot: int) -> tuple[int, int, int, int]:
        return self.group[slot], self.tokens[slot], self.base[slot], self.base_tokens[slot]

    def _save(self, slot: int) -> None:
        """The slot's prompt goes to host memory (see store)."""
        held = self._held(slot)
        if held[0] >= 0 and held[1] > 0:
            self.store(held)

    def shared_blocks(self, group: int, shared_tokens: int, prompt_tokens: int) -> int:
        return 0

    def reads(self, group: int, shared_tokens: int, base_group: int,
              base_tokens: int) -> tuple[int, int]:
        """A turn looks for its conversation; its system prompt is remembered for a slot or
        saved prompt that began with the same one."""
        self._base = (base_group, base_tokens)
        return group, shared_tokens

    def _want(self, group: int, shared_tokens: int) -> tuple[int, int, int, int]:
        base, base_tokens = self._base
        self._base = (-1, 0)
        return group, shared_tokens, base, base_tokens

    def peek(self, group: int, shared_tokens: int, prompt_tokens: int) -> tuple[int, int]:
        base = self._base
        hit = self._choose(self._want(group, shared_tokens), prompt_tokens, save=False)[1]
        self._base = base     # take() follows with the same request
        return hit, 0

    def take(self, group: int, shared_tokens: int, prompt_tokens: int,
             now_s: float) -> tuple[int, int]:
        want = self._want(group, shared_tokens)
        slot, hit = self._choose(want, prompt_tokens, save=True)
        self._chosen = slot
        if slot >= 0:
            self.busy[slot] = True
            self.group[slot], self.tokens[slot] = group, hit
            # the system prompt this prompt begins with: its conversation's, or the shared
            # prefix of its own group
            self.base[slot], self.base_tokens[slot] = (want[2], want[3]) if want[2] >= 0 \
                else (group, shared_tokens) if group >= 0 else (-1, 0)
            if self.host_tokens:
                # --cache-idle-slots (on by default): once a task has launched, every idle
                # slot's prompt is copied to host memory; without a unified KV cache (the
                # server's default) the slot keeps it too
                for other, busy in enumerate(self.busy):
                    if not busy:
                        self._save(other)
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
                      similarity: float = DEFAULT_SLOT_SIMILARITY,
                      host_tokens: int = 0, head_tokens: int = 0,
                      head_groups: frozenset[int] = frozenset()) -> PrefixCache | None:
    """The cache of one replica (None: prefix caching off)."""
    cache = PREFIX_CACHES.get(policy)
    if cache is None:
        return None
    return cache.build(block_size=block_size, slots=slots, similarity=similarity,
                       host_tokens=host_tokens, head_tokens=head_tokens,
                       head_groups=head_groups)


#: Chains of preempted requests are kept under keys past any prefix group's.
PARKED_KEY_BASE = 1 << 48


def parked_key(rid: int) -> int:
    """The cache key of request `rid`'s own blocks while it is preempted."""
    return PARKED_KEY_BASE + rid


#: One class per policy name (besides "off"); the scenario schema names the same ones.
PREFIX_CACHES: dict[str, type[BlockPrefixCache] | type[SlotPrefixCache]] = {
    "vllm": BlockPrefixCache,
    "per_slot": SlotPrefixCache,
}
