"""Conversations against the real llama.cpp server: each turn is sent after the previous
answer, with the real history (the answers the server gave) in front, and the server's slot
cache answers that history."""

from __future__ import annotations

import itertools
from pathlib import Path

from helpers import scenario_from
from lt_helpers import read_jsonl

from llmplan.loadtests.llamacpp_server import LlamaCppServer
from llmplan.loadtests.plan import build_plan
from llmplan.loadtests.runner import LoadTestSettings, run_load_test
from llmplan.loadtests.targets import Target

CHATS = """
    seed: 4
    duration: 600
    traffic: {kind: constant, rate_per_s: 0.25}      # a conversation every 4 s
    tasks:
      - name: chat
        prompt_tokens: {kind: fixed, tokens: 30}
        output_tokens: {kind: fixed, tokens: 8}
        session: {turns_min: 3, turns_max: 3, think_time_s: 0.5}
    deployments: {x: {gpu: L4, model: SmolLM2-135M}}
"""


def test_turns_follow_the_answers_and_resend_the_history(tmp_path: Path,
                                                         llamacpp: LlamaCppServer) -> None:
    plan = build_plan(scenario_from(CHATS), max_requests=9, salt="sessions")
    assert [(p.session, p.turn) for p in plan if p.session == 0] == [(0, 0), (0, 1), (0, 2)]
    assert {p.session for p in plan} == {0, 1, 2}
    target = Target(kind="llamacpp", base_url=llamacpp.base_url, model="smollm2")
    result = run_load_test("local", target, plan, LoadTestSettings(users=4, duration_s=90),
                           tmp_path / "chats")
    rows = read_jsonl(tmp_path / "chats" / "requests.jsonl")
    assert len(rows) == 9 and all(r["error_class"] is None for r in rows), rows
    by_turn = {(r["session"], r["turn"]): r for r in rows}
    assert set(by_turn) == {(s, t) for s in range(3) for t in range(3)}
    for s in range(3):
        for t in (1, 2):
            before, after = by_turn[(s, t - 1)], by_turn[(s, t)]
            ended = float(before["send_ts"]) + float(before["e2e_ms"]) / 1e3
            think = next(p.think_s for p in plan if (p.session, p.turn) == (s, t))
            # sent only once the previous answer was in, after the pause
            assert float(after["send_ts"]) >= ended + think - 0.02
            # the history went with it: the server counted the earlier prompt, its answer
            # and the new message, and took (nearly) all the history from the slot's cache
            assert int(after["prompt_tokens"]) > int(before["prompt_tokens"]) + 30
            assert int(after["cached_prompt_tokens"]) >= 0.9 * int(before["prompt_tokens"])
    assert result.summary.cache is not None and result.summary.cache.warning is None


def test_an_agent_turn_fanned_out_waits_for_all_its_calls(tmp_path: Path,
                                                          llamacpp: LlamaCppServer) -> None:
    agents = CHATS.replace("session: {turns_min: 3, turns_max: 3, think_time_s: 0.5}",
                           "session: {kind: agent, turns_min: 3, turns_max: 3, "
                           "think_time_s: 0.2, fan_out: 2}")
    plan = build_plan(scenario_from(agents), max_requests=10, salt="agents")
    assert [(p.session, p.turn) for p in plan if p.session == 0] == [
        (0, 0), (0, 1), (0, 1), (0, 2), (0, 2)]
    target = Target(kind="llamacpp", base_url=llamacpp.base_url, model="smollm2")
    run_load_test("local", target, plan, LoadTestSettings(users=4, duration_s=90),
                  tmp_path / "agents")
    rows = read_jsonl(tmp_path / "agents" / "requests.jsonl")
    assert len(rows) == 10 and all(r["error_class"] is None for r in rows), rows
    for s in (0, 1):
        turns = [[r for r in rows if (r["session"], r["turn"]) == (s, t)] for t in range(3)]
        assert [len(t) for t in turns] == [1, 2, 2]
        for t, (before, after) in enumerate(itertools.pairwise(turns), start=1):
            ended = max(float(r["send_ts"]) + float(r["e2e_ms"]) / 1e3 for r in before)
            think = next(p.think_s for p in plan if (p.session, p.turn) == (s, t))
            # every call of the next step waits for every call of this one, and the pause
            assert all(float(r["send_ts"]) >= ended + think - 0.02 for r in after)
            # and carries all of them in its history
            assert min(int(r["prompt_tokens"]) for r in after) > \
                sum(int(r["prompt_tokens"]) for r in before) / len(before) + 30


def test_a_turn_the_server_refuses_ends_its_conversation(tmp_path: Path,
                                                         llamacpp: LlamaCppServer) -> None:
    # 180-token messages in a 512-token slot: the third turn (about 560 tokens of history
    # and message) is refused, and the fourth, whose history would hold an answer that
    # never came, is not sent (the simulator's `conversation_ended`)
    long = CHATS.replace("tokens: 30}", "tokens: 180}").replace(
        "turns_min: 3, turns_max: 3", "turns_min: 4, turns_max: 4")
    plan = build_plan(scenario_from(long), max_requests=4, salt="refused")
    assert [(p.session, p.turn) for p in plan] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    target = Target(kind="llamacpp", base_url=llamacpp.base_url, model="smollm2")
    result = run_load_test("local", target, plan, LoadTestSettings(users=2, duration_s=60),
                           tmp_path / "refused")
    rows = sorted(read_jsonl(tmp_path / "refused" / "requests.jsonl"), key=lambda r: r["turn"])
    assert [r["turn"] for r in rows] == [0, 1, 2], rows
    assert [r["error_class"] is None for r in rows] == [True, True, False], rows
    assert result.summary.requests.not_sent == 1
