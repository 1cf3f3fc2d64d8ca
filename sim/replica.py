"""One serving replica: a vLLM-style continuous-batching scheduler, simulated lazily.

Policy (what vLLM's V1 scheduler does, simplified where noted):

* Each step starts by dropping waiting requests past their queue timeout, then schedules
  every decoding sequence (one token each). A sequence whose KV cache fills its last block
  needs a new block; if the free blocks do not cover all such needs, the newest running
  request is preempted (recompute: its blocks are freed, it goes back to the front of the
  queue and later re-prefills prompt + generated tokens, less the full blocks that vLLM's
  prefix cache still holds of them then) until they do.
* Each partially prefilled request (chunked prefill), oldest first, gets its next chunk from
  the token budget left (max_num_batched_tokens - decodes); if its blocks do not fit it
  preempts itself. There is one such request at a time, unless a request's chunk is capped
  below the budget (`max_chunk_tokens`: data-parallel ranks pool their budgets, and a
  request runs on one rank): then one per rank it fills.
* If nothing was preempted, waiting requests are admitted first come, first served (preempted
  ones first) while the budget, max_num_seqs and the free blocks allow: the blocks of the
  first chunk, or from vLLM 0.19 (`admit_whole_prompt`) of the whole prompt, so that a
  request admitted is not preempted by its own next chunk. Without chunked prefill a prompt
  must fit whole in the budget. Under async scheduling (`async_admission`) vLLM schedules a
  step as the one before it starts (EngineCore.step_with_batch_queue, two batches in
  flight), so while requests run, a step admits only those that arrived before the previous
  step started; an idle engine schedules an arrival at once.
* The step takes StepTime(P, D, K); at its end every decode emits a token, a finished prefill
  emits the first token, and requests with all their tokens leave and free their blocks.

Speed: decoding sequences are not visited one by one. With a step counter c, sequence i has
ctx_i = off_i + c tokens in cache, so the total is S_off + D*c; it needs a new block when
(off_i + c) % block == 0, so counts per phase (off_i % block) give each step's block needs;
a heap of finish counters gives the next completion. While the batch is pure decode and
nothing can be admitted, the next k step times form an arithmetic series, so `_jump` takes
k steps at once, stopping at the next completion, the step where blocks would run out, or
the last step that starts before the next arrival. Completions are applied lazily: the
replica is only advanced when an arrival is routed to it or the router needs its load.
One exception to jumping: with a prefix cache that is evicting while requests wait, each
step may evict blocks the first waiting request would read, which can shrink what it needs
(its first chunk then ends inside the shared chain) and admit it mid-run: steps are then
taken one at a time, as the reference does.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable

from llmplan.sim.prefix_cache import (
    PREFIX_CACHES,
    BlockPrefixCache,
    PrefixCache,
    make_prefix_cache,
    parked_key,
)
from llmplan.sim.records import OK, REJECTED, SEGMENT, SERVED_LOCAL, TIMED_OUT, TOO_LONG
from llmplan.sim.serving import ReplicaConfig, Workload
from llmplan.sim.stepmodel import StepModel


class Seq:
    """A running (or preempted) request's scheduling state."""

    __slots__ = ("done", "finish_c", "generated", "group", "keep", "last_token_s", "off",
                 "order", "output", "parked", "parked_group", "parked_shared", "prompt", "rid",
                 "shared", "slot", "total", "window")

    def __init__(self, rid: int, prompt: int, output: int, group: int = -1,
                 keep: int = -1) -> None:
        self.rid = rid
        self.parked = False        # preempted with full blocks left in the block cache,
        self.parked_group = -1     # ... which follow this group's chain ...
        self.parked_shared = 0     # ... of this many blocks
        self.group = group         # prefix group it reads (-1: none)
        self.keep = keep           # prefix group its tokens extend (its conversation's)
        self.shared = 0            # blocks of its group's chain it holds (counted there)
        self.slot = -1             # per_slot cache: the slot it runs in
        self.prompt = prompt
        self.output = output
        self.total = prompt        # tokens to prefill (prompt + generated after a preemption)
        self.done = 0              # of those, computed so far
        self.generated = 0         # output tokens emitted (valid while not decoding)
        self.off = 0               # ctx - step counter, while decoding
        self.finish_c = 0          # step counter at which it has all its tokens
        self.order = -1            # admission order (key in `running`); -1 when not running
        self.last_token_s = -1.0
        self.window = 0            # blocks its sliding-window layers hold while it runs


