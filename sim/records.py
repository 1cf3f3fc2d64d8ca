"""Per-request outcomes and per-replica accumulators, filled by the replicas during a run."""

from __future__ import annotations

import math

import numpy as np

# Outcome codes (per request).
PENDING, OK, REJECTED, TIMED_OUT, TOO_LONG = 0, 1, 2, 3, 4
OUTCOME_NAMES = {PENDING: "unfinished", OK: "ok", REJECTED: "rejected",
                 TIMED_OUT: "timed_out", TOO_LONG: "too_long"}

MINUTE_S = 60.0


class LogHistogram:
    """Counts of positive values in bins 0.25% wide (relative): percentiles to 0.25%."""

    GROWTH = 1.0025

    def __init__(self) -> None:
        self.counts: dict[int, float] = {}
        self._log_growth = math.log(self.GROWTH)

    def add(self, value: float, weight: float = 1.0) -> None:
        if value > 0:
            b = int(math.log(value) / self._log_growth)
            self.counts[b] = self.counts.get(b, 0.0) + weight

    def add_series(self, first: float, delta: float, n: int, weight: float) -> None:
        """Add first, first+delta, ..., first+(n-1)*delta, each with `weight`."""
        if n <= 0:
            return
        last = first + delta * (n - 1)
        lg = self._log_growth
        b0, b1 = int(math.log(first) / lg), int(math.log(last) / lg)
        if b0 == b1 or delta <= 0:
            self.counts[b0] = self.counts.get(b0, 0.0) + n * weight
            return
        done = 0
        for b in range(b0, b1 + 1):
            upper = math.exp((b + 1) * lg)
            # how many terms fall below the upper edge of bin b
            below = n if b == b1 else min(n, max(done, math.ceil((upper - first) / delta)))
            if below > done:
                self.counts[b] = self.counts.get(b, 0.0) + (below - done) * weight
                done = below

    def merge(self, other: LogHistogram) -> None:
        for b, w in other.counts.items():
            self.counts[b] = self.counts.get(b, 0.0) + w

    def total(self) -> float:
        return sum(self.counts.values())

    def percentile(self, q: float) -> float:
        """Value at percentile q (0-100), the geometric centre of its bin; nan when empty."""
        total = self.total()
        if total <= 0:
            return math.nan
        target = total * q / 100.0
        running = 0.0
        for b in sorted(self.counts):
            running += self.counts[b]
            if running >= target:
                return math.exp((b + 0.5) * self._log_growth)
        return math.exp((max(self.counts) + 0.5) * self._log_growth)

    def mean(self) -> float:
        total = self.total()
        if total <= 0:
            return math.nan
        return sum(math.exp((b + 0.5) * self._log_growth) * w
                   for b, w in self.counts.items()) / total


class Records:
    """Column lists indexed by request id (plain lists: the fastest thing to write in a loop)."""

    def __init__(self, n: int, horizon_s: float) -> None:
        self.n = n
        self.start_s = [-1.0] * n          # first scheduled (admitted into a batch)
        self.first_token_s = [-1.0] * n
        self.finish_s = [-1.0] * n          # completion, or the moment it was refused
        self.replica = [-1] * n
        self.preemptions = [0] * n
        self.outcome = [PENDING] * n
        self.itl = LogHistogram()           # every inter-token gap, in seconds
        self.minutes = max(1, math.ceil(horizon_s / MINUTE_S))
        self.busy_s_per_minute = [0.0] * self.minutes
        self.kv_token_s_per_minute = [0.0] * self.minutes   # integral of resident KV tokens

    def account(self, t0: float, dt: float, kv_tokens: float) -> None:
        """Book a busy interval [t0, t0+dt) with `kv_tokens` resident on average."""
        m = int(t0 / MINUTE_S)
        end = t0 + dt
        last = self.minutes - 1
        while True:
            if m > last:
                return
            edge = (m + 1) * MINUTE_S
            if end <= edge or m == last:
                part = end - t0
                self.busy_s_per_minute[m] += part
                self.kv_token_s_per_minute[m] += part * kv_tokens
                return
            part = edge - t0
            self.busy_s_per_minute[m] += part
            self.kv_token_s_per_minute[m] += part * kv_tokens
            t0, m = edge, m + 1

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "start_s": np.asarray(self.start_s),
            "first_token_s": np.asarray(self.first_token_s),
            "finish_s": np.asarray(self.finish_s),
            "replica": np.asarray(self.replica, dtype=np.int64),
            "preemptions": np.asarray(self.preemptions, dtype=np.int64),
            "outcome": np.asarray(self.outcome, dtype=np.int64),
        }
