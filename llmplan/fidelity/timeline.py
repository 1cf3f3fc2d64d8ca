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
from dataclasses import dataclass

import numpy as np

from llmplan.loadtests.records import RequestRecord

CLUSTER_S = 0.002   # token arrivals this close together belong to the same step


@dataclass(frozen=True)
class StepSample:
    """One step observed between two consecutive step ends of a busy server."""

    duration_s: float
    prefill_tokens: int
    decode_seqs: int
    kv_tokens: int


@dataclass(frozen=True)
class ColdStart:
    """A request that found the server idle: its TTFT is one prefill step plus overheads."""

    ttft_s: float
    prompt_tokens: int


def token_times(row: RequestRecord) -> np.ndarray:
    """Absolute arrival time of every token of a finished request."""
    assert row.ttft_ms is not None
    first = row.send_ts + row.ttft_ms / 1e3
    gaps = np.asarray(row.itl_ms, dtype=float) / 1e3
    return np.concatenate([[first], first + np.cumsum(gaps)])


def computed_prompt(row: RequestRecord) -> int:
    """Prompt tokens the server had to compute (not served from its prompt cache)."""
    return max(0, (row.prompt_tokens or 0) - (row.cached_prompt_tokens or 0))


def usable(rows: list[RequestRecord]) -> list[RequestRecord]:
    """Finished requests with a first token, a prompt count and at least one chunk."""
    return [r for r in rows if r.ok and r.ttft_ms is not None and r.e2e_ms is not None
            and r.prompt_tokens and r.chunks >= 1]


def steps(rows: list[RequestRecord]) -> tuple[list[StepSample], list[ColdStart]]:
    """Step samples of a busy server and cold-start requests, from load-test records."""
    rows = usable(rows)
    events = []   # (time, request index, token index)
    for i, row in enumerate(rows):
        for j, t in enumerate(token_times(row)):
            events.append((t, i, j))
    if not events:
        return [], []
    events.sort()
    clusters: list[list[tuple[float, int, int]]] = [[events[0]]]
    for event in events[1:]:
        if event[0] - clusters[-1][-1][0] <= CLUSTER_S:
            clusters[-1].append(event)
        else:
            clusters.append([event])
    samples: list[StepSample] = []
    for prev, cur in itertools.pairwise(clusters):
        decoding = [(i, j) for _, i, j in cur if j > 0]
        continued = {i for _, i, _ in prev} & {i for i, _ in decoding}
        if not continued:
            continue   # the server may have idled in between: not a whole step
        prefill = sum(computed_prompt(rows[i]) for _, i, j in cur if j == 0)
        kv = sum((rows[i].prompt_tokens or 0) + j for i, j in decoding)
        end_prev = max(t for t, _, _ in prev)
        end_cur = max(t for t, _, _ in cur)
        samples.append(StepSample(end_cur - end_prev, prefill, len(decoding), kv))
    cold = []
    ends = [(r.send_ts, r.send_ts + (r.e2e_ms or 0.0) / 1e3) for r in rows]
    for i, row in enumerate(rows):
        start, ttft_s = row.send_ts, (row.ttft_ms or 0.0) / 1e3
        busy = any(a < start < b for k, (a, b) in enumerate(ends) if k != i) or \
            any(start <= a < start + ttft_s for k, (a, _) in enumerate(ends) if k != i)
        if not busy:
            cold.append(ColdStart(ttft_s, computed_prompt(row)))
    return samples, cold
