"""How hard a fleet's GPUs worked, and how much it could serve at most.

Utilisation is measured against the datasheet, whatever step model timed the run: the
roofline's formulas (steptime.py) at 100% efficiency give the seconds each part of the work
would take at peak, and dividing by the GPU-seconds of the run gives

* model FLOPs utilisation (MFU): FLOPs of the linear layers and attention for every token
  the steps computed, over peak dense FLOP/s of the weight format;
* model bandwidth utilisation (MBU): bytes the steps had to read (the weights once per step,
  the experts the step's tokens touch, the KV cache of every decoding sequence), over peak
  memory bandwidth.

A speculative drafter on the GPU (a draft model, an EAGLE head, an MTP module) counts in
both, as the step model times it: after every step it runs num_speculative_tokens passes,
each reading its weights once; the first computes every token of the step, the later ones
one per decoding sequence; and each pass reads its own KV cache of the decoding contexts
(the roofline's serial_per_kv_token, which holds nothing else).

A replica that decodes small batches is "busy" all the time while its MBU stays low and its
MFU near zero: these two say how much of the hardware the workload uses.

Saturation throughput is the steady state of a full batch: B sequences decode one token per
step, B / output of them finish per step and as many new requests are prefilled, each in
chunks of what the token budget leaves next to the decodes; so a share of the steps carry a
prefill chunk and the others only decode, each lasting the step model's time for it. B is
the most sequences the engine runs (max_num_seqs), the KV cache holds (the batch's mix:
output-weighted) and the token budget allows. With a full KV cache, preemptions recompute
work the estimate does not count: it is then an upper bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmplan.perf.memory import KvCapacity
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.steptime import StepTime, roofline
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.sim.stepmodel import StepModel

#: the model's FLOPs and bytes at the datasheet's peaks: no efficiency, and no routed-slot
#: overhead (moving tokens in and out of experts is the kernels' cost, not the model's FLOPs);
#: `_peak` also leaves out each GPU's and kernel's measured share of peak (the MI300X's
#: GEMMs, Marlin's on Hopper): those are how far below the peak the work runs, not the peak
AT_PEAK = RooflineStepTime(compute_efficiency=1.0, memory_efficiency=1.0,
                           dequant_efficiency=1.0, expert_slot_overhead_width=0.0)


@dataclass(frozen=True)
class WorkDone:
    """What a fleet's steps processed over a run (sums over replicas)."""

    steps: float                # engine steps
    decode_steps: float         # ... of which decoded (speculative: 1/accepted of a verify)
    tokens: float               # tokens computed: prefill tokens + one per decoding sequence-step
    prefill_pairs: float        # (query, key) pairs of the prefill chunks' attention
    decode_seq_steps: float     # decoding sequences summed over steps
    kv_token_steps: float       # context tokens the steps' decodes read
    prefill_steps: float = 0.0  # steps carrying a prefill chunk (0: not known)


@dataclass(frozen=True)
class HardwareUse:
    compute_fraction: float     # MFU
    memory_bandwidth_fraction: float   # MBU


def _peak(setup: ReplicaSetup) -> StepTime:
    return roofline(setup, AT_PEAK, datasheet=True)


def _micro_batches(setup: ReplicaSetup, work: WorkDone) -> float:
    """Micro-batches a step (a round of pipeline stages) held on average: one per decoding
    sequence, the prefill tokens in budgets of one batch's max_num_batched_tokens, at most
    pp (1 without stages; from the run's means, so a little high when rounds vary)."""
    pp = setup.pp
    if pp <= 1 or work.steps <= 0:
        return 1.0
    prefill = work.tokens - work.decode_seq_steps
    units = (work.decode_seq_steps + prefill / setup.rank_max_num_batched_tokens) / work.steps
    return min(float(pp), max(1.0, units))


