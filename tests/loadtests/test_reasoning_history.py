"""A chat's next turn sends back the visible answer only, an agent loop's its thinking too,
as simulated.

The simulation's history of a chat's turn k holds the earlier prompts and visible answers:
hidden reasoning is dropped (chat templates do); an agent loop's keeps it. A load test of
a reasoning task against a plain server (the bundled llama.cpp model has no reasoning
parser) asks for reasoning + answer tokens with ignore_eos and gets them all as text; a
chat's turn sent back whole would grow every later prompt by the earlier turns' reasoning,
a workload the simulation never saw, and an agent loop's cut to the answer would not.
"""

from __future__ import annotations

import html
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeOpenAI
from helpers import scenario_from
from lt_helpers import llmplan, targets_file

from llmplan.loadtests.clients import Timing
from llmplan.loadtests.plan import build_plan
from llmplan.traffic import build_request_stream

THINKING_CHAT = """
    seed: 1
    duration: 100
    traffic: {kind: constant, rate_per_s: 0.01}   # one conversation, starting at 0 s
    tasks:
      - name: chat
        prompt_tokens: {kind: fixed, tokens: 100}
        output_tokens: {kind: fixed, tokens: 4}
        reasoning_tokens: {kind: fixed, tokens: 3}
        session: {turns_min: 3, turns_max: 3, think_time_s: 0}
    deployments:
      api: {kind: cloud, model: gpt-6-sol}
"""


def test_the_planned_thinking_is_kept_out_of_the_next_turns_history() -> None:
    loaded = scenario_from(THINKING_CHAT)
    stream = build_request_stream(loaded.scenario)
    plan = build_plan(loaded)
    assert [(p.turn, p.max_tokens, p.reasoning_tokens) for p in plan] == [
        (0, 7, 3), (1, 7, 3), (2, 7, 3)]
    assert stream.prefix_tokens is not None
    # the simulated history of turn 1: turn 0's 100-token prompt and its 4 visible tokens
    visible = int(stream.prefix_tokens[1] - stream.prompt_tokens[0])
    assert visible == 4
    # a plain server streams the 7 tokens as text, one chunk each
    plain = Timing()
    for i in range(plan[0].max_tokens):
        plain.token(f" t{i}")
    sent_back = plain.answer(plan[0].reasoning_tokens)
    assert sent_back == " t3 t4 t5 t6" and len(sent_back.split()) == visible
    # a reasoning server streams the thinking apart: the text is all answer
    parsed = Timing()
    for i in range(plan[0].max_tokens):
        if i < 3:
            parsed.thought(f" r{i}")
        else:
            parsed.token(f" a{i}")
    assert parsed.answer(plan[0].reasoning_tokens) == " a3 a4 a5 a6"


def test_a_task_without_reasoning_sends_its_whole_answer_back() -> None:
    loaded = scenario_from(THINKING_CHAT.replace(
        "        reasoning_tokens: {kind: fixed, tokens: 3}\n", ""))
    plan = build_plan(loaded)
    assert all(p.reasoning_tokens == 0 and p.max_tokens == 4 for p in plan)
    timing = Timing()
    for i in range(4):
        timing.token(f" t{i}")
    assert timing.answer(plan[0].reasoning_tokens) == " t0 t1 t2 t3"


def _answers_sent_back(tmp_path: Path, text: str, name: str) -> list[list[str]]:
    """Per request of a load test of scenario `text` against a plain fake server, the
    assistant messages its history sent back."""
    scenario = tmp_path / f"{name}.yaml"
    scenario.write_text(textwrap.dedent(text))
    with FakeOpenAI() as fake:
        targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                               "model": "ok"})
        result = llmplan("loadtest", str(scenario), "--targets", str(targets), "--target",
                         "fake", "--duration", "30s", "--out", str(tmp_path / name))
        bodies = list(fake.bodies)
    assert result.returncode == 0, result.stderr
    return [[m["content"] for m in body["messages"] if m["role"] == "assistant"]
            for body in bodies]


def test_a_load_test_sends_back_what_the_simulation_counts(tmp_path: Path) -> None:
    """End to end against a plain server: each later turn's history carries the earlier
    answers' 4 visible tokens, not the 3 planned thinking tokens written before them."""
    answers = _answers_sent_back(tmp_path, THINKING_CHAT, "thinking-chat")
    assert len(answers) == 3
    assert answers == [[], [" t3 t4 t5 t6"], [" t3 t4 t5 t6"] * 2]


def test_an_agent_loop_sends_its_planned_thinking_back(tmp_path: Path) -> None:
    """The same turns as one agent's tool-call loop: the simulated history keeps each
    turn's 3 thinking tokens before its 4-token answer (7 per turn), and the load test
    against a plain server sends back all 7 tokens it wrote, not the last 4."""
    text = THINKING_CHAT.replace("session: {turns_min", "session: {kind: agent, turns_min")
    loaded = scenario_from(text)
    stream = build_request_stream(loaded.scenario)
    assert stream.prefix_tokens is not None
    assert int(stream.prefix_tokens[1] - stream.prompt_tokens[0]) == 7
    assert all(p.keeps_reasoning for p in build_plan(loaded))
    answers = _answers_sent_back(tmp_path, text, "thinking-agent")
    whole = "".join(f" t{i}" for i in range(7))
    assert answers == [[], [whole], [whole] * 2]


