"""A local engine's prefix cache (sim/prefix_cache.py), on paper and in a run."""

from __future__ import annotations

from typing import get_args

import pytest
from helpers import run_first, scenario_from

from llmplan.perf.engine import EngineSpec
from llmplan.scenario.models import SimulationMode
from llmplan.sim.prefix_cache import (
    PREFIX_CACHES,
    BlockPrefixCache,
    SlotPrefixCache,
    parked_key,
)
from llmplan.sim.table import request_table


def test_vllm_chains_are_shared_full_blocks_held_once_and_evicted_oldest_first() -> None:
    cache = BlockPrefixCache(block_size=16)
    # the first request of group 0 shares 100 tokens of its 150: 6 full blocks (96 tokens)
    assert cache.shared_blocks(0, 100, 150) == 6
    assert cache.peek(0, 100, 150) == (0, 6)          # nothing cached, 6 blocks to hold
    assert cache.take(0, 100, 150, now_s=0.0) == (0, 6)
    assert cache.pinned_blocks == 6 and cache.evictable == 0
    cache.computed(0, 96, now_s=1.0)                   # its prefill computed them
    # a second request of the group reads them and holds nothing new
    assert cache.take(0, 100, 120, now_s=2.0) == (96, 0)
    # at least the last prompt token is computed: a 97-token prompt reuses 96 (6 blocks),
    # a 96-token prompt only 80 (5 blocks)
    assert cache.peek(0, 100, 97)[0] == 96 and cache.peek(0, 100, 96)[0] == 80
    # the first leaves with 200 tokens computed: 12 blocks cached, 6 still held by the other
    assert cache.release(0, 6, keep_group=0, context_tokens=200, now_s=3.0, slot=-1) == 0
    assert (cache.cached[0], cache.pinned_blocks, cache.evictable) == (12, 6, 6)
    cache.evict_to(2)                                  # only 2 free blocks: the tail goes
    assert (cache.cached[0], cache.evictable) == (8, 2)
    # nobody holds it now
    assert cache.release(0, 6, keep_group=0, context_tokens=120, now_s=4.0, slot=-1) == 6
    assert (cache.pinned_blocks, cache.evictable) == (0, 8)
    # group 1 used later than group 0: a squeeze takes group 0 first
    cache.computed(1, 64, now_s=5.0)
    cache.evict_to(4)
    assert 0 not in cache.cached and cache.cached[1] == 4
    cache.evict_to(0)
    assert cache.cached == {} and cache.evictable == 0
    # no group, nothing shared
    assert cache.peek(-1, 500, 600) == (0, 0) and cache.take(-1, 500, 600, 6.0) == (0, 0)


def test_a_preempted_requests_blocks_stay_cached_until_evicted_last_block_first() -> None:
    """vLLM frees a preempted request's blocks with their hashes (to the free queue's
    tail, its last block first): its next admission finds what no allocation took."""
    cache = BlockPrefixCache(block_size=16)
    cache.computed(0, 64, now_s=1.0)                  # an older chain: 4 evictable blocks
    cache.park(parked_key(7), 10, now_s=2.0)          # request 7 preempted with 10 full
    assert cache.parked(parked_key(7)) == 10 and cache.evictable == 14
    cache.evict_to(8)            # allocations took 6 blocks: the older chain's go first
    assert 0 not in cache.cached and cache.parked(parked_key(7)) == 8
    cache.evict_to(5)            # then the request's own, from its end
    assert cache.parked(parked_key(7)) == 5 and cache.evictable == 5
    cache.unpark(parked_key(7))  # running again: its blocks are its own, not cache
    assert cache.parked(parked_key(7)) == 0 and cache.evictable == 0
    cache.park(parked_key(8), 0, now_s=3.0)           # nothing full: nothing kept
    assert cache.cached == {}
    # freed in the same step as the chain it follows: its own blocks go first, as vLLM
    # frees a request's blocks last first
    cache.computed(3, 64, now_s=4.0)
    cache.park(parked_key(9), 6, now_s=4.0)
    cache.evict_to(4)
    assert cache.parked(parked_key(9)) == 0 and cache.cached[3] == 4



