"""Speculative decoding speeds up decode only: prefill tokens cost what they cost without it,
plus the drafter's own pass over them (vLLM's EagleProposer runs the EAGLE head on every
token the model computed, prompt tokens included: vllm/v1/spec_decode/eagle.py)."""

from __future__ import annotations

import pytest
from helpers import run_first, scenario_from

from llmplan.sim.metrics import summarise_run
from llmplan.sim.table import request_table

EAGLE = ("{weights_dtype: fp8, speculative: {method: eagle3, num_speculative_tokens: 3, "
         "mean_acceptance_length: 2.4, draft_params_b: 0.8}}")
PLAIN = "{weights_dtype: fp8}"

SCENARIO = """
    seed: 8
    duration: {duration}
    traffic: {traffic}
    tasks:
      - name: only
        prompt_tokens: {{kind: fixed, tokens: {prompt}}}
        output_tokens: {{kind: fixed, tokens: {output}}}
    deployments:
      one:
        gpu: H100-SXM
        model: Llama-3.3-70B
        tp: 2
        engine: {engine}
        admission: {{queue_timeout_s: 1000}}
"""
ONE_ARRIVAL = "{kind: constant, rate_per_s: 0.001}"     # a single request at t = 0

# The drafter on paper, from the H100 SXM datasheet and the roofline's default efficiencies:
# 0.8 B 16-bit parameters on 2 GPUs, 2 FLOPs per parameter per token at 989.4 TFLOP/s x 0.55,
# its 1.6 GB of weights read at 3,350 GB/s x 0.75 per pass; three passes per step
DRAFT_PER_TOKEN_S = 2 * 0.8e9 / (2 * 989.4e12 * 0.55)
DRAFT_WEIGHTS_S = 0.8e9 * 2 / (2 * 3350e9 * 0.75)


def _run(engine: str, *, prompt: int, output: int, traffic: str = ONE_ARRIVAL,
         duration: float = 100.0):
    loaded = scenario_from(SCENARIO.format(engine=engine, prompt=prompt, output=output,
                                           traffic=traffic, duration=duration))
    run, stream = run_first(loaded)
    return request_table(run, stream), summarise_run(run, stream, loaded.scenario)


def test_a_prefill_costs_the_same_plus_the_drafters_pass() -> None:
    # 2,000 prompt tokens in one step (budget 8,192), one output token: no decode step
    plain, _ = _run(PLAIN, prompt=2000, output=1)
    eagle, _ = _run(EAGLE, prompt=2000, output=1)
    drafter_s = max(2000 * DRAFT_PER_TOKEN_S, DRAFT_WEIGHTS_S) + 2 * DRAFT_WEIGHTS_S
    assert eagle.ttft_s[0] - plain.ttft_s[0] == pytest.approx(drafter_s, rel=1e-6)


def test_decode_steps_are_spread_over_the_accepted_tokens() -> None:
    # one sequence decoding 200 tokens: each step is memory-bound (14 ms of weights), so
    # verifying 4 tokens instead of 1 costs about the same, plus the drafter's 3 passes
    # (each bound by its weight reads), and emits 2.4 tokens
    plain, _ = _run(PLAIN, prompt=100, output=200)
    eagle, _ = _run(EAGLE, prompt=100, output=200)
    expected = (plain.tpot_s[0] + 3 * DRAFT_WEIGHTS_S) / 2.4
    assert eagle.tpot_s[0] == pytest.approx(expected, rel=0.01)
    assert eagle.tpot_s[0] < plain.tpot_s[0] / 2


def test_prefill_bound_capacity_is_not_multiplied_by_the_acceptance_length() -> None:
    # 2,000-token prompts, 2 output tokens: nearly all the work is prefill, which
    # speculation cannot speed up; the drafter's pass over the prompt (0.8 B of 16-bit
    # parameters next to 70 B at FP8, about 4% of the work) slows it a little
    overload = "{kind: poisson, rate_per_s: 12}"
    _, plain = _run(PLAIN, prompt=2000, output=2, traffic=overload, duration=60)
    _, eagle = _run(EAGLE, prompt=2000, output=2, traffic=overload, duration=60)
    p, e = plain.local.utilisation, eagle.local.utilisation   # type: ignore[union-attr]
    assert 0.93 * p.full_batch_requests_per_s < e.full_batch_requests_per_s \
        <= p.full_batch_requests_per_s
    assert 0.93 * p.achieved_requests_per_s < e.achieved_requests_per_s \
        <= 1.01 * p.achieved_requests_per_s


@pytest.mark.parametrize("engine", [PLAIN, EAGLE])
def test_mfu_stays_under_the_compute_efficiency_when_overloaded(engine: str) -> None:
    # the GEMMs run at compute_efficiency (0.55) of the FP8 peak at best, and the run's
    # MFU counts the work its duration saw (not the requests started while draining)
    _, result = _run(engine, prompt=2000, output=2, traffic="{kind: poisson, rate_per_s: 12}",
                     duration=60)
    use = result.local.utilisation   # type: ignore[union-attr]
    assert use.engine_busy_fraction > 0.99
    assert 0.4 < use.mfu_fraction <= 0.55
