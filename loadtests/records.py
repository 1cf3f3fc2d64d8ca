"""One JSON line per finished request, written and flushed as it completes.

Each Locust process appends to its own `requests.<pid>.jsonl`; `merge` joins them, sorted by
send time, and refuses duplicates. A crash or Ctrl-C loses at most the line being written.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

ERROR_CLASSES = ("http_429", "http_4xx", "http_5xx", "connect", "reset", "timeout", "protocol")


@dataclass
class RequestRecord:
    """What one request measured. Times are Unix seconds; durations milliseconds."""

    id: int                     # plan index
    task: str
    target: str
    scheduled_ts: float         # when the plan wanted it sent
    send_ts: float
    schedule_delay_ms: float    # send - scheduled (the generator's own lag)
    status: int                 # HTTP status, 0 when there was none
    error_class: str | None     # None, or one of ERROR_CLASSES
    error: str | None = None
    ttft_ms: float | None = None
    e2e_ms: float | None = None
    tpot_ms: float | None = None
    itl_ms: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    token_source: str = "none"  # server | chunks | none
    token_mismatch: bool = False
    chunks: int = 0             # streamed pieces that carried text
    retry_after_s: float | None = None
    correct: bool | None = None  # test-set check, when the task has one
    worker: int = 0

    def to_json(self) -> str:
        data = asdict(self)
        data["itl_ms"] = [round(x, 3) for x in self.itl_ms]
        return json.dumps(data, separators=(",", ":"))


class RecordWriter:
    """Append-only JSONL, flushed after every line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = path.open("a", encoding="utf-8", buffering=1)

    def write(self, record: RequestRecord) -> None:
        self._file.write(record.to_json() + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of one JSONL file; a torn last line (killed mid-write) is skipped."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def merge(out_dir: Path) -> list[dict[str, Any]]:
    """Join every process's records into out_dir/requests.jsonl, sorted by send time."""
    rows: list[dict[str, Any]] = []
    parts = sorted(out_dir.glob("requests.*.jsonl"))
    for part in parts:
        rows.extend(read_records(part))
    ids = [r["id"] for r in rows]
    if len(ids) != len(set(ids)):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:10]
        raise ValueError(f"duplicate request ids across workers: {dupes}")
    rows.sort(key=lambda r: (r["send_ts"], r["id"]))
    merged = out_dir / "requests.jsonl"
    tmp = merged.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, separators=(",", ":")) + "\n")
    tmp.replace(merged)
    for part in parts:
        part.unlink()
    return rows