def _memory_s(peak: StepTime, work: WorkDone, batches: float = 1.0) -> float:
    """Seconds of memory traffic at one stage's tp GPUs' peak bandwidth; with pipeline
    stages each of a round's `batches` micro-batches reads the weights, and the experts its
    share of the tokens touches."""
    accepted = peak.accepted
    # speculative decoding: a verify step emits `accepted` tokens per decoding sequence, so
    # a step that decodes is 1/accepted of one (stepmodel.py); a prefill-only step is whole
    steps = work.steps - work.decode_steps + work.decode_steps / accepted
    experts = 0.0
    if peak.experts and steps > 0:
        untouched = 1.0 - peak.experts_per_token / peak.experts

        def touched(tokens: float) -> float:      # share of the experts a step reads
            return batches * (1.0 - math.pow(untouched, tokens / batches))

        # the share touched is concave in a step's tokens, so the run's mean step would
        # overstate it: the prefill chunks' tokens go to the steps that carry them (a
        # chunk reads nearly every expert), the decodes spread over all steps
        prefill = work.tokens - work.decode_seq_steps
        chunks = min(work.prefill_steps, steps) if prefill > 0 else 0.0
        decode = work.decode_seq_steps / steps
        if chunks > 0:
            share = chunks * touched(prefill / chunks + decode) \
                + (steps - chunks) * touched(decode)
        else:
            share = steps * touched(work.tokens / steps)
        experts = peak.experts_s * share
    drafts = (peak.verify_tokens - 1) * peak.draft_weights_s * steps \
        + peak.serial_per_kv_token_s * work.kv_token_steps / accepted
    return (peak.weights_s * steps * batches + experts
            + peak.memory_per_kv_token_s * work.kv_token_steps
            / accepted + peak.memory_per_seq_s * _windows(peak, work) / accepted + drafts)


def _windows(peak: StepTime, work: WorkDone) -> float:
    """Whole windows the decodes' sliding-window layers read, as the step model counts
    them (min(K, D x W) / W), from the run's totals."""
    if not peak.window_tokens:
        return work.decode_seq_steps
    return min(work.kv_token_steps, work.decode_seq_steps * peak.window_tokens) \
        / peak.window_tokens


def hardware_use(setup: ReplicaSetup, work: WorkDone, replica_s: float) -> HardwareUse:
    """MFU and MBU of `work` done over `replica_s` replica-seconds (each replica: tp x pp
    GPUs; the roofline's figures are at one stage's tp GPUs, so with pipeline stages the
    FLOPs, the same whatever the layout, are spread over pp times those GPUs)."""
    if replica_s <= 0:
        return HardwareUse(0.0, 0.0)
    peak = _peak(setup)
    verify = peak.verify_tokens / peak.accepted   # tokens computed per token emitted
    decode_tokens = work.decode_seq_steps * verify
    compute_s = (peak.compute_per_token_s * (work.tokens - work.decode_seq_steps
                                             + decode_tokens)
                 + peak.compute_per_pair_s * work.kv_token_steps * verify
                 + peak.compute_per_prefill_pair_s * work.prefill_pairs
                 + peak.compute_per_window_seq_s * _windows(peak, work) * verify
                 + peak.compute_per_sampled_s * decode_tokens
                 # the drafter's passes: the first over the step's tokens, the later ones
                 # over one token per decoding sequence of each verify step
                 + peak.draft_per_token_s * (work.tokens - work.decode_seq_steps + decode_tokens
                                             + (peak.verify_tokens - 2) * work.decode_seq_steps
                                             / peak.accepted))
    pp = setup.pp
    return HardwareUse(compute_fraction=compute_s / replica_s / pp,
                       memory_bandwidth_fraction=_memory_s(peak, work, _micro_batches(setup, work))
                       / replica_s / pp)


def memory_bandwidth_series(setup: ReplicaSetup, *, steps: list[float],
                            decode_steps: list[float], decode_seq_steps: list[float],
                            kv_token_steps: list[float], run: WorkDone,
                            replica_s: list[float]) -> list[float]:
    """MBU per interval: the step counts of each, its decodes, and its share of the run's
    prefill (prompt tokens and the steps that carry them, at the run's rate per step), so
    a MoE's expert reads split between chunk steps and decode steps as in the run's
    figure (`hardware_use`): spread evenly over every step, the prompts' tokens would have
    each step touch nearly every expert."""
    peak = _peak(setup)
    per_step = 1.0 / run.steps if run.steps > 0 else 0.0
    prefill_per_step = (run.tokens - run.decode_seq_steps) * per_step
    chunk_share = run.prefill_steps * per_step
    out = []
    for n, e, d, k, span in zip(steps, decode_steps, decode_seq_steps, kv_token_steps,
                                replica_s, strict=True):
        work = WorkDone(steps=n, decode_steps=e, tokens=prefill_per_step * n + d,
                        prefill_pairs=0.0, decode_seq_steps=d, kv_token_steps=k,
                        prefill_steps=chunk_share * n)
        batches = _micro_batches(setup, work)
        out.append(_memory_s(peak, work, batches) / span / setup.pp if span > 0 else 0.0)
    return out