def _bodies(tmp_path: Path, text: str, name: str, model: str) -> list[dict[str, Any]]:
    """The JSON bodies a load test of scenario `text` sent a fake server as `model`."""
    scenario = tmp_path / f"{name}.yaml"
    scenario.write_text(textwrap.dedent(text))
    with FakeOpenAI() as fake:
        targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                               "model": model})
        result = llmplan("loadtest", str(scenario), "--targets", str(targets), "--target",
                         "fake", "--duration", "30s", "--out", str(tmp_path / name))
        bodies = list(fake.bodies)
    assert result.returncode == 0, result.stderr
    return bodies


@pytest.mark.parametrize("kind", ["agent", "chat"])
def test_a_reasoning_server_s_thinking_goes_back_as_the_engines_read_it(
        tmp_path: Path, kind: str) -> None:
    """Against a server that streams the thinking apart (delta.reasoning_content, as vLLM's
    reasoning parsers and llama.cpp's --reasoning-format do), an agent step's answer goes
    back with the thinking the server streamed in the fields llama.cpp (reasoning_content)
    and vLLM (reasoning) read on an assistant message, the answer as the arguments of a
    tool call whose result is the next step's message, since the templates render an
    earlier answer's reasoning only inside a tool-call chain (Qwen3: after the last user
    message; gpt-oss: with tool calls); a chat's turn sends back its answer alone after a
    user message, as before."""
    text = THINKING_CHAT if kind == "chat" else THINKING_CHAT.replace(
        "session: {turns_min", "session: {kind: agent, turns_min")
    bodies = _bodies(tmp_path, text, f"reasoning-{kind}", "reasoning")
    assert len(bodies) == 3
    think = FakeOpenAI.THINK
    # the fake streams THINK reasoning chunks, then max_tokens (7) answer chunks
    thought = "".join(f" r{i}" for i in range(think))
    answer = "".join(f" a{i}" for i in range(think, think + 7))
    assert [len(b["messages"]) for b in bodies] == [1, 3, 5]
    last = bodies[2]["messages"]
    assert [m["role"] for m in last] == (["user", "assistant", "tool", "assistant", "tool"]
                                         if kind == "agent" else
                                         ["user", "assistant", "user", "assistant", "user"])
    for body in bodies[1:]:
        assert body["messages"][:len(body["messages"]) - 2] == last[:len(body["messages"]) - 2]
    replies = [m for m in last if m["role"] == "assistant"]
    if kind == "chat":
        assert replies == [{"role": "assistant", "content": answer}] * 2
        return
    for reply, result in ((last[1], last[2]), (last[3], last[4])):
        assert reply["reasoning_content"] == reply["reasoning"] == thought
        # the answer is the call's: gpt-oss's template refuses content and thinking together
        (call,) = reply["tool_calls"]
        assert reply["content"] == "" and call["type"] == "function"
        assert call["function"]["name"] == "next_step"
        assert json.loads(call["function"]["arguments"]) == {"answer": answer}
        assert result["tool_call_id"] == call["id"]
    assert last[1]["tool_calls"][0]["id"] != last[3]["tool_calls"][0]["id"]
    # each step's new message is its own prompt, sent as the earlier call's result
    assert [b["messages"][-1]["content"] for b in bodies] == [last[0]["content"],
                                                               last[2]["content"],
                                                               last[4]["content"]]


@pytest.mark.parametrize(("kind", "target", "said"), [
    ("agent", {"kind": "openai", "base_url": "https://api.openai.com", "model": "gpt-5",
               "allow_remote": True, "reasoning_effort": "low"}, "OpenAI's chat API"),
    ("agent", {"kind": "bedrock", "base_url": "http://127.0.0.1:9", "model": "claude",
               "bedrock_thinking": True}, "Converse"),
    # DeepSeek-R1 on Bedrock streams its reasoning without bedrock_thinking (a Claude
    # sent none does not think): either way the text alone goes back
    ("agent", {"kind": "bedrock", "base_url": "http://127.0.0.1:9",
               "model": "us.deepseek.r1-v1:0"}, "Converse"),
    ("agent", {"kind": "vllm", "base_url": "http://127.0.0.1:9", "model": "m"}, None),
    ("chat", {"kind": "openai", "base_url": "https://api.openai.com", "model": "gpt-5",
              "allow_remote": True}, None)])
def test_a_run_says_when_its_agent_history_cannot_carry_the_thinking(
        kind: str, target: dict[str, Any], said: str | None) -> None:
    """OpenAI's chat API returns no reasoning, and Converse takes a Claude's thinking back
    only with its signature: an agent session's 3 steps that think (their 3 planned tokens,
    kept in the simulated history) are sent back without it, and the run's summary says so;
    a server that streams it, or a chat that drops it anyway, gets no note."""
    from llmplan.loadtests.clients import history_note
    from llmplan.loadtests.report import render
    from llmplan.loadtests.summary import summarise_records
    from llmplan.loadtests.targets import Target

    text = THINKING_CHAT if kind == "chat" else THINKING_CHAT.replace(
        "session: {turns_min", "session: {kind: agent, turns_min")
    plan = build_plan(scenario_from(text))
    note = history_note(Target(**target), plan)
    if said is None:
        assert note is None
        return
    assert note is not None and said in note and note.startswith("3 agent-step requests")
    summary = summarise_records([], planned=3, planned_span_s=1.0, slo_by_task={},
                                mode="open").model_copy(update={"history_note": note})
    assert html.escape(note) in render(summary, [], "run", {})
