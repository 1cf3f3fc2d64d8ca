"""Against the real llama.cpp server: no accidental prompt-cache hits between runs (and a
warning when they happen), and the README recipe's checks (/props limits, goodput > 0)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from lt_helpers import llmplan, read_jsonl, targets_file

from llmplan.loadtests.llamacpp_server import LlamaCppServer
from llmplan.loadtests.plan import build_plan
from llmplan.loadtests.runner import LoadTestSettings, run_load_test
from llmplan.loadtests.targets import Target
from llmplan.loadtests.workload import quick_workload

# The same plan twice: arrivals at a constant 0.7 req/s, 60-token prompts (90 with the chat
# template), 8-token answers: each request runs alone (E2E about 0.5 s, 1.4 s apart), so its
# TTFT is one prefill and the median of 12 is that prefill's time. Poisson arrivals (the quick
# mode) made the test a coin toss: with 12 requests the seed's one burst of three queued them
# (1.1-1.9 s against 0.35-0.5 s for the others), and the median fell in the gap between the
# two groups, so runs a few per cent apart in every request read 533 or 1,090 ms. The first
# requests after a start run slower (pages and caches still cold): four warm-up requests are
# sent first and kept out of the statistics.
STEADY = """seed: 1
duration: 3600
traffic: {kind: constant, rate_per_s: 0.7}
tasks:
  - name: steady
    prompt_tokens: {kind: fixed, tokens: 60}
    output_tokens: {kind: fixed, tokens: 8}
