"""The closed-form jumps of the fast replica give the step-by-step reference's latencies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_first, scenario_from

from llmplan.perf.steptime import mla_verifies_as_prefill
from llmplan.scenario.models import SimulationMode
from llmplan.sim.records import OK
from llmplan.sim.table import request_table

BASE = """
    seed: {seed}
    duration: {duration}
    traffic: {traffic}
    tasks:
      - name: chat
        weight: 3
        prompt_tokens: {{kind: lognormal, mean: 700, p95: 2000}}
        output_tokens: {{kind: lognormal, mean: 200, p95: 600}}
        {prefix}
      - name: short
        prompt_tokens: {{kind: uniform, min_tokens: 20, max_tokens: 200}}
        output_tokens: {{kind: fixed, tokens: 1}}
    deployments:
      d:
        gpu: {gpu}
        model: {model}
        tp: {tp}
        pp: {pp}
        replicas: {replicas}
        router: {router}
        engine: {engine}
        admission: {admission}
        step_time: {step_time}
"""

PREFIX = ("shared_prefix: {groups: 6, tokens: {kind: uniform, min_tokens: 300, "
          "max_tokens: 1500}, popularity: zipf, zipf_s: 1.1}")

CASES = {
    "plenty-of-kv": dict(gpu="H100-SXM", replicas=2, router="least_outstanding",
                         engine="{}", admission="{}",
                         traffic="{kind: poisson, rate_per_s: 15}"),
    "kv-pressure-preemption": dict(gpu="L4", replicas=2, router="round_robin",
                                   engine="{max_num_seqs: 48, kv_cache_tokens: 12000}",
                                   admission="{}", traffic="{kind: poisson, rate_per_s: 3}"),
    # the same without a prefix cache: a preempted request recomputes from its first token
    "kv-pressure-preemption-no-cache": dict(
        gpu="L4", replicas=2, router="round_robin",
        engine="{max_num_seqs: 48, kv_cache_tokens: 12000, prefix_caching: off}",
        admission="{}", traffic="{kind: poisson, rate_per_s: 3}"),
    # vLLM before 0.19 admits a request when its first chunk's blocks are free: a long
    # prompt admitted on little room preempts itself at a later chunk
    "kv-pressure-first-chunk-admission": dict(
        gpu="L4", replicas=1, router="round_robin",
        engine="{vllm_version: '0.18.1', max_num_seqs: 48, kv_cache_tokens: 12000, "
               "max_num_batched_tokens: 512, prefix_caching: off}",
        admission="{}", traffic="{kind: poisson, rate_per_s: 2}"),
    "chunked-prefill-small-budget": dict(gpu="A100-80GB", replicas=1, router="round_robin",
                                         engine="{max_num_batched_tokens: 512, max_num_seqs: 64}",
                                         admission="{}",
                                         traffic="{kind: gamma, rate_per_s: 3, cv: 3}"),
    "no-chunked-prefill": dict(gpu="A100-80GB", replicas=1, router="round_robin",
                               engine="{chunked_prefill: false, max_num_batched_tokens: 4096, "
                                      "max_num_seqs: 32, max_model_len: 4096}",
                               admission="{}", traffic="{kind: poisson, rate_per_s: 4}"),
    "overload-timeouts-and-queue-limit": dict(
        gpu="L4", replicas=3, router="least_outstanding",
        engine="{max_num_seqs: 16, kv_cache_tokens: 20000}",
        admission="{queue_limit: 20, queue_timeout_s: 8}",
        traffic="{kind: poisson, rate_per_s: 6}"),
    # no queue: a request starts at the next step when a seat is free, else it is refused
    "queue-limit-zero": dict(
        gpu="L4", replicas=2, router="least_outstanding",
        engine="{max_num_seqs: 8}", admission="{queue_limit: 0}",
        traffic="{kind: poisson, rate_per_s: 3}"),
    # a mixture of experts whose weight reads change with the tokens of a step, decode runs
    # that cross from memory- to compute-bound as contexts grow, and the CPU exposed
    "moe-crossing-pieces": dict(gpu="H100-SXM", replicas=1, router="round_robin",
                                model="Mixtral-8x7B", tp=2,
                                engine="{async_scheduling: false, max_num_seqs: 96}",
                                admission="{}", traffic="{kind: poisson, rate_per_s: 8}"),
    # eager mode: decode runs start under the kernel-launch floor and cross to memory-bound
    # as their contexts grow (with the CPU overlapped, and in turn)
    "eager-launch-floor": dict(gpu="H100-SXM", replicas=1, router="round_robin",
                               engine="{enforce_eager: true, max_num_seqs: 64}",
                               admission="{}", traffic="{kind: poisson, rate_per_s: 3}"),
    "eager-launch-floor-sync-cpu": dict(
        gpu="H100-SXM", replicas=1, router="round_robin",
        engine="{enforce_eager: true, async_scheduling: false, max_num_seqs: 64}",
        admission="{}", traffic="{kind: poisson, rate_per_s: 3}"),
    "speculative-decoding": dict(gpu="A100-80GB", replicas=1, router="round_robin",
                                 engine="{speculative: {method: eagle3, "
                                        "num_speculative_tokens: 3, "
                                        "mean_acceptance_length: 2.6, draft_params_b: 0.5}}",
                                 admission="{}", traffic="{kind: poisson, rate_per_s: 5}"),
    "diurnal-spike": dict(gpu="L40S", replicas=2, router="least_outstanding", engine="{}",
                          admission="{}",
                          traffic="{kind: diurnal, mean_rate_per_s: 4, peak_to_mean: 3, "
                                  "start_hour: 13, spikes: [{start_s: 60, duration_s: 30, "
                                  "multiplier: 4}]}"),
    # prefix caching: shared system prompts / documents in front of the chat prompts
    "prefix-cache-vllm": dict(gpu="H100-SXM", replicas=2, router="least_outstanding",
                              engine="{}", admission="{}",
                              traffic="{kind: poisson, rate_per_s: 12}", prefix=PREFIX),
    # a small cache: preemptions, and chains evicted to make room (fewer hits)
    "prefix-cache-vllm-eviction": dict(gpu="L4", replicas=1, router="round_robin",
                                       engine="{max_num_seqs: 48, kv_cache_tokens: 12000, "
                                              "max_num_batched_tokens: 1024}",
                                       admission="{}", traffic="{kind: poisson, rate_per_s: 2}",
                                       prefix=PREFIX.replace("groups: 6", "groups: 40")),
    "prefix-affinity-router": dict(gpu="L4", replicas=3, router="prefix_affinity",
                                   engine="{kv_cache_tokens: 30000}", admission="{}",
                                   traffic="{kind: poisson, rate_per_s: 4}", prefix=PREFIX),
    # conversations: later turns sent when the previous one ended, reading their history
    "sessions-closed-loop": dict(gpu="L4", replicas=2, router="prefix_affinity",
                                 # about what an L4 holds (60,000 did not fit beside the weights)
                                 engine="{kv_cache_tokens: 40000}", admission="{}",
                                 traffic="{kind: poisson, rate_per_s: 0.5}",
                                 prefix=PREFIX + "\n        session: {turns_min: 2, "
                                        "turns_max: 5, think_time_s: 8}"),
    # spread over replicas: a turn on a replica that never saw its conversation reads the
    # system prompt its first turn began with
    "sessions-spread": dict(gpu="L4", replicas=3, router="round_robin",
                            engine="{kv_cache_tokens: 40000}", admission="{}",
                            traffic="{kind: poisson, rate_per_s: 0.6}",
                            prefix=PREFIX + "\n        session: {turns_min: 2, "
                                   "turns_max: 4, think_time_s: 5, fan_out: 2}"),
    # an agent's turns fanned out over two calls each, replicas with room to spare
    "sessions-fan-out": dict(gpu="H100-SXM", replicas=3, router="round_robin",
                             # room for every branch (400,000 tokens do not fit an L4)
                             engine="{kv_cache_tokens: 400000}", admission="{}",
                             traffic="{kind: poisson, rate_per_s: 0.6}",
                             prefix=PREFIX + "\n        session: {turns_min: 2, "
                                    "turns_max: 4, think_time_s: 5, fan_out: 2}"),
    # an agent's tool-call loop on a reasoning model: each turn's history keeps the
    # earlier turns' thinking, which its replica's cache holds after their prompts
    "sessions-agent-reasoning": dict(gpu="H100-SXM", replicas=2, router="prefix_affinity",
                                     engine="{kv_cache_tokens: 200000}", admission="{}",
                                     traffic="{kind: poisson, rate_per_s: 0.5}",
                                     prefix=PREFIX + "\n        reasoning_tokens: {kind: "
                                            "uniform, min_tokens: 50, max_tokens: 400}"
                                            "\n        session: {kind: agent, turns_min: 2, "
                                            "turns_max: 5, think_time_s: 2}"),
    "sessions-per-slot": dict(gpu="A100-80GB", replicas=1, router="round_robin",
                              engine="{prefix_caching: per_slot, max_num_seqs: 4}",
                              admission="{queue_timeout_s: 30}",
                              traffic="{kind: poisson, rate_per_s: 1.2}",
                              prefix="session: {turns_min: 1, turns_max: 4, think_time_s: 3}"),
    # a measured step time per tokens in the step (calibrated CPU servers), past its last
    # point at the last segment's rate, with a per-slot cache and conversations
    "tabulated-step-time": dict(gpu="L4", replicas=1, router="round_robin",
                                engine="{prefix_caching: per_slot, max_num_seqs: 6}",
                                admission="{}",
                                traffic="{kind: poisson, rate_per_s: 0.8}",
                                step_time="{kind: tabulated, tokens_ms: [[1, 6], [2, 10], "
                                          "[4, 13], [64, 45], [1024, 300]], "
                                          "per_kv_token_ns: 30, per_prefill_pair_ns: 0.2}",
                                prefix="session: {turns_min: 1, turns_max: 4, "
                                       "think_time_s: 3}"),
    # sliding-window layers (Gemma 3: 5 of 6 layers see the last 1,024 tokens): each running
    # request also holds its window's pages, a small cache preempts
    "sliding-window-kv-pressure": dict(gpu="A100-80GB", replicas=1, router="round_robin",
                                       model="Gemma-3-27B",
                                       engine="{max_num_seqs: 64, kv_cache_tokens: 60000}",
                                       admission="{}", traffic="{kind: poisson, rate_per_s: 2}"),
    "sliding-window-prefix-cache": dict(gpu="H100-SXM", replicas=1, router="round_robin",
                                        model="gpt-oss-20b",
                                        engine="{kv_cache_tokens: 40000, max_num_seqs: 64}",
                                        admission="{}", traffic="{kind: poisson, rate_per_s: 6}",
                                        prefix=PREFIX),
    # data-parallel attention: a rank per GPU, the dense weights read by every rank, the
    # routed layers' all-gather, MLA's latent once per rank (DeepSeek-V3 on eight H200s)
    "data-parallel-attention-mla": dict(gpu="H200", replicas=1, router="round_robin",
                                        model="DeepSeek-V3", tp=8,
                                        engine="{expert_parallel: true, "
                                               "data_parallel_attention: true, "
                                               "max_num_seqs: 16}",
                                        admission="{}",
                                        traffic="{kind: poisson, rate_per_s: 20}"),
    # a rank's budget below the prompts: a request's chunk is capped at one rank's budget,
    # several requests are mid-prefill at once, the largest chunk sets the step; with a
    # small cache they preempt (DeepSeek-V3 MLA over eight ranks, Qwen3-30B-A3B over two)
    "data-parallel-attention-rank-chunks": dict(
        gpu="H200", replicas=1, router="round_robin", model="DeepSeek-V3", tp=8,
        engine="{expert_parallel: true, data_parallel_attention: true, "
               "max_num_batched_tokens: 256, max_num_seqs: 16}",
        admission="{}", traffic="{kind: poisson, rate_per_s: 12}"),
    "data-parallel-attention-kv-pressure": dict(
        gpu="H100-SXM", replicas=1, router="round_robin", model="Qwen3-30B-A3B", tp=2,
        engine="{expert_parallel: true, data_parallel_attention: true, "
               "max_num_batched_tokens: 512, max_num_seqs: 24, kv_cache_tokens: 6000}",
        admission="{}", traffic="{kind: poisson, rate_per_s: 6}"),
    # conversations and system prompts on ranks: each rank caches its own requests' prefixes
    "data-parallel-attention-prefixes": dict(
        gpu="H100-SXM", replicas=2, router="prefix_affinity", model="Qwen3-30B-A3B", tp=4,
        engine="{expert_parallel: true, data_parallel_attention: true, "
               "max_num_batched_tokens: 1024, kv_cache_tokens: 20000}",
        admission="{}", traffic="{kind: poisson, rate_per_s: 3}",
        prefix=PREFIX + "\n        session: {turns_min: 2, turns_max: 4, think_time_s: 5}"),
    # MLA up-projects each prefill chunk's context: conversations whose later turns hit
    # their cached history, prompts longer than the budget going in chunks (DeepSeek-V3)
    "mla-prefix-sessions-chunks": dict(
        gpu="H200", replicas=1, router="round_robin", model="DeepSeek-V3", tp=8,
        engine="{max_num_batched_tokens: 512, max_num_seqs: 32}", admission="{}",
        traffic="{kind: poisson, rate_per_s: 3}",
        prefix=PREFIX + "\n        session: {turns_min: 2, turns_max: 4, think_time_s: 5}"),
    # MTP on MLA in vLLM 0.11.0: every verify request of 1 + 1 tokens is a prefill, each
    # decoding sequence's context up-projected every step (its per-KV-token parts), beside
    # chunks with cached context (DeepSeek-R1, FlashMLA on eight H200s)
    "mla-mtp-verify-as-prefill": dict(
        gpu="H200", replicas=1, router="round_robin", model="DeepSeek-R1", tp=8,
        engine="{vllm_version: '0.11.0', speculative: {method: mtp, "
               "num_speculative_tokens: 1, mean_acceptance_length: 1.8}, "
               "max_num_batched_tokens: 512, max_num_seqs: 32}",
        admission="{}", traffic="{kind: poisson, rate_per_s: 3}", prefix=PREFIX),
    # pipeline stages: rounds of pp micro-batches, each with its own token budget; a
    # request's chunk is one micro-batch's at most, the round pays its costliest chunk's
    # whole pass, the decodes split over the micro-batches (PCIe L40S; a mixture of experts
    # on two stages whose rounds touch the experts per micro-batch, under KV pressure)
    "pipeline-stages": dict(gpu="L40S", replicas=1, router="round_robin", pp=4,
                            engine="{max_num_batched_tokens: 512, max_num_seqs: 48}",
                            admission="{}", traffic="{kind: poisson, rate_per_s: 6}",
                            prefix=PREFIX),
    "pipeline-stages-moe-kv-pressure": dict(
        gpu="L40S", replicas=2, router="least_outstanding", model="Qwen3-30B-A3B", pp=2,
        engine="{weights_dtype: fp8, max_num_batched_tokens: 1024, max_num_seqs: 32, "
               "kv_cache_tokens: 8000}",
        admission="{}", traffic="{kind: poisson, rate_per_s: 5}"),
    "prefix-cache-per-slot": dict(gpu="A100-80GB", replicas=2, router="round_robin",
                                  engine="{prefix_caching: per_slot, max_num_seqs: 6}",
                                  admission="{}", traffic="{kind: poisson, rate_per_s: 4}",
                                  prefix=PREFIX),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_mode_matches_reference_per_request(case: str) -> None:
    settings = {"model": "Llama-3.1-8B", "tp": 1, "pp": 1, "prefix": "",
                "step_time": "{kind: roofline}", **CASES[case]}
    loaded = scenario_from(BASE.format(seed=5, duration=180, **settings))
    fast, stream = run_first(loaded, SimulationMode.FAST)
    ref, _ = run_first(loaded, SimulationMode.REFERENCE, stream)
    a, b = request_table(fast, stream), request_table(ref, stream)
    assert len(stream) > 200
    np.testing.assert_array_equal(a.outcome, b.outcome)
    np.testing.assert_array_equal(a.preemptions, b.preemptions)
    np.testing.assert_array_equal(a.replica, b.replica)
    np.testing.assert_array_equal(fast.records.cached_tokens, ref.records.cached_tokens)
    if stream.session is not None:   # the same turns were sent at the same times
        assert fast.sessions is not None and ref.sessions is not None
        assert fast.sessions.late == ref.sessions.late == 0
        np.testing.assert_allclose(fast.arrival_s, ref.arrival_s, rtol=1e-9)
    for column in ("ttft_s", "tpot_s", "e2e_s", "queue_wait_s"):
        x, y = getattr(a, column), getattr(b, column)
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
        both = ~np.isnan(x)
        assert both.any()
        np.testing.assert_allclose(x[both], y[both], rtol=1e-3, atol=1e-9)   # issue bar: 0.1%
    # the same steps were taken: busy time per minute of the run agrees too
    minutes = 3
    a_min, b_min = fast.records.per_minute(minutes), ref.records.per_minute(minutes)
    np.testing.assert_allclose(a_min[0], b_min[0], rtol=1e-6)
    # KV and step counts: a closed-form run is split at a minute edge in proportion to
    # time and logs its mean context, the reference step by step
    np.testing.assert_allclose(a_min[1:], b_min[1:], rtol=2e-3)


def test_the_mla_mtp_case_runs_its_verify_requests_as_prefills() -> None:
    settings = {"model": "Llama-3.1-8B", "tp": 1, "pp": 1, "prefix": "",
                "step_time": "{kind: roofline}", **CASES["mla-mtp-verify-as-prefill"]}
    loaded = scenario_from(BASE.format(seed=5, duration=180, **settings))
    dep = next(iter(loaded.scenario.deployments.values()))
    assert mla_verifies_as_prefill(dep.setup(loaded.catalog))   # type: ignore[union-attr]


def test_the_cases_exercise_what_they_claim() -> None:
    """Guard against a case silently losing the behaviour it is there to compare."""
    seen = {}
    table_outcomes = {}
    for case, params in CASES.items():
        run, stream = run_first(scenario_from(BASE.format(
            seed=5, duration=180,
            **{"model": "Llama-3.1-8B", "tp": 1, "pp": 1, "prefix": "",
               "step_time": "{kind: roofline}", **params})))
        table = request_table(run, stream)
        table_outcomes[case] = table.outcome
        seen[case] = (int(table.preemptions.sum()), int((table.outcome == 2).sum()),
                      int((table.outcome == 3).sum()), sum(run.records.cached_tokens))
    assert seen["kv-pressure-preemption"][0] > 20
    assert seen["kv-pressure-preemption-no-cache"][0] > 20
    assert seen["overload-timeouts-and-queue-limit"][1] > 0      # rejected at the queue limit
    assert seen["overload-timeouts-and-queue-limit"][2] > 0      # timed out waiting
    served, refused = (table_outcomes["queue-limit-zero"] == OK).sum(), \
        seen["queue-limit-zero"][1]
    assert served > 100 and refused > 10        # seats free and seats full both happen
    assert seen["plenty-of-kv"][0] == 0
    assert seen["plenty-of-kv"][3] == 0
    for case in ("prefix-cache-vllm", "prefix-cache-per-slot", "prefix-cache-vllm-eviction",
                 "sessions-closed-loop", "sessions-per-slot", "tabulated-step-time",
                 "sessions-agent-reasoning"):
        assert seen[case][3] > 0, case
    assert seen["prefix-cache-vllm-eviction"][0] > 5
    assert seen["sliding-window-kv-pressure"][0] > 5
    assert seen["sliding-window-prefix-cache"][3] > 0
    assert seen["pipeline-stages"][3] > 0
    assert seen["mla-prefix-sessions-chunks"][3] > 0
    assert seen["pipeline-stages-moe-kv-pressure"][0] > 5
    assert seen["kv-pressure-first-chunk-admission"][0] > 5


TIED = """
    seed: 2
    duration: 60
    traffic: {{kind: trace, path: {trace}}}
    tasks:
      - {{name: chat, prompt_tokens: {{kind: fixed, tokens: 300}},
         output_tokens: {{kind: fixed, tokens: 80}}}}
    deployments:
      d: {{gpu: L40S, model: Llama-3.1-8B, replicas: 2, router: least_outstanding,
          engine: {{max_num_seqs: 4}}, admission: {{queue_limit: {limit}}}}}
