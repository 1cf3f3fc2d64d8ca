"""Public LLM traces into the trace file the scenario replays (`traffic: {kind: trace}`).

Formats, as their publishers describe them:

* ``azure``: the Azure LLM inference traces (AzurePublicDataset, 2023 conversation/code
  and the 2024 week-long files): CSV with ``TIMESTAMP`` (a date-time; 2023 files carry 7
  fractional digits and no zone, 2024 files a +00:00 zone), ``ContextTokens`` and
  ``GeneratedTokens``.
* ``burstgpt``: BurstGPT (HPMLL): CSV with ``Timestamp`` (seconds from the trace's start),
  ``Model``, ``Request tokens``, ``Response tokens``, ``Total tokens`` and ``Log Type``;
  failed requests have 0 response tokens and are left out unless asked for.
* ``mooncake``: the Mooncake (FAST'25) traces: JSONL of ``timestamp`` (milliseconds from the
  first request), ``input_length``, ``output_length`` and ``hash_ids`` (one id per 512-token
  block of the prompt; shared ids are shared prefixes). A request's shared prefix is the
  longest run of leading blocks it has in common with an earlier request (its group: its
  first block's id), written as ``prefix_group``/``prefix_tokens`` for the simulator's
  prefix caches; the ids themselves are kept in a ``hash_ids`` column.
* ``sharegpt``: ShareGPT-style conversations (a JSON list of ``{"conversations": [{"from":
  "human"|"gpt", "value": TEXT}, ...]}``): no times and no token counts. Each human turn
  becomes a request whose prompt is the whole conversation so far (earlier answers
  included) plus the new message, and whose output is the reply; tokens are estimated at
  `chars_per_token` characters each; conversations start as a Poisson process at
  `sessions_per_s`, and each later turn is written as a turn of its conversation
  (``session``, ``turn``, ``think_s``, its history as ``prefix_tokens``): the simulator
  sends it `think_s` after the previous answer ended.

Every malformed row is reported with its file, line (or conversation index) and column.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from llmplan.errors import InputError, Problem
from llmplan.traffic.trace import MAX_TOKENS

FORMATS = ("azure", "burstgpt", "mooncake", "sharegpt")


@dataclass(frozen=True)
class TraceRow:
    timestamp_s: float
    prompt_tokens: int
    output_tokens: int
    task: str = ""
    hash_ids: tuple[int, ...] = field(default=())
    prefix_group: int = -1        # shared prefix (a Mooncake block chain), -1: none
    prefix_tokens: int = 0        # its length; a conversation's turn: its history
    session: int = -1             # conversation (ShareGPT), -1: none
    turn: int = 0
    think_s: float = 0.0


@dataclass(frozen=True)
class ShareGptOptions:
    sessions_per_s: float = 0.1
    think_s: float = 30.0
    chars_per_token: float = 4.0
    seed: int = 0


def _problem(path: Path, line: int | None, column: str, message: str) -> InputError:
    return InputError([Problem(str(path), line, column, message)])


def _csv_rows(path: Path, columns: tuple[str, ...]) -> Iterable[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise _problem(path, 1, ", ".join(missing),
                           f"missing column(s); expected a header with {', '.join(columns)} "
                           f"(found: {', '.join(reader.fieldnames or []) or 'nothing'})")
        yield from enumerate(reader, start=2)


def _int(path: Path, line: int, column: str, value: Any, minimum: int = 0) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        real = float(value)
        number = int(real)
        if real != number or abs(number) > MAX_TOKENS:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise _problem(path, line, column, f"expected a whole number up to {MAX_TOKENS:,}, "
                                           f"got {value!r}") from None
    if number < minimum:
        raise _problem(path, line, column, f"expected at least {minimum}, got {number}")
    return number


def _float(path: Path, line: int, column: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _problem(path, line, column, f"expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise _problem(path, line, column, f"expected a finite number, got {value!r}")
    return number


def read_azure(path: Path) -> list[TraceRow]:
    rows = []
    for line, row in _csv_rows(path, ("TIMESTAMP", "ContextTokens", "GeneratedTokens")):
        text = (row["TIMESTAMP"] or "").strip()
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise _problem(path, line, "TIMESTAMP", f"expected a date-time such as "
                           f"2024-05-10 00:00:00.009930+00:00, got {text!r}") from None
        rows.append(TraceRow(when.timestamp(),
                             _int(path, line, "ContextTokens", row["ContextTokens"], 1),
                             _int(path, line, "GeneratedTokens", row["GeneratedTokens"], 1)))
    return rows


def read_burstgpt(path: Path, include_failed: bool = False) -> list[TraceRow]:
    rows = []
    columns = ("Timestamp", "Model", "Request tokens", "Response tokens")
    for line, row in _csv_rows(path, columns):
        output = _int(path, line, "Response tokens", row["Response tokens"])
        if output == 0 and not include_failed:
            continue                      # a failed request (the publishers' convention)
        rows.append(TraceRow(_float(path, line, "Timestamp", row["Timestamp"]),
                             _int(path, line, "Request tokens", row["Request tokens"], 1),
                             max(1, output), task=task_name(str(row["Model"] or ""))))
    return rows


def task_name(model: str) -> str:
    """A trace's model name as a task name a scenario accepts (letters, digits and _ . -,
    not first): "GPT 4 Turbo" -> "GPT-4-Turbo"; "" stays "" (no task)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", model.strip()).strip("-_.")
    return name