class Replica:
    """Fast (lazy, closed-form) scheduler of one replica."""

    def __init__(self, index: int, config: ReplicaConfig, work: Workload) -> None:
        self.index = index
        self.model: StepModel = config.step
        self.pairs = 0              # prefill (query, key) pairs of the step being built
        self.context_tokens = 0     # ... and its chunks' context (cached or computed)
        self.pool_blocks = config.blocks
        # the pool less what running requests' sliding-window layers hold (taken at
        # admission, given back at the end or a preemption)
        self.total_blocks = config.blocks
        self.window_of = config.window_reserve_blocks
        self.windowed = config.sliding_groups > 0
        self.B = config.block_size
        self.max_seqs = config.max_num_seqs
        self.max_tokens = config.max_num_batched_tokens
        self.max_chunk = config.max_chunk_tokens or config.max_num_batched_tokens
        # data-parallel ranks, pipeline stages: the step's costliest chunk sets a floor
        self.ranked = self.max_chunk < self.max_tokens or config.step.stages > 1
        self.chunked = config.chunked_prefill
        self.whole = config.admit_whole_prompt
        self.lagged = config.async_admission
        self.max_len = config.max_model_len
        self.queue_limit = config.queue_limit
        self.timeout_s = config.queue_timeout_s
        self.prompts, self.outputs, self.arrivals = work.prompts, work.outputs, work.arrivals
        self.rec = records = work.records
        # its columns, read natively here (the lists are never replaced; `on_end` may be)
        self.start_s: list[float] = records.start_s
        self.first_token_s: list[float] = records.first_token_s
        self.finish_s: list[float] = records.finish_s
        self.replica_of: list[int] = records.replica
        self.preemptions: list[int] = records.preemptions
        self.cached_tokens: list[int] = records.cached_tokens
        self.outcome: list[int] = records.outcome
        self.served_by: list[int] = records.served_by

        self.now_s = 0.0            # when the next step may start
        self.c = 0                  # steps executed
        self.waiting: deque[int] = deque()      # fresh requests, FCFS
        self.late: dict[int, float] = {}        # of those, the ones sent here after arriving
        self.resumed: deque[Seq] = deque()      # preempted, served before fresh ones
        self.running: dict[int, Seq] = {}       # admission order -> Seq
        self.partials: list[Seq] = []            # requests mid-prefill, oldest first
        self.heap: list[tuple[int, int, Seq]] = []
        self.D = 0                  # decoding sequences
        self.s_off = 0              # sum of off over decoding sequences
        self.phase = [0] * config.block_size
        self.ceil_blocks = 0        # sum of ceil(ctx / block) over decoding sequences
        self.used_other = 0         # blocks held by the partial prefills
        self.lone_tokens = 0        # the step's costliest chunk (data-parallel ranks) ...
        self.lone_pairs = 0         # ... its pairs
        self.lone_context_tokens = 0   # ... its context
        self.lone_cost = 0.0        # ... and its cost on one rank (StepModel.rank_cost_s)
        self.next_order = 0
        self.last_end_s = -1.0      # end of the last executed step
        self.last_start_s = -1.0    # and its start
        self.step_visible_s = -1.0  # the latest arrival that step could admit (`visible_s`)
        self.last_finished = 0      # requests finished by that step
        self.busy_s = 0.0
        self.n_in = 0               # requests queued or running here
        self.admit_gap_s = 0.0      # moving average of the time between admissions
        self.last_admit_s = -1.0
        # (t0, dt, kv, first, growth, n, decodes, blocks held) packed: records.py
        self.pack: Callable[..., bytes] = SEGMENT.pack
        self.append_bytes: Callable[[bytes], None] = records.segments.extend
        # Before this time no request can finish or time out unless one arrives here: the
        # router may read the load without advancing (set when a jump stops short).
        self.quiet_until_s = -math.inf
        # prefix caching (prefix_cache.py): only when requests share prefixes
        self.policy = config.prefix_caching
        self.similarity = config.slot_prompt_similarity
        self.host_tokens = config.host_cache_tokens
        self.sharing = work.groups is not None and config.prefix_caching != "off"
        self.groups = work.groups if work.groups is not None else []
        self.share = work.shared if work.shared is not None else []
        self.keeps = work.keep_groups if work.keep_groups is not None else self.groups
        self.side = work.side_calls if work.side_calls is not None else []
        self.bases = work.base_groups if work.base_groups is not None else []
        self.base_share = work.base_shared if work.base_shared is not None else []
        self.head_tokens = work.head_tokens
        self.head_groups = work.head_groups
        self.cache: PrefixCache | None = None
        self.evicts = False
        # vLLM's block cache also keeps a preempted request's full blocks (`_park`): the
        # prefix cache when it is one, else (no shared prefixes) one kept for that alone
        self.blocks_cache: BlockPrefixCache | None = None
        self.parked_n = 0           # preempted requests with blocks parked there
        self.pinned = 0             # blocks of cached chains running requests hold
        self.s_shared = 0           # of those, counted in decoding sequences' contexts
        self.kv_cached = 0          # context tokens a step's new admissions found cached
        self._new_cache()

    def _new_cache(self) -> None:
        if self.sharing:
            self.cache = make_prefix_cache(self.policy, block_size=self.B, slots=self.max_seqs,
                                           similarity=self.similarity,
                                           host_tokens=self.host_tokens,
                                           head_tokens=self.head_tokens,
                                           head_groups=self.head_groups)
            self.evicts = isinstance(self.cache, BlockPrefixCache)
        self.blocks_cache = self.cache if isinstance(self.cache, BlockPrefixCache) else \
            BlockPrefixCache(self.B) if PREFIX_CACHES.get(self.policy) is BlockPrefixCache \
            else None
        self.parked_n = 0
        self.pinned = 0
        self.s_shared = 0

    # ---------------------------------------------------------------- queries

    def load_at(self, t: float) -> int:
        """Requests routed here and not finished by time t; advances only as far as needed."""
        if t >= self.quiet_until_s:
            self.advance(t, cut=False)
        return self.n_in + self.last_finished if self.last_end_s > t else self.n_in

    def outstanding(self, t: float) -> int:
        """Requests routed here and not finished by time t (after advance(t))."""
        return self.n_in + self.last_finished if self.last_end_s > t else self.n_in

    def expected_wait_s(self) -> float:
        """Queue wait a request routed here now would see: waiting x admission interval."""
        return (len(self.waiting) + len(self.resumed)) * self.admit_gap_s

    def decode_blocks(self) -> int:
        """Blocks held by decoding sequences: sum of ceil(ctx / B) (kept up to date as
        sequences join, leave and take steps), less the shared ones counted in `pinned`."""
        return self.ceil_blocks - self.s_shared

    def _held_over_run(self, n: int) -> int:
        """For the next n decode-only steps (c steps done): KV blocks held, summed over the
        steps (the pool less its free blocks, each decoding sequence holding the block its
        next token goes to); moves `ceil_blocks` on to the run's end.

        A sequence with x = a*B + r tokens in cache (0 <= r < B) holds
        ceil((x + k + 1) / B) = a + ceil((r + k + 1) / B) blocks in step k. With
        n = q*B + t, its n steps hold n*a + B*q(q-1)/2 + q(B + r) + t(q + 1)
        + max(0, r + t - B) blocks in all, and it ends holding q + [r + t >= 1]
        + [r + t > B] - [r > 0] more than it started with. Summed over the sequences, only
        those with r > B - t need visiting (at most t - 1 phase counts); the rest comes from
        the sums kept: sum of a = ceil_blocks - D + (sequences with r = 0), sum of r from the
        sum of contexts."""
        B, c, D = self.B, self.c, self.D
        q = n // B
        t = n - q * B
        phase = self.phase
        zero = phase[(-c) % B]                # sequences whose last block is full (r = 0)
        floors = self.ceil_blocks - D + zero  # sum of a
        rest = self.s_off + D * c - B * floors
        over = 0          # sum of r + t - B over sequences with r > B - t
        high = 0          # how many those are
        r = B - t + 1
        i = (r - c) % B   # the phase count of sequences with this r
        while r < B:
            count = phase[i]
            if count:
                high += count
                over += count * (r + t - B)
            r += 1
            i += 1
            if i == B:
                i = 0
        ramp = D * (B * q * (q - 1) // 2 + q * B + t * (q + 1)) + q * rest + over
        held = self.pool_blocks - self.total_blocks + self.used_other + self.pinned \
            - self.s_shared + floors
        self.ceil_blocks += D * q + (D if t else D - zero) + high - (D - zero)
        return n * held + ramp

    def _exact_free(self, need: int) -> int:
        """Free blocks now, less the `need` promised to decodes this step."""
        return self.total_blocks - self.used_other - self.pinned - self.decode_blocks() - need

    def _free_lower_bound(self, need: int) -> int:
        """Cheap lower bound of _exact_free: ceil(x/B) summed is <= (sum x + D(B-1)) / B."""
        D = self.D
        return (self.total_blocks - self.used_other - self.pinned + self.s_shared
                - (self.s_off + D * self.c + D * (self.B - 1)) // self.B - need)

    def evacuate(self, t: float) -> list[int]:
        """The replica failed at time t: take every request off it, return their ids.

        Steps that started before t are kept (their tokens were sent); everything queued or
        running is handed back for a retry elsewhere, and the replica is left empty.
        """
        self.advance(t)
        rids = list(self.waiting) + [seq.rid for seq in self.resumed]
        rids += [seq.rid for seq in self.running.values()]
        self.waiting.clear()
        self.late.clear()
        self.resumed.clear()
        self.running = {}
        self.partials = []
        self.heap = []
        self.D = 0
        self.s_off = 0
        self.phase = [0] * self.B
        self.ceil_blocks = 0
        self.used_other = 0
        self.total_blocks = self.pool_blocks
        self._new_cache()     # the replica restarts empty
        self.n_in = 0
        self.now_s = max(self.now_s, t)
        self.last_finished = 0
        self.last_end_s = self.last_start_s = self.step_visible_s = -1.0
        self.quiet_until_s = -math.inf
        return rids

    # ---------------------------------------------------------------- arrivals

    def arrive(self, rid: int, t: float) -> None:
        """A request routed here at time t. Call after advance(t)."""
        rec = self.rec
        self.replica_of[rid] = self.index
        prompt, output = self.prompts[rid], self.outputs[rid]
        if prompt + output > self.max_len or -(-(prompt + output - 1) // self.B) \
                + (self.window_of(prompt + output) if self.windowed else 0) > self.pool_blocks:
            self.outcome[rid] = TOO_LONG
            self.finish_s[rid] = t
            if rec.on_end is not None:
                rec.on_end(rid)
            return
        if self.queue_limit is not None and self._refuses(t):
            self.outcome[rid] = REJECTED
            self.finish_s[rid] = t
            if rec.on_end is not None:
                rec.on_end(rid)
            return
        if not self.running and not self.waiting and not self.resumed:
            self.now_s = max(self.now_s, t)
        self.waiting.append(rid)
        if t > self.arrivals[rid]:   # a retry, or a hybrid's fall-back: here only from t
            self.late[rid] = t
        self.n_in += 1
        self.quiet_until_s = -math.inf

    def _refuses(self, t: float) -> bool:
        """Admission's queue is full at t: `queue_limit` requests wait; with a limit of 0,
        a request would wait at all (others are ahead of it, or every seat is taken at t:
        the sequences the step under way finishes still hold theirs), since a request
        waits for the next step in any case."""
        queued = len(self.waiting) + len(self.resumed)
        if self.queue_limit:
            return queued >= self.queue_limit
        if self.now_s <= t:
            # no step under way at t: the requests waiting arrived at t too, and the step
            # beginning at t seats them with this one (arrivals at one instant start
            # together, as a trace's same-second requests do)
            return len(self.running) + queued >= self.max_seqs
        seated = len(self.running) + (self.last_finished if self.last_end_s > t else 0)
        return queued > 0 or seated >= self.max_seqs

    # ---------------------------------------------------------------- time

    def advance(self, until_s: float, cut: bool = True) -> None:
        """Execute every step that starts before `until_s`.

        With cut=False, stop instead before a run of decode steps that would end after
        `until_s` without changing the batch: enough to know every completion before it.
        """
        while self.now_s < until_s and self.n_in:
            if not self.partials and (not (self.waiting or self.resumed)
                                         or not self._admissible()):
                if not self._jump(until_s, cut):
                    return
            else:
                self._step()

    def _admissible(self) -> bool:
        """Could a waiting request be admitted, or time out, at the next step start?"""
        if self.timeout_s is not None and self.waiting and \
                self.arrivals[self.waiting[0]] + self.timeout_s <= self.now_s:
            return True  # a timeout to process: take the exact path
        if len(self.running) >= self.max_seqs:
            return False
        if self.resumed:
            seq = self.resumed[0]
            rid, total = seq.rid, seq.total
        elif self.waiting:
            rid = self.waiting[0]
            if self._reached_s(rid) > self.visible_s(self.now_s):
                return False  # scheduled from the step after the next (`_jump` stops there)
            total = self.prompts[rid]
        else:
            return False
        window = self.window_of(self.prompts[rid] + self.outputs[rid]) if self.windowed else 0
        # a request's chunk is at most one rank's budget
        room = min(self.model.prefill_budget(self.max_tokens, self.D), self.max_chunk)
        hit = new_pin = shared = 0
        group = -1
        if self.cache is not None:
            group, share = self._reads(rid)
            hit, new_pin = self.cache.peek(group, share, total)
            shared = self.cache.shared_blocks(group, share, total)
        if self.resumed and self.resumed[0].parked:
            hit = self._resumed_hit(self.resumed[0], group, hit, shared)
        chunk = min(total - hit, room)
        need = max(0, -(-(total if self.whole else hit + chunk) // self.B) - shared) + new_pin
        # a decode may also need a block this step
        need += self.phase[(-self.c) % self.B] + window
        if need <= self._free_lower_bound(0):
            return True
        return need <= self._exact_free(0)

    def waiting_seen(self) -> int:
        """Requests waiting that the engine has seen (vLLM's num_requests_waiting): under
        async scheduling not those that arrived since the step before the next began,
        which it takes in only as that step is scheduled."""
        waiting = self.waiting
        unseen = 0
        if self.lagged and waiting:
            # those the step under way could admit and did not (it was scheduled as the
            # one before it started); later ones are scheduled with the next step or not
            # yet taken in from the engine's input queue
            visible = self.step_visible_s
            while unseen < len(waiting) and self._reached_s(waiting[-1 - unseen]) > visible:
                unseen += 1
        return len(waiting) - unseen + len(self.resumed)

    def _reached_s(self, rid: int) -> float:
        """When request `rid`, waiting, reached this replica: its arrival, or for a
        request sent here again (a failed replica's, a hybrid's fall-back) when it was."""
        late = self.late
        return late.get(rid, self.arrivals[rid]) if late else self.arrivals[rid]

    def visible_s(self, t: float) -> float:
        """The latest arrival the step starting at `t` can admit: under async scheduling,
        while requests run without a break, what arrived before the step before it
        started (it was scheduled then); otherwise everything that arrived by `t`."""
        if self.lagged and self.last_end_s == t and self.running:
            return self.last_start_s
        return t

    def _reads(self, rid: int) -> tuple[int, int]:
        """The prefix group and shared tokens request `rid` looks up (prefix_cache.py)."""
        cache = self.cache
        assert cache is not None
        if self.bases:
            return cache.reads(self.groups[rid], self.share[rid], self.bases[rid],
                               self.base_share[rid])
        return self.groups[rid], self.share[rid]

    def _resumed_hit(self, seq: Seq, group: int, hit: int, shared: int) -> int:
        """Tokens a preempted request finds cached: the chain it reads and after it, when
        that is whole and the one its own blocks followed, what is left of them (`_park`);
        never its last token."""
        cache = self.blocks_cache
        if cache is None or hit < shared * self.B or group != seq.parked_group \
                or shared != seq.parked_shared:
            return hit
        own = cache.parked(parked_key(seq.rid))
        return min(hit + own * self.B, (seq.total - 1) // self.B * self.B) if own else hit

    def _park(self, seq: Seq, computed: int, t: float) -> None:
        """A preempted request's full blocks past its group's chain stay cached (vLLM keeps
        their hashes), evictable, until it runs again."""
        cache = self.blocks_cache
        blocks = computed // self.B - seq.shared
        if cache is not None and blocks > 0:
            cache.park(parked_key(seq.rid), blocks, t)
            seq.parked = True
            seq.parked_group, seq.parked_shared = seq.group, seq.shared
            self.parked_n += 1

    def _expire(self, t: float) -> None:
        if self.timeout_s is None:
            return
        waiting, arrivals, rec = self.waiting, self.arrivals, self.rec
        while waiting and arrivals[waiting[0]] + self.timeout_s <= t:
            rid = waiting.popleft()
            if self.late:
                self.late.pop(rid, None)
            self.outcome[rid] = TIMED_OUT
            self.finish_s[rid] = arrivals[rid] + self.timeout_s
            if rec.on_end is not None:
                rec.on_end(rid)
            self.n_in -= 1

    # ---------------------------------------------------------------- exact step

    def _step(self) -> None:
        t = self.now_s
        self.quiet_until_s = -math.inf
        self._expire(t)
        visible = self.step_visible_s = self.visible_s(t)
        B, c = self.B, self.c
        need = self.phase[(-c) % B]
        free = self._free_lower_bound(need)
        exact = False
        if free < 0:
            free, exact = self._exact_free(need), True
        preempted = False
        while free < 0:
            need, free = self._preempt_newest(need, free, t)
            preempted = True
        budget = self.model.prefill_budget(self.max_tokens, self.D)
        prefill_tokens = 0
        self.pairs = self.context_tokens = 0
        if self.ranked:
            self.lone_tokens = self.lone_pairs = self.lone_context_tokens = 0
            self.lone_cost = 0.0
        kv_tokens = self.s_off + self.D * (c + 1)
        prefilled: list[Seq] = []
        if self.partials:
            for part in self.partials[:]:
                chunk = min(part.total - part.done,
                            budget if budget < self.max_chunk else self.max_chunk)
                if chunk <= 0:
                    continue
                blocks = max(0, -(-(part.done + chunk) // B) - part.shared) \
                    - max(0, -(-part.done // B) - part.shared)
                if blocks > free and not exact:
                    free, exact = self._exact_free(need), True
                if blocks > free:
                    del self.running[part.order]
                    _, free = self._preempt(part, 0, free, t)
                    preempted = True
                    continue
                free -= blocks
                self.used_other += blocks
                kv_tokens += part.done
                pairs = chunk * part.done + chunk * (chunk + 1) // 2
                self.pairs += pairs
                self.context_tokens += part.done
                if self.ranked:
                    self._lone(chunk, pairs, part.done)
                part.done += chunk
                if self.blocks_cache is not None and part.shared:
                    # vLLM caches a chunk's full blocks when it schedules them
                    # (allocate_slots): a request admitted after it reads them
                    self.blocks_cache.computed(part.group, min(part.done, part.shared * B), t)
                prefill_tokens += chunk
                budget -= chunk
                if part.done == part.total:
                    prefilled.append(part)
                    self.partials.remove(part)
        if not preempted:
            self.kv_cached = 0
            prefill_tokens = self._admit(budget, free, exact, need=need,
                                         prefill_tokens=prefill_tokens, prefilled=prefilled, t=t,
                                         visible=visible)
            kv_tokens += self.kv_cached
        if prefill_tokens == 0 and self.D == 0:
            return  # nothing could run: only possible when every request just timed out
        dt = self.model.step_s(prefill_tokens, self.D, kv_tokens, self.pairs,
                               lone_tokens=self.lone_tokens, lone_pairs=self.lone_pairs,
                               context_tokens=self.context_tokens,
                               lone_context_tokens=self.lone_context_tokens) \
            if self.ranked else self.model.step_s(prefill_tokens, self.D, kv_tokens, self.pairs,
                                                  context_tokens=self.context_tokens)
        end = t + dt
        # every decode writes a token: a block more for those whose last block was full
        self.ceil_blocks += self.phase[(-c) % B]
        self.append_bytes(self.pack(t, dt, kv_tokens, dt, 0.0, 1, self.D,
                                    self.pool_blocks - self.total_blocks + self.used_other
                                    + self.pinned + self.ceil_blocks - self.s_shared))
        self.c = c + 1
        if self.evicts or self.parked_n:   # allocations evict cached blocks nobody holds,
            self._evict()                  # oldest first
        self._finish_step(t, end, dt, prefilled)

    def _lone(self, chunk: int, pairs: int, context: int) -> None:
        """Keep the step's costliest chunk on one rank (the first of equals)."""
        cost = self.model.rank_cost_s(chunk, pairs, context)
        if cost > self.lone_cost:
            self.lone_tokens, self.lone_pairs, self.lone_cost = chunk, pairs, cost
            self.lone_context_tokens = context

    def cache_evictable(self) -> int:
        """Cached blocks no running request holds (what an allocation may evict)."""
        cache = self.blocks_cache
        return cache.evictable if cache is not None else 0

    def _evict(self) -> None:
        cache = self.blocks_cache
        assert cache is not None
        cache.evict_to(self.total_blocks - self.used_other - self.pinned - self.decode_blocks())

    def _admit(self, budget: int, free: int, exact: bool, *, need: int, prefill_tokens: int,
               prefilled: list[Seq], t: float, visible: float) -> int:
        B = self.B
        cache = self.cache
        while budget > 0 and len(self.running) < self.max_seqs:
            if self.resumed:
                seq = self.resumed[0]
            elif self.waiting:
                rid = self.waiting[0]
                if self._reached_s(rid) > visible:
                    break   # scheduled from the next step on
                seq = Seq(rid, self.prompts[rid], self.outputs[rid],
                          self.groups[rid] if cache is not None else -1,
                          self.keeps[rid] if cache is not None else -1)
            else:
                break
            hit = new_pin = shared = share = 0
            if cache is not None:
                seq.group, share = self._reads(seq.rid)
                hit, new_pin = cache.peek(seq.group, share, seq.total)
                shared = cache.shared_blocks(seq.group, share, seq.total)
            if seq.parked:
                hit = self._resumed_hit(seq, seq.group, hit, shared)
            chunk = min(seq.total - hit, budget if budget < self.max_chunk else self.max_chunk)
            if chunk < seq.total - hit and not self.chunked:
                break
            own = max(0, -(-(hit + chunk) // B) - shared)
            window = self.window_of(seq.prompt + seq.output) if self.windowed else 0
            blocks = own + new_pin + window
            gate = blocks if not self.whole else \
                max(0, -(-seq.total // B) - shared) + new_pin + window
            if gate > free and not exact:
                free, exact = self._exact_free(need), True
            if gate > free:
                break
            fresh = not self.resumed
            if fresh:
                self.waiting.popleft()
                if self.late:
                    self.late.pop(seq.rid, None)
                self.start_s[seq.rid] = t
                if self.last_admit_s >= 0:
                    self.admit_gap_s += 0.1 * (t - self.last_admit_s - self.admit_gap_s)
                self.last_admit_s = t
            else:
                self.resumed.popleft()
                if seq.parked:   # running again: its blocks are its own, no longer cache
                    assert self.blocks_cache is not None
                    self.blocks_cache.unpark(parked_key(seq.rid))
                    seq.parked = False
                    self.parked_n -= 1
            if cache is not None:
                cache.take(seq.group, share, seq.total, t)
                seq.shared = shared
                seq.slot = cache.last_slot()
                self.pinned += new_pin
                if fresh:
                    self.cached_tokens[seq.rid] = hit
            self.kv_cached += hit
            free -= blocks
            self.used_other += own
            seq.window = window
            self.total_blocks -= window
            seq.done = hit + chunk
            if self.blocks_cache is not None and shared:   # read from the next admission on
                self.blocks_cache.computed(seq.group, min(seq.done, shared * B), t)
            pairs = chunk * hit + chunk * (chunk + 1) // 2
            self.pairs += pairs
            self.context_tokens += hit
            if self.ranked:
                self._lone(chunk, pairs, hit)
            seq.order = self.next_order
            self.next_order += 1
            self.running[seq.order] = seq
            prefill_tokens += chunk
            budget -= chunk
            if seq.done == seq.total:
                prefilled.append(seq)
            else:
                self.partials.append(seq)
        return prefill_tokens

    def _finish_step(self, t: float, end: float, dt: float, prefilled: list[Seq]) -> None:
        rec, B, c = self.rec, self.B, self.c
        finished = 0
        for seq in prefilled:
            rid = seq.rid
            if seq.generated == 0:
                self.first_token_s[rid] = end
            else:  # the gap a preemption put between two tokens
                self.append_bytes(self.pack(t, 0.0, 0.0, end - seq.last_token_s, 0.0, 1, 1, 0))
            seq.generated += 1
            self.used_other -= -(-seq.total // B) - seq.shared
            cache = self.cache
            if cache is not None and seq.shared:   # its shared blocks may now be read
                cache.computed(seq.group, seq.shared * B, end)
            if seq.generated >= seq.output:
                del self.running[seq.order]
                self.total_blocks += seq.window
                self.finish_s[rid] = end
                if rec.on_end is not None:
                    rec.on_end(rid)
                self.outcome[rid] = OK
                self.served_by[rid] = SERVED_LOCAL
                finished += 1
                self.n_in -= 1
                if cache is not None:
                    self.pinned -= cache.release(seq.group, seq.shared, keep_group=seq.keep,
                                                 context_tokens=self._kept(seq, seq.total),
                                                 now_s=end, slot=seq.slot)
                continue
            self.s_shared += seq.shared
            seq.off = seq.total - c
            self.phase[seq.off % B] += 1
            self.ceil_blocks += -(-seq.total // B)
            self.s_off += seq.off
            self.D += 1
            seq.finish_c = c + seq.output - seq.generated
            heapq.heappush(self.heap, (seq.finish_c, seq.order, seq))
        if self.heap and self.heap[0][0] <= c:
            finished += self._pop_finished(end)
        self.last_start_s = t
        self.now_s = self.last_end_s = end
        self.last_finished = finished
        self.busy_s += dt

    def _pop_finished(self, end: float) -> int:
        heap, c, rec, B = self.heap, self.c, self.rec, self.B
        cache, on_end = self.cache, rec.on_end
        finished = 0
        while heap and heap[0][0] <= c:
            _, order, seq = heapq.heappop(heap)
            if seq.order != order:
                continue  # stale entry of a preempted (maybe since re-admitted) sequence
            self.phase[seq.off % B] -= 1
            self.ceil_blocks -= -(-(seq.off + c) // B)
            self.s_off -= seq.off
            self.D -= 1
            del self.running[seq.order]
            self.total_blocks += seq.window
            if cache is not None:
                self.s_shared -= seq.shared
                self.pinned -= cache.release(seq.group, seq.shared, keep_group=seq.keep,
                                             context_tokens=self._kept(seq, seq.off + c),
                                             now_s=end, slot=seq.slot)
            self.finish_s[seq.rid] = end
            if on_end is not None:
                on_end(seq.rid)
            self.outcome[seq.rid] = OK
            self.served_by[seq.rid] = SERVED_LOCAL
            finished += 1
        self.n_in -= finished
        return finished

    def _kept(self, seq: Seq, context_tokens: int) -> int:
        """Of a request's `context_tokens` computed, those its keep group's later requests
        can read: a fanned-out turn's later call shares only its history with them
        (Workload.side_calls)."""
        if self.side and self.side[seq.rid]:
            return min(context_tokens, self.share[seq.rid])
        return context_tokens

    # ---------------------------------------------------------------- preemption

    def _requeue(self, seq: Seq, t: float) -> None:
        """Recompute preemption: queue first, re-prefill prompt + output less what the cache
        still holds of them when it runs again (`_park`)."""
        self.preemptions[seq.rid] += 1
        seq.total = seq.prompt + seq.generated
        seq.done = 0
        seq.shared = 0
        seq.slot = -1
        seq.last_token_s = t
        self.resumed.appendleft(seq)

    def _preempt_newest(self, need: int, free: int, t: float) -> tuple[int, int]:
        """Preempt the newest running request; return the updated (need, free after need)."""
        return self._preempt(self.running.popitem()[1], need, free, t)

    def _preempt(self, seq: Seq, need: int, free: int, t: float) -> tuple[int, int]:
        """Preempt a request just taken off `running`; return the updated (need, free after
        need)."""
        B, c = self.B, self.c
        self.total_blocks += seq.window
        free += seq.window
        if seq in self.partials:
            blocks = max(0, -(-seq.done // B) - seq.shared)
            self.used_other -= blocks
            self.partials.remove(seq)
            self._park(seq, seq.done, t)
            if self.cache is not None:
                if seq.shared:   # the full blocks of its group's chain it computed stay
                    self.cache.computed(seq.group, min(seq.done, seq.shared * B), t)
                unpinned = self.cache.release(seq.group, seq.shared, keep_group=seq.keep,
                                              context_tokens=0, now_s=t, slot=seq.slot)
                self.pinned -= unpinned
                blocks += unpinned
            self._requeue(seq, t)
            return need, free + blocks
        ctx = seq.off + c
        q = seq.off % B
        self.phase[q] -= 1
        self.ceil_blocks -= -(-ctx // B)
        self.s_off -= seq.off
        self.D -= 1
        seq.order = -1                 # its heap entry is stale from now on
        seq.generated = seq.output - (seq.finish_c - c)
        freed = -(-ctx // B) - seq.shared
        self._park(seq, ctx, t)
        if self.cache is not None:
            self.s_shared -= seq.shared
            # a block cache keeps its blocks parked (once); another cache, in its group
            unpinned = self.cache.release(seq.group, seq.shared, keep_group=seq.keep,
                                          context_tokens=0 if seq.parked
                                          else self._kept(seq, ctx), now_s=t, slot=seq.slot)
            self.pinned -= unpinned
            freed += unpinned
        self._requeue(seq, t)
        if (q + c) % B == 0:   # it needed a block this step: that promise is void too
            need -= 1
            free += 1
        return need, free + freed

    # ---------------------------------------------------------------- closed form

    def _jump(self, until_s: float, cut: bool) -> bool:
        """Take as many pure-decode steps as possible at once (see module docstring).

        Each run stops at the next completion or block shortage, or (when `cut`) after the
        last step that starts before `until_s`; runs continue across completions while
        nothing waits. Without `cut`, a run that would end after `until_s` is not taken: the
        replica stays put and remembers when it would change (`quiet_until_s`). Returns
        False when it declined to move.
        """
        heap, B, model = self.heap, self.B, self.model
        while True:
            entry = heap[0]
            while entry[2].order != entry[1]:     # stale: preempted since it was pushed
                heapq.heappop(heap)
                entry = heap[0]
            c, D = self.c, self.D
            n = entry[0] - c                      # steps to the next completion
            # blocks for n steps surely suffice if the upper bound of decode blocks
            # ((sum ctx + D (B-1)) / B) plus D per started block-width of steps fits
            if (self.total_blocks - self.used_other - self.pinned + self.s_shared) * B \
                    - self.s_off - D * c - D * (B - 1) < B * D * (-(-n // B)):
                n = self._kv_safe_steps(n)        # or to the step that would run out
                if n == 0:
                    self._step()
                    return True
            # the step time is linear in the step index until another part of the step
            # model takes over (see stepmodel.py): run no further than that
            first, gd, linear = model.decode_run(D, self.s_off + D * (c + 1))
            n = min(n, linear)
            if self.lagged and self.waiting and not self.resumed \
                    and self._reached_s(self.waiting[0]) > self.visible_s(self.now_s):
                n = 1   # the next step may admit it (async scheduling: `visible_s`)
            if (self.evicts or self.parked_n) and (self.waiting or self.resumed) \
                    and self.cache_evictable():
                # each step may evict cached blocks a waiting request would read, which can
                # shrink what it needs (its first chunk then ends inside the shared chain):
                # it may become admissible mid-run, so go step by step
                n = 1
            t = self.now_s
            span = n * first + gd * n * (n - 1) / 2
            change_s = t + span                   # when the batch changes by itself
            if self.timeout_s is not None and self.waiting:
                change_s = min(change_s, self.arrivals[self.waiting[0]] + self.timeout_s)
            self.quiet_until_s = -math.inf
            if change_s > until_s:
                if not cut:
                    self.quiet_until_s = change_s
                    return False
                # steps starting before until_s: smallest k with S(k) >= room,
                # where S(k) = k*first + gd*k(k-1)/2 is when step k starts
                room = until_s - t
                if n > 1 and (n - 1) * first + gd * (n - 1) * (n - 2) / 2 >= room:
                    n = _steps_covering(first, gd, room, n)
                    self.quiet_until_s = change_s
                    span = n * first + gd * n * (n - 1) / 2
            elif change_s < t + span:             # a queue timeout comes first
                room = change_s - t
                if n > 1 and (n - 1) * first + gd * (n - 1) * (n - 2) / 2 >= room:
                    n = _steps_covering(first, gd, room, n)
                    span = n * first + gd * n * (n - 1) / 2
            self.append_bytes(self.pack(t, span, self.s_off + D * (c + 1) + D * (n - 1) / 2,
                                        first, gd, n, D, self._held_over_run(n) / n))
            c += n
            self.c = c
            self.now_s = self.last_end_s = end = t + span
            last = end - (first + gd * (n - 1))
            # the run's last step was scheduled as the one before it started (requests ran
            # on throughout): it could admit what came by then (read only when `lagged`)
            self.step_visible_s = last - (first + gd * (n - 2)) if n > 1 else self.last_start_s
            self.last_start_s = last
            self.busy_s += span
            if self.evicts or self.parked_n:
                self._evict()
            if entry[0] > c:                      # stopped by time or blocks
                self.last_finished = 0
                return True
            self.last_finished = self._pop_finished(end)
            if end >= until_s or not self.D or self.waiting or self.resumed:
                return True

    def _kv_safe_steps(self, n: int) -> int:
        """Largest m <= n such that m decode steps find every block they need."""
        free = self.total_blocks - self.used_other - self.pinned - self.decode_blocks()
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._new_blocks(mid) <= free:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _new_blocks(self, m: int) -> int:
        """Blocks the decoding sequences newly need during the next m steps."""
        B, c = self.B, self.c
        total = 0
        for q, count in enumerate(self.phase):
            if count:
                first = (-(q + c)) % B
                if m > first:
                    total += count * (1 + (m - 1 - first) // B)
        return total


def _steps_covering(first: float, growth: float, room: float, cap: int) -> int:
    """Smallest k >= 1 with k*first + growth*k*(k-1)/2 >= room (at most cap)."""
    if growth > 0:
        b = first - growth / 2
        k = math.ceil((-b + math.sqrt(b * b + 2 * growth * room)) / growth)
    else:
        k = math.ceil(room / first)
    k = max(1, min(k, cap))
    # integer correction against rounding in the root
    while k > 1 and (k - 1) * first + growth * (k - 1) * (k - 2) / 2 >= room:
        k -= 1
    while k < cap and k * first + growth * k * (k - 1) / 2 < room:
        k += 1
    return k

