"""A tiny continuous-batching server written for tests (not the simulator), and its records.

Every step prefills the prompts that arrived, decodes one token for each running request,
and lasts fixed + per_prefill x P + per_decode x D + per_kv x K (+ per_pair x A, the
prefill's attention pairs over the cached prefix and the new tokens, when `coef` has a
fifth entry), times a lognormal noise
factor when `noise` > 0 (a shared machine's jitter grows with the step's length;
`prefill_noise`, when given, is the spread of steps that carry a prompt); the client
sees each token `overhead_s` later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from llmplan.loadtests.records import RequestRecord

COEF = (0.004, 0.0002, 0.003, 0.00001)   # fixed, per prefill token, per seq, per KV token (s)
OVERHEAD_S = 0.0015


def serve(arrivals: list[tuple[float, int, int]], *, coef: tuple[float, ...] = COEF,
          overhead_s: float = OVERHEAD_S, noise: float = 0.0,
          prefill_noise: float | None = None, seed: int = 0, cached: int = 0,
          start_ts: float = 1000.0, first_token_lag_s: float = 0.0,
          tokens_s: list[tuple[int, float]] | None = None,
          speed: Callable[[float], float] | None = None) -> list[RequestRecord]:
    """Records of a server with the `coef` step model; arrivals are (time, prompt, output).

    `cached`: prompt tokens every request finds in the server's prompt cache (a chat
    template): not computed, and reported as cached_prompt_tokens. `first_token_lag_s`: the
    client sees a request's first token this much later than the step's other tokens (a
    real server sends the response headers with it). `tokens_s`: (tokens, seconds) points
    of a step time that is not linear in the step's tokens (a CPU server's), straight in
    between from (0, 0) and past the last point at the last segment's rate; it replaces
    the fixed, prompt-token and per-sequence terms. `speed(t)`: how many times as long a
    step starting at t takes (a host that another tenant slows down for a while)."""
    rng = np.random.default_rng(seed)
    pending = sorted(enumerate(arrivals), key=lambda x: x[1][0])
    running: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    t = 0.0
    while pending or running:
        if not running and pending and pending[0][1][0] > t:
            t = pending[0][1][0]               # idle until the next arrival
        admitted = []
        while pending and pending[0][1][0] <= t:
            i, (at, prompt, output) = pending.pop(0)
            admitted.append({"id": i, "arrival": at, "prompt": prompt, "output": output,
                             "tokens": []})
        decoding = list(running)
        prefill = sum(r["prompt"] - cached for r in admitted)
        kv = sum(r["prompt"] + len(r["tokens"]) for r in decoding)
        step = coef[0] + coef[1] * prefill + coef[2] * len(decoding) + coef[3] * kv
        if tokens_s is not None:
            step = _on_points(tokens_s, prefill + len(decoding)) + coef[3] * kv
        if len(coef) > 4:
            new = [r["prompt"] - cached for r in admitted]
            step += coef[4] * sum(n * cached + n * (n + 1) // 2 for n in new)
        sigma = noise if prefill_noise is None or not prefill else prefill_noise
        if sigma:
            step *= float(rng.lognormal(0.0, sigma))
        if speed is not None:
            step *= speed(t)
        t += step
        for r in decoding + admitted:
            r["tokens"].append(t)
        running = [r for r in decoding + admitted if len(r["tokens"]) < r["output"]]
        done += [r for r in decoding + admitted if len(r["tokens"]) >= r["output"]]
    rows = []
    for r in done:
        seen = np.asarray(r["tokens"]) + overhead_s
        seen[0] += first_token_lag_s
        send = start_ts + r["arrival"]
        rows.append(RequestRecord(
            id=r["id"], task="t", target="synthetic", scheduled_ts=send, send_ts=send,
            schedule_delay_ms=0.0, status=200,
            ttft_ms=(seen[0] - r["arrival"]) * 1e3, e2e_ms=(seen[-1] - r["arrival"]) * 1e3,
            itl_ms=list(np.diff(seen) * 1e3), chunks=len(seen), prompt_tokens=r["prompt"],
            cached_prompt_tokens=cached,
            output_tokens=r["output"], token_source="server",
            tpot_ms=((seen[-1] - seen[0]) / (r["output"] - 1) * 1e3
                     if r["output"] > 1 else None)))
    return rows


def _on_points(points: list[tuple[int, float]], tokens: int) -> float:
    xs, ys = [0, *(t for t, _ in points)], [0.0, *(v for _, v in points)]
    if tokens <= xs[-1]:
        return float(np.interp(tokens, xs, ys))
    return ys[-1] + (tokens - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])


def poisson_workload(*, seed: int, n: int, rate: float, prompt: tuple[int, int],
                     output: tuple[int, int], noise: float = 0.0,
                     prefill_noise: float | None = None,
                     coef: tuple[float, ...] = COEF) -> list[RequestRecord]:
    """n Poisson arrivals with uniform prompt and output lengths, served by `serve`."""
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(1 / rate, n))
    return serve([(float(t), int(rng.integers(*prompt)), int(rng.integers(*output)))
                  for t in times], coef=coef, noise=noise, prefill_noise=prefill_noise,
                 seed=seed)


def write_run(folder: Any, rows: list[RequestRecord]) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requests.jsonl").write_text("".join(r.to_line() for r in rows))
    return folder
