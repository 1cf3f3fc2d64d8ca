"""How long one continuous-batching step takes: parts that overlap, parts that do not.

    gpu    = max(gemm FLOPs, weights read) + max(attention FLOPs, KV read) + serial
    engine = max(gpu, cpu)          with async scheduling (the CPU prepares the next step
           = gpu + cpu              while the GPU runs this one), without it
    step   = max(engine, frontend)  the API server streams the last step's tokens in its own
                                    process: a pipeline stage neither of the others hides

A roofline per kind of kernel, as the kernels run: one after the other in every layer, each
bound by its own FLOPs or its own bytes. The linear layers' GEMMs compute 2 FLOPs per
parameter per token and read the weights (the dense part, plus the experts the step's
tokens touch); attention computes over each token's context and reads the KV cache. A
GEMM's FLOPs cannot hide under attention's KV reads, nor attention's FLOPs under the
weight reads. serial = what overlaps nothing (tensor-parallel all-reduces, a fixed per-step
cost; in a calibrated model everything, prefill attention pairs included); cpu =
scheduling, sampling and output handling (fixed + per decoding sequence).

With P prefill tokens, D decoding sequences, K context tokens those decodes attend to and
A (query, key) pairs of the prefill chunks, each part is affine in K for fixed (P, D): a run
of pure decode steps, in which K grows by D per step, is piecewise linear in the step
index, with a new piece only where another part takes over the max. `decode_run` gives the
current piece (first step time, growth per step, steps it lasts) so the fast scheduler can
jump over it in closed form and stay exact against the step-by-step reference.

MLA's prefill up-projects the context it attends to: every chunk of a prompt whose earlier
tokens are in the cache (a later chunk, or a prefix-cache hit) gathers those tokens'
latents and multiplies them back to per-head keys and values in every layer (vLLM's
`_compute_prefill_context`, vllm/v1/attention/backends/mla/common.py), once per step. C,
the prefill chunks' context tokens (each prefilling request's computed or cached tokens
before its chunk), costs `upproject_per_context_token_s` each, kernels of their own that
overlap neither the GEMMs nor attention (in both compute and memory). A prefill-only
input: pure decode steps have none, so `decode_run` is untouched.

Speculative decoding: a verify step runs `verify_tokens` (1 + drafts) per decoding sequence
through the model and emits `accepted` of them on average, as vLLM's scheduler schedules
1 + len(spec_token_ids) tokens per running request (vllm/v1/core/sched/scheduler.py) and its
rejection sampler keeps the accepted prefix plus one. Prefill tokens cost what they cost
without speculation. The simulator emits one token per decoding sequence per step, so its
step stands for 1/accepted of a verify step: a step with P prefill tokens (A pairs) next to
D decodes lasts verify_step(accepted x P, D, K, accepted x A) / accepted: per prefill token
the real cost, per emitted token 1/accepted of the verify work (a step without decodes is
a real step). A drafter with weights of its own (EAGLE heads, a draft model) runs after the
model in every step, each pass bound by its own FLOPs or its weight reads: once over every
token the step computed (vLLM's EagleProposer.propose runs it on the prompt tokens too,
vllm/v1/spec_decode/eagle.py), then num_speculative_tokens - 1 times over one token per
decoding sequence; part of `serial`: its weights and FLOPs a constant of a decode run, its
reads of its own KV cache (the roofline's serial_per_kv_token) growing with the contexts.

Data-parallel ranks (`ranks` > 1: attention data parallelism): the scheduler pools the
ranks' sequences and budgets, and the coefficients price the step as if its tokens were
spread evenly. A rank holds whole requests, though, and the ranks step together (the
routed layers' all-gather waits for the slowest):
* the step's costliest chunk (`lone_tokens` prefill tokens, `lone_pairs` pairs; cost
  `rank_cost_s`, its dense GEMMs and attention at the pooled rate) runs on one rank's GPU:
  the step computes at least ranks x its cost where the pooled parts gave the chunks' own
  cost (the routed experts stay pooled: expert parallelism spreads every rank's tokens);
* D decoding sequences sit whole on the ranks, ceil(D / ranks) on the busiest: their
  attention (KV reads and FLOPs) is charged ranks x ceil(D / ranks) / D times the pooled
  figure (a lone sequence's context is read by one GPU). A function of D alone, so a decode
  run stays piecewise linear in K and `decode_run` exact.

Pipeline stages (`stages` = pp > 1, vLLM's --pipeline-parallel-size): each stage holds a
run of the layers, and the engine keeps pp batches in flight, one per stage (V1's batch
queue), each with its own token budget; a request is in one of them at a time (it decodes
once per pass through every stage, vllm/v1/core/sched/scheduler.py). A simulated step is a
round of those pp micro-batches: every running sequence advances once, in the time of one
pass of a micro-batch of 1/pp of the round's work through all the stages, the others
pipelined behind it. The coefficients are pooled as for data-parallel ranks (the roofline's
per-token, per-pair and per-KV-token parts divided by pp; the weights, read once per stage
per micro-batch, are one whole pass a round), the experts a round reads are those each
micro-batch's 1/pp of the tokens touches, and `ranks` = pp charges the decodes' attention
as they split into micro-batches (a lone decode waits for its whole pass). Each stage takes
the micro-batches in order, so one heavy micro-batch holds the others behind it at every
stage: a round lasts at least the whole pass of its costliest micro-batch. A prompt's next
chunk is scheduled while the last is in flight (`_update_after_schedule` advances
num_computed_tokens at scheduling), so one request may take up to pp budgets of a round
(`stage_tokens` each), its micro-batches one stage apart: the round lasts at least the
first's whole pass plus one stage of each later one (`_lone_s`).
"""