def test_eviction_follows_the_last_use_whatever_was_used_in_between() -> None:
    """The eviction order is kept on a heap between evictions: a chain used again goes
    behind the others, and a pinned one is passed over and stays in line."""
    cache = BlockPrefixCache(block_size=16)
    for group in (5, 2, 9):
        cache.computed(group, 64, now_s=1.0)          # 4 blocks each, used together
    cache.computed(2, 64, now_s=2.0)                  # 2 used again: now the newest
    assert cache.take(5, 64, 80, now_s=1.0) == (64, 4)   # 5 held by a running request
    assert cache.evictable == 8
    cache.evict_to(6)            # 5 is held: 9 (used at 1.0) goes before 2 (at 2.0)
    assert cache.cached == {5: 4, 2: 4, 9: 2}
    cache.evict_to(2)
    assert cache.cached == {5: 4, 2: 2}
    cache.release(5, 4, keep_group=5, context_tokens=0, now_s=3.0, slot=-1)
    cache.evict_to(4)            # 5, free again, was last used at 1.0: before 2
    assert cache.cached == {2: 2, 5: 2}
    for t in range(100):         # many uses in between: the heap keeps its size
        cache.computed(2, 64, now_s=4.0 + t)
    assert len(cache._lru) <= 2 * len(cache.cached) + 65
    cache.evict_to(2)
    assert cache.cached == {2: 2}


LONG_CONTEXT = """
    seed: 2
    duration: 20m
    traffic: {{kind: poisson, rate_per_s: 0.05}}
    tasks:
      - name: doc
        prompt_tokens: {{kind: fixed, tokens: 120000}}
        output_tokens: {{kind: fixed, tokens: 1000}}
    deployments:
      d:
        gpu: H100-SXM
        model: Llama-3.1-8B
        engine: {{prefix_caching: {policy}, vllm_version: '0.18.1'}}
"""


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_a_preempted_request_resumes_from_what_the_cache_still_holds(mode: str) -> None:
    """Four 120k-token requests fit in an H100's cache for Llama-3.1-8B; a fifth admitted
    on its first chunk while others decode (vLLM before 0.19, which did not ask for room for
    the whole prompt) is preempted as they grow. Re-prefilling from zero each time (no
    prefix cache) lets the decoders run it out again and again; vLLM's cache gives it back
    its computed blocks, so it resumes where it stopped."""
    tables = {}
    for policy in ("vllm", "off"):
        run, stream = run_first(scenario_from(LONG_CONTEXT.format(policy=policy)),
                                SimulationMode(mode))
        tables[policy] = request_table(run, stream)
    cached, recomputed = tables["vllm"], tables["off"]
    assert recomputed.preemptions.sum() > 100
    assert cached.preemptions.sum() * 3 < recomputed.preemptions.sum()
    assert (cached.outcome == 1).sum() > (recomputed.outcome == 1).sum() + 10


def test_llamacpp_slots_keep_their_last_prompt_and_pick_by_similarity() -> None:
    cache = SlotPrefixCache(slots=2, similarity=0.1)
    # the first request goes to the last of the equally unused slots (llama.cpp's LRU
    # compares with <=: a fresh server logs slot 3, 2, 1, 0 for its first four requests)
    assert cache.take(0, 500, 600, now_s=0.0) == (0, 0) and cache.last_slot() == 1
    # slot 1 holds 650 tokens
    assert cache.release(0, 0, keep_group=0, context_tokens=650, now_s=1.0, slot=1) == 0
    # the same group comes back: slot 1, all its 500 shared tokens reused
    assert cache.peek(0, 500, 600) == (500, 0)
    # another group goes to the slot used longest ago (slot 0, never used)
    assert cache.take(1, 300, 400, now_s=2.0) == (0, 0) and cache.last_slot() == 0
    # slot 1 covers 500 of a 6,000-token prompt: under the 10% threshold, but the least
    # recently used idle slot is slot 1 anyway (slot 0 is busy): its prefix is reused
    assert cache.take(0, 500, 6000, now_s=3.0) == (500, 0) and cache.last_slot() == 1
    cache.release(0, 500, keep_group=0, context_tokens=6100, now_s=4.0, slot=1)
    cache.release(1, 0, keep_group=1, context_tokens=450, now_s=5.0, slot=0)
    # now slot 1 (used at 4 s) is older than slot 0 (5 s): a dissimilar request of group 1
    # whose slot covers too little of it goes to slot 1 and finds nothing
    assert cache.peek(1, 300, 4000) == (0, 0)
    # at least the last prompt token is computed
    assert cache.peek(0, 6100, 6100) == (6099, 0)
    # one class per policy the schema names, besides "off"
    policies = EngineSpec.model_fields["prefix_caching"].annotation
    assert set(PREFIX_CACHES) | {"off"} == set(get_args(policies))


