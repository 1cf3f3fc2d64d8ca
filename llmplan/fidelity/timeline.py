"""Rebuild a server's batch steps from what clients saw: the data a calibration fits.

A continuous-batching server emits one token for every running sequence at the end of each
step, so the token arrival times of all requests cluster into step ends (within a
millisecond on loopback, while steps last tens of milliseconds). For each step we then know
how many sequences decoded (D), how many KV tokens they held (K: prompt + tokens so far),
how many prompt tokens were prefilled (P: prompts of requests whose first token came out of
that step, less what the server took from its prompt cache) and, when the server was busy
across the gap, how long the step took.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmplan.loadtests.records import RequestRecord

CLUSTER_S = 0.002   # token arrivals this close together belong to the same step
SPREAD_S = 0.008    # ... and those this close to its first arrival (a loaded machine)


@dataclass(frozen=True)
class StepSample:
    """One step observed between two consecutive step ends of a busy server."""

    duration_s: float
    prefill_tokens: int
    decode_seqs: int
    kv_tokens: int
    prefill_pairs: int = 0
    end_ts: float = 0.0        # when it ended, on the records' clock (seconds)


@dataclass(frozen=True)
class ColdStart:
    """A request that found the server idle: its TTFT is one prefill step plus overheads."""

    ttft_s: float
    prompt_tokens: int
    prefill_pairs: int = 0


def token_times(row: RequestRecord) -> np.ndarray:
    """Absolute arrival time of every token of a finished request."""
    assert row.ttft_ms is not None
    first = row.send_ts + row.ttft_ms / 1e3
    gaps = np.asarray(row.itl_ms, dtype=float) / 1e3
    return np.concatenate([[first], first + np.cumsum(gaps)])


def computed_prompt(row: RequestRecord) -> int:
    """Prompt tokens the server had to compute (not served from its prompt cache)."""
    return max(0, (row.prompt_tokens or 0) - (row.cached_prompt_tokens or 0))


def prefill_pairs(row: RequestRecord) -> int:
    """(query, key) pairs of a request's prefill: its computed tokens attend to the cached
    prefix and to each other (causally), as the simulator counts them."""
    n = computed_prompt(row)
    return n * (row.cached_prompt_tokens or 0) + n * (n + 1) // 2


def first_tokens(rows: list[RequestRecord]) -> list[ColdStart]:
    """Every finished request as a bound on the client overhead: its TTFT, its computed
    prompt and its prefill pairs (its first token cannot come sooner than its prefill
    alone, whatever else ran)."""
    return [ColdStart((row.ttft_ms or 0.0) / 1e3, computed_prompt(row), prefill_pairs(row))
            for row in usable(rows)]


def usable(rows: list[RequestRecord]) -> list[RequestRecord]:
    """Finished requests with a first token, a prompt count and at least one chunk."""
    return [r for r in rows if r.ok and r.ttft_ms is not None and r.e2e_ms is not None
            and r.prompt_tokens and r.chunks >= 1]


Event = tuple[float, int, int]   # (time, request index, token index)


def _clusters(events: list[Event], sent_s: list[float]) -> list[list[Event]]:
    """Token arrivals grouped by the step that emitted them, in time order.

    A step emits one token for every running request, and they reach the clients together:
    within CLUSTER_S of each other on an idle machine, spread over a few milliseconds on a
    loaded one (a llama.cpp server on one busy CPU: up to 5 ms, its first chunks, which
    carry the response headers, last). So an arrival joins the current cluster when it is
    within CLUSTER_S of the cluster's last arrival or within SPREAD_S of its first, unless
    its request already has a token there (the next step has begun) or it is a first token
    of a request sent after the cluster's step began (it cannot have been prefilled in it).
    Splitting a step would lose its prompt or turn it into two steps of the wrong length."""
    clusters: list[list[Event]] = []
    members: set[int] = set()
    began_s = -math.inf        # when the current cluster's step began: the previous end
    for event in events:
        t, i, j = event
        if clusters:
            cluster = clusters[-1]
            close = t - cluster[-1][0] <= CLUSTER_S or t - cluster[0][0] <= SPREAD_S
            if close and i not in members and (j > 0 or sent_s[i] < began_s):
                cluster.append(event)
                members.add(i)
                continue
            began_s = _end_s(cluster)
        clusters.append([event])
        members = {i}
    return clusters


def _end_s(cluster: list[Event]) -> float:
    """When a step ended: its decode tokens' arrival (first tokens come a little later)."""
    decodes = [t for t, _, j in cluster if j > 0]
    return max(decodes) if decodes else max(t for t, _, _ in cluster)


def steps(rows: list[RequestRecord], also: Sequence[RequestRecord] = ()
          ) -> tuple[list[StepSample], list[ColdStart]]:
    """Step samples of a busy server and cold-start requests, from load-test records.
    `also`: requests that ran on the server beside them but are not theirs to judge (a
    run's warm-up requests, still decoding as the first measured ones start): their tokens
    are in the steps, and they are no cold starts."""
    judged = len(usable(rows))
    rows = usable(rows) + usable(list(also))
    events = []   # (time, request index, token index)
    for i, row in enumerate(rows):
        for j, t in enumerate(token_times(row)):
            events.append((t, i, j))
    if not events:
        return [], []
    events.sort()
    samples: list[StepSample] = []
    for prev, cur in itertools.pairwise(_clusters(events, [r.send_ts for r in rows])):
        decoding = [(i, j) for _, i, j in cur if j > 0]
        continued = {i for _, i, _ in prev} & {i for i, _ in decoding}
        if not continued:
            continue   # the server may have idled in between: not a whole step
        if all(i >= judged for _, i, _ in cur):
            continue   # only `also` requests ran in it (a warm-up's own cold steps)
        firsts = [i for _, i, j in cur if j == 0]
        prefill = sum(computed_prompt(rows[i]) for i in firsts)
        kv = sum((rows[i].prompt_tokens or 0) + j for i, j in decoding)
        pairs = sum(prefill_pairs(rows[i]) for i in firsts)
        end_prev, end_cur = _end_s(prev), _end_s(cur)
        samples.append(StepSample(end_cur - end_prev, prefill, len(decoding), kv, pairs,
                                  end_cur))
    cold = []
    ends = [(r.send_ts, r.send_ts + (r.e2e_ms or 0.0) / 1e3) for r in rows]
    for i, row in enumerate(rows[:judged]):
        start, ttft_s = row.send_ts, (row.ttft_ms or 0.0) / 1e3
        busy = any(a < start < b for k, (a, b) in enumerate(ends) if k != i) or \
            any(start <= a < start + ttft_s for k, (a, _) in enumerate(ends) if k != i)
        if not busy:
            cold.append(ColdStart(ttft_s, computed_prompt(row), prefill_pairs(row)))
    return samples, cold
