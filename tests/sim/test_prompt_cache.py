"""Shared prefixes in the request stream and a provider's prompt cache, on paper."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import scenario_from

from llmplan.decide.decision import windows_per_month
from llmplan.pipeline import evaluate
from llmplan.sim.prompt_cache import cached_prefix_tokens
from llmplan.traffic import build_request_stream


def test_the_cache_reads_within_its_lifetime_and_writes_otherwise() -> None:
    # group 0 at t = 0, 100, 500 (400 s after its last use: gone), 550; group 1 too short
    # to cache; request 5 not served by this provider; request 6 has no shared prefix
    arrival = np.array([0.0, 100.0, 500.0, 550.0, 10.0, 20.0, 30.0])
    group = np.array([0, 0, 0, 0, 1, 0, -1])
    prefix = np.array([2000, 2000, 2000, 2000, 500, 2000, 0])
    served = np.array([True, True, True, True, True, False, True])
    cached, written = cached_prefix_tokens(arrival, group, prefix, served, min_tokens=1024,
                                           ttl_s=300.0)
    assert (cached, written) == (2 * 2000, 2 * 2000)
    # a hit refreshes the lifetime: uses 250 s apart stay cached however long the chain
    chain = np.arange(5) * 250.0
    assert cached_prefix_tokens(chain, np.zeros(5, dtype=np.int64), np.full(5, 1500),
                                np.ones(5, dtype=bool), min_tokens=1024,
                                ttl_s=300.0) == (4 * 1500, 1500)


def test_a_stretch_of_a_long_run_starts_with_what_its_own_last_minutes_left_cached() -> None:
    # a 600 s window repeating all month: the call at 590 s was, one period earlier, at
    # -10 s, so the call at 10 s reads the prefix it left (20 s before); the call at 590 s
    # finds it 580 s old, gone. Started empty, both calls write.
    arrival, group = np.array([10.0, 590.0]), np.zeros(2, dtype=np.int64)
    prefix, served = np.full(2, 2000), np.ones(2, dtype=bool)
    assert cached_prefix_tokens(arrival, group, prefix, served, min_tokens=1024,
                                ttl_s=300.0) == (0, 4000)
    assert cached_prefix_tokens(arrival, group, prefix, served, min_tokens=1024, ttl_s=300.0,
                                period_s=600.0) == (2000, 2000)
    # the warm start is the window's last lifetime, one period earlier: a call at 320 s
    # was at -280 s, 290 s before the call at 10 s, which reads it (and the call at 320 s,
    # 310 s after that one, writes again); started empty, both write
    late = np.array([10.0, 320.0])
    assert cached_prefix_tokens(late, group, prefix, served, min_tokens=1024, ttl_s=300.0,
                                period_s=600.0) == (2000, 2000)
    assert cached_prefix_tokens(late, group, prefix, served, min_tokens=1024,
                                ttl_s=300.0) == (0, 4000)
    # a conversation's own history starts cold with the conversation, warm or not
    keep, prompt, turn = np.full(2, 7), np.array([1600, 2100]), np.ones(2, dtype=bool)
    conversation = {"keep_group": keep, "prompt_tokens": prompt, "conversation": turn}
    assert cached_prefix_tokens(arrival, np.full(2, 7), prefix, served, min_tokens=1024,
                                ttl_s=300.0, period_s=600.0, **conversation) \
        == cached_prefix_tokens(arrival, np.full(2, 7), prefix, served, min_tokens=1024,
                                ttl_s=300.0, **conversation)


def test_a_conversation_reads_its_previous_prompt_and_writes_the_rest() -> None:
    # a system prompt (group 0, 1,500 tokens) in front of a 3-turn conversation (group 7):
    # turn 0 sends 1,600 tokens; turn 1 resends them with the 400-token answer and a
    # 100-token message (2,100; history 2,000); turn 2 the same again (2,600; history 2,500).
    # What the cache holds when a turn arrives is the previous turn's prompt, never its
    # answer: turn 1 reads 1,600 and writes 500, turn 2 reads 2,100 and writes 500
    arrival = np.array([0.0, 30.0, 60.0])
    group = np.array([0, 7, 7])
    prefix = np.array([1500, 2000, 2500])
    keep = np.array([7, 7, 7])
    prompt = np.array([1600, 2100, 2600])
    served = np.ones(3, dtype=bool)
    turn = np.ones(3, dtype=bool)
    cached, written = cached_prefix_tokens(arrival, group, prefix, served, min_tokens=1024,
                                           ttl_s=300.0, keep_group=keep, prompt_tokens=prompt,
                                           conversation=turn)
    assert cached == 1600 + 2100
    # turn 0 writes the system prompt and its own 100 tokens, then 500 a turn
    assert written == 1600 + 500 + 500
    assert cached + written == int(prompt.sum())     # every prompt token billed once
    # a turn after the cache expired reads nothing and writes its whole prompt again
    late = np.array([0.0, 30.0, 400.0])
    assert cached_prefix_tokens(late, group, prefix, served, min_tokens=1024, ttl_s=300.0,
                                keep_group=keep, prompt_tokens=prompt,
                                conversation=turn) == (1600, 1600 + 500 + 2600)

SCENARIO = """
    seed: 9
    duration: 1200
    traffic: {{kind: poisson, rate_per_s: 0.5}}
    tasks:
      - name: rag
        prompt_tokens: {{kind: uniform, min_tokens: 20, max_tokens: 60}}
        output_tokens: {{kind: fixed, tokens: 50}}
        {prefix}
      - name: other
        prompt_tokens: {{kind: fixed, tokens: 300}}
        output_tokens: {{kind: fixed, tokens: 20}}
    deployments:
      api: {{kind: cloud, model: gpt-4o-mini}}