from __future__ import annotations

import math

NEVER = 1 << 62


class StepModel:
    """Coefficients in seconds (per token, per sequence, per KV token, per pair)."""

    def __init__(self, *, serial_s: float = 0.0, serial_per_token_s: float = 0.0,
                 serial_per_prefill_token_s: float = 0.0, serial_per_seq_s: float = 0.0,
                 serial_per_kv_token_s: float = 0.0, serial_per_pair_s: float = 0.0,
                 serial_tokens_s: tuple[float, ...] = (),
                 compute_per_token_s: float = 0.0, compute_per_pair_s: float = 0.0,
                 compute_per_prefill_pair_s: float = -1.0,
                 compute_per_window_seq_s: float = 0.0, window_tokens: int = 0,
                 compute_per_sampled_s: float = 0.0,
                 upproject_per_context_token_s: float = 0.0,
                 weights_s: float = 0.0, experts_s: float = 0.0, experts: int = 0,
                 experts_per_token: int = 0, memory_per_kv_token_s: float = 0.0,
                 memory_per_seq_s: float = 0.0,
                 cpu_s: float = 0.0, cpu_per_seq_s: float = 0.0, async_cpu: bool = False,
                 frontend_per_seq_s: float = 0.0,
                 verify_tokens: int = 1, accepted: float = 1.0,
                 draft_per_token_s: float = 0.0, draft_weights_s: float = 0.0,
                 ranks: int = 1, rank_dense_per_token_s: float = 0.0,
                 stages: int = 1, stage_tokens: int = 0,
                 stage_weights_s: float = 0.0, launch_s: float = 0.0) -> None:
        self.serial_s = serial_s
        #: eager mode (no CUDA graphs): the CPU's time launching a step's kernels, a floor
        #: under the GPU's compute and memory time (the GPU cannot run ahead of them)
        self.launch_s = launch_s
        self.serial_per_token_s = serial_per_token_s
        #: a measured serial time of a step by its tokens (index: tokens; a calibrated
        #: server whose step is not linear in them); past its end serial_per_token_s each
        self.serial_tokens_s: list[float] = list(serial_tokens_s)
        self.tabulated = bool(serial_tokens_s)
        self.serial_per_prefill_token_s = serial_per_prefill_token_s
        self.serial_per_seq_s = serial_per_seq_s
        self.serial_per_kv_token_s = serial_per_kv_token_s
        self.serial_per_pair_s = serial_per_pair_s
        self.compute_per_token_s = compute_per_token_s
        self.compute_per_pair_s = compute_per_pair_s
        #: prefill chunks' pairs (negative: as decodes'); MLA computes them in another form
        self.compute_per_prefill_pair_s = compute_per_pair_s if compute_per_prefill_pair_s < 0 \
            else compute_per_prefill_pair_s
        #: a sequence's sliding-window layers, a whole window of context: FLOPs per query
        #: token (compute_per_window_seq_s) and KV reads per step (memory_per_seq_s). With
        #: window_tokens W the step charges min(K, D x W) / W windows (`_parts`);
        #: without it (a calibrated model) one per decoding sequence
        self.compute_per_window_seq_s = compute_per_window_seq_s
        self.window_tokens = window_tokens
        #: the output head's GEMM, run only on the rows vLLM computes logits for: one per
        #: scheduled request (a decoding sequence's verify tokens; a prefilling request's
        #: last row, whose sample is dropped until its last chunk). The prefilling requests'
        #: rows are left out here: the step's arguments do not count them (one row each,
        #: against the hundreds of tokens their chunk puts through the layers)
        self.compute_per_sampled_s = compute_per_sampled_s
        #: MLA: a prefill chunk's cached context gathered and up-projected to keys and
        #: values, per context token (module docstring); 0 for other attention
        self.upproject_per_context_token_s = upproject_per_context_token_s
        self.weights_s = weights_s
        self.experts_s = experts_s
        self.untouched = 1.0 - experts_per_token / experts if experts > 0 else 0.0
        self.memory_per_kv_token_s = memory_per_kv_token_s
        self.memory_per_seq_s = memory_per_seq_s
        self.cpu_s = cpu_s
        self.cpu_per_seq_s = cpu_per_seq_s
        self.async_cpu = async_cpu
        #: the API server's time per token it streams, in its own process: a pipeline
        #: stage, so a decode step lasts at least D of them whatever the engine overlaps
        self.frontend_per_seq_s = frontend_per_seq_s
        self.verify_tokens = verify_tokens
        self.accepted = accepted
        #: the drafter: FLOP time per token of a pass, weight-read time per pass
        self.draft_per_token_s = draft_per_token_s
        self.draft_weights_s = draft_weights_s
        #: data-parallel ranks, and the dense layers' GEMM time per token at the pooled
        #: rate (the part of compute_per_token_s a rank runs on its own GPU)
        self.ranks = ranks
        self.rank_dense_per_token_s = rank_dense_per_token_s if ranks > 1 else 0.0
        #: pipeline stages: a round's tokens go through the experts in `stages`
        #: micro-batches, each touching its own share of them (module docstring)
        self.stages = stages
        #: one micro-batch's token budget (pipeline stages: a round has `stages` of them)
        self.stage_tokens = stage_tokens if stage_tokens > 0 else (1 << 62)
        #: the busiest stage's weight reads per micro-batch (its layers, and the last
        #: stage's output head): a round of m micro-batches waits for m of them
        self.stage_weights_s = stage_weights_s

    def _batches(self, prefill_tokens: int, decode_seqs: int) -> int:
        """Micro-batches a round's work fills (pipeline stages; 1 without): a decode each at
        most, the prefill tokens in budgets of stage_tokens, at most `stages`."""
        if self.stages == 1:
            return 1
        chunks = -(-prefill_tokens // self.stage_tokens) if prefill_tokens else 0
        return min(self.stages, max(1, decode_seqs + chunks))

    def _weights_read_s(self, tokens: float, batches: int = 1) -> float:
        """Dense weights, plus the share of experts `tokens` routed tokens touch (each picks
        top-k of E uniformly: E (1 - (1 - k/E)^T) distinct experts expected). With pipeline
        stages, those one of the round's `batches` micro-batches touches (a round lasts at
        least the largest one's pass), and the weights once a pass or the busiest stage's
        once per micro-batch, whichever is longer (the stages are not equally loaded: the
        last also reads the output head)."""
        weights = self.weights_s if self.stage_weights_s == 0.0 \
            else max(self.weights_s, batches * self.stage_weights_s)
        if self.experts_s == 0.0:
            return weights
        return weights + self.experts_s * (1.0 - math.pow(self.untouched, tokens / batches))

    def _tokens_s(self, tokens: float) -> float:
        """Serial time of the step's tokens: the measured table where it reaches (straight
        between its entries for a fractional count), past its end (or without one)
        serial_per_token_s per token."""
        table = self.serial_tokens_s
        n = len(table)
        if n == 0:
            return self.serial_per_token_s * tokens
        if tokens < n - 1:
            i = int(tokens)
            return table[i] + (tokens - i) * (table[i + 1] - table[i]) if tokens > i \
                else table[i]
        return table[n - 1] + self.serial_per_token_s * (tokens - n + 1)

    def _gemm_flops_s(self, tokens: float, decode_seqs: int) -> float:
        """The GEMMs' FLOP time: every token through the layers, the sampled ones (each
        decoding sequence's verify tokens) through the output head too."""
        return (self.compute_per_token_s * tokens
                + self.compute_per_sampled_s * decode_seqs * self.verify_tokens)

    def _draft_s(self, tokens: float, decode_seqs: int) -> float:
        """The drafter's passes in a verify step (module docstring); 0 without one."""
        weights = self.draft_weights_s
        per_token = self.draft_per_token_s
        if weights == 0.0 and per_token == 0.0:
            return 0.0
        later = self.verify_tokens - 2          # num_speculative_tokens - 1
        return max(per_token * tokens, weights) \
            + later * max(per_token * decode_seqs, weights)

    def prefill_budget(self, max_tokens: int, decode_seqs: int) -> int:
        """Prefill tokens a simulated step may schedule beside `decode_seqs` decodes:
        vLLM's token budget less what the decodes take of it, 1 + drafts each (its
        scheduler charges num_tokens_with_spec), in the simulated step's units (1/accepted
        of a verify step); without speculation, the budget less one token a decode."""
        if decode_seqs == 0 or self.verify_tokens == 1:
            return max_tokens - decode_seqs
        return max(0, int((max_tokens - decode_seqs * self.verify_tokens) / self.accepted))

    def _spread(self, decode_seqs: int) -> float:
        """Simulated steps per verify step: `accepted` when the step decodes, else 1."""
        return self.accepted if decode_seqs > 0 else 1.0

    def _uneven(self, decode_seqs: int) -> float:
        """The busiest rank's share of the decodes' attention over the even share: ranks x
        ceil(D / ranks) / D (1 without ranks; module docstring)."""
        ranks = self.ranks
        if ranks <= 1 or decode_seqs <= 0:
            return 1.0
        return ranks * (-(-decode_seqs // ranks)) / decode_seqs

    def rank_cost_s(self, tokens: float, pairs: float, context_tokens: float = 0.0) -> float:
        """A prefill chunk's dense GEMMs, attention and MLA's up-projection of the
        `context_tokens` before it, at the pooled rates (data-parallel ranks: one rank runs
        it on its own GPU in ranks x this)."""
        cost = self.rank_dense_per_token_s * tokens + self.compute_per_prefill_pair_s * pairs \
            + self.upproject_per_context_token_s * context_tokens
        w = self.window_tokens
        if w:
            cost += self.compute_per_window_seq_s * min(pairs, tokens * w) / w
        return cost

    def _lone_s(self, tokens: float, pairs: float, context_tokens: float) -> float:
        """What the step's costliest chunk sets its compute to at least: ranks x its pooled
        cost on one data-parallel rank's GPU; with pipeline stages, one request's tokens of
        the round in micro-batches of at most `stage_tokens`, the first's whole pass (pp x
        its pooled cost) and the others one stage each behind it."""
        if self.stages <= 1 or tokens <= self.stage_tokens:
            return self.ranks * self.rank_cost_s(tokens, pairs, context_tokens)
        first = self.stage_tokens / tokens
        rest = 1.0 - first
        return self.ranks * self.rank_cost_s(tokens * first, pairs * first,
                                             context_tokens * first) \
            + self.rank_cost_s(tokens * rest, pairs * rest, context_tokens * rest)

    def _parts(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int, pairs: int, *,
               lone_tokens: int = 0, lone_pairs: int = 0, context_tokens: int = 0,
               lone_context_tokens: int = 0) -> tuple[float, float, float, float]:
        """(compute, memory, serial, cpu) of the verify step one simulated step stands for
        (module docstring: prefill scaled by `_spread`); compute and memory both include
        the GEMMs' max(FLOPs, weight reads)."""
        q = self.verify_tokens
        spread = self._spread(decode_seqs)
        prefill = prefill_tokens * spread
        prefill_pairs = pairs * spread
        tokens = prefill + decode_seqs * q
        # the GEMMs' own roofline, a constant of the step's tokens; attention's parts follow
        # (both carry it, so max(compute, memory) is the sum of the two maxima)
        batches = self._batches(prefill_tokens, decode_seqs)
        gemms = max(self._gemm_flops_s(tokens, decode_seqs),
                    self._weights_read_s(tokens, batches))
        # MLA's up-projection of the chunks' context: kernels of its own, in both parts.
        # Not scaled by `spread`: a chunk's context does not grow with its tokens, and a
        # prompt runs in `accepted` times as many simulated chunks, each 1/accepted of a
        # verify step, so each one's context counts once over the simulated chunks
        prefill_context = float(context_tokens)
        upproject = self.upproject_per_context_token_s * prefill_context
        u = self._uneven(decode_seqs)
        w = self.window_tokens
        if w:
            # each decode reads min(context, W); min(K, D x W) bounds their sum (exact
            # while every context is below W or every one past it), in windows
            windows = u * min(kv_tokens, decode_seqs * w) / w
            # the prefill chunks' pairs in the window layers: at most W per token (a query
            # attends its last W keys), so min(A, P x W) bounds them, in windows' worth
            window_work = q * windows + min(prefill_pairs, prefill * w) / w
        else:
            windows = window_work = float(decode_seqs)
        compute = gemms + upproject + self.compute_per_prefill_pair_s * prefill_pairs \
            + self.compute_per_pair_s * q * u * kv_tokens \
            + self.compute_per_window_seq_s * window_work
        if lone_tokens and self.rank_dense_per_token_s:
            # the costliest chunk on one rank's GPU; with pipeline stages, the whole pass of
            # its first micro-batch, the rest of it pipelined behind (module docstring)
            compute += max(0.0, self._lone_s(lone_tokens * spread, lone_pairs * spread,
                                             float(lone_context_tokens))
                           - self.rank_cost_s(prefill, prefill_pairs, prefill_context))
        memory = gemms + upproject + self.memory_per_kv_token_s * u * kv_tokens \
            + self.memory_per_seq_s * windows
        serial = self.serial_s + (self._tokens_s(tokens) if self.tabulated
                                  else self.serial_per_token_s * tokens) \
            + self.serial_per_prefill_token_s * prefill \
            + self.serial_per_seq_s * decode_seqs + self.serial_per_kv_token_s * kv_tokens \
            + self.serial_per_pair_s * prefill_pairs + self._draft_s(tokens, decode_seqs)
        # the scheduler runs once per micro-batch of a round (pipeline stages)
        cpu = self.cpu_s * batches + self.cpu_per_seq_s * decode_seqs
        return compute, memory, serial, cpu

    def step_s(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int,
               pairs: int = 0, *, lone_tokens: int = 0, lone_pairs: int = 0,
               context_tokens: int = 0, lone_context_tokens: int = 0) -> float:
        """One step with P prefill tokens (A pairs, C `context_tokens` before the chunks),
        D decodes reading K context tokens; with data-parallel ranks, the costliest chunk's
        tokens, pairs and context (module docstring)."""
        compute, memory, serial, cpu = self._parts(prefill_tokens, decode_seqs, kv_tokens,
                                                   pairs, lone_tokens=lone_tokens,
                                                   lone_pairs=lone_pairs,
                                                   context_tokens=context_tokens,
                                                   lone_context_tokens=lone_context_tokens)
        # two-argument max calls: compiled inline (a three-argument one is not)
        gpu = max(compute, memory)
        gpu = max(gpu, self.launch_s)
        engine = self._engine_s(gpu + serial, cpu, decode_seqs)
        return max(engine, self.frontend_per_seq_s * decode_seqs)

    def _engine_s(self, gpu: float, cpu: float, decode_seqs: int) -> float:
        """The engine's share of a step per emitted token: GPU and CPU overlapped (async)
        or in turn, a verify step spread over its accepted tokens."""
        t = max(gpu, cpu) if self.async_cpu else gpu + cpu
        if decode_seqs > 0 and self.accepted != 1.0:
            t /= self.accepted
        return t

    def bound_by(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int,
                 pairs: int = 0) -> str:
        """The part that sets this step's time: 'api_server', 'cpu', 'gpu_compute',
        'gpu_memory' or 'gpu_serial' (all-reduces, launch gaps, per-layer latency)."""
        compute, memory, serial, cpu = self._parts(prefill_tokens, decode_seqs, kv_tokens,
                                                   pairs)
        gpu = max(compute, memory, self.launch_s) + serial
        if self.frontend_per_seq_s * decode_seqs > self._engine_s(gpu, cpu, decode_seqs):
            return "api_server"
        if cpu > gpu:
            return "cpu"
        work = max(compute, memory)
        if serial > max(work, self.launch_s):
            return "gpu_serial"
        if self.launch_s > work:
            return "cpu"           # eager mode: the CPU launching the kernels
        # the GEMMs and attention each take the longer of their FLOPs and their reads: the
        # step is bound by whichever resource the larger share of its time waits on (the
        # GEMMs' time is in both totals, so comparing the totals alone would let a little
        # KV reading call a step of compute-bound GEMMs memory-bound)
        tokens = prefill_tokens * self._spread(decode_seqs) + decode_seqs * self.verify_tokens
        flops_s = self._gemm_flops_s(tokens, decode_seqs)
        read_s = self._weights_read_s(tokens, self._batches(prefill_tokens, decode_seqs))
        gemms = max(flops_s, read_s)
        attn_compute, attn_memory = compute - gemms, memory - gemms
        by_compute = (flops_s if flops_s >= read_s else 0.0) \
            + (attn_compute if attn_compute >= attn_memory else 0.0)
        by_memory = (read_s if read_s > flops_s else 0.0) \
            + (attn_memory if attn_memory > attn_compute else 0.0)
        return "gpu_compute" if by_compute >= by_memory else "gpu_memory"

    def decode_run(self, decode_seqs: int, kv_tokens: int) -> tuple[float, float, int]:
        """A run of pure decode steps from K = kv_tokens: (first step time, growth per
        step, how many steps from the first follow that line, NEVER if all do)."""
        d = decode_seqs
        c0, m0, s0, cpu = self._parts(0, d, kv_tokens, 0)
        # per step K grows by d: each part's growth. Four lines: compute + serial, memory
        # + serial, eager mode's launch floor + serial, and the CPU alone (async) or added
        # to the others (sync).
        q = self.verify_tokens
        u = self._uneven(d)     # the busiest rank's share of the attention (data-parallel)
        gs = self.serial_per_kv_token_s * d
        a0, ag = c0 + s0, self.compute_per_pair_s * q * u * d + gs
        b0, bg = m0 + s0, self.memory_per_kv_token_s * u * d + gs
        w = self.window_tokens
        window_steps = NEVER
        if w and kv_tokens < d * w:
            # the window layers read every context until K reaches D x W, a window each after
            ag += self.compute_per_window_seq_s * q * u * d / w
            bg += self.memory_per_seq_s * u * d / w
            window_steps = -(-(d * w - kv_tokens) // d)
        # eager mode's launch floor under the GPU's work, the serial part on top
        l0, lg = self.launch_s + s0, gs
        c_line = cpu
        if not self.async_cpu:
            a0 += cpu
            b0 += cpu
            l0 += cpu
            c_line = -1.0          # never on top
        # the API server's floor, in the same units (before dividing by `accepted`)
        frontend = self.frontend_per_seq_s * d * self.accepted
        if frontend > 0.0:
            c_line = max(c_line, frontend)
        # the line on top now (ties: the one that grows faster stays on top), and the
        # steps until a faster-growing one overtakes it: (first - it) / (its growth - growth)
        first, growth = a0, ag
        if b0 > first or (b0 == first and bg > growth):
            first, growth = b0, bg
        if self.launch_s > 0.0 and (l0 > first or (l0 == first and lg > growth)):
            first, growth = l0, lg
        if c_line > first:
            first, growth = c_line, 0.0
        steps = window_steps
        if ag > growth:
            steps = min(steps, max(1, math.ceil((first - a0) / (ag - growth))))
        if bg > growth:
            steps = min(steps, max(1, math.ceil((first - b0) / (bg - growth))))
        if lg > growth and self.launch_s > 0.0:
            steps = min(steps, max(1, math.ceil((first - l0) / (lg - growth))))
        if self.accepted != 1.0:
            first /= self.accepted
            growth /= self.accepted
        return first, growth, steps
