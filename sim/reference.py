"""Reference mode: the scheduling policy of replica.py, one SimPy event per batch step.

Written independently of the fast replica on purpose: every sequence carries its own context
length and is visited every step, blocks are counted per sequence, and time advances by one
`env.timeout` per step. It is slow (use it on small scenarios) and exists so tests can check
that the closed-form jumps of the fast replica give the same per-request latencies.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import simpy

from llmplan.sim.prefix_cache import BlockPrefixCache, PrefixCache, make_prefix_cache, parked_key
from llmplan.sim.records import OK, REJECTED, SERVED_LOCAL, TIMED_OUT, TOO_LONG
from llmplan.sim.serving import ReplicaConfig, Workload


class _Seq:
    def __init__(self, rid: int, prompt: int, output: int, *, group: int, share: int,
                 keep: int) -> None:
        self.rid, self.prompt, self.output = rid, prompt, output
        self.group, self.share = group, share   # prefix group, prompt tokens it shares
        self.keep = keep                        # prefix group its tokens extend
        self.to_prefill = prompt   # tokens to compute before the next token is emitted
        self.computed = 0          # tokens in the KV cache
        self.generated = 0
        self.blocks = 0            # its own blocks (its group's shared chain counts once)
        self.shared = 0            # blocks of the shared chain it holds
        self.window = 0            # blocks its sliding-window layers hold while it runs
        self.slot = -1
        self.last_token_s = -1.0
        self.parked = (-1, 0)       # (group, shared blocks) its parked blocks follow
        self.reached_s = -1.0       # when it reached this replica (a retry: after it was sent)

    @property
    def decoding(self) -> bool:
        return self.computed >= self.to_prefill


class ReferenceReplica:
    """One replica as a SimPy process that executes one batch step per event."""

    def __init__(self, env: simpy.Environment, index: int, config: ReplicaConfig,
                 work: Workload) -> None:
        self.env, self.index, self.step = env, index, config.step
        self.total_blocks, self.B = config.blocks, config.block_size
        self.window_of = config.window_reserve_blocks
        self.max_seqs, self.max_tokens = config.max_num_seqs, config.max_num_batched_tokens
        self.max_chunk = config.max_chunk_tokens or config.max_num_batched_tokens
        self.chunked, self.max_len = config.chunked_prefill, config.max_model_len
        self.whole = config.admit_whole_prompt   # vLLM 0.19 on: the whole prompt must fit
        self.queue_limit, self.timeout_s = config.queue_limit, config.queue_timeout_s
        self.prompts, self.outputs, self.arrivals = work.prompts, work.outputs, work.arrivals
        self.rec = work.records
        self.waiting: list[_Seq] = []      # front = next to admit
        self.running: list[_Seq] = []      # admission order
        self.in_step: list[_Seq] = []      # finishing when the current step ends
        self.busy_s = 0.0
        self.lagged = config.async_admission   # async scheduling: see replica.py
        self.last_start_s = self.last_end_s = -1.0
        self._wake: simpy.Event | None = None
        # what a router reads (see router.Loaded): always ask load_at, nothing pending
        self.quiet_until_s = -math.inf
        self.last_end_s = -math.inf
        self.last_finished = 0
        self.groups, self.shares = work.groups, work.shared
        self.keeps = work.keep_groups if work.keep_groups is not None else work.groups
        self.side = work.side_calls
        self.bases, self.base_shares = work.base_groups, work.base_shared
        cache = make_prefix_cache(config.prefix_caching, block_size=self.B,
                                  slots=self.max_seqs,
                                  similarity=config.slot_prompt_similarity,
                                  host_tokens=config.host_cache_tokens,
                                  head_tokens=work.head_tokens, head_groups=work.head_groups)
        # a block cache also keeps what a preempted request computed (see _preempt)
        self.cache: PrefixCache | None = cache \
            if work.groups is not None or isinstance(cache, BlockPrefixCache) else None
        self.pinned = 0
        env.process(self._run())

    # the router calls these two
    def advance(self, until_s: float) -> None:
        """Nothing to do: SimPy has already run every step that ended before now."""

    @property
    def n_in(self) -> int:
        return len(self.waiting) + len(self.running)

    def expected_wait_s(self) -> float:
        """Not estimated in reference mode (hybrid spill-over uses the fast replica)."""
        return 0.0

    def load_at(self, t: float) -> int:
        """Requests here not finished yet (steps ending after now have not been applied)."""
        return len(self.waiting) + len(self.running)

    def arrive(self, rid: int, t: float) -> None:
        rec = self.rec
        rec.replica[rid] = self.index
        prompt, output = self.prompts[rid], self.outputs[rid]
        if prompt + output > self.max_len or (prompt + output - 1 + self.B - 1) // self.B \
                + self.window_of(prompt + output) > self.total_blocks:
            rec.outcome[rid], rec.finish_s[rid] = TOO_LONG, t
            if rec.on_end is not None:
                rec.on_end(rid)
            return
        if self.queue_limit is not None and self._refuses():
            rec.outcome[rid], rec.finish_s[rid] = REJECTED, t
            if rec.on_end is not None:
                rec.on_end(rid)
            return
        group = self.groups[rid] if self.groups is not None else -1
        share = self.shares[rid] if self.shares is not None else 0
        keep = self.keeps[rid] if self.keeps is not None else -1
        seq = _Seq(rid, prompt, output, group=group, share=share, keep=keep)
        seq.reached_s = t
        self.waiting.append(seq)
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _blocks_for(self, tokens: int) -> int:
        return (tokens + self.B - 1) // self.B

    def _free(self) -> int:
        return self.total_blocks - sum(s.blocks + s.window for s in self.running) \
            - self.pinned

    def _release(self, seq: _Seq, context: int, t: float) -> None:
        if self.side is not None and self.side[seq.rid] and self.shares is not None:
            # a fanned-out turn's later call: its conversation goes on from the first call
            # (Workload.side_calls), sharing only this call's history (all of it, computed
            # here even where only a system prompt was read: seq.share is then that)
            context = min(context, self.shares[seq.rid])
        if self.cache is not None:
            self.pinned -= self.cache.release(seq.group, seq.shared, keep_group=seq.keep,
                                              context_tokens=context, now_s=t, slot=seq.slot)
        seq.shared, seq.slot = 0, -1

    def _cache_scheduled(self, seq: _Seq, tokens: int, t: float) -> None:
        """vLLM caches the full blocks of a scheduled chunk at once (KVCacheManager.
        allocate_slots, before the step runs): a request admitted after it in the same
        step, or later, reads them."""
        if isinstance(self.cache, BlockPrefixCache) and seq.shared:
            self.cache.computed(seq.group, min(tokens, seq.shared * self.B), t)

    def _preempt(self, seq: _Seq, t: float) -> None:
        self.running.remove(seq)
        self.rec.preemptions[seq.rid] += 1
        parks = isinstance(self.cache, BlockPrefixCache)
        if isinstance(self.cache, BlockPrefixCache):
            # its full blocks past its group's chain stay cached, found when it resumes
            self.cache.park(parked_key(seq.rid), seq.computed // self.B - seq.shared, t)
            seq.parked = (seq.group, seq.shared)
        if self.cache is not None and not seq.decoding and seq.shared:
            # the full blocks of its group's chain it computed stay cached
            self.cache.computed(seq.group, min(seq.computed, seq.shared * self.B), t)
        self._release(seq, seq.computed if seq.decoding and not parks else 0, t)
        seq.blocks = 0
        seq.window = 0
        seq.computed = 0
        seq.to_prefill = seq.prompt + seq.generated
        seq.last_token_s = t
        self.waiting.insert(0, seq)

    def _refuses(self) -> bool:
        """The queue is full: `queue_limit` requests wait; with 0, this one would wait (see
        the fast replica's `_refuses`): no step under way (the process waits on its wake-up),
        so those waiting start with it when seats remain; else anyone waiting, or no seat."""
        if self.queue_limit:
            return len(self.waiting) >= self.queue_limit
        if self._wake is not None:
            return len(self.running) + len(self.waiting) >= self.max_seqs
        return bool(self.waiting) or len(self.running) >= self.max_seqs

    def _run(self) -> Generator[simpy.Event, Any, None]:
        env, rec, step = self.env, self.rec, self.step
        while True:
            t = env.now
            if self.timeout_s is not None:
                for seq in list(self.waiting):
                    if rec.start_s[seq.rid] >= 0:
                        continue  # started once (preempted): no queue timeout any more
                    if self.arrivals[seq.rid] + self.timeout_s > t:
                        break
                    self.waiting.remove(seq)
                    rec.outcome[seq.rid] = TIMED_OUT
                    rec.finish_s[seq.rid] = self.arrivals[seq.rid] + self.timeout_s
                    if rec.on_end is not None:
                        rec.on_end(seq.rid)
            if not self.running and not self.waiting:
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            scheduled: list[tuple[_Seq, int]] = []
            preempted = False
            # the latest arrival this step can admit: under async scheduling, while
            # requests run on, what came before the step before it started
            visible = self.last_start_s if self.lagged and self.last_end_s == t \
                and self.running else t
            # decoding requests in admission order (the newest preempted when blocks run
            # out), then those mid-prefill, oldest first (one short of blocks preempts itself)
            i = 0
            while i < len(self.running):
                seq = self.running[i]
                if not seq.decoding:
                    i += 1
                    continue
                need = max(0, self._blocks_for(seq.computed + 1) - seq.shared) - seq.blocks
                while need > self._free():
                    victim = self.running[-1]
                    self._preempt(victim, t)
                    preempted = True
                    if victim is seq:
                        break
                if seq not in self.running:
                    break
                seq.blocks += need
                scheduled.append((seq, 1))
                i += 1
            # the decodes take 1 + drafts each of vLLM's budget; the prefill's share is in
            # the simulated step's units (StepModel.prefill_budget)
            budget = step.prefill_budget(self.max_tokens, len(scheduled))
            for seq in [s for s in self.running if not s.decoding]:
                tokens = min(seq.to_prefill - seq.computed, budget, self.max_chunk)
                if tokens <= 0:
                    continue
                need = max(0, self._blocks_for(seq.computed + tokens) - seq.shared) - seq.blocks
                if need > self._free():
                    self._preempt(seq, t)
                    preempted = True
                    continue
                seq.blocks += need
                scheduled.append((seq, tokens))
                budget -= tokens
                self._cache_scheduled(seq, seq.computed + tokens, t)
            if not preempted:
                while self.waiting and budget > 0 and len(self.running) < self.max_seqs:
                    seq = self.waiting[0]
                    if rec.start_s[seq.rid] < 0 and seq.reached_s > visible:
                        break
                    hit = new_pin = shared = 0
                    if self.cache is not None:
                        if self.bases is not None and self.base_shares is not None:
                            seq.group, seq.share = self.cache.reads(
                                self.groups[seq.rid] if self.groups is not None else -1,
                                self.shares[seq.rid] if self.shares is not None else 0,
                                self.bases[seq.rid], self.base_shares[seq.rid])
                        hit, new_pin = self.cache.peek(seq.group, seq.share, seq.to_prefill)
                        shared = self.cache.shared_blocks(seq.group, seq.share, seq.to_prefill)
                        if isinstance(self.cache, BlockPrefixCache) and hit >= shared * self.B \
                                and seq.parked == (seq.group, shared):
                            own = self.cache.parked(parked_key(seq.rid))   # preempted
                            if own:
                                hit = min(hit + own * self.B,
                                          (seq.to_prefill - 1) // self.B * self.B)
                    tokens = min(seq.to_prefill - hit, budget, self.max_chunk)
                    if tokens < seq.to_prefill - hit and not self.chunked:
                        break
                    own = max(0, self._blocks_for(hit + tokens) - shared)
                    window = self.window_of(seq.prompt + seq.output)
                    held = max(0, self._blocks_for(seq.to_prefill) - shared) if self.whole \
                        else own
                    if held + new_pin + window > self._free():
                        break
                    self.waiting.pop(0)
                    if isinstance(self.cache, BlockPrefixCache):
                        self.cache.unpark(parked_key(seq.rid))
                    if self.cache is not None:
                        self.cache.take(seq.group, seq.share, seq.to_prefill, t)
                        seq.slot = self.cache.last_slot()
                        seq.shared = shared
                        self.pinned += new_pin
                        if rec.start_s[seq.rid] < 0:
                            rec.cached_tokens[seq.rid] = hit
                    seq.computed = hit
                    if rec.start_s[seq.rid] < 0:
                        rec.start_s[seq.rid] = t
                    seq.blocks = own
                    seq.window = window
                    self.running.append(seq)
                    scheduled.append((seq, tokens))
                    budget -= tokens
                    self._cache_scheduled(seq, hit + tokens, t)
            if not scheduled:
                continue
            prefill = sum(tok for s, tok in scheduled if not s.decoding)
            # each chunk's tokens, (query, key) pairs and context before it
            chunks = [(tok, tok * s.computed + tok * (tok + 1) // 2, s.computed)
                      for s, tok in scheduled if not s.decoding]
            pairs = sum(p for _, p, _ in chunks)
            context = sum(c for _, _, c in chunks)
            # the costliest chunk on one rank (the first of equals), data-parallel ranks
            lone_tokens, lone_pairs, lone_context = max(
                chunks, key=lambda c: step.rank_cost_s(*c), default=(0, 0, 0))
            decodes = [s for s, _ in scheduled if s.decoding]
            kv = sum(s.computed + 1 for s in decodes) + \
                sum(s.computed for s, _ in scheduled if not s.decoding)
            dt = step.step_s(prefill, len(decodes), kv, pairs, lone_tokens=lone_tokens,
                             lone_pairs=lone_pairs, context_tokens=context,
                             lone_context_tokens=lone_context)
            held = self.total_blocks - self._free()
            if self.cache is not None:   # allocations evict cached blocks nobody holds
                self.cache.evict_to(self._free())
            yield env.timeout(dt)
            end = t + dt
            self.last_start_s, self.last_end_s = t, env.now
            self.busy_s += dt
            rec.log_segment(t, dt, kv, dt, 0.0, 1, len(decodes), held)
            for seq, tokens in scheduled:
                was_decoding = seq.decoding
                seq.computed += tokens
                if not was_decoding and seq.computed < seq.to_prefill:
                    continue  # mid-prefill: nothing emitted
                if not was_decoding and self.cache is not None and seq.shared:
                    self.cache.computed(seq.group, seq.shared * self.B, end)
                if seq.generated == 0:
                    rec.first_token_s[seq.rid] = end
                elif not was_decoding:
                    rec.log_segment(t, 0.0, 0.0, end - seq.last_token_s, 0.0, 1, 1, 0)
                seq.generated += 1
                if seq.generated >= seq.output:
                    self.running.remove(seq)
                    self._release(seq, seq.computed, end)
                    rec.finish_s[seq.rid] = end
                    if rec.on_end is not None:
                        rec.on_end(seq.rid)
                    rec.outcome[seq.rid] = OK
                    rec.served_by[seq.rid] = SERVED_LOCAL