def test_llamacpp_host_cache_keeps_what_slots_give_up() -> None:
    cache = SlotPrefixCache(slots=1, similarity=0.1, host_tokens=10_000)
    # conversation 100 began with system prompt 5 (300 tokens), now 800 tokens long
    cache.reads(100, 0, 5, 300)
    assert cache.take(100, 0, 400, now_s=0.0) == (0, 0)
    cache.release(100, 0, keep_group=100, context_tokens=800, now_s=1.0, slot=0)
    # another conversation with the same system prompt takes the only slot: it shares the
    # system prompt with what the slot holds, and the slot's 800 tokens go to host memory
    cache.reads(200, 0, 5, 300)
    assert cache.take(200, 0, 350, now_s=2.0) == (300, 0)
    cache.release(200, 0, keep_group=200, context_tokens=1000, now_s=3.0, slot=0)
    assert list(cache.host.values()) == [(100, 800, 5, 300)]
    # conversation 100's next turn shares only the system prompt with the slot, which
    # would keep under half its 1,000 tokens: the slot is saved and 100's own history
    # comes back from host memory, which gives it up (llama.cpp moves it into the slot)
    cache.reads(100, 800, 5, 300)
    assert cache.peek(100, 800, 900) == (800, 0)
    cache.reads(100, 800, 5, 300)
    assert cache.take(100, 800, 900, now_s=4.0) == (800, 0)
    assert list(cache.host.values()) == [(200, 1000, 5, 300)]
    cache.release(100, 0, keep_group=100, context_tokens=1200, now_s=5.0, slot=0)
    # saving a conversation's later state replaces an earlier one it contains
    cache.store((100, 600, 5, 300))
    cache.reads(300, 0, 6, 100)
    assert cache.take(300, 0, 150, now_s=6.0) == (0, 0)     # unrelated: LRU, slot saved
    assert list(cache.host.values()) == [(200, 1000, 5, 300), (100, 1200, 5, 300)]
    # a slot that keeps most of its prompt is reused as it is: no host lookup (llama.cpp
    # reads host memory only when the slot would lose over half of its prompt)
    keeps = SlotPrefixCache(slots=1, similarity=0.1, host_tokens=10_000)
    keeps.reads(9, 0, 5, 300)
    keeps.take(9, 0, 400, now_s=0.0)
    keeps.release(9, 0, keep_group=9, context_tokens=500, now_s=1.0, slot=0)
    keeps.store((10, 450, 5, 300))   # conversation 10's history sits in host memory
    keeps.reads(10, 450, 5, 300)           # it shares the system prompt: 300 of the slot's 500
    assert keeps.peek(10, 450, 900) == (300, 0)
    # the host cache holds at most host_tokens: the oldest saved prompt goes first
    small = SlotPrefixCache(slots=1, similarity=0.1, host_tokens=900)
    for i, group in enumerate((1, 2, 3)):
        small.take(group, 0, 500, now_s=float(i))
        small.release(group, 0, keep_group=group, context_tokens=500, now_s=i + 0.5, slot=0)
    assert [saved[0] for saved in small.host.values()] == [2] and small.host_used == 500


def _long_conversation_then_stranger(history_tokens: int) -> SlotPrefixCache:
    """Conversation 7 (system prompt 5, 300 tokens) ends at `history_tokens`; an unrelated
    request then takes the only slot, which saves the conversation to host memory."""
    cache = SlotPrefixCache(slots=1, similarity=0.1, host_tokens=100_000)
    cache.reads(7, 0, 5, 300)
    cache.take(7, 0, 400, now_s=0.0)
    cache.release(7, 0, keep_group=7, context_tokens=history_tokens, now_s=1.0, slot=0)
    assert cache.take(9, 0, 200, now_s=2.0) == (0, 0)
    cache.release(9, 0, keep_group=9, context_tokens=250, now_s=3.0, slot=0)
    assert [saved[0] for saved in cache.host.values()] == [7]
    return cache


def test_llamacpp_host_cache_does_not_trash_a_large_prompt_for_its_first_quarter() -> None:
    # a new conversation with system prompt 5: the saved 1,100-token conversation would keep
    # 300 of its tokens (27%), so llama.cpp loads it; a 1,300-token one would keep 23%, under
    # the quarter it insists on, so the unrelated slot is cleared and nothing is reused
    for history, reused in ((1100, 300), (1300, 0)):
        cache = _long_conversation_then_stranger(history)
        cache.reads(8, 0, 5, 300)
        assert cache.take(8, 0, 400, now_s=4.0) == (reused, 0), history


