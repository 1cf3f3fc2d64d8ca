"""Server-sent events done right: event/id/retry lines, comments, CRLF, multi-line data, and
error objects in the middle of a stream (classed `stream_error`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeOpenAI
from lt_helpers import llmplan, read_jsonl, targets_file

from llmplan.loadtests.sse import Event, events


def test_parser_follows_the_event_stream_rules() -> None:
    lines = [b": comment\r\n", b"event: update\r\n", b"id: 7\n", b"data: {\"a\":\n",
             b"data: 1}\n", b"\n", b"retry: 100\n", b"\n", b"data:no-space\n", b"\n",
             b"data: last without a blank line"]
    assert list(events(lines)) == [Event("update", '{"a":\n1}'), Event("message", "no-space"),
                                   Event("message", "last without a blank line")]


def _run(tmp_path: Path, fake: FakeOpenAI, model: str) -> tuple[int, list[dict[str, object]]]:
    targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                           "model": model, "request_timeout_s": 10})
    out = tmp_path / model
    result = llmplan("loadtest", "--targets", str(targets), "--target", "fake",
                     "--prompt-tokens", "8", "--output-tokens", "6", "--concurrency", "2",
                     "--requests", "6", "--duration", "30s", "--out", str(out))
    return result.returncode, read_jsonl(out / "requests.jsonl")


def test_a_rich_event_stream_is_measured_token_by_token(tmp_path: Path) -> None:
    with FakeOpenAI(token_delay_s=0.002) as fake:
        code, rows = _run(tmp_path, fake, "sse-rich")
    assert code == 0
    assert len(rows) == 6
    for row in rows:
        assert row["error_class"] is None, row
        assert row["chunks"] == 6 and len(row["itl_ms"]) == 5     # type: ignore[arg-type]
        assert row["output_tokens"] == 6 and not row["token_mismatch"]
        assert row["cached_prompt_tokens"] == 3 and row["server_prefill_ms"] == 12.5


def test_hidden_reasoning_is_timed_and_the_first_visible_token_kept_apart(
        tmp_path: Path) -> None:
    with FakeOpenAI(token_delay_s=0.01) as fake:
        code, rows = _run(tmp_path, fake, "reasoning")
    assert code == 0 and len(rows) == 6
    for row in rows:
        # 5 hidden + 6 visible tokens, every one timed: TTFT is the first hidden token,
        # the visible answer starts 5 token gaps later
        assert row["error_class"] is None, row
        assert row["reasoning_tokens"] == FakeOpenAI.THINK and row["output_tokens"] == 11
        assert row["chunks"] == 11 and not row["token_mismatch"]
        ttft, visible = float(row["ttft_ms"]), float(row["ttft_visible_ms"])  # type: ignore[arg-type]
        gaps = row["itl_ms"][:FakeOpenAI.THINK]                                # type: ignore[index]
        assert visible == pytest.approx(ttft + sum(gaps), abs=0.5)
        assert visible - ttft >= 4 * 10.0
    summary = json.loads((tmp_path / "reasoning" / "summary.json").read_text())
    assert summary["latency"]["ttft_visible_ms"]["count"] == 6


def test_reasoning_an_api_withholds_delays_the_first_token_not_the_pace(
        tmp_path: Path) -> None:
    with FakeOpenAI(token_delay_s=0.01) as fake:
        code, rows = _run(tmp_path, fake, "reasoning-withheld")
    assert code == 0 and len(rows) == 6
    for row in rows:
        # 5 hidden tokens generated but never sent, then 6 visible ones: the first chunk
        # is the answer's, and the pace is over the 6 tokens that streamed
        assert row["error_class"] is None, row
        assert row["reasoning_tokens"] == FakeOpenAI.THINK and row["output_tokens"] == 11
        assert row["chunks"] == 6 and not row["token_mismatch"]
        ttft = float(row["ttft_ms"])                                   # type: ignore[arg-type]
        assert row["ttft_visible_ms"] == ttft and ttft >= (FakeOpenAI.THINK + 1) * 10.0
        assert float(row["tpot_ms"]) >= 9.0                            # type: ignore[arg-type]


def test_error_objects_mid_stream_are_stream_errors(tmp_path: Path) -> None:
    with FakeOpenAI(token_delay_s=0.002) as fake:
        for model, message in (("stream-error", "CUDA out of memory"),
                               ("event-error", "engine overloaded")):
            code, rows = _run(tmp_path, fake, model)
            assert code == 3                                  # nothing succeeded
            assert [r["error_class"] for r in rows] == ["stream_error"] * 6
            assert all(message in str(r["error"]) and r["chunks"] == 2 for r in rows)
            summary = json.loads((tmp_path / model / "summary.json").read_text())
            assert summary["requests"]["errors_by_class"]["stream_error"] == 6
