"""One JSON line per finished request: the record model, its writer and its readers.

`RequestRecord` is the schema (`llmplan schema --records` prints it): the load test writes
it, calibration, validation and the summary read it back through `read_records`, which
reports file:line:field for a bad or foreign record instead of failing later. Each Locust
process appends to its own `requests.<pid>.jsonl`; `merge` joins them, sorted by send time,
and refuses duplicates. A crash or Ctrl-C loses at most the line being written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmplan.errors import InputError, Problem
from llmplan.jsonl import dumps_line, read_jsonl

ErrorClass = Literal["http_429", "http_4xx", "http_5xx", "connect", "reset", "timeout",
                     "protocol", "stream_error", "cancelled"]
ERROR_CLASSES: tuple[ErrorClass, ...] = ("http_429", "http_4xx", "http_5xx", "connect",
                                         "reset", "timeout", "protocol", "stream_error",
                                         "cancelled")
#: What each error class means (README, report and `llmplan schema --records`).
ERROR_MEANINGS: dict[str, str] = {
    "http_429": "the server throttled the request (HTTP 429)",
    "http_4xx": "the server refused the request (other HTTP 4xx)",
    "http_5xx": "the server failed (HTTP 5xx)",
    "connect": "no connection: refused, unreachable network or host, or DNS failure",
    "reset": "the connection broke after it was made (reset, closed mid-answer)",
    "timeout": "no answer within the target's request_timeout_s",
    "protocol": "the answer was not the expected HTTP / server-sent-events format",
    "stream_error": "the server sent an error object in the middle of the stream",
    "cancelled": "the run stopped (Ctrl-C or --duration) before the answer finished",
}
HINT = ("see `llmplan schema --records`; convert other tools' exports with "
        "`llmplan import-records`")


class RequestRecord(BaseModel):
    """What one request measured. Times are Unix seconds; durations milliseconds."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: int = Field(description="Plan index of the request.")
    task: str
    target: str
    scheduled_ts: float = Field(description="When the plan wanted it sent (Unix s).")
    send_ts: float = Field(description="When it was sent (Unix s).")
    schedule_delay_ms: float = Field(description="send - scheduled: the generator's own lag.")
    status: int = Field(description="HTTP status; 0 when there was none.")
    error_class: ErrorClass | None = Field(
        default=None, description="None: it succeeded; else one of: " + "; ".join(
            f"{k}: {v}" for k, v in ERROR_MEANINGS.items()))
    error: str | None = None
    ttft_ms: float | None = Field(default=None, ge=0,
                                  description="Send to first streamed token.")
    ttft_visible_ms: float | None = Field(
        default=None, ge=0, description="Send to the first token of the visible answer, when the "
                                  "server streamed hidden reasoning first (delta."
                                  "reasoning_content or reasoning); None: no reasoning seen.")
    reasoning_tokens: int | None = Field(
        default=None, ge=0, description="Hidden reasoning tokens (usage.completion_tokens_"
                                        "details.reasoning_tokens, else reasoning chunks).")
    e2e_ms: float | None = Field(default=None, ge=0, description="Send to the last byte.")
    tpot_ms: float | None = Field(default=None, ge=0,
                                  description="(E2E - TTFT) / (tokens - 1).")
    itl_ms: list[Annotated[float, Field(ge=0)]] = Field(
        default_factory=list, description="Every gap between streamed chunks.")
    prompt_tokens: int | None = Field(default=None, ge=0,
                                      description="Prompt tokens, counted by the server.")
    cached_prompt_tokens: int | None = Field(
        default=None, ge=0, description="Prompt tokens the server served from its prompt cache "
                                        "(usage.prompt_tokens_details.cached_tokens, or "
                                        "llama.cpp timings.cache_n); None: not reported.")
    server_prefill_ms: float | None = Field(
        default=None, ge=0, description="The server's own clock on the prompt tokens it "
                                        "computed (llama.cpp timings.prompt_ms): the "
                                        "machine's speed, apart from the network and queue; "
                                        "None: not reported.")
    output_tokens: int | None = Field(default=None, ge=0)
    token_source: Literal["server", "chunks", "none"] = "none"
    token_mismatch: bool = False
    chunks: int = Field(default=0, description="Streamed pieces that carried text.")
    retry_after_s: float | None = None
    correct: bool | None = Field(default=None, description="Test-set check, if the task has one.")
    worker: int = 0

    @model_validator(mode="after")
    def _in_order(self) -> RequestRecord:
        # the first token comes before the last byte (a record in other units, or of
        # another request, would say otherwise)
        if self.ttft_ms is not None and self.e2e_ms is not None \
                and self.ttft_ms > self.e2e_ms * (1 + 1e-9) + 1e-6:
            raise ValueError(f"ttft_ms {self.ttft_ms:g} is after e2e_ms {self.e2e_ms:g}; "
                             "expected the first token at or before the last byte (both "
                             "milliseconds from the send)")
        return self
    session: int | None = Field(default=None, description="The conversation it is a turn "
                                                          "of (None: none).")
    turn: int | None = Field(default=None, description="Its turn number, from 0.")
    warmup: bool = Field(default=False, description="Sent in the warm-up phase: kept out of "
                                                    "requests.jsonl and the statistics.")

    @property
    def ok(self) -> bool:
        return self.error_class is None

    def to_line(self) -> str:
        data = self.model_dump()
        data["itl_ms"] = [round(x, 3) for x in self.itl_ms]
        return dumps_line(data)