"""
PREFIX = ("shared_prefix: {groups: 3, tokens: {kind: uniform, min_tokens: 2000, "
          "max_tokens: 4000}, popularity: zipf, zipf_s: 1.5}")


def test_a_prefix_goes_in_front_of_the_same_requests() -> None:
    plain = build_request_stream(scenario_from(SCENARIO.format(prefix="")).scenario)
    shared = build_request_stream(scenario_from(SCENARIO.format(prefix=PREFIX)).scenario)
    assert plain.prefix_group is None and shared.prefix_group is not None
    assert shared.prefix_tokens is not None
    assert np.array_equal(plain.arrival_s, shared.arrival_s)
    assert np.array_equal(plain.prompt_tokens, shared.prompt_tokens - shared.prefix_tokens)
    rag = shared.task_index == 0
    assert (shared.prefix_group[~rag] == -1).all() and (shared.prefix_tokens[~rag] == 0).all()
    groups = shared.prefix_group[rag]
    # one length per group, Zipf popularity: group 0 the most used
    for g in range(3):
        assert len(set(shared.prefix_tokens[rag][groups == g])) == 1
    counts = np.bincount(groups, minlength=3)
    assert counts[0] > counts[1] > counts[2]


def test_cached_reads_are_billed_at_the_cached_price() -> None:
    plain = evaluate(scenario_from(SCENARIO.format(prefix=""))).deployments["api"]
    loaded = scenario_from(SCENARIO.format(prefix=PREFIX))
    result = evaluate(loaded)
    shared = result.deployments["api"]
    assert plain.cloud is not None and shared.cloud is not None
    assert plain.cloud.cached_input_tokens is None
    assert "cached_input_tokens" not in plain.cloud.model_dump()
    read, written = shared.cloud.cached_input_tokens, shared.cloud.cache_write_tokens
    assert read is not None and written is not None and read > 10 * written
    item = next(i for i in shared.cost.items if i.item == "input_tokens")
    month = windows_per_month(result.scenario, loaded.scenario.economics)
    # gpt-4o-mini: $0.15/M input, $0.075/M cached reads, no write surcharge
    expected = ((shared.cloud.input_tokens - read) * 0.15 + read * 0.075) / 1e6
    assert item.usd_per_month / month == pytest.approx(expected, rel=1e-9)