@dataclass(frozen=True)
class FullBatch:
    """One replica with its batch full: its rate, the batch, what limits each."""

    requests_per_s: float
    sequences: int
    batch_limited_by: str       # max_num_seqs, kv_cache or token_budget
    step_bound_by: str          # StepModel.bound_by of a decode step of the full batch


def full_batch(step: StepTime, *, max_num_seqs: int, capacity: KvCapacity,
               max_num_batched_tokens: int, prompt_tokens: np.ndarray,
               cached_tokens: np.ndarray, output_tokens: np.ndarray) -> FullBatch:
    """Requests per second one replica finishes with its batch full (module docstring), for
    this mix of requests (prompt lengths, of which `cached_tokens` a prefix cache answers,
    and output lengths), with the batch it assumes and what limits it. A request holds its
    batch slot for as many steps as it has output tokens, so the batch holds the mix
    weighted by output length: its context per slot is the output-weighted mean of
    prompt + output / 2, and its blocks that context's plus, with sliding-window layers,
    the pages those hold for it from admission to end (KvCapacity.window_reserve_blocks)."""
    output = np.maximum(output_tokens.astype(np.float64), 1.0)
    prompt = prompt_tokens.astype(np.float64)
    cached = cached_tokens.astype(np.float64)
    computed = np.maximum(prompt - cached, 0.0)
    out_mean, computed_mean = float(output.mean()), float(computed.mean())
    context = float((output * (prompt + output / 2.0)).sum() / output.sum())
    blocks = context / capacity.block_size_tokens
    if capacity.sliding_groups:
        # window_reserve_blocks over the whole mix at once
        block = capacity.block_size_tokens
        pages = np.minimum(-(-(prompt_tokens.astype(np.int64) + output_tokens) // block),
                           capacity.window_blocks)
        window = -(-capacity.sliding_groups * pages // max(1, capacity.full_groups))
        blocks += float((output * window).sum() / output.sum())
    limits = {"max_num_seqs": float(max_num_seqs), "kv_cache": capacity.blocks / blocks,
              "token_budget": max_num_batched_tokens / (1.0 + computed_mean / out_mean)}
    batch = max(1, math.floor(min(limits.values())))
    done_per_step = batch / out_mean
    # a finished request's replacement is prefilled in chunks of what the token budget
    # leaves next to the decodes: some steps carry a chunk, the others only decode
    chunks = math.ceil(computed_mean / max(1, max_num_batched_tokens - batch)) \
        if computed_mean > 0 else 0
    prefill_share = min(1.0, done_per_step * chunks)
    per_prefill_step = done_per_step / prefill_share if prefill_share > 0 else 0.0
    prefill = per_prefill_step * computed_mean
    pairs = per_prefill_step * float((computed * (cached + (computed + 1.0) / 2.0)).mean())
    # the context before the chunks (MLA up-projects it): a request's cached tokens in
    # each of its chunks, and on average half of what its earlier chunks computed
    prefill_context = round(per_prefill_step * float((chunks * cached
                                                      + computed * (chunks - 1) / 2.0).mean()))
    model = StepModel(**step.coefficients())
    kv = round(batch * context)
    decode_s = model.step_s(0, batch, kv, 0)
    seconds = decode_s
    if prefill_share > 0:
        low = math.floor(prefill)   # between the whole-token steps around the mean chunk
        t_low = model.step_s(low, batch, kv, round(pairs), context_tokens=prefill_context)
        with_prefill_s = t_low + (prefill - low) * (
            model.step_s(low + 1, batch, kv, round(pairs), context_tokens=prefill_context) - t_low)
        seconds = prefill_share * with_prefill_s + (1.0 - prefill_share) * decode_s
    return FullBatch(requests_per_s=done_per_step / seconds, sequences=batch,
                     batch_limited_by=min(limits, key=limits.__getitem__),
                     step_bound_by=model.bound_by(0, batch, kv))
