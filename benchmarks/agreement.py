"""Do our measurements agree with an independent client? One run, one real server.

    python benchmarks/agreement.py [--requests 200] [--rate 1.0] [--peer PATH/TO/aiperf]

Starts a real llama.cpp server (SmolLM2-135M, one thread) and replays one open-loop plan
against it with two clients at the same time: `llmplan loadtest`'s Locust user sends the
even-numbered requests, a plain asyncio httpx client written here from scratch sends the odd
ones. Every request has the same length and both halves see the same server at the same
moments, so their TTFT and E2E percentiles differ only by how each client measures (and by
sampling). Last lines:
ttft_p50_diff_pct=<n> and e2e_p50_diff_pct=<n> (our figure relative to httpx's).

With --peer (the `aiperf` program of NVIDIA AIPerf, installed from PyPI into its own venv
with the `gguf` package: `python3 -m venv /tmp/aiperf && /tmp/aiperf/bin/pip install aiperf
gguf`, ~3 min, 1.2 GB, too heavy for CI) a second phase runs AIPerf as the other client
instead: it sends the same lengths at the same rate (Poisson, ignore_eos) while our Locust
user sends its plan, both against the same server at the same time (requests sent while
only one of them was sending are left out of the comparison). AIPerf needs a Hugging
Face tokenizer and this machine has no hub: one is built from the GGUF file's own tokenizer
data (`tokenizer.ggml.tokens` / `merges`, byte-level BPE) with AIPerf's own `tokenizers`.
AIPerf's profile_export.jsonl is read through `llmplan import-records`' converter. Last
lines then add peer_ttft_p50_diff_pct=<n> and peer_e2e_p50_diff_pct=<n> (ours relative to
AIPerf's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import httpx
import numpy as np

from llmplan.fidelity.imports import from_aiperf
from llmplan.loadtests.llamacpp_server import LlamaCppServer
from llmplan.loadtests.plan import PlanItem, build_plan
from llmplan.loadtests.runner import LoadTestSettings, run_load_test
from llmplan.loadtests.targets import Target
from llmplan.scenario import LoadedScenario, load_scenario_text

SCENARIO = """
    seed: 21
    duration: 3600
    traffic: {{kind: poisson, rate_per_s: {rate}}}
    tasks: [{{name: chat, prompt_tokens: {{kind: fixed, tokens: 40}},
              output_tokens: {{kind: fixed, tokens: 16}}}}]
    deployments: {{x: {{gpu: L4, model: SmolLM2-135M}}}}
"""


async def _one(client: httpx.AsyncClient, url: str, item: PlanItem, start: float,
               out: list[tuple[float, float]]) -> None:
    await asyncio.sleep(max(0.0, start + item.send_s - time.perf_counter()))
    body = {"model": "smollm2", "max_tokens": item.max_tokens, "stream": True,
            "temperature": 0, "ignore_eos": True,
            "messages": [{"role": "user", "content": item.prompt}]}
    sent = time.perf_counter()
    first = None
    async with client.stream("POST", url, json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            choices = chunk.get("choices") or [{}]
            if first is None and (choices[0].get("delta") or {}).get("content"):
                first = time.perf_counter()
    end = time.perf_counter()
    out.append(((first or end) - sent, end - sent))


async def _httpx_replay(base_url: str, plan: list[PlanItem],
                        delay_s: float = 0.5) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        start = time.perf_counter() + delay_s
        await asyncio.gather(*(_one(client, f"{base_url}/v1/chat/completions", item, start, out)
                               for item in plan))
    return out


_TOKENIZER_FROM_GGUF = """
import json, sys
from pathlib import Path
import gguf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
reader = gguf.GGUFReader(sys.argv[1])
out = Path(sys.argv[2])
def strings(key):
    field = reader.fields[key]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