TWO_TURNS = """
    seed: 1
    duration: 20
    traffic: {{kind: constant, rate_per_s: 0.1}}   # arrivals at 0 s and 10 s
    tasks:
      - name: only
        prompt_tokens: {{kind: fixed, tokens: 36}}
        output_tokens: {{kind: fixed, tokens: 2}}
        shared_prefix: {{groups: 1, tokens: {{kind: fixed, tokens: 100}}}}
    deployments:
      one:
        gpu: H100-SXM
        model: Llama-3.1-8B
        engine: {{max_num_seqs: 8, prefix_caching: {policy}}}
        step_time: {{kind: linear, fixed_ms: 2, per_prefill_token_us: 10,
                    per_decode_seq_us: 100, per_kv_token_ns: 50}}
"""


@pytest.mark.parametrize("mode", ["fast", "reference"])
@pytest.mark.parametrize("policy", ["vllm", "per_slot", "off"])
def test_a_cached_prefix_is_not_prefilled_again(policy: str, mode: str) -> None:
    loaded = scenario_from(TWO_TURNS.format(policy=policy))
    run, stream = run_first(loaded, SimulationMode(mode))
    assert list(stream.arrival_s) == [0.0, 10.0] and list(stream.prompt_tokens) == [136, 136]
    ttft = request_table(run, stream).ttft_s
    # first request: 2 ms + 136 x 10 us, nothing cached
    assert ttft[0] == pytest.approx(0.002 + 136e-5, rel=1e-12)
    cached = {"vllm": 96, "per_slot": 100, "off": 0}[policy]   # full 16-token blocks or all
    assert run.records.cached_tokens == [0, cached]
    # second: only the uncached tokens are computed, attending to the cached ones
    assert ttft[1] == pytest.approx(0.002 + (136 - cached) * 1e-5 + cached * 50e-9, rel=1e-12)


# two 6,000-token prompts sharing 5,900 tokens, 1 ms apart, under a 2,048-token budget
CHUNKED_PAIR = """
    seed: 1
    duration: 0.002
    simulation: {{drain_s: 10}}
    traffic: {{kind: constant, rate_per_s: 1000}}
    tasks:
      - name: only
        prompt_tokens: {{kind: fixed, tokens: 100}}
        output_tokens: {{kind: fixed, tokens: 2}}
        shared_prefix: {{groups: 1, tokens: {{kind: fixed, tokens: 5900}}}}
    deployments:
      one:
        gpu: H100-SXM
        model: Llama-3.1-8B
        engine: {{max_num_seqs: 8, max_num_batched_tokens: 2048, prefix_caching: {policy}}}
        step_time: {{kind: linear, fixed_ms: 2, per_prefill_token_us: 10,
                    per_decode_seq_us: 100, per_kv_token_ns: 0}}
"""


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_a_prefix_scheduled_in_a_step_is_read_by_the_next_admission(mode: str) -> None:
    """vLLM caches a chunk's full blocks when it schedules them (KVCacheManager.
    allocate_slots, before the step runs). The first prompt's third chunk (4,096 to 6,000)
    leaves 144 tokens of the budget: the second request, admitted after it in that step,
    reads the 368 full blocks of the shared 5,900 tokens (5,888) and computes 112. The
    cache had published them only once the first's prefill ended: it computed all 6,000."""
    loaded = scenario_from(CHUNKED_PAIR.format(policy="vllm"))
    run, stream = run_first(loaded, SimulationMode(mode))
    assert list(stream.prompt_tokens) == [6000, 6000]
    assert list(stream.arrival_s) == [0.0, 0.001]
    assert run.records.cached_tokens == [0, 5888]
    ttft = request_table(run, stream).ttft_s
    # steps of 2 ms + 10 us a token: 2,048, 2,048, then 1,904 + 112 with its first token
    assert ttft[1] + 0.001 == pytest.approx(3 * 0.002 + (2048 + 2048 + 2016) * 1e-5,
                                            rel=1e-9)


class _Replica:
    """What a router reads of a replica, with a fixed load."""

    def __init__(self, index: int, load: int) -> None:
        self.index, self.n_in = index, load
        self.quiet_until_s, self.last_end_s, self.last_finished = float("inf"), -1.0, 0

    def load_at(self, t: float) -> int:
        return self.n_in


