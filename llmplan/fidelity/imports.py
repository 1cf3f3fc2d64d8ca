"""`llmplan import-records`: other load tools' per-request exports as our request records.

So a run someone already has can be calibrated, validated and summarised here:

- AIPerf `profile_export.jsonl` (one JSON object per request: `metadata.request_start_ns`,
  `metrics.{time_to_first_token, request_latency, inter_chunk_latency, input_sequence_length,
  output_sequence_length}` with their units, `error.{code, type, message}`);
- GuideLLM's benchmark report (`benchmarks.json`: `benchmarks[].requests.{successful,
  errored, incomplete}[]` with `prompt_tokens`, `output_tokens` and either
  `info.timings.{request_start, first_token_iteration, last_token_iteration, request_end}`,
  `scheduler_info.request_timings.{request_start, first_iteration, last_iteration,
  request_end}` or the oldest `start_time`, `first_token_time`, `last_token_time`,
  `end_time`); each
  benchmark (load level) becomes its own run folder;
- `vllm bench serve --save-result --save-detailed` JSON (parallel lists `input_lens`,
  `output_lens`, `ttfts`, `itls`, `start_times`, `errors`, in seconds).

Definitions differ (README, "Names across tools"): AIPerf's inter_chunk_latency and vLLM's
itls are our ITL (every gap between streamed chunks); GuideLLM keeps no per-token times, so
its records have no ITL and cannot be calibrated from (validation and summaries work).
Every problem names the file, the line or index, and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llmplan.errors import InputError, Problem
from llmplan.jsonl import read_jsonl
from llmplan.loadtests.records import ErrorClass, RequestRecord

Converter = Callable[[Path], list[tuple[str, list[RequestRecord]]]]
_SCALE_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3, "sec": 1e3}


class _FieldError(ValueError):
    """A field that is missing or of the wrong kind (converted into a Problem)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _get(data: Any, path: str, kind: type | tuple[type, ...] = (int, float),
         required: bool = True) -> Any:
    value = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        if required:
            raise _FieldError(path, "missing")
        return None
    if (kind in ((int, float), float, int) and isinstance(value, bool)) or \
            not isinstance(value, kind):
        raise _FieldError(path, f"expected {getattr(kind, '__name__', 'a number')}, got "
                         f"{type(value).__name__}")
    return value


def error_class_for(status: int, kind: str, message: str = "") -> ErrorClass:
    """Another tool's error, in our classes (records.ERROR_MEANINGS)."""
    text = f"{kind} {message}".lower()
    if status == 0 and (code := re.search(r"\b([45]\d\d)\b", text)):
        status = int(code.group(1))           # "Server error 500": the status is in the text
    if status == 499 or "cancel" in text:
        return "cancelled"
    if status == 429:
        return "http_429"
    if 400 <= status < 500:
        return "http_4xx"
    if status >= 500:
        return "http_5xx"
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if any(word in text for word in ("connect", "refused", "unreachable", "name or service",
                                     "getaddrinfo", "dns")):
        return "connect"
    if "reset" in text or "disconnect" in text or "incomplete" in text:
        return "reset"
    return "protocol"


