"""Public traces in their published formats become replayable traces; bad rows are named."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import run_first, scenario_from
from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.errors import InputError
from llmplan.sim.table import request_table
from llmplan.traffic import build_request_stream
from llmplan.traffic.imports import (
    ShareGptOptions,
    read_azure,
    read_burstgpt,
    read_mooncake,
    read_sharegpt,
    write_trace,
)
from llmplan.traffic.trace import read_trace


def _written(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_azure_2023_and_2024_timestamps(tmp_path: Path) -> None:
    old = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    old.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                   "2023-11-16 18:15:46.6805900,374,44\n"
                   "2023-11-16 18:15:50.9951690,396,109\n")
    new = tmp_path / "AzureLLMInferenceTrace_code_1week.csv"
    new.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                   "2024-05-10 00:00:00.009930+00:00,2162,5\n"
                   "2024-05-10 00:00:01.509930+00:00,2399,14\n")
    rows = read_azure(old)
    assert [(r.prompt_tokens, r.output_tokens) for r in rows] == [(374, 44), (396, 109)]
    assert rows[1].timestamp_s - rows[0].timestamp_s == pytest.approx(4.314579, abs=1e-5)
    later = read_azure(new)
    assert later[1].timestamp_s - later[0].timestamp_s == pytest.approx(1.5)
    written = _written(write_trace(rows, tmp_path / "trace.csv"))
    assert [w["timestamp"] for w in written] == ["0.000000", "4.314579"]


def test_burstgpt_leaves_failed_requests_out_and_keeps_the_model(tmp_path: Path) -> None:
    path = tmp_path / "BurstGPT_1.csv"
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                    "5,ChatGPT,472,18,490,Conversation log\n"
                    "45,ChatGPT,1087,0,1087,Conversation log\n"
                    "118,GPT-4,417,276,693,API log\n")
    rows = read_burstgpt(path)
    assert [(r.timestamp_s, r.prompt_tokens, r.output_tokens, r.task) for r in rows] == [
        (5.0, 472, 18, "ChatGPT"), (118.0, 417, 276, "GPT-4")]
    assert len(read_burstgpt(path, include_failed=True)) == 3


def test_mooncake_milliseconds_and_prefix_blocks(tmp_path: Path) -> None:
    path = tmp_path / "conversation_trace.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 655, "output_length": 52, '
                    '"hash_ids": [46, 47]}\n'
                    '{"timestamp": 10535, "input_length": 672, "output_length": 26, '
                    '"hash_ids": [46, 47]}\n')
    rows = read_mooncake(path)
    assert [r.timestamp_s for r in rows] == [0.0, 10.535]
    written = _written(write_trace(rows, tmp_path / "trace.csv"))
    assert written[1]["hash_ids"] == "46 47" and written[1]["prompt_tokens"] == "672"


def test_mooncake_shared_blocks_become_shared_prefixes(tmp_path: Path) -> None:
    path = tmp_path / "mooncake.jsonl"
    lines = [(0, 1200, [1, 2, 3]), (1000, 1100, [1, 2, 9]), (2000, 700, [1, 2, 3, 4]),
             (3000, 300, [5]), (4000, 2000, [1, 8])]
    path.write_text("".join(json.dumps({"timestamp": t, "input_length": n,
                                        "output_length": 10, "hash_ids": ids}) + "\n"
                            for t, n, ids in lines))
    rows = read_mooncake(path)
    # leading blocks in common with any earlier request, 512 tokens each (at most the prompt)
    assert [(r.prefix_group, r.prefix_tokens) for r in rows] == [
        (1, 0), (1, 1024), (1, 700), (5, 0), (1, 512)]
    trace = write_trace(rows, tmp_path / "trace.csv")
    loaded = scenario_from(f"""
        duration: 100
        traffic: {{kind: trace, path: {trace}}}
        tasks: [{{name: t, prompt_tokens: {{kind: fixed, tokens: 1}},
                 output_tokens: {{kind: fixed, tokens: 1}}}}]
        deployments: {{x: {{gpu: L4, model: Qwen3-0.6B}}}}
    """)
    stream = build_request_stream(loaded.scenario)
    assert stream.prefix_group is not None and stream.prefix_tokens is not None
    assert list(stream.prefix_tokens) == [0, 1024, 700, 0, 512]


def test_sharegpt_conversations_replay_closed_loop(tmp_path: Path) -> None:
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps([{"conversations": [
        {"from": "human", "value": "x" * 400}, {"from": "gpt", "value": "y" * 200},
        {"from": "human", "value": "z" * 100}, {"from": "gpt", "value": "w" * 40},
        {"from": "human", "value": "v" * 80}, {"from": "gpt", "value": "u" * 40}]}]))
    rows = read_sharegpt(path, ShareGptOptions(sessions_per_s=1.0, think_s=5.0))
    assert [(r.session, r.turn, r.prefix_tokens) for r in rows] == [
        (0, 0, 0), (0, 1, 150), (0, 2, 185)]
    trace = write_trace(rows, tmp_path / "trace.csv")
    loaded = scenario_from(f"""
        duration: 100
        traffic: {{kind: trace, path: {trace}}}
        tasks: [{{name: chat, prompt_tokens: {{kind: fixed, tokens: 1}},
                 output_tokens: {{kind: fixed, tokens: 1}}}}]
        deployments:
          x:
            gpu: H100-SXM
            model: Llama-3.1-8B
            step_time: {{kind: linear, fixed_ms: 2, per_prefill_token_us: 10,
                        per_decode_seq_us: 100, per_kv_token_ns: 50}}
    """)
    run, stream = run_first(loaded)
    assert stream.session is not None and list(stream.turn) == [0, 1, 2]
    table = request_table(run, stream)
    # each turn 5 s after the previous answer, reading its history from the prefix cache
    finish = table.arrival_s + table.e2e_s
    np.testing.assert_allclose(table.arrival_s[1:], finish[:-1] + 5.0, rtol=1e-12)
    assert run.records.cached_tokens[1] == 144 and run.records.cached_tokens[2] == 176
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,prompt_tokens,output_tokens,prefix_group,prefix_tokens\n"
                   "0,100,5,1,400\n")
    with pytest.raises(InputError, match=r"bad\.csv:2: prefix_tokens: expected between 0"):
        read_trace(bad)


def test_sharegpt_turns_carry_their_history(tmp_path: Path) -> None:
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps([
        {"id": "a", "conversations": [
            {"from": "human", "value": "x" * 40}, {"from": "gpt", "value": "y" * 80},
            {"from": "human", "value": "z" * 20}, {"from": "gpt", "value": "w" * 8}]},
        {"id": "b", "conversations": [{"from": "human", "value": "q" * 4}]}]))
    rows = read_sharegpt(path, ShareGptOptions(sessions_per_s=1.0, think_s=10.0))
    # turn 1: 10 prompt / 20 output tokens; turn 2: 10 + 20 + 5 history and message, 2 out
    assert [(r.prompt_tokens, r.output_tokens) for r in rows] == [(10, 20), (35, 2)]
    assert rows[1].timestamp_s - rows[0].timestamp_s == pytest.approx(10.0)


def test_a_sharegpt_greeting_before_the_first_question_is_in_every_prompt(
        tmp_path: Path) -> None:
    """A conversation the assistant opens ("Hi! How can I help?"): its greeting is part of
    what the first question's request, and every later one, sends."""
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps([{"id": "c", "conversations": [
        {"from": "gpt", "value": "g" * 12}, {"from": "human", "value": "x" * 40},
        {"from": "gpt", "value": "y" * 80}, {"from": "human", "value": "z" * 20},
        {"from": "gpt", "value": "w" * 8}]}]))
    rows = read_sharegpt(path, ShareGptOptions(sessions_per_s=1.0, think_s=10.0))
    # greeting 3 tokens; turn 1: 3 + 10 in, 20 out; turn 2: 3 + 10 + 20 + 5 in, 2 out
    assert [(r.prompt_tokens, r.output_tokens) for r in rows] == [(13, 20), (38, 2)]