tokens, merges = strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges")
bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                 merges=[tuple(m.split(" ", 1)) for m in merges])
tokenizer = Tokenizer(bpe)
tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tokenizer.decoder = decoders.ByteLevel()
out.mkdir(parents=True, exist_ok=True)
tokenizer.save(str(out / "tokenizer.json"))
(out / "tokenizer_config.json").write_text(json.dumps(
    {"tokenizer_class": "PreTrainedTokenizerFast"}))
"""


def tokenizer_from_gguf(peer: str, model: Path, out: Path) -> Path:
    """A Hugging Face tokenizer folder built from a GGUF file, with the peer's own Python."""
    python = Path(peer).with_name("python")
    subprocess.run([str(python), "-c", _TOKENIZER_FROM_GGUF, str(model), str(out)],
                   check=True)
    return out


def _decode_calls(base_url: str) -> float:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("llamacpp:n_decode_total"):
                return float(line.split()[-1])
    return 0.0


def peer_phase(peer: str, server: LlamaCppServer, loaded: LoadedScenario, *, requests: int,
               rate: float, workdir: Path) -> tuple[list[float], list[float], list[float],
                                                    list[float]]:
    """AIPerf and our Locust user side by side: (our TTFT, our E2E, AIPerf's TTFT, E2E) ms."""
    artifacts = workdir / "aiperf"
    command = [peer, "profile", "--model", "smollm2", "--url", server.base_url,
               "--endpoint-type", "chat", "--streaming",
               "--tokenizer", str(tokenizer_from_gguf(peer, server.model, workdir / "tok")),
               "--prompt-input-tokens-mean", "40", "--prompt-input-tokens-stddev", "0",
               "--prompt-output-tokens-mean", "16", "--prompt-output-tokens-stddev", "0",
               "--extra-inputs", "ignore_eos:true", "--extra-inputs", "max_tokens:16",
               "--request-rate", f"{rate / 2:g}", "--arrival-pattern", "poisson",
               "--request-count", str(requests // 2), "--random-seed", "3",
               "--ui-type", "none", "--no-server-metrics", "--no-gpu-telemetry",
               "--output-artifact-dir", str(artifacts)]
    before = _decode_calls(server.base_url)
    peer_process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while _decode_calls(server.base_url) == before and time.monotonic() < deadline:
        time.sleep(0.2)                 # AIPerf takes a while to start its services
    plan = [item for item in build_plan(loaded, max_requests=requests, salt="peer-")
            if item.index % 2 == 0]
    target = Target(kind="llamacpp", base_url=server.base_url, model="smollm2")
    result = run_load_test("llamacpp", target, plan,
                           LoadTestSettings(users=32, duration_s=900), workdir / "ours")
    peer_process.wait(timeout=900)
    exports = sorted(artifacts.rglob("profile_export.jsonl"))
    if not exports:
        raise SystemExit(f"AIPerf wrote no profile_export.jsonl under {artifacts}")
    theirs = [r for _, rows in from_aiperf(exports[0]) for r in rows if r.ok]
    ours = [r for r in result.rows if r.ok]
    # compare only while both were sending: alone, either side would see a quieter server
    start = max(min(r.send_ts for r in ours), min(r.send_ts for r in theirs))
    end = min(max(r.send_ts for r in ours), max(r.send_ts for r in theirs))
    ours = [r for r in ours if start <= r.send_ts <= end]
    theirs = [r for r in theirs if start <= r.send_ts <= end]
    for name, rows in (("ours", ours), ("AIPerf", theirs)):
        prompts = np.mean([r.prompt_tokens or 0 for r in rows])
        print(f"{name}: prompt tokens (server) mean {prompts:.1f}, "
              f"output tokens mean {np.mean([r.output_tokens or 0 for r in rows]):.1f}, "
              f"ITL p50 {np.percentile([x for r in rows for x in r.itl_ms], 50):.1f} ms, "
              f"TPOT p50 {np.percentile([r.tpot_ms or 0 for r in rows], 50):.1f} ms, "
              f"sends {min(r.send_ts for r in rows):.1f}-{max(r.send_ts for r in rows):.1f}")
    return ([r.ttft_ms or 0 for r in ours], [r.e2e_ms or 0 for r in ours],
            [r.ttft_ms or 0 for r in theirs], [r.e2e_ms or 0 for r in theirs])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--peer", default=None,
                        help="Path of the `aiperf` program: also compare with NVIDIA AIPerf.")
    args = parser.parse_args()
    loaded = load_scenario_text(textwrap.dedent(SCENARIO.format(rate=args.rate)))
    everything = build_plan(loaded, max_requests=args.requests, salt="agreement-")
    plan = [item for item in everything if item.index % 2 == 0]
    twin = [item for item in everything if item.index % 2 == 1]
    warmup = build_plan(loaded, max_requests=4, salt="warmup-")
    with LlamaCppServer(parallel=4, ctx_per_slot=512) as server, \
            tempfile.TemporaryDirectory() as tmp:
        target = Target(kind="llamacpp", base_url=server.base_url, model="smollm2")
        asyncio.run(_httpx_replay(server.base_url, warmup))
        theirs: list[tuple[float, float]] = []
        # Locust waits start_delay_s (0.5 s) after starting; start httpx about then too
        other = threading.Thread(target=lambda: theirs.extend(
            asyncio.run(_httpx_replay(server.base_url, twin, delay_s=2.0))))
        other.start()
        result = run_load_test("llamacpp", target, plan,
                               LoadTestSettings(users=32, duration_s=900), Path(tmp))
        other.join()
        ours = [r for r in result.rows if r.ok]
        peer = peer_phase(args.peer, server, loaded, requests=args.requests,
                          rate=args.rate, workdir=Path(tmp)) if args.peer else None
    ttft_a = np.percentile([r.ttft_ms for r in ours], [50, 95])
    e2e_a = np.percentile([r.e2e_ms for r in ours], [50, 95])
    ttft_b = np.percentile([t * 1e3 for t, _ in theirs], [50, 95])
    e2e_b = np.percentile([e * 1e3 for _, e in theirs], [50, 95])
    print(f"requests: ours {len(ours)}/{len(plan)} ok, httpx {len(theirs)}/{len(plan)}")
    print(f"TTFT p50/p95 ms: ours {ttft_a[0]:.1f}/{ttft_a[1]:.1f}  "
          f"httpx {ttft_b[0]:.1f}/{ttft_b[1]:.1f}")
    print(f"E2E  p50/p95 ms: ours {e2e_a[0]:.1f}/{e2e_a[1]:.1f}  "
          f"httpx {e2e_b[0]:.1f}/{e2e_b[1]:.1f}")
    print(f"ttft_p95_diff_pct={100 * (ttft_a[1] - ttft_b[1]) / ttft_b[1]:.2f}")
    print(f"e2e_p95_diff_pct={100 * (e2e_a[1] - e2e_b[1]) / e2e_b[1]:.2f}")
    print(f"ttft_p50_diff_pct={100 * (ttft_a[0] - ttft_b[0]) / ttft_b[0]:.2f}")
    print(f"e2e_p50_diff_pct={100 * (e2e_a[0] - e2e_b[0]) / e2e_b[0]:.2f}")
    if peer is not None:
        our_ttft, our_e2e, their_ttft, their_e2e = (np.percentile(v, 50) for v in peer)
        print(f"AIPerf side by side: ours {len(peer[0])} ok, AIPerf {len(peer[2])} ok; "
              f"TTFT p50 ms ours {our_ttft:.1f} AIPerf {their_ttft:.1f}; "
              f"E2E p50 ms ours {our_e2e:.1f} AIPerf {their_e2e:.1f}")
        print(f"peer_ttft_p50_diff_pct={100 * (our_ttft - their_ttft) / their_ttft:.2f}")
        print(f"peer_e2e_p50_diff_pct={100 * (our_e2e - their_e2e) / their_e2e:.2f}")


if __name__ == "__main__":
    main()