def read_mooncake(path: Path) -> list[TraceRow]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise _problem(path, line, "", f"not valid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise _problem(path, line, "", "expected a JSON object per line")
            for key in ("timestamp", "input_length", "output_length"):
                if key not in row:
                    raise _problem(path, line, key, "missing")
            ids = row.get("hash_ids", [])
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise _problem(path, line, "hash_ids", "expected a list of integers")
            rows.append(TraceRow(_float(path, line, "timestamp", row["timestamp"]) / 1e3,
                                 _int(path, line, "input_length", row["input_length"], 1),
                                 _int(path, line, "output_length", row["output_length"], 1),
                                 hash_ids=tuple(ids)))
    return _block_prefixes(rows)


MOONCAKE_BLOCK_TOKENS = 512


def _block_prefixes(rows: list[TraceRow]) -> list[TraceRow]:
    """Each request's shared prefix: its leading blocks also led an earlier request (in
    time order), walked through a trie of every block chain seen so far."""
    children: dict[tuple[int, int], int] = {}     # (node, block id) -> node
    out = []
    for row in sorted(rows, key=lambda r: r.timestamp_s):
        node, depth = 0, 0
        for block in row.hash_ids:
            child = children.get((node, block))
            if child is None:
                break
            node, depth = child, depth + 1
        for block in row.hash_ids[depth:]:
            child = len(children) + 1
            children[(node, block)] = child
            node = child
        shared = min(depth * MOONCAKE_BLOCK_TOKENS, row.prompt_tokens)
        out.append(replace(row, prefix_group=row.hash_ids[0] if row.hash_ids else -1,
                           prefix_tokens=shared))
    return out


def read_sharegpt(path: Path, options: ShareGptOptions | None = None) -> list[TraceRow]:
    options = options or ShareGptOptions()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _problem(path, exc.lineno, "", f"not valid JSON: {exc.msg}") from None
    if not isinstance(data, list):
        raise _problem(path, 1, "", "expected a JSON list of conversations")
    rng = np.random.default_rng(options.seed)
    start = 0.0
    rows = []

    def tokens(text: str) -> int:
        return max(1, math.ceil(len(text) / options.chars_per_token))

    for index, item in enumerate(data):
        where = f"[{index}].conversations"
        turns = item.get("conversations") if isinstance(item, dict) else None
        if not isinstance(turns, list):
            raise _problem(path, None, f"[{index}]", "expected an object with a "
                           "'conversations' list")
        start += float(rng.exponential(1.0 / options.sessions_per_s))
        history = 0
        turn_number = 0
        answered = -1          # the index of the last answer taken as a question's reply
        for k, turn in enumerate(turns):
            if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
                raise _problem(path, None, f"{where}[{k}]",
                               "expected {\"from\": ..., \"value\": ...}")
            speaker, text = turn["from"], str(turn["value"])
            if speaker in {"human", "user"}:
                reply = turns[k + 1] if k + 1 < len(turns) else None
                if not isinstance(reply, dict) or reply.get("from") not in {"gpt", "assistant",
                                                                           "chatgpt", "bard"}:
                    history += tokens(text)
                    continue          # a question with no answer: nothing was generated
                prompt = history + tokens(text)
                answer = tokens(str(reply.get("value", "")))
                rows.append(TraceRow(start + turn_number * options.think_s, prompt, answer,
                                     task="chat", prefix_tokens=history if turn_number else 0,
                                     session=index, turn=turn_number,
                                     think_s=options.think_s if turn_number else 0.0))
                turn_number += 1
                history = prompt + answer
                answered = k + 1
            elif speaker not in {"gpt", "assistant", "chatgpt", "bard", "system"}:
                raise _problem(path, None, f"{where}[{k}].from",
                               f"expected human/user, gpt/assistant or system, got {speaker!r}")
            elif speaker == "system" or k != answered:
                # a system prompt, or an assistant message no question asked for (a
                # greeting that opens the conversation): part of what later prompts resend
                history += tokens(text)
    return rows


def write_trace(rows: list[TraceRow], out: Path) -> Path:
    """The replayable trace CSV: times from 0, sorted; `hash_ids` when the source had them."""
    if not rows:
        raise InputError([Problem(str(out), None, "", "the source had no usable requests")])
    ordered = sorted(rows, key=lambda r: r.timestamp_s)
    t0 = ordered[0].timestamp_s
    with_ids = any(r.hash_ids for r in ordered)
    prefixes = any(r.prefix_tokens for r in ordered)
    sessions = any(r.session >= 0 for r in ordered)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "prompt_tokens", "output_tokens", "task"]
                        + (["prefix_group", "prefix_tokens"] if prefixes else [])
                        + (["session", "turn", "think_s"] if sessions else [])
                        + (["hash_ids"] if with_ids else []))
        for r in ordered:
            writer.writerow([f"{r.timestamp_s - t0:.6f}", r.prompt_tokens, r.output_tokens,
                             r.task]
                            + ([r.prefix_group, r.prefix_tokens] if prefixes else [])
                            + ([r.session, r.turn, f"{r.think_s:g}"] if sessions else [])
                            + ([" ".join(map(str, r.hash_ids))] if with_ids else []))
    return out