"""


@pytest.mark.parametrize("limit", [0, 2])
def test_requests_of_one_instant_arrive_together_in_both_modes(tmp_path: Path,
                                                               limit: int) -> None:
    """A trace's same-second rows: the reference used to start a step on the first of them
    and queue the rest a step behind (the fast replica seats them together); with
    queue_limit 0 the later ones were refused by one mode and served by the other."""
    rng = np.random.default_rng(4)
    seconds = np.sort(rng.integers(0, 50, 160))          # about 3 requests per second
    rows = "".join(f"{s},300,80,chat\n" for s in seconds)
    (tmp_path / "tied.csv").write_text("timestamp,prompt_tokens,output_tokens,task\n" + rows)
    loaded = scenario_from(TIED.format(trace="tied.csv", limit=limit), base_dir=tmp_path)
    fast, stream = run_first(loaded, SimulationMode.FAST)
    ref, _ = run_first(loaded, SimulationMode.REFERENCE, stream)
    a, b = request_table(fast, stream), request_table(ref, stream)
    assert len(np.unique(seconds)) < len(seconds)        # ties there are
    np.testing.assert_array_equal(a.outcome, b.outcome)
    np.testing.assert_array_equal(a.replica, b.replica)
    served = a.outcome == OK
    np.testing.assert_allclose(a.ttft_s[served], b.ttft_s[served], rtol=1e-3, atol=1e-9)
    assert served.sum() > 50 and (~served).sum() > 5     # seats free and seats full both