def _record(index: int, target: str, send_ts: float, **fields: Any) -> RequestRecord:
    ttft, e2e, n = fields.get("ttft_ms"), fields.get("e2e_ms"), fields.get("output_tokens")
    if ttft is not None and e2e is not None and n and n > 1 and fields.get("error_class") is None:
        fields["tpot_ms"] = (e2e - ttft) / (n - 1)
    itl = fields.get("itl_ms") or []
    fields.setdefault("chunks", len(itl) + 1 if ttft is not None and fields.get(
        "error_class") is None else 0)
    try:
        return RequestRecord(id=index, task="imported", target=target, scheduled_ts=send_ts,
                             send_ts=send_ts, schedule_delay_ms=0.0,
                             status=fields.pop("status", 200),
                             token_source="server" if n is not None else "none", **fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ImportedRecordError(index, ".".join(str(p) for p in err["loc"]) or "record",
                                  str(err["msg"]).removeprefix("Value error, ")) from None


class ImportedRecordError(ValueError):
    """A request of an export that makes no valid record (a negative or NaN time, a first
    token after the last byte: another unit, or a broken export)."""

    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(f"request {index}: {field}: {message}")
        self.index, self.field, self.message = index, field, message


def _ms(metric: Any, field: str) -> float | list[float] | None:
    """An AIPerf metric value in milliseconds (its `unit` says what it was)."""
    if metric is None:
        return None
    if not isinstance(metric, dict) or "value" not in metric:
        raise _FieldError(field, "expected {value, unit}")
    unit = str(metric.get("unit", "ms")).lower()
    if unit not in _SCALE_TO_MS:
        raise _FieldError(f"{field}.unit", f"unknown time unit {unit!r}")
    scale, value = _SCALE_TO_MS[unit], metric["value"]
    if isinstance(value, list):
        return [float(v) * scale for v in value]
    return float(value) * scale


def from_aiperf(path: Path) -> list[tuple[str, list[RequestRecord]]]:
    rows: list[RequestRecord] = []
    problems: list[Problem] = []
    for number, data in read_jsonl(path):
        try:
            meta = _get(data, "metadata", dict)
            if meta.get("benchmark_phase", "profiling") != "profiling":
                continue                                  # warm-up requests stay out
            start_ns = _get(data, "metadata.request_start_ns", int)
            metrics = data.get("metrics") or {}
            index = int(meta.get("session_num", number))
            error = data.get("error")
            tokens_in = (metrics.get("usage_prompt_tokens") or      # the server's count
                         metrics.get("input_sequence_length") or
                         metrics.get("error_isl") or {}).get("value")
            cached = (metrics.get("usage_prompt_cache_read_tokens") or {}).get("value")
            credit_ns = meta.get("credit_issued_ns")
            scheduled = credit_ns / 1e9 if isinstance(credit_ns, int) else start_ns / 1e9
            if error or meta.get("was_cancelled"):
                error = error or {}
                status = int(error.get("code") or 0)
                end_ns = meta.get("request_end_ns")
                rows.append(_record(
                    index, "aiperf", start_ns / 1e9, status=status,
                    error_class=error_class_for(status, str(error.get("type", "")),
                                                str(error.get("message", ""))),
                    error=f"{error.get('type', '')}: {error.get('message', '')}"[:500],
                    e2e_ms=(end_ns - start_ns) / 1e6 if isinstance(end_ns, int) else None,
                    prompt_tokens=tokens_in))
                continue
            ttft = _ms(metrics.get("time_to_first_token"), "metrics.time_to_first_token")
            e2e = _ms(metrics.get("request_latency"), "metrics.request_latency")
            itl = _ms(metrics.get("inter_chunk_latency"), "metrics.inter_chunk_latency") or []
            out = (metrics.get("usage_completion_tokens") or
                   metrics.get("output_sequence_length") or
                   metrics.get("output_token_count") or {}).get("value")
            if not isinstance(ttft, float) or not isinstance(e2e, float):
                raise _FieldError("metrics.time_to_first_token", "a finished request needs "
                                                          "time_to_first_token and "
                                                          "request_latency")
            record = _record(index, "aiperf", start_ns / 1e9, ttft_ms=ttft, e2e_ms=e2e,
                             itl_ms=itl if isinstance(itl, list) else [itl],
                             prompt_tokens=tokens_in, output_tokens=out,
                             cached_prompt_tokens=cached)
            record.scheduled_ts = min(scheduled, record.send_ts)
            record.schedule_delay_ms = (record.send_ts - record.scheduled_ts) * 1e3
            rows.append(record)
        except (_FieldError, ValueError, TypeError) as exc:
            field = exc.field if isinstance(exc, _FieldError) else ""
            problems.append(Problem(str(path), number, field, str(exc)))
            if len(problems) >= 20:
                break
    _raise(problems, "AIPerf profile_export.jsonl")
    return [("", rows)]


def _guidellm_requests(benchmark: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    requests = benchmark.get("requests") or {}
    for status in ("successful", "errored", "incomplete"):
        for item in requests.get(status) or []:
            yield status, item


def _guidellm_times(item: dict[str, Any]) -> tuple[float, float | None, float | None,
                                                   float | None]:
    """(start, first token, last token, end): GuideLLM has kept them in three layouts."""
    timings = ((item.get("info") or {}).get("timings") or
               (item.get("scheduler_info") or {}).get("request_timings") or {})
    if timings.get("request_start") is not None:
        return (float(timings["request_start"]),
                timings.get("first_token_iteration", timings.get("first_iteration")),
                timings.get("last_token_iteration", timings.get("last_iteration")),
                timings.get("request_end"))
    return (float(_get(item, "start_time")), item.get("first_token_time"),
            item.get("last_token_time"), item.get("end_time"))


def from_guidellm(path: Path) -> list[tuple[str, list[RequestRecord]]]:
    data = _load_json(path)
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benchmarks, list) or not benchmarks:
        raise InputError([Problem(str(path), None, "benchmarks",
                                  "expected a GuideLLM report with a `benchmarks` list")])
    runs = []
    problems: list[Problem] = []
    for b, benchmark in enumerate(benchmarks):
        rows = []
        for i, (status, item) in enumerate(_guidellm_requests(benchmark)):
            where = f"benchmarks[{b}].requests.{status}[{i}]"
            try:
                start, first, last, end = _guidellm_times(item)
                prompt = item.get("prompt_tokens")
                out = item.get("output_tokens")
                if status == "successful":
                    if first is None or end is None:
                        raise _FieldError("info.timings.first_token_iteration", "missing")
                    rows.append(_record(
                        i, "guidellm", start, ttft_ms=(float(first) - start) * 1e3,
                        e2e_ms=(float(last if last is not None else end) - start) * 1e3,
                        prompt_tokens=prompt, output_tokens=out,
                        chunks=int(out or 1)))
                else:
                    message = str((item.get("info") or {}).get("error") or
                                  item.get("error") or status)
                    cls: ErrorClass = "cancelled" if status == "incomplete" else \
                        error_class_for(0, message)
                    rows.append(_record(i, "guidellm", start, status=0, error_class=cls,
                                        error=message[:500], prompt_tokens=prompt,
                                        e2e_ms=(float(end) - start) * 1e3 if end else None))
            except (_FieldError, ValueError, TypeError) as exc:
                field = exc.field if isinstance(exc, _FieldError) else ""
                problems.append(Problem(str(path), None, f"{where}.{field}".rstrip("."),
                                        str(exc)))
        runs.append((f"benchmark-{b:02d}" if len(benchmarks) > 1 else "", rows))
    _raise(problems, "GuideLLM benchmark report")
    return runs


def from_vllm_bench(path: Path) -> list[tuple[str, list[RequestRecord]]]:
    data = _load_json(path)
    if not isinstance(data, dict) or "ttfts" not in data or "itls" not in data:
        raise InputError([Problem(str(path), None, "ttfts",
                                  "expected `vllm bench serve --save-result --save-detailed` "
                                  "JSON (lists ttfts, itls, input_lens, output_lens, "
                                  "start_times)")])
    if not isinstance(data.get("start_times"), list):
        raise InputError([Problem(str(path), None, "start_times",
                                  "missing: per-request send times are needed to rebuild the "
                                  "server's steps; use a vLLM version whose --save-detailed "
                                  "writes start_times")])
    n = len(data["ttfts"])
    rows = []
    problems: list[Problem] = []
    for field in ("itls", "input_lens", "output_lens", "start_times"):
        if len(data.get(field) or []) != n:
            problems.append(Problem(str(path), None, field, f"expected {n} entries like ttfts"))
    _raise(problems, "vllm bench serve result")
    errors = data.get("errors") or [""] * n
    for i in range(n):
        start = float(data["start_times"][i])
        if errors[i]:
            rows.append(_record(i, "vllm-bench", start, status=0,
                                error_class=error_class_for(0, str(errors[i])),
                                error=str(errors[i])[:500], prompt_tokens=data["input_lens"][i]))
            continue
        itl = [float(x) * 1e3 for x in data["itls"][i]]
        ttft = float(data["ttfts"][i]) * 1e3
        rows.append(_record(i, "vllm-bench", start, ttft_ms=ttft, e2e_ms=ttft + sum(itl),
                            itl_ms=itl, prompt_tokens=int(data["input_lens"][i]),
                            output_tokens=int(data["output_lens"][i])))
    return [("", rows)]


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from None
    except ValueError as exc:
        raise InputError([Problem(str(path), None, "", f"not JSON: {exc}")]) from None


def _raise(problems: list[Problem], what: str) -> None:
    if problems:
        raise InputError(problems, title=f"cannot import this {what}")


FORMATS: dict[str, Converter] = {"aiperf": from_aiperf, "guidellm": from_guidellm,
                                 "vllm-bench": from_vllm_bench}


def detect_format(path: Path) -> str:
    """Which tool wrote `path` (by its content), or an InputError listing what is known."""
    try:
        head = path.read_text(encoding="utf-8")[:200_000].lstrip()
    except OSError as exc:
        raise InputError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from None
    first = head.split("\n", 1)[0]
    if '"metadata"' in first and '"metrics"' in first:
        return "aiperf"
    if '"benchmarks"' in head:
        return "guidellm"
    if '"ttfts"' in head and '"itls"' in head:
        return "vllm-bench"
    raise InputError([Problem(str(path), None, "", "not an export this command knows; "
                              f"expected one of: {', '.join(FORMATS)} (give --format)")])


def import_records(path: Path, fmt: str | None = None) -> list[tuple[str, list[RequestRecord]]]:
    """(run folder suffix, records) for each run in another tool's export."""
    name = fmt or detect_format(path)
    if name not in FORMATS:
        raise InputError([Problem("<command line>", None, "--format",
                                  f"unknown format {name!r}; expected one of: "
                                  f"{', '.join(FORMATS)}")])
    return FORMATS[name](path)


def write_imported(path: Path, out_dir: Path, fmt: str | None = None) -> list[
        tuple[Path, list[RequestRecord]]]:
    """Convert an export into run folders (requests.jsonl + summary.json each)."""
    from llmplan.loadtests.records import write_records
    from llmplan.loadtests.summary import summarise_records

    written = []
    try:
        imported = list(import_records(path, fmt))
    except ImportedRecordError as bad:
        raise InputError([Problem(str(path), None, f"request {bad.index}: {bad.field}",
                                  f"{bad.message}; expected times in the export's own units "
                                  f"(--format), none negative or NaN")],
                         title="export cannot become records") from None
    for suffix, rows in imported:
        folder = out_dir / suffix if suffix else out_dir
        folder.mkdir(parents=True, exist_ok=True)
        rows.sort(key=lambda r: (r.send_ts, r.id))
        write_records(rows, folder / "requests.jsonl")
        summary = summarise_records(rows, planned=len(rows), planned_span_s=0.0,
                                    slo_by_task={}, mode="imported")
        (folder / "summary.json").write_text(summary.model_dump_json(indent=1),
                                             encoding="utf-8")
        written.append((folder, rows))
    return written
