"""Conversations: every turn resends the history, and is sent when the previous one ended."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from helpers import run_first, scenario_from

from llmplan.scenario.models import SimulationMode
from llmplan.sim.metrics import summarise_run
from llmplan.sim.records import OK, OUTCOME_NAMES
from llmplan.sim.table import request_table
from llmplan.traffic import build_request_stream

CHATS = """
    seed: 7
    duration: 3600
    traffic: {{kind: poisson, rate_per_s: 0.05}}
    tasks:
      - name: chat
        prompt_tokens: {{kind: uniform, min_tokens: 20, max_tokens: 200}}
        output_tokens: {{kind: uniform, min_tokens: 50, max_tokens: 300}}
        reasoning_tokens: {{kind: fixed, tokens: 40}}
        shared_prefix: {{groups: 2, tokens: {{kind: fixed, tokens: 500}}}}
        session: {{turns_min: 2, turns_max: 6, think_time_s: {think}}}
      - name: single
        prompt_tokens: {{kind: fixed, tokens: 100}}
        output_tokens: {{kind: fixed, tokens: 10}}
    deployments:
      api: {{kind: cloud, model: gpt-4o-mini}}
"""


def test_each_turn_sends_the_history_without_hidden_reasoning() -> None:
    stream = build_request_stream(scenario_from(CHATS.format(think=20)).scenario)
    assert stream.session is not None and stream.turn is not None
    assert stream.prefix_tokens is not None and stream.reasoning_tokens is not None
    assert stream.think_s is not None
    sessions = np.unique(stream.session[stream.session >= 0])
    assert len(sessions) > 100
    single = stream.task_index == 1
    assert (stream.session[single] == -1).all()
    for s in sessions[:50]:
        rows = np.flatnonzero(stream.session == s)
        rows = rows[np.argsort(stream.turn[rows])]
        assert list(stream.turn[rows]) == list(range(len(rows)))
        assert stream.think_s[rows[0]] == 0 and (stream.think_s[rows[1:]] > 0).all()
        for before, after in itertools.pairwise(rows):
            visible = stream.output_tokens[before] - stream.reasoning_tokens[before]
            history = stream.prompt_tokens[before] + visible
            # the next turn reads the history as its shared prefix and adds 20-200 tokens
            assert stream.prefix_tokens[after] == history
            assert 20 <= stream.prompt_tokens[after] - history <= 200
            assert stream.reasoning_tokens[after] == 40
    # a session's first turn reads its system prompt (a shared group); later turns read
    # the conversation, whose group is the one the first turn writes
    groups = stream.cache_write_groups()
    assert groups is not None and stream.prefix_group is not None
    later = stream.turn > 0
    assert (stream.prefix_group[later] == groups[later]).all()
    first = (stream.turn == 0) & (stream.session >= 0)
    assert (stream.prefix_group[first] < 2).all() and (groups[first] > 1).all()


ONE_SESSION = """
    seed: 1
    duration: 100
    traffic: {kind: constant, rate_per_s: 0.01}   # one session, starting at 0 s
    tasks:
      - name: chat
        prompt_tokens: {kind: fixed, tokens: 100}
        output_tokens: {kind: fixed, tokens: 10}
        session: {turns_min: 3, turns_max: 3, think_time_s: 0}
    deployments:
      one:
        gpu: H100-SXM
        model: Llama-3.1-8B
        engine: {max_num_seqs: 8}
        step_time: {kind: linear, fixed_ms: 2, per_prefill_token_us: 10,
                    per_decode_seq_us: 100, per_kv_token_ns: 50}
