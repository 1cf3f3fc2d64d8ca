"""Shared prefixes in the request stream and a provider's prompt cache, on paper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import scenario_from

from llmplan.decide.pricing import windows_per_month
from llmplan.pipeline import evaluate
from llmplan.sim.prompt_cache import cached_prefix_tokens, prompt_cache_use
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


@pytest.mark.parametrize("first_call_served", [True, False])
def test_the_turn_after_a_fan_out_reads_the_first_calls_prompt(first_call_served: bool) -> None:
    """A 1,500-token first turn (conversation 7), then three parallel calls on its
    1,600-token history (1,500 + a 100-token answer) with messages of 200, 900 and 400
    tokens and answers of 50, 300 and 20, then turn 2, whose history appends them in order
    (1,600 + 250 + 1,200 + 420 = 3,470) and a 100-token message. The provider holds each
    call's prompt; the longest of them turn 2 begins with is the first call's, 1,800 (the
    others part from it after the history). Without the first call, the history (1,600),
    which begins every call's prompt. It used to read the last call's prompt, 2,000."""
    arrival = np.array([0.0, 30.0, 30.0, 30.0, 60.0])
    group = np.array([-1, 7, 7, 7, 7])
    history, calls = 1600, [(200, 50), (900, 300), (400, 20)]
    turn_two = history + sum(m + a for m, a in calls)
    prefix = np.array([0, history, history, history, turn_two])
    prompt = np.array([1500, *(history + m for m, _ in calls), turn_two + 100])
    keep = np.full(5, 7)
    side = np.array([False, False, True, True, False])
    served = np.array([True, first_call_served, True, True, True])
    read, written = prompt_cache_use(arrival, group, prefix, served, min_tokens=1024,
                                     ttl_s=300.0, keep_group=keep, prompt_tokens=prompt,
                                     conversation=np.ones(5, dtype=bool), side_calls=side)
    first_call_prompt = history + calls[0][0]
    assert read[4] == (first_call_prompt if first_call_served else history)
    # the calls read turn 0's prompt, then (a call's prompt sent at the same instant
    # holding it) the history
    assert list(read[1:4]) == ([1500, history, history] if first_call_served
                               else [0, 1500, history])
    assert (read + written)[served].tolist() == prompt[served].tolist()   # each token once


def test_an_api_bills_the_turn_after_a_fan_out_its_first_calls_prompt(tmp_path: Path) -> None:
    """The same session as a trace priced on an API without read steps: reads 1,500 (turn
    1's first call), 1,600 twice (the others), 1,800 (turn 2: the first call's prompt)."""
    (tmp_path / "agent.csv").write_text(
        "timestamp,prompt_tokens,output_tokens,task,session,turn,think_s,prefix_tokens\n"
        "0,1500,100,agent,0,0,0,0\n1,1800,50,agent,0,1,0,1600\n"
        "1,2500,300,agent,0,1,0,1600\n1,2000,20,agent,0,1,0,1600\n"
        "2,3570,10,agent,0,2,0,3470\n")
    loaded = scenario_from("""
        seed: 1
        duration: 2000
        traffic: {kind: trace, path: agent.csv}
        tasks:
          - {name: agent, prompt_tokens: {kind: fixed, tokens: 100},
             output_tokens: {kind: fixed, tokens: 10}}
        deployments:
          api: {kind: cloud, model: gpt-6-sol}
    """, base_dir=tmp_path)
    assert loaded.catalog.cloud_models["gpt-6-sol"].cache_hit_step_tokens is None
    cloud = evaluate(loaded).deployments["api"].cloud
    assert cloud is not None and cloud.served == 5
    assert cloud.cached_input_tokens == 1500 + 1600 + 1600 + 1800

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


AGENT = """
    seed: 1
    duration: 2000
    traffic: {kind: constant, rate_per_s: 0.0005}   # one agent session at t = 0
    tasks:
      - name: agent
        prompt_tokens: {kind: fixed, tokens: 1000}      # each step's new tool result
        output_tokens: {kind: fixed, tokens: 200}
        reasoning_tokens: {kind: fixed, tokens: 300}
        shared_prefix: {groups: 1, tokens: {kind: fixed, tokens: 8000}}
        session: {kind: agent, turns_min: 3, turns_max: 3, think_time_s: 2}
    deployments:
      api: {kind: cloud, model: MODEL}
"""


@pytest.mark.parametrize(("model", "reads"), [
    # GPT-5 (OpenAI before GPT-5.6) reads 1,024 tokens, then steps of 128: turn 1's 9,000
    # cached tokens read as 1,024 + 62 x 128 = 8,960, turn 2's 10,500 as 1,024 + 74 x 128
    ("gpt-5", [0, 8960, 10496]),
    # GPT-6 Sol's cache has no such steps: the previous prompt whole
    ("gpt-6-sol", [0, 9000, 10500])])
def test_an_agent_session_is_billed_its_cache_reads_and_thinking(model: str,
                                                                 reads: list[int]) -> None:
    """Three steps of one tool-call loop: 8,000-token system prompt + 1,000-token tool
    result, then each step resends the history (prompt, then the 300 thinking tokens and
    the 200-token answer: a tool-call chain keeps its reasoning, as OpenAI's Responses API
    reasoning items and Anthropic's thinking blocks are passed back) plus a new 1,000-token
    result: prompts 9,000, 10,500, 12,000. The session starts cold (the 2,000 s window is
    longer than either cache's lifetime), and each later step reads the step before's
    prompt; the thinking it sends back is written, as new input. Output: 3 x (200 + 300)
    tokens, the thinking billed as output when generated (OpenAI's reasoning tokens are
    output tokens) and as input when sent back."""
    loaded = scenario_from(AGENT.replace("MODEL", model))
    stream = build_request_stream(loaded.scenario)
    assert list(stream.prompt_tokens) == [9000, 10500, 12000]
    result = evaluate(loaded)
    cloud = result.deployments["api"].cloud
    assert cloud is not None and cloud.served == 3
    assert cloud.input_tokens == 31500 and cloud.output_tokens == 1500
    assert cloud.cached_input_tokens == sum(reads)
    spec = loaded.catalog.cloud_models[model]
    write = spec.cache_write_usd_per_mtok or spec.input_usd_per_mtok
    # what is not read is written (a write costs the input price where none is listed)
    assert cloud.cache_write_tokens == 31500 - sum(reads)
    month = windows_per_month(result.scenario, loaded.scenario.economics)
    items = {i.item: i.usd_per_month / month for i in result.deployments["api"].cost.items}
    assert items["input_tokens"] == pytest.approx(
        (sum(reads) * spec.cache_read_usd_per_mtok + (31500 - sum(reads)) * write) / 1e6,
        rel=1e-9)
    assert items["output_tokens"] == pytest.approx(1500 * spec.output_usd_per_mtok / 1e6,
                                                   rel=1e-9)