class RecordWriter:
    """Append-only JSONL, flushed after every line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = path.open("a", encoding="utf-8", buffering=1)

    def write(self, record: RequestRecord) -> None:
        self._file.write(record.to_line())
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def warmup_records(path: Path) -> list[RequestRecord]:
    """The warm-up requests of a load-test output folder (its warmup.jsonl; none for a
    records file or a run without them): sent first, kept out of the statistics, but the
    server ran them beside the first measured ones."""
    file = path / "warmup.jsonl"
    return read_records(file) if path.is_dir() and file.exists() else []


def read_records(path: Path) -> list[RequestRecord]:
    """The records of one JSONL file (the torn-last-line rule of llmplan.jsonl), validated."""
    records = []
    problems: list[Problem] = []
    for number, data in read_jsonl(path):
        try:
            records.append(RequestRecord.model_validate(data))
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(part) for part in err["loc"])
                problems.append(Problem(str(path), number, field, err["msg"]))
        if len(problems) >= 20:
            break
    if problems:
        raise InputError(problems, title=f"invalid load-test records ({HINT})")
    return records


def records_file(path: Path) -> Path:
    """requests.jsonl of a load-test output folder, or the file itself. A folder whose run
    never joined its senders' records (the launcher was killed) has them joined now."""
    if not path.exists():
        raise InputError([Problem(str(path), None, "", "does not exist; expected the output "
                                  "folder of `llmplan loadtest` or its requests.jsonl")])
    file = path / "requests.jsonl" if path.is_dir() else path
    if not file.exists() and path.is_dir() and any(path.glob("requests.*.jsonl")):
        merge(path)
    if not file.exists():
        raise InputError([Problem(str(file), None, "", "no load-test records here; expected "
                                  "the output folder of `llmplan loadtest` or its "
                                  "requests.jsonl")])
    return file


def merge(out_dir: Path) -> list[RequestRecord]:
    """Join every process's records into out_dir/requests.jsonl, sorted by send time (warm-up
    requests go to warmup.jsonl); returns the measured ones."""
    rows: list[RequestRecord] = []
    parts = sorted(out_dir.glob("requests.*.jsonl"))
    for part in parts:
        rows.extend(read_records(part))
    ids = [r.id for r in rows]
    if len(ids) != len(set(ids)):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:10]
        raise ValueError(f"duplicate request ids across workers: {dupes}")
    rows.sort(key=lambda r: (r.send_ts, r.id))
    warm = [r for r in rows if r.warmup]
    rows = [r for r in rows if not r.warmup]
    write_records(rows, out_dir / "requests.jsonl")
    if warm:
        write_records(warm, out_dir / "warmup.jsonl")
    for part in parts:
        part.unlink()
    return rows


def write_records(rows: list[RequestRecord], path: Path) -> Path:
    """All records to one JSONL file, atomically (a reader never sees half a file)."""
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(row.to_line())
    tmp.replace(path)
    return path
