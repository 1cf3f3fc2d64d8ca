"""A vLLM-like engine written for tests: its /metrics text (vLLM's v1 metric names, bucket
layouts and label sets, from vllm/v1/metrics/loggers.py) scraped every second, and the
request records a client saw, for one Poisson run with known step-time coefficients."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmplan.loadtests.records import RequestRecord

LABELS = 'engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"'
ITER_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0)
REQUEST_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                   50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
BLOCK, BLOCKS = 16, 4096


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.buckets)
        for i, edge in enumerate(self.buckets):
            if value <= edge:
                self.counts[i] += 1
        self.total += value
        self.n += 1

    def text(self, name: str) -> list[str]:
        counts = self.counts or [0] * len(self.buckets)
        lines = [f"# HELP {name} histogram", f"# TYPE {name} histogram"]
        lines += [f'{name}_bucket{{{LABELS},le="{edge:g}"}} {c}.0'
                  for edge, c in zip(self.buckets, counts, strict=True)]
        lines += [f'{name}_bucket{{{LABELS},le="+Inf"}} {self.n}.0',
                  f"{name}_count{{{LABELS}}} {self.n}.0", f"{name}_sum{{{LABELS}}} {self.total!r}"]
        return lines


@dataclass
class Engine:
    hist: dict[str, Histogram] = field(default_factory=lambda: {
        "vllm:iteration_tokens_total": Histogram(ITER_BUCKETS),
        "vllm:time_to_first_token_seconds": Histogram(TTFT_BUCKETS),
        "vllm:time_per_output_token_seconds": Histogram(TPOT_BUCKETS),
        "vllm:inter_token_latency_seconds": Histogram(TPOT_BUCKETS),
        "vllm:e2e_request_latency_seconds": Histogram(REQUEST_BUCKETS),
        "vllm:request_prefill_time_seconds": Histogram(REQUEST_BUCKETS),
        "vllm:request_decode_time_seconds": Histogram(REQUEST_BUCKETS)})
    prompt_total: int = 0
    prefix_hits_total: int = 0
    generation_total: int = 0
    running: int = 0
    kv_usage: float = 0.0
    #: what it exports of its cache hits: "counter" (prefix_cache_hits_total, 0.9.2 on),
    #: "by_source" (that and prompt_tokens_by_source_total, 0.20 on) or "v0_rate" (V0's
    #: gpu_prefix_cache_hit_rate gauge alone)
    hits_as: str = "counter"

    def text(self) -> str:
        lines = ["# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
                 "# TYPE vllm:cache_config_info gauge",
                 f'vllm:cache_config_info{{block_size="{BLOCK}",cache_dtype="auto",engine="0",'
                 f'enable_prefix_caching="True",gpu_memory_utilization="0.9",'
                 f'num_gpu_blocks="{BLOCKS}"}} 1.0',
                 "# TYPE vllm:num_requests_running gauge",
                 f"vllm:num_requests_running{{{LABELS}}} {float(self.running)}",
                 "# TYPE vllm:num_requests_waiting gauge",
                 f"vllm:num_requests_waiting{{{LABELS}}} 0.0",
                 "# TYPE vllm:kv_cache_usage_perc gauge",
                 f"vllm:kv_cache_usage_perc{{{LABELS}}} {self.kv_usage!r}",
                 "# TYPE vllm:prompt_tokens_total counter",
                 f"vllm:prompt_tokens_total{{{LABELS}}} {float(self.prompt_total)}",
                 *self._hits(),
                 "# TYPE vllm:generation_tokens_total counter",
                 f"vllm:generation_tokens_total{{{LABELS}}} {float(self.generation_total)}"]
        for name, hist in self.hist.items():
            lines += hist.text(name)
        return "\n".join(lines) + "\n"

    def _hits(self) -> list[str]:
        if self.hits_as == "v0_rate":
            rate = self.prefix_hits_total / self.prompt_total if self.prompt_total else 0.0
            return ["# TYPE vllm:gpu_prefix_cache_hit_rate gauge",
                    f"vllm:gpu_prefix_cache_hit_rate{{{LABELS}}} {rate!r}"]
        lines = ["# TYPE vllm:prefix_cache_hits_total counter",
                 f"vllm:prefix_cache_hits_total{{{LABELS}}} {float(self.prefix_hits_total)}"]
        if self.hits_as == "by_source":
            computed = self.prompt_total - self.prefix_hits_total
            lines += ["# TYPE vllm:prompt_tokens_by_source_total counter"]
            lines += [f'vllm:prompt_tokens_by_source_total{{{LABELS},source="{source}"}} '
                      f"{float(value)}" for source, value in (
                          ("local_compute", computed), ("local_cache_hit", self.prefix_hits_total),
                          ("external_kv_transfer", 0))]
        return lines


def run(*, coef: tuple[float, float, float, float], seed: int = 1, n: int = 400,
        rate: float = 4.0, http_s: float = 0.004, scrape_s: float = 1.0,
        start_ts: float = 1_700_000_000.0,
        cached: float = 0.0, hits_as: str = "counter",
        lengths: tuple[int, int] = (100, 900),
        noise: float = 0.0) -> tuple[str, list[RequestRecord]]:
    """(scrape file text, client records) of one run of the engine; `cached`: the share of
    every prompt its prefix cache answers (counted in prompt_tokens_total, not computed),
    exported as `hits_as` says (Engine.hits_as); `lengths`: the prompts' range; `noise`:
    each step takes its cost times a lognormal factor of this sigma (drawn apart from the
    workload, which it leaves as it is)."""
    rng = np.random.default_rng(seed)
    jitter = np.random.default_rng([seed, 1])
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    pending = [(float(t), int(rng.integers(*lengths)), int(rng.integers(20, 120)), i)
               for i, t in enumerate(arrivals)]
    engine = Engine(hits_as=hits_as)
    running: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    scrapes: list[str] = []
    next_scrape = 0.0
    t = 0.0
    while pending or running:
        if not running and pending and pending[0][0] > t:
            t = pending[0][0]
        admitted = []
        while pending and pending[0][0] <= t:
            at, prompt, output, i = pending.pop(0)
            admitted.append({"id": i, "arrival": at, "prompt": prompt, "output": output,
                             "tokens": [], "scheduled": t})
        decoding = list(running)
        hits = sum(int(r["prompt"] * cached) for r in admitted)
        prefill = sum(r["prompt"] for r in admitted) - hits
        kv = sum(r["prompt"] + len(r["tokens"]) for r in decoding)
        cost = coef[0] + coef[1] * prefill + coef[2] * len(decoding) + coef[3] * kv
        end = t + cost * (float(jitter.lognormal(0.0, noise)) if noise else 1.0)
        while next_scrape < end:             # scrapes during the step see the state before it
            scrapes.append(f"# llmplan-scrape unix_ts={start_ts + next_scrape:.3f}\n"
                           + engine.text())
            next_scrape += scrape_s
        t = end
        engine.hist["vllm:iteration_tokens_total"].observe(prefill + len(decoding) + len(admitted))
        engine.prompt_total += prefill + hits
        engine.prefix_hits_total += hits
        engine.generation_total += len(decoding) + len(admitted)
        for r in admitted:
            engine.hist["vllm:time_to_first_token_seconds"].observe(t - r["arrival"])
        for r in decoding:
            gap = t - r["tokens"][-1]
            engine.hist["vllm:time_per_output_token_seconds"].observe(gap)
            engine.hist["vllm:inter_token_latency_seconds"].observe(gap)
        for r in decoding + admitted:
            r["tokens"].append(t)
        running = [r for r in decoding + admitted if len(r["tokens"]) < r["output"]]
        for r in decoding + admitted:
            if len(r["tokens"]) >= r["output"]:
                done.append(r)
                engine.hist["vllm:e2e_request_latency_seconds"].observe(t - r["arrival"])
                engine.hist["vllm:request_prefill_time_seconds"].observe(
                    r["tokens"][0] - r["scheduled"])
                engine.hist["vllm:request_decode_time_seconds"].observe(
                    r["tokens"][-1] - r["tokens"][0])
        engine.running = len(running)
        blocks = sum(math.ceil((r["prompt"] + len(r["tokens"])) / BLOCK) for r in running)
        engine.kv_usage = blocks / BLOCKS
    scrapes.append(f"# llmplan-scrape unix_ts={start_ts + max(next_scrape, t):.3f}\n"
                   + engine.text())
    rows = []
    for r in done:
        seen = np.asarray(r["tokens"]) + http_s / 2
        send = start_ts + r["arrival"] - http_s / 2
        first = start_ts + seen[0]
        rows.append(RequestRecord(
            id=r["id"], task="t", target="vllm", scheduled_ts=send, send_ts=send,
            schedule_delay_ms=0.0, status=200, ttft_ms=(first - send) * 1e3,
            e2e_ms=(start_ts + seen[-1] - send) * 1e3, itl_ms=list(np.diff(seen) * 1e3),
            chunks=len(seen), prompt_tokens=r["prompt"], output_tokens=r["output"],
            token_source="server"))
    return "".join(scrapes), rows