"""


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_a_turn_follows_the_previous_end_and_reads_its_history(mode: str) -> None:
    run, stream = run_first(scenario_from(ONE_SESSION), SimulationMode(mode))
    table = request_table(run, stream)
    assert list(stream.prompt_tokens) == [100, 210, 320]       # + answer 10 + message 100
    assert run.sessions is not None and run.sessions.late == 0
    finish = table.arrival_s + table.e2e_s
    # no pause: each turn is sent the moment the previous answer ends
    np.testing.assert_allclose(table.arrival_s[1:], finish[:-1], rtol=0, atol=1e-12)
    # the history's full 16-token blocks come from the cache: 109 tokens were in the KV
    # cache when turn 0 ended (its last token never is): 96 reused of turn 1's 110-token
    # history; turn 2: 219 in cache, 208 of its 220-token history
    assert run.records.cached_tokens == [0, 96, 208]
    for k, cached in ((1, 96), (2, 208)):
        prefill = stream.prompt_tokens[k] - cached
        assert table.ttft_s[k] == pytest.approx(0.002 + prefill * 1e-5 + cached * 50e-9,
                                                rel=1e-9)


def test_a_slower_server_delays_the_conversation() -> None:
    """Closed loop: later turns wait for the answers, so they are sent later."""
    slow = ONE_SESSION.replace("per_decode_seq_us: 100", "per_decode_seq_us: 100000")
    fast_run, _ = run_first(scenario_from(ONE_SESSION))
    slow_run, _ = run_first(scenario_from(slow))
    assert fast_run.arrival_s is not None and slow_run.arrival_s is not None
    # 9 decode steps per turn, each 0.1 s slower
    assert slow_run.arrival_s[2] - fast_run.arrival_s[2] == pytest.approx(2 * 9 * 0.0999,
                                                                           rel=1e-6)


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_hidden_reasoning_ends_what_the_next_turn_reads_from_the_cache(mode: str) -> None:
    # each answer is 40 reasoning tokens, then 40 visible: the engine computed turn 0 as
    # [prompt 100][reasoning 40][answer 40], and turn 1 sends [prompt 100][answer 40][new
    # 100]: they agree on the prompt only, whose 6 full 16-token blocks are reused (96,
    # not the 128 of a 140-token history); turn 2 reads turn 1's 240-token prompt (15
    # blocks), not its 280-token history (17)
    text = ONE_SESSION.replace("output_tokens: {kind: fixed, tokens: 10}",
                               "output_tokens: {kind: fixed, tokens: 40}\n"
                               "        reasoning_tokens: {kind: fixed, tokens: 40}")
    run, stream = run_first(scenario_from(text), SimulationMode(mode))
    assert list(stream.prompt_tokens) == [100, 240, 380]       # the history: no reasoning
    assert stream.prefix_tokens is not None and list(stream.prefix_tokens[1:]) == [140, 280]
    assert run.records.cached_tokens == [0, 96, 240]
    table = request_table(run, stream)
    prefill = stream.prompt_tokens[1] - 96
    assert table.ttft_s[1] == pytest.approx(0.002 + prefill * 1e-5 + 96 * 50e-9, rel=1e-9)


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_an_agent_loop_keeps_the_reasoning_in_the_history_and_the_cache(mode: str) -> None:
    # the same turns as one agent's tool-call loop: the history keeps each turn's 40
    # reasoning tokens before its 40-token answer. Turn 1 sends [prompt 100][reasoning
    # 40][answer 40][result 100] = 280, turn 2 280 + 80 + 100 = 460; the engine's sequence
    # of turn 0 ([prompt 100][reasoning 40][answer 40], 179 tokens in the KV cache: its
    # last one never is) goes on as the history does, so turn 1 reuses its 11 full
    # 16-token blocks (176 of the 180-token history), turn 2 22 blocks of turn 1's 359
    # (352 of 360)
    text = ONE_SESSION.replace("output_tokens: {kind: fixed, tokens: 10}",
                               "output_tokens: {kind: fixed, tokens: 40}\n"
                               "        reasoning_tokens: {kind: fixed, tokens: 40}") \
        .replace("session: {turns_min", "session: {kind: agent, turns_min")
    run, stream = run_first(scenario_from(text), SimulationMode(mode))
    assert list(stream.prompt_tokens) == [100, 280, 460]
    assert stream.prefix_tokens is not None and list(stream.prefix_tokens[1:]) == [180, 360]
    assert run.records.cached_tokens == [0, 176, 352]
    table = request_table(run, stream)
    prefill = stream.prompt_tokens[2] - 352
    assert table.ttft_s[2] == pytest.approx(0.002 + prefill * 1e-5 + 352 * 50e-9, rel=1e-9)


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_a_turn_without_an_answer_ends_its_conversation(mode: str) -> None:
    # 4 turns of 100, 210, 320, 430 prompt tokens against a 300-token max_model_len: the
    # third is refused as too long, and the fourth, whose history would hold the third's
    # answer, is never sent
    text = ONE_SESSION.replace("turns_min: 3, turns_max: 3", "turns_min: 4, turns_max: 4") \
        .replace("engine: {max_num_seqs: 8}", "engine: {max_num_seqs: 8, max_model_len: 300}")
    loaded = scenario_from(text)
    run, stream = run_first(loaded, SimulationMode(mode))
    assert list(stream.prompt_tokens) == [100, 210, 320, 430]
    table = request_table(run, stream)
    assert [OUTCOME_NAMES[int(o)] for o in table.outcome] == [
        "ok", "ok", "too_long", "conversation_ended"]
    assert table.refused_s[3] == table.refused_s[2] > 0     # it ended when turn 2 was refused
    summary = summarise_run(run, stream, loaded.scenario)
    assert summary.requests.conversation_ended == 1 and summary.requests.too_long == 1
    assert summary.slo.goodput_fraction == pytest.approx(0.5)


FAN_OUT = """
    seed: 2
    duration: 100
    traffic: {kind: constant, rate_per_s: 0.01}   # one agent session, starting at 0 s
    tasks:
      - name: agent
        prompt_tokens: {kind: uniform, min_tokens: 50, max_tokens: 150}
        output_tokens: {kind: uniform, min_tokens: 5, max_tokens: 40}
        session: {kind: agent, turns_min: 3, turns_max: 3, think_time_s: 0, fan_out: 3}
    deployments:
      one:
        gpu: H100-SXM
        model: Llama-3.1-8B
        step_time: {kind: linear, fixed_ms: 2, per_prefill_token_us: 10,
                    per_decode_seq_us: 100, per_kv_token_ns: 50}
