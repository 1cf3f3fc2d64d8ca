"""A scenario is a stretch of a long run, so an API's rate limits start as that traffic,
kept up, leaves them (sim/run.py run_steady): a short run above what the limits sustain
gets the sustained share, not a full minute's allowance on top. And each provider counts
what it says it counts (Anthropic input and output apart, Gemini the prompt alone)."""

from __future__ import annotations

import pytest
from helpers import scenario_from

from llmplan.sim.run import simulate_scenario

SCENARIO = """
    seed: 2
    duration: {duration}
    traffic: {{kind: constant, rate_per_s: 10}}
    tasks:
      - {{name: t, prompt_tokens: {{kind: fixed, tokens: {prompt}}},
         output_tokens: {{kind: fixed, tokens: {output}}}}}
    deployments:
      api:
        kind: cloud
        model: {model}
        limits: {limits}
        retry: {{max_retries: 0}}
        latency: {{output_tokens_per_s: {{median: 4000, p5: 3500}}}}
"""


def _answered_share(model: str, limits: str, prompt: int, output: int,
                    duration: int = 300) -> float:
    loaded = scenario_from(SCENARIO.format(model=model, limits=limits, prompt=prompt,
                                           output=output, duration=duration))
    outcomes = simulate_scenario(loaded).deployments["api"].requests
    return outcomes.completed / outcomes.total


def test_a_short_run_gets_the_share_the_limits_sustain() -> None:
    # 600,000 tokens/min at 1,200 tokens a call sustain 8.33 of the 10 requests a second;
    # with a full bucket at the start a five-minute run got all of them through
    share = _answered_share("gpt-4o-mini", "{requests_per_min: 100000, tokens_per_min: 600000}",
                            1000, 200)
    assert share == pytest.approx(600_000 / 60 / 1200 / 10, abs=0.02)
    # traffic the limits sustain is all answered
    assert _answered_share("gpt-4o-mini", "{requests_per_min: 100000, tokens_per_min: 800000}",
                           1000, 200) == pytest.approx(1.0, abs=0.005)


def test_anthropic_output_limit_and_gemini_prompt_only() -> None:
    # 100-token prompts, 4,000-token answers at 10/s: 6,000 input tokens/min against
    # 2,000,000, but 2,400,000 output tokens/min against 400,000 (claude-haiku-4.5's
    # Start tier): one in six gets through
    haiku = _answered_share("claude-haiku-4.5", "{}", 100, 4000, duration=180)
    assert haiku == pytest.approx(400_000 / 60 / 4000 / 10, abs=0.02)
    # Gemini counts the prompt alone: 6,000 tokens/min against 1,000,000, all answered
    flash = _answered_share("gemini-3.8-flash", "{}", 100, 4000, duration=180)
    assert flash == pytest.approx(1.0, abs=0.005)