@pytest.mark.parametrize(("reader", "name", "text", "line", "column"), [
    (read_azure, "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n", 2,
     "TIMESTAMP"),
    (read_azure, "a.csv", "TIMESTAMP,ContextTokens\n2024-05-10 00:00:00,1\n", 1,
     "GeneratedTokens"),
    (read_burstgpt, "b.csv", "Timestamp,Model,Request tokens,Response tokens\n1,m,ten,2\n", 2,
     "Request tokens"),
    (read_mooncake, "m.jsonl", '{"timestamp": 0, "input_length": 5}\n', 1, "output_length"),
    (read_mooncake, "m.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 1, '
     '"hash_ids": "x"}\n', 1, "hash_ids"),
])
def test_a_bad_row_is_named_by_file_line_and_column(
        tmp_path: Path, reader: Callable[[Path], object], name: str, text: str, line: int,
        column: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        reader(path)
    problem = caught.value.problems[0]
    assert (problem.file, problem.line, problem.path) == (str(path), line, column)


def test_a_bad_conversation_is_named_by_its_index(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps([{"conversations": [{"from": "robot", "value": "hi"}]}]))
    with pytest.raises(InputError) as caught:
        read_sharegpt(path)
    assert caught.value.problems[0].path == "[0].conversations[0].from"


def test_the_cli_writes_a_trace_a_scenario_replays(tmp_path: Path) -> None:
    source = tmp_path / "BurstGPT_1.csv"
    source.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                      + "".join(f"{i * 2},ChatGPT,{300 + i},{20 + i},0,Conversation log\n"
                                for i in range(50)))
    trace = tmp_path / "trace.csv"
    result = CliRunner().invoke(app, ["import-trace", "burstgpt", str(source), "--out",
                                      str(trace)])
    assert result.exit_code == 0, result.output
    assert "kind: trace" in result.output and "ChatGPT" in result.output
    loaded = scenario_from(f"""
        duration: 200
        traffic: {{kind: trace, path: {trace}}}
        tasks: [{{name: ChatGPT, prompt_tokens: {{kind: fixed, tokens: 1}},
                 output_tokens: {{kind: fixed, tokens: 1}}}}]
        deployments: {{x: {{gpu: L4, model: Qwen3-0.6B}}}}
    """)
    stream = build_request_stream(loaded.scenario)
    assert len(stream) == 50 and stream.prompt_tokens[3] == 303
    assert stream.arrival_s[1] == pytest.approx(2.0)
    bad = CliRunner().invoke(app, ["import-trace", "azure", str(source)])
    assert bad.exit_code == 2 and "TIMESTAMP" in bad.output