"""


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_a_fanned_out_turn_waits_for_all_its_calls(mode: str) -> None:
    run, stream = run_first(scenario_from(FAN_OUT), SimulationMode(mode))
    assert stream.turn is not None and stream.prefix_tokens is not None
    assert list(stream.turn) == [0, 1, 1, 1, 2, 2, 2]
    table = request_table(run, stream)
    finish = table.arrival_s + table.e2e_s
    # the three calls of turn 1 go together when turn 0 ends; turn 2 when all three ended
    np.testing.assert_allclose(table.arrival_s[1:4], finish[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(table.arrival_s[4:], finish[1:4].max(), rtol=0, atol=1e-12)
    assert len(set(finish[1:4].round(9))) > 1          # they did end at different times
    # turn 2's history: turn 1's history plus all three calls' messages and answers
    calls = stream.prompt_tokens[1:4] - stream.prefix_tokens[1:4]
    history = stream.prefix_tokens[1] + calls.sum() + stream.output_tokens[1:4].sum()
    assert (stream.prefix_tokens[4:] == history).all()


def test_an_api_is_priced_for_the_turns_its_limits_stopped() -> None:
    # one conversation of 4 turns against 1 request a minute and no retries: the second
    # turn is refused (429) and ends it; priced at the volume offered, the API pays for
    # the three it did not answer, as it would once its limits let them through
    text = ONE_SESSION.replace("turns_min: 3, turns_max: 3", "turns_min: 4, turns_max: 4")
    text = text[:text.index("    deployments:")] + (
        "    deployments:\n"
        "      api: {kind: cloud, model: gpt-4o-mini, limits: {requests_per_min: 1},\n"
        "            retry: {max_retries: 0}}\n")
    loaded = scenario_from(text)
    run, stream = run_first(loaded)
    table = request_table(run, stream)
    assert [OUTCOME_NAMES[int(o)] for o in table.outcome] == [
        "ok", "throttled", "conversation_ended", "conversation_ended"]
    cloud = summarise_run(run, stream, loaded.scenario).cloud
    assert cloud is not None and cloud.unserved is not None
    assert cloud.unserved.requests == 3
    assert cloud.unserved.input_tokens == int(stream.prompt_tokens[1:].sum())


FANNED_TRACE = """
    seed: 1
    duration: 600
    traffic: {{kind: trace, path: agent.csv}}
    tasks:
      - {{name: agent, prompt_tokens: {{kind: fixed, tokens: 100}},
         output_tokens: {{kind: fixed, tokens: 10}}}}
    deployments:
      one:
        gpu: H100-SXM
        model: Llama-3.1-8B
        engine: {{prefix_caching: {policy}, max_num_seqs: 8}}
        step_time: {{kind: linear, fixed_ms: 2, per_prefill_token_us: 10,
                    per_decode_seq_us: 100, per_kv_token_ns: 50}}
"""


@pytest.mark.parametrize("mode", ["fast", "reference"])
@pytest.mark.parametrize("policy", ["vllm", "per_slot"])
def test_the_turn_after_a_fan_out_reads_only_its_first_call(tmp_path: Path, mode: str,
                                                             policy: str) -> None:
    """Turn 1 fans out into three calls; turn 2's history appends their messages and answers
    in order, so its prompt is the first call's sequence (history 241, message 40, answer
    20) and then the second call's message: what the second and third calls computed past
    their history (the second the longest of the three) is no prefix of it. vLLM's chained
    block hashes find the first call's full computed blocks, (241 + 40 + 20 - 1) // 16 = 18
    (288 tokens); llama.cpp's slot holding the first call shares its 300 computed tokens.
    Both used to read the longest call's 640 as if it were the conversation's."""
    history, calls, message = 241, [(40, 20), (300, 100), (60, 10)], 50
    turn_two = history + sum(m + a for m, a in calls)              # 771
    rows = ["0,200,41,agent,0,0,0,-1,0"]
    rows += [f"1,{history + m},{a},agent,0,1,0,-1,{history}" for m, a in calls]
    rows.append(f"2,{turn_two + message},10,agent,0,2,0,-1,{turn_two}")
    (tmp_path / "agent.csv").write_text(
        "timestamp,prompt_tokens,output_tokens,task,session,turn,think_s,prefix_group,"
        "prefix_tokens\n" + "\n".join(rows) + "\n")
    loaded = scenario_from(FANNED_TRACE.format(policy=policy), base_dir=tmp_path)
    run, stream = run_first(loaded, SimulationMode(mode))
    assert list(stream.prompt_tokens) == [200, 281, 541, 301, 821]
    side = stream.side_calls()
    assert side is not None and list(side) == [False, False, True, True, False]
    assert (request_table(run, stream).outcome == OK).all()
    first_call_computed = history + calls[0][0] + calls[0][1] - 1   # its last token is not
    longest = max(history + m + a - 1 for m, a in calls)            # fed back: 300, 640
    block = 16
    expected = first_call_computed // block * block if policy == "vllm" \
        else first_call_computed
    assert longest // block > first_call_computed // block        # the case tells them apart
    assert run.records.cached_tokens[4] == expected
