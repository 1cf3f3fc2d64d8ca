"""Records with a schema: bad or foreign files are named file:line:field (never a traceback),
and other tools' exports convert into records that calibrate and validate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synth import COEF, poisson_workload, write_run
from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.fidelity.calibrate import calibrate
from llmplan.fidelity.imports import write_imported
from llmplan.loadtests.records import RequestRecord, read_records

RUN = CliRunner()


def flat(text: str) -> str:
    """Without whitespace: rich wraps long lines anywhere, even inside paths."""
    return "".join(text.split())


def _rows() -> list[RequestRecord]:
    return poisson_workload(seed=4, n=200, rate=6.0, prompt=(10, 80), output=(2, 40))


def test_schema_names_every_field_and_error_class() -> None:
    result = RUN.invoke(app, ["schema", "--records"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    for field in ("send_ts", "ttft_ms", "itl_ms", "cached_prompt_tokens", "error_class"):
        assert field in schema["properties"]
    assert "cancelled" in result.stdout and "stream_error" in result.stdout
    assert set(schema["required"]) == {"id", "task", "target", "scheduled_ts", "send_ts",
                                       "schedule_delay_ms", "status"}


def test_missing_optional_fields_are_fine_and_missing_required_ones_are_named(
        tmp_path: Path) -> None:
    rows = [json.loads(r.to_line()) for r in _rows()[:5]]
    del rows[0]["error_class"]                # optional: None (succeeded)
    del rows[2]["send_ts"]                    # required
    rows[3]["latency_ms"] = 12                # a foreign key
    path = tmp_path / "run" / "requests.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for command in (["calibrate", str(path.parent), "--out", str(tmp_path / "c.yaml")],
                    ["validate", str(path.parent), "--calibration", str(tmp_path / "c.yaml")]):
        result = RUN.invoke(app, command)
        assert result.exit_code == 2, result.output
        text = flat(result.output)
        assert flat(f"{path}:3: send_ts: Field required") in text
        assert flat(f"{path}:4: latency_ms: Extra inputs are not permitted") in text
        assert flat("llmplan import-records") in text and "Traceback" not in result.output
        assert not isinstance(result.exception, KeyError)


def test_a_directory_without_records_is_named(tmp_path: Path) -> None:
    result = RUN.invoke(app, ["calibrate", str(tmp_path)])
    assert result.exit_code == 2 and flat("no load-test records here") in flat(result.output)


def _aiperf_line(r: RequestRecord, i: int) -> dict[str, object]:
    start_ns = int(r.send_ts * 1e9)
    return {"metadata": {"session_num": i, "x_request_id": f"req-{i}", "turn_index": 0,
                         "request_start_ns": start_ns,
                         "request_end_ns": start_ns + int((r.e2e_ms or 0) * 1e6),
                         "benchmark_phase": "profiling", "was_cancelled": False},
            "metrics": {"input_sequence_length": {"value": r.prompt_tokens, "unit": "tokens"},
                        "time_to_first_token": {"value": r.ttft_ms, "unit": "ms"},
                        "request_latency": {"value": r.e2e_ms, "unit": "ms"},
                        "inter_chunk_latency": {"value": r.itl_ms, "unit": "ms"},
                        "output_sequence_length": {"value": r.output_tokens,
                                                   "unit": "tokens"}},
            "error": None}


def test_aiperf_export_imports_and_calibrates(tmp_path: Path) -> None:
    rows = _rows()
    lines = [_aiperf_line(r, i) for i, r in enumerate(rows)]
    lines.append({"metadata": {"session_num": 999, "request_start_ns": int(2000e9),
                               "request_end_ns": int(2000.5e9), "was_cancelled": True},
                  "metrics": {"error_isl": {"value": 20, "unit": "tokens"}},
                  "error": {"code": 499, "type": "RequestCancellationError",
                            "message": "cancelled"}})
    lines.append({"metadata": {"session_num": 1000, "request_start_ns": int(2001e9),
                               "benchmark_phase": "warmup"}, "metrics": {}, "error": None})
    export = tmp_path / "profile_export.jsonl"
    export.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = RUN.invoke(app, ["import-records", str(export), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    imported = read_records(tmp_path / "run" / "requests.jsonl")
    assert len(imported) == len(rows) + 1                  # the warm-up one stays out
    assert next(r for r in imported if not r.ok).error_class == "cancelled"
    calibration = calibrate(tmp_path / "run", slots=64)
    assert calibration.step_time.per_decode_seq_us == pytest.approx(COEF[2] * 1e6, rel=1e-3)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["requests"]["cancelled"] == 1 and summary["requests"]["failed"] == 0
    # a folder that already holds a run is not written over
    before = (tmp_path / "run" / "requests.jsonl").read_bytes()
    again = RUN.invoke(app, ["import-records", str(export), "--out", str(tmp_path / "run")])
    assert again.exit_code != 0 and "already holds files" in " ".join(again.output.split())
    assert (tmp_path / "run" / "requests.jsonl").read_bytes() == before


def test_vllm_bench_serve_detail_imports_and_calibrates(tmp_path: Path) -> None:
    rows = _rows()
    export = tmp_path / "vllm-result.json"
    export.write_text(json.dumps({
        "date": "20261201-120000", "completed": len(rows),
        "input_lens": [r.prompt_tokens for r in rows] + [30],
        "output_lens": [r.output_tokens for r in rows] + [0],
        "ttfts": [(r.ttft_ms or 0) / 1e3 for r in rows] + [0.0],
        "itls": [[x / 1e3 for x in r.itl_ms] for r in rows] + [[]],
        "start_times": [r.send_ts for r in rows] + [rows[-1].send_ts + 1],
        "errors": [""] * len(rows) + ["ClientConnectorError: Cannot connect to host"]}))
    written = write_imported(export, tmp_path / "run")
    imported = written[0][1]
    assert imported[-1].error_class == "connect"
    calibration = calibrate(tmp_path / "run", slots=64)
    assert calibration.step_time.fixed_ms == pytest.approx(COEF[0] * 1e3, rel=1e-3)


def test_guidellm_report_imports_each_benchmark_and_is_refused_for_calibration(
        tmp_path: Path) -> None:
    rows = _rows()[:40]
    new = [{"request_id": str(i), "prompt_tokens": r.prompt_tokens,
            "output_tokens": r.output_tokens,
            "info": {"timings": {"request_start": r.send_ts,
                                 "first_token_iteration": r.send_ts + (r.ttft_ms or 0) / 1e3,
                                 "last_token_iteration": r.send_ts + (r.e2e_ms or 0) / 1e3,
                                 "request_end": r.send_ts + (r.e2e_ms or 0) / 1e3}}}
           for i, r in enumerate(rows)]
    old = [{"request_id": str(i), "prompt_tokens": r.prompt_tokens,
            "output_tokens": r.output_tokens, "start_time": r.send_ts,
            "first_token_time": r.send_ts + (r.ttft_ms or 0) / 1e3,
            "last_token_time": r.send_ts + (r.e2e_ms or 0) / 1e3,
            "end_time": r.send_ts + (r.e2e_ms or 0) / 1e3} for i, r in enumerate(rows)]
    export = tmp_path / "benchmarks.json"
    export.write_text(json.dumps({"benchmarks": [
        {"requests": {"successful": new, "errored": [
            {"request_id": "x", "prompt_tokens": 10, "info": {
                "timings": {"request_start": 1.0}, "error": "Server error 500"}}],
            "incomplete": []}},
        {"requests": {"successful": old, "errored": [], "incomplete": []}}]}))
    written = write_imported(export, tmp_path / "run")
    assert [folder.name for folder, _ in written] == ["benchmark-00", "benchmark-01"]
    for _, imported in written:
        done = [r for r in imported if r.ok]
        assert sorted(r.ttft_ms or 0 for r in done) == pytest.approx(
            sorted(r.ttft_ms or 0 for r in rows))
    assert [r.error_class for r in written[0][1] if not r.ok] == ["http_5xx"]
    result = RUN.invoke(app, ["calibrate", str(tmp_path / "run" / "benchmark-00")])
    assert result.exit_code == 2 and flat("carry no inter-token times") in flat(result.output)


def test_unknown_or_broken_exports_are_named(tmp_path: Path) -> None:
    odd = tmp_path / "odd.json"
    odd.write_text('{"hello": 1}')
    result = RUN.invoke(app, ["import-records", str(odd)])
    assert result.exit_code == 2
    assert flat("not an export this command knows") in flat(result.output)
    broken = tmp_path / "profile_export.jsonl"
    broken.write_text(json.dumps({"metadata": {"session_num": 1}, "metrics": {}}) + "\n")
    result = RUN.invoke(app, ["import-records", str(broken), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert flat(f"{broken}:1: metadata.request_start_ns: missing") in flat(result.output)


def test_records_round_trip_through_the_writer(tmp_path: Path) -> None:
    rows = _rows()[:10]
    folder = write_run(tmp_path / "r", rows)
    assert read_records(folder / "requests.jsonl")[3].ttft_ms == pytest.approx(rows[3].ttft_ms)


def test_a_real_aiperf_export_imports(tmp_path: Path) -> None:
    """profile_export.jsonl written by AIPerf 0.13 against the bundled llama.cpp server."""
    export = Path(__file__).parent / "data" / "aiperf_profile_export.jsonl"
    written = write_imported(export, tmp_path / "run")
    rows = written[0][1]
    assert len(rows) == 6 and all(r.ok for r in rows)
    for row in rows:
        assert row.output_tokens == 16 and len(row.itl_ms) == 15
        assert row.ttft_ms is not None and row.e2e_ms is not None
        assert row.e2e_ms == pytest.approx(row.ttft_ms + sum(row.itl_ms), rel=0.01)
        assert row.prompt_tokens == 70                 # the server's count, template included
        assert row.cached_prompt_tokens is not None and row.cached_prompt_tokens < 35
        assert row.schedule_delay_ms >= 0
