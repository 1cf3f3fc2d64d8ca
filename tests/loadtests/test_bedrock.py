"""Bedrock: boto3 ConverseStream against a loopback server speaking the event-stream protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeBedrock, event_message
from lt_helpers import llmplan, read_jsonl, targets_file

DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_SESSION_TOKEN": "testing", "AWS_EC2_METADATA_DISABLED": "true"}


def test_event_stream_framing_round_trips_through_botocore() -> None:
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(event_message("contentBlockDelta", {"delta": {"text": "hi"}}))
    message = next(iter(buffer))
    assert message.headers[":event-type"] == "contentBlockDelta"
    assert json.loads(message.payload) == {"delta": {"text": "hi"}}


def test_bedrock_stream_usage_and_throttling(tmp_path: Path, scenario_file: Path) -> None:
    with FakeBedrock(token_delay_s=0.002) as fake:
        targets = targets_file(
            tmp_path,
            llama={"kind": "bedrock", "base_url": fake.base_url,
                   "model": "us.meta.llama3-1-8b-instruct-v1:0"},
            throttled={"kind": "bedrock", "base_url": fake.base_url, "model": "throttle-me"})
        for name in ("llama", "throttled"):
            result = llmplan("loadtest", str(scenario_file), "--targets", str(targets),
                             "--target", name, "--duration", "30s", "--users", "4",
                             "--time-scale", "0.1", "--max-requests", "10",
                             "--out", str(tmp_path / name), env=DUMMY_AWS)
            assert result.returncode == (0 if name == "llama" else 3), result.stderr
    ok = read_jsonl(tmp_path / "llama" / "requests.jsonl")
    assert len(ok) == 10 and all(r["error_class"] is None for r in ok)
    plan = {p["index"]: p for p in json.loads((tmp_path / "llama" / "plan.json").read_text())}
    for row in ok:
        assert row["output_tokens"] == plan[row["id"]]["max_tokens"]   # metadata.usage
        assert row["token_source"] == "server" and not row["token_mismatch"]
        assert row["ttft_ms"] > 0 and len(row["itl_ms"]) == row["output_tokens"] - 1
    throttled = read_jsonl(tmp_path / "throttled" / "requests.jsonl")
    assert len(throttled) == 10
    assert all(r["error_class"] == "http_429" and r["status"] == 429 for r in throttled)
    assert all("ThrottlingException" in r["error"] for r in throttled)


def test_bedrock_reasoning_is_timed_as_hidden_tokens(tmp_path: Path) -> None:
    """DeepSeek-R1 (or Claude thinking) on Bedrock streams its thinking as reasoningContent
    deltas before the answer's text, and metadata.usage.outputTokens counts both. A call of
    12 tokens, 5 of them thinking, 10 ms apart: TTFT is the first thinking token, the answer
    starts 5 gaps later, every one of the 12 tokens is a timed chunk and TPOT is the 10 ms
    pace (counting the thinking but not timing it would put 7 chunks against 12 tokens and
    spread 6 gaps over 11: TPOT about 5.5 ms)."""
    with FakeBedrock(token_delay_s=0.01) as fake:
        targets = targets_file(tmp_path, r1={"kind": "bedrock", "base_url": fake.base_url,
                                             "model": "us.deepseek.r1-v1:0"})
        result = llmplan("loadtest", "--targets", str(targets), "--target", "r1",
                         "--prompt-tokens", "8", "--output-tokens", "12", "--concurrency",
                         "2", "--requests", "4", "--duration", "30s",
                         "--out", str(tmp_path / "r1"), env=DUMMY_AWS)
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(tmp_path / "r1" / "requests.jsonl")
    assert len(rows) == 4
    think = FakeBedrock.THINK
    for row in rows:
        assert row["error_class"] is None, row
        assert row["output_tokens"] == 12 and row["reasoning_tokens"] == think
        assert row["chunks"] == 12 and not row["token_mismatch"]
        ttft, visible = float(row["ttft_ms"]), float(row["ttft_visible_ms"])
        assert visible == pytest.approx(ttft + sum(row["itl_ms"][:think]), abs=0.5)
        assert visible - ttft >= think * 10.0
        assert float(row["tpot_ms"]) >= 9.0


THINKING = """
name: thinking
seed: 3
duration: 60
traffic: {kind: constant, rate_per_s: 2}
tasks:
  - {name: plain, prompt_tokens: {kind: fixed, tokens: 8},
     output_tokens: {kind: fixed, tokens: 6}}
  - {name: short, prompt_tokens: {kind: fixed, tokens: 8},
     output_tokens: {kind: fixed, tokens: 6}, reasoning_tokens: {kind: fixed, tokens: 40}}
  - {name: long, prompt_tokens: {kind: fixed, tokens: 8},
     output_tokens: {kind: fixed, tokens: 6}, reasoning_tokens: {kind: fixed, tokens: 1500}}
slo: {ttft_ms: 60000}
deployments:
  api: {kind: cloud, model: claude-sonnet-4.5}
"""


@pytest.mark.parametrize("thinking", [True, False])
def test_claude_on_bedrock_is_asked_to_think_as_planned(tmp_path: Path,
                                                        thinking: bool) -> None:
    """A reasoning task's requests to a Claude on Bedrock ask for extended thinking, its
    budget the planned reasoning (1,500) or Anthropic's minimum, 1,024 (for 40), the cap
    that budget plus the 6 visible tokens, and no temperature, which thinking refuses; a
    plain task's stay greedy and capped at their answer. Without bedrock_thinking every
    request is a plain one: Claude answers without thinking."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text(THINKING)
    with FakeBedrock(token_delay_s=0.0) as fake:
        targets = targets_file(tmp_path, claude={
            "kind": "bedrock", "base_url": fake.base_url, "bedrock_thinking": thinking,
            "model": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"})
        result = llmplan("loadtest", str(scenario), "--targets", str(targets), "--target",
                         "claude", "--max-requests", "9", "--concurrency", "3",
                         "--duration", "30s", "--out", str(tmp_path / "out"), env=DUMMY_AWS)
        assert result.returncode == 0, result.stderr
        sent = list(fake.bodies)
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert len(sent) == len(plan) and {p["task"] for p in plan} == {"plain", "short", "long"}
    by_cap = {}
    for body in sent:
        config = body["inferenceConfig"]
        think = (body.get("additionalModelRequestFields") or {}).get("thinking")
        if think is None:
            assert config["temperature"] == 0
        else:
            assert "temperature" not in config and think["type"] == "enabled"
            assert config["maxTokens"] == think["budget_tokens"] + 6
        by_cap[config["maxTokens"]] = think
    if thinking:
        assert by_cap == {6: None, 1024 + 6: {"type": "enabled", "budget_tokens": 1024},
                          1500 + 6: {"type": "enabled", "budget_tokens": 1500}}
    else:
        assert by_cap == {6: None, 40 + 6: None, 1500 + 6: None}