def test_prefix_affinity_keeps_a_group_home_until_the_fleet_is_unbalanced() -> None:
    from llmplan.sim.router import PrefixAffinity

    # requests 0-3: group 7 sharing 900 of 1,000 tokens; request 4 shares only 200 of 1,000
    router = PrefixAffinity(groups=[7, 7, 7, 7, 7], shared=[900] * 4 + [200],
                            prompts=[1000] * 5)
    fleet = [_Replica(0, 5), _Replica(1, 2), _Replica(2, 3)]
    assert router.choose(fleet, 0.0, 0) == 1          # new group: the least loaded, its home
    fleet[1].n_in = 40                                 # busier, but within the guard
    assert router.choose(fleet, 1.0, 1) == 1
    assert router.choose(fleet, 1.0, 4) == 2          # too little shared: least loaded
    fleet[1].n_in = 80                                 # 80 - 3 > 64 and 80 > 1.5 x 3
    assert router.choose(fleet, 2.0, 2) == 2          # unbalanced: least loaded, new home
    fleet[1].n_in = 0
    assert router.choose(fleet, 3.0, 3) == 2          # the home moved with it
    # the home is found by replica number, whatever the position among active replicas
    assert router.choose([fleet[2], fleet[0]], 4.0, 3) == 0


AFFINITY = """
    seed: 4
    duration: 600
    traffic: {{kind: poisson, rate_per_s: 3}}
    tasks:
      - name: rag
        prompt_tokens: {{kind: uniform, min_tokens: 50, max_tokens: 150}}
        output_tokens: {{kind: fixed, tokens: 60}}
        shared_prefix: {{groups: 30, tokens: {{kind: fixed, tokens: 3000}}}}
    deployments:
      fleet:
        gpu: L4
        model: Llama-3.1-8B
        replicas: 4
        router: {router}
        engine: {{kv_cache_tokens: 40000}}
"""


def test_routing_by_prefix_finds_more_of_it_cached() -> None:
    hit_rate = {}
    for router in ("least_outstanding", "prefix_affinity"):
        run, stream = run_first(scenario_from(AFFINITY.format(router=router)))
        hit_rate[router] = sum(run.records.cached_tokens) / int(stream.prompt_tokens.sum())
    # 30 documents over 4 replicas whose caches hold about 12 each: spread evenly, a
    # replica sees every document and keeps few; kept home, each replica needs ~8
    assert hit_rate["prefix_affinity"] > hit_rate["least_outstanding"] + 0.1


def test_llamacpp_copies_idle_slots_to_host_memory_when_a_task_launches() -> None:
    """--cache-idle-slots (llama.cpp's default): once a request has taken its slot, every
    idle slot's prompt is copied to host memory (the slot keeps it: no unified KV cache),
    so a conversation whose slot is later taken without a save still comes back."""
    cache = SlotPrefixCache(slots=2, similarity=0.1, host_tokens=10_000)
    # conversation 100 (system prompt 5, 300 tokens) ends its turn at 500 tokens in slot 1
    cache.reads(100, 0, 5, 300)
    assert cache.take(100, 0, 400, now_s=0.0) == (0, 0) and cache.last_slot() == 1
    cache.release(100, 0, keep_group=100, context_tokens=500, now_s=1.0, slot=1)
    assert not cache.host
    # an unrelated request launches in slot 0: idle slot 1 is copied, and kept
    assert cache.take(7, 0, 50, now_s=2.0) == (0, 0) and cache.last_slot() == 0
    assert list(cache.host.values()) == [(100, 500, 5, 300)]
    assert (cache.group[1], cache.tokens[1]) == (100, 500)
    cache.release(7, 0, keep_group=7, context_tokens=60, now_s=3.0, slot=0)
    # conversation 200 with the same system prompt takes slot 1 by similarity, keeping
    # 300 of its 500 tokens (over half: llama.cpp does not save it then)
    cache.reads(200, 0, 5, 300)
    assert cache.take(200, 0, 350, now_s=4.0) == (300, 0) and cache.last_slot() == 1
    # the copy is not made twice; slot 0's prompt (another group) joins it
    assert sorted(cache.host.values()) == [(7, 60, 7, 0), (100, 500, 5, 300)]
    # conversation 100's next turn finds slot 1 busy and slot 0 unrelated: the least
    # recently used slot loads its history back from host memory
    cache.reads(100, 500, 5, 300)
    assert cache.take(100, 500, 600, now_s=5.0) == (500, 0) and cache.last_slot() == 0
