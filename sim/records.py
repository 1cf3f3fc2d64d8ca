"""Per-request outcomes and per-replica accumulators, filled by the replicas during a run."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

import numpy as np

# Outcome codes (per request).
PENDING, OK, REJECTED, TIMED_OUT, TOO_LONG, FAILED, THROTTLED, BLOCKED = 0, 1, 2, 3, 4, 5, 6, 7
#: a conversation's later turn never sent: an earlier turn of it ended without an answer
CONVERSATION_ENDED = 8
OUTCOME_NAMES = {PENDING: "unfinished", OK: "ok", REJECTED: "rejected",
                 TIMED_OUT: "timed_out", TOO_LONG: "too_long", FAILED: "failed",
                 THROTTLED: "throttled", BLOCKED: "blocked",
                 CONVERSATION_ENDED: "conversation_ended"}

# Which path served a request (hybrid deployments use both).
NOT_SERVED, SERVED_LOCAL, SERVED_CLOUD = -1, 0, 1

MINUTE_S = 60.0

#: Rows of Records.per_minute.
PER_MINUTE = ("busy_s", "kv_token_s", "steps", "decode_seq_steps", "kv_token_steps",
              "decode_steps", "kv_block_s")
BUSY, KV_TOKEN_S, STEPS, DECODE_SEQ_STEPS, KV_TOKEN_STEPS, DECODE_STEPS, KV_BLOCK_S = range(7)

#: Numbers per logged segment (see Records).
SEGMENT_FIELDS = 8
#: One segment's bytes: native-order doubles, what `segment_table` reads back. Packing a
#: segment and appending its bytes costs about a third of extending an array("d") by a
#: tuple, which parses each item as an argument.
SEGMENT = struct.Struct(f"={SEGMENT_FIELDS}d")


class Records:
    """Column lists indexed by request id (plain lists: the fastest thing to write in a loop).

    `segments` logs every executed batch step or closed-form run of steps as 8 numbers
    (packed by `log_segment`):
    start time, duration, mean KV tokens the steps attend over (each running request's whole
    context, shared prefixes included), first step time, growth of the step time per step,
    number of steps, number of decoding sequences (each of which saw every one of those step
    times as an inter-token gap) and mean KV blocks held (a shared prefix's blocks once, the
    pool less its free blocks: what vLLM reports as KV cache usage). Busy time, KV use and
    ITL come from it.
    """

    def __init__(self, n: int, horizon_s: float) -> None:
        self.n = n
        self.horizon_s = horizon_s
        self.start_s = [-1.0] * n          # first scheduled (admitted into a batch)
        self.first_token_s = [-1.0] * n
        self.finish_s = [-1.0] * n          # completion, or the moment it was refused
        self.replica = [-1] * n
        self.preemptions = [0] * n
        self.cached_tokens = [0] * n        # prompt tokens a local prefix cache answered
        # called with a request's id when it ends, however (sessions send the next turn)
        self.on_end: Callable[[int], None] | None = None
        self.outcome = [PENDING] * n
        self.segments = bytearray()         # SEGMENT after SEGMENT
        # cloud and hybrid paths
        self.served_by = [NOT_SERVED] * n
        self.attempts = [0] * n             # API calls made (retries included)
        self.throttles = [0] * n            # 429s received
        self.fallbacks = [0] * n            # times moved to the other path

    def log_segment(self, *segment: float) -> None:
        """Append one segment: its SEGMENT_FIELDS numbers (see the class docstring)."""
        self.segments += SEGMENT.pack(*segment)

    def segment_table(self) -> np.ndarray:
        """Segments as an (n, SEGMENT_FIELDS) array, clipped to the horizon."""
        table = np.frombuffer(self.segments, dtype=np.float64).reshape(-1, SEGMENT_FIELDS)
        return table[table[:, 0] < self.horizon_s]

    def per_minute(self, minutes: int, end_s: float | None = None) -> np.ndarray:
        """Per minute, summed over replicas (rows of PER_MINUTE): busy seconds, KV
        token-seconds, steps, decoding sequence-steps, KV token-steps (what the steps
        read), steps that decoded and KV block-seconds (blocks held). A segment crossing a
        minute edge is split in proportion to its time; what runs after `end_s` (the
        run's duration: the drain, or the rest of a last minute the run does not fill) is
        left out, so a minute holds no more than its own seconds."""
        end_s = minutes * MINUTE_S if end_s is None else min(end_s, minutes * MINUTE_S)
        seg = self.segment_table()
        t0, dt, kv, n, w = seg[:, 0], seg[:, 1], seg[:, 2], seg[:, 5], seg[:, 6]
        n = np.where(dt > 0, n, 0.0)        # zero-length rows only log an inter-token gap
        amounts = np.stack([dt, dt * kv, n, n * w, n * kv, np.where(w > 0, n, 0.0),
                            dt * seg[:, 7]])
        out = np.zeros((len(PER_MINUTE), minutes))
        t1 = t0 + dt
        m0 = np.floor(t0 / MINUTE_S).astype(np.int64)
        m1 = np.floor(t1 / MINUTE_S).astype(np.int64)
        inside = (m0 == m1) & (t1 <= end_s) & (m0 < minutes)
        for row in range(len(PER_MINUTE)):
            np.add.at(out[row], m0[inside], amounts[row, inside])
        # few: they cross a minute edge or the end
        for i in np.flatnonzero(~inside & (t0 < end_s)):
            start, end = t0[i], min(t1[i], end_s)
            last = min(math.floor(end / MINUTE_S), minutes - 1)
            for m in range(int(m0[i]), last + 1):
                part = min(end, (m + 1) * MINUTE_S) - max(start, m * MINUTE_S)
                if part > 0:
                    out[:, m] += amounts[:, i] * (part / dt[i])
        return out

    def itl_percentiles_s(self, qs: tuple[float, ...]) -> tuple[float, dict[float, float]]:
        """Mean and percentiles of every inter-token gap (seconds); NaN when there is none.

        A run of n steps with times first + growth * j contributes each time once per
        decoding sequence. Runs are represented by 4 evenly spaced points of their range
        (their spread is well under a percent), counted in log bins 0.1% wide: percentiles
        are exact to about 0.1% without sorting millions of values.
        """
        seg = self.segment_table()
        seg = seg[seg[:, 6] > 0]
        if len(seg) == 0:
            return math.nan, {q: math.nan for q in qs}
        first, growth, n, w = seg[:, 3], seg[:, 4], seg[:, 5], seg[:, 6]
        mean = float((first * n + growth * n * (n - 1) / 2) @ w / (n @ w))
        single = n == 1
        frac = np.linspace(0.0, 1.0, 4)
        multi = ~single
        values = np.concatenate([
            first[single],
            (first[multi, None] + growth[multi, None] * (n[multi, None] - 1) * frac).ravel()])
        weights = np.concatenate([w[single], np.repeat(n[multi] * w[multi] / 4, 4)])
        log_growth = math.log(1.001)
        bins = np.floor(np.log(values) / log_growth).astype(np.int64)
        low = int(bins.min())
        counts = np.bincount(bins - low, weights=weights)
        cumulative = np.cumsum(counts)
        out = {}
        for q in qs:
            k = int(np.searchsorted(cumulative, cumulative[-1] * q / 100.0, side="left"))
            out[q] = math.exp((low + k + 0.5) * log_growth)
        return mean, out