"""


def _quick(tmp_path: Path, server: LlamaCppServer, out: str, *extra: str) -> tuple[int, str]:
    targets = targets_file(tmp_path, local={"kind": "llamacpp", "base_url": server.base_url,
                                            "model": "smollm2"})
    result = llmplan("loadtest", "--targets", str(targets), "--target", "local", *extra,
                     "--out", str(tmp_path / out))
    return result.returncode, result.stdout + result.stderr


def test_running_the_same_load_test_twice_measures_the_same(tmp_path: Path,
                                                            llamacpp: LlamaCppServer) -> None:
    scenario = tmp_path / "steady.yaml"
    scenario.write_text(STEADY)
    ttft, prefill, sent = [], [], []
    for out in ("first", "second", "third"):
        code, output = _quick(tmp_path, llamacpp, out, str(scenario), "--requests", "12",
                              "--warmup", "4", "--duration", "90s")
        assert code == 0, output
        summary = json.loads((tmp_path / out / "summary.json").read_text())
        rows = read_jsonl(tmp_path / out / "requests.jsonl")
        assert len(rows) == 12
        assert all(r["cached_prompt_tokens"] is not None for r in rows)   # recorded
        cache = summary["cache"]
        assert cache["beyond_shared_prefix_rate"] < 0.1 and cache["warning"] is None
        assert 0 < cache["hit_rate"] < 0.5            # the chat template, nothing more
        ttft.append(summary["latency"]["ttft_ms"]["p50"])
        prefill.append(statistics.median(float(r["server_prefill_ms"])  # type: ignore[arg-type]
                                         for r in rows))
        sent.append(sum(int(r["prompt_tokens"]) for r in rows))  # type: ignore[call-overload]
    print(f"\nTTFT p50 of three identical runs: {ttft[0]:.0f}, {ttft[1]:.0f}, {ttft[2]:.0f} ms;"
          f" the server's own prefill p50: {prefill[0]:.0f}, {prefill[1]:.0f}, "
          f"{prefill[2]:.0f} ms")
    # The same work each time: the salt changes the prompts' text, not their length (the
    # cache checks above show none of it came from an earlier run).
    assert max(sent) - min(sent) <= 0.02 * min(sent), sent
    # The 10% between runs of the same test, on this machine's speed at the time. A
    # shared 2-core CI machine drifts: one run there read 496, 440 and 391 ms, each run 11%
    # faster than the one before, and a quiet local run 373, 362, 433 ms. Such drift is the
    # server's, and the server's own clock (timings.prompt_ms) sees it too, so each run's
    # TTFT is read at the three runs' median server speed; what remains is what the load test
    # adds (HTTP, tokenising, the first sampled token), which must reproduce. A run served
    # from the prompt cache is 10-50x faster and still fails: the cache checks above catch it,
    # and its TTFT leaves the raw bracket below.
    speed = statistics.median(prefill)
    steady = [t * speed / p for t, p in zip(ttft, prefill, strict=True)]
    assert max(steady) <= 1.10 * min(steady), (ttft, prefill)
    assert 0.5 * min(ttft[0], ttft[2]) <= ttft[1] <= 2.0 * max(ttft[0], ttft[2]), ttft


def test_a_repeated_plan_is_caught_serving_from_cache(tmp_path: Path,
                                                      llamacpp: LlamaCppServer) -> None:
    loaded = quick_workload(prompt_tokens=150, output_tokens=4, rate_per_s=2.0, requests=8)
    plan = build_plan(loaded, max_requests=8, salt="same-every-time")
    target = Target(kind="llamacpp", base_url=llamacpp.base_url, model="smollm2")
    settings = LoadTestSettings(users=8, duration_s=60)
    run_load_test("local", target, plan, settings, tmp_path / "a")
    again = run_load_test("local", target, plan, settings, tmp_path / "b").summary
    assert again.cache is not None and again.cache.warning is not None
    assert (again.cache.beyond_shared_prefix_rate or 0) > 0.5
    assert "served from the server's prompt cache" in again.cache.warning


def test_a_plan_that_cannot_fit_a_slot_is_refused_before_sending(
        tmp_path: Path, llamacpp: LlamaCppServer) -> None:
    code, output = _quick(tmp_path, llamacpp, "too-long", "--prompt-tokens", "600",
                          "--output-tokens", "32", "--rate", "1", "--requests", "5")
    assert code == 2, output
    text = " ".join(output.split())
    assert "context per slot is 512 tokens" in text and "--max-prompt-tokens 416" in text
    assert not (tmp_path / "too-long" / "requests.jsonl").exists()


def test_the_readme_recipe_gives_goodput(tmp_path: Path, llamacpp: LlamaCppServer) -> None:
    code, output = _quick(tmp_path, llamacpp, "recipe", "--prompt-tokens", "100",
                          "--output-tokens", "32", "--rate", "0.5", "--requests", "10",
                          "--warmup", "2")
    assert code == 0, output
    assert "server: 4 slots, 512 tokens of context per slot" in output
    summary = json.loads((tmp_path / "recipe" / "summary.json").read_text())
    assert summary["requests"]["finished"] == 10 and summary["requests"]["warmup"] == 2
    assert summary["slo"]["goodput_fraction"] == 1.0
    assert (tmp_path / "recipe" / "summary.csv").exists()
    assert (tmp_path / "recipe" / "metrics.prom").exists()


def test_a_shared_prefix_workload_is_served_from_the_real_servers_cache(
        tmp_path: Path, llamacpp: LlamaCppServer) -> None:
    """One system prompt of ~200 tokens in front of short questions, one at a time: llama.cpp
    keeps each slot's last prompt, so from the second request on the prefix comes from cache,
    as the simulated workload says; and sharing that was asked for raises no warning."""
    from helpers import scenario_from

    loaded = scenario_from("""
        seed: 3
        duration: 600
        traffic: {kind: constant, rate_per_s: 0.5}
        tasks:
          - name: ask
            prompt_tokens: {kind: fixed, tokens: 12}
            output_tokens: {kind: fixed, tokens: 4}
            shared_prefix: {groups: 1, tokens: {kind: fixed, tokens: 200}}
        deployments: {x: {gpu: L4, model: SmolLM2-135M}}
    """)
    plan = build_plan(loaded, max_requests=6, salt="prefix-run")
    assert all(p.shared_prefix_tokens == 200 for p in plan)
    assert len({" ".join(p.prompt.split()[:200]) for p in plan}) == 1     # one shared text
    assert len({p.prompt for p in plan}) == 6
    target = Target(kind="llamacpp", base_url=llamacpp.base_url, model="smollm2",
                    api="completions")
    result = run_load_test("local", target, plan, LoadTestSettings(users=1, duration_s=60),
                           tmp_path / "prefix")
    rows = sorted(read_jsonl(tmp_path / "prefix" / "requests.jsonl"), key=lambda r: r["id"])
    assert all(r["error_class"] is None for r in rows), rows
    later = [int(r["cached_prompt_tokens"]) for r in rows[1:]]   # type: ignore[call-overload]
    assert min(later) >= 200, later          # the 200-token prefix, as the server counts it
    summary = result.summary
    assert summary.cache is not None and summary.cache.warning is None
    assert (summary.cache.hit_rate or 0) > 0.6


def test_a_chat_task_against_a_completions_target_is_refused_before_sending(
        tmp_path: Path) -> None:
    """The simulator adds the chat template to `api: chat` tasks; a completions target
    would not compute it, so the load test would not measure what was simulated."""
    scenario = tmp_path / "chat.yaml"
    scenario.write_text("seed: 1\nduration: 60\ntraffic: {kind: poisson, rate_per_s: 1}\n"
                        "tasks:\n  - name: talk\n    api: chat\n"
                        "    prompt_tokens: {kind: fixed, tokens: 20}\n"
                        "    output_tokens: {kind: fixed, tokens: 4}\n")
    targets = targets_file(tmp_path, local={"kind": "llamacpp", "api": "completions",
                                            "base_url": "http://127.0.0.1:9",
                                            "model": "smollm2"})
    result = llmplan("loadtest", str(scenario), "--targets", str(targets), "--target",
                     "local", "--out", str(tmp_path / "out"))
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, text
    assert "tasks[0].api" in text and "'talk' is sent as chat" in text
    assert not (tmp_path / "out").exists()