def test_a_model_name_becomes_a_task_name_a_scenario_accepts(tmp_path: Path) -> None:
    from llmplan.traffic.imports import task_name

    assert task_name("GPT 4 Turbo") == "GPT-4-Turbo"
    assert task_name(" Modèle/Ü ") == "Mod-le"
    assert task_name("ChatGPT") == "ChatGPT" and task_name("") == ""
    path = tmp_path / "b.csv"
    path.write_text("Timestamp,Model,Request tokens,Response tokens\n1,GPT 4 Turbo,10,2\n")
    assert [r.task for r in read_burstgpt(path)] == ["GPT-4-Turbo"]


def test_a_spreadsheets_byte_order_mark_is_not_part_of_the_first_column(
        tmp_path: Path) -> None:
    # Excel writes UTF-8 CSVs with a BOM: "TIMESTAMP" must still be found
    path = tmp_path / "azure.csv"
    path.write_bytes("\ufeffTIMESTAMP,ContextTokens,GeneratedTokens\n"
                     "2023-11-16 18:15:46.6805900,374,44\n".encode())
    assert [(r.prompt_tokens, r.output_tokens) for r in read_azure(path)] == [(374, 44)]


@pytest.mark.parametrize("tokens", ["3.7", "inf", "99999999999999999999999", "1e400"])
def test_a_token_count_that_is_no_whole_count_is_named_not_truncated(
        tmp_path: Path, tokens: str) -> None:
    trace = tmp_path / "azure.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                     f"2023-11-16 18:15:46.6805900,{tokens},44\n")
    with pytest.raises(InputError, match=r"azure\.csv:2: ContextTokens: expected a whole "
                                         r"number up to 100,000,000"):
        read_azure(trace)
    own = tmp_path / "own.csv"
    own.write_text(f"timestamp,prompt_tokens,output_tokens\n0,{tokens},10\n")
    with pytest.raises(InputError, match=r"own\.csv:2: prompt_tokens: expected a whole"):
        read_trace(own)
