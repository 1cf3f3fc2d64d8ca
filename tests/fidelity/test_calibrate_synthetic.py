"""Calibration recovers known step-time coefficients from records a known server produced.

The records come from a tiny continuous-batching server written here (not the simulator):
every step prefills the prompts that arrived, decodes one token for each running request,
and lasts fixed + per_prefill x P + per_decode x D + per_kv x K; the client sees each token
`overhead` later. Fitting its records must give the coefficients back, and the calibrated
simulator must then predict the same latencies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from llmplan.fidelity.calibrate import calibrate
from llmplan.fidelity.timeline import steps
from llmplan.fidelity.validate import calibrated_deployment, compare
from llmplan.loadtests.records import RequestRecord

COEF = (0.004, 0.0002, 0.003, 0.00001)   # fixed, per prefill token, per seq, per KV token (s)
OVERHEAD_S = 0.0015


def _serve(arrivals: list[tuple[float, int, int]]) -> list[RequestRecord]:
    """Records of a server with the COEF step model; arrivals are (time, prompt, output)."""
    pending = sorted(enumerate(arrivals), key=lambda x: x[1][0])
    running: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    t = 0.0
    while pending or running:
        if not running and pending and pending[0][1][0] > t:
            t = pending[0][1][0]               # idle until the next arrival
        admitted = []
        while pending and pending[0][1][0] <= t:
            i, (at, prompt, output) = pending.pop(0)
            admitted.append({"id": i, "arrival": at, "prompt": prompt, "output": output,
                             "tokens": []})
        decoding = [r for r in running]
        prefill = sum(r["prompt"] for r in admitted)
        kv = sum(r["prompt"] + len(r["tokens"]) for r in decoding)
        t += COEF[0] + COEF[1] * prefill + COEF[2] * len(decoding) + COEF[3] * kv
        for r in decoding + admitted:
            r["tokens"].append(t)
        running = [r for r in decoding + admitted if len(r["tokens"]) < r["output"]]
        done += [r for r in decoding + admitted if len(r["tokens"]) >= r["output"]]
    rows = []
    for r in done:
        seen = np.asarray(r["tokens"]) + OVERHEAD_S
        send = 1000.0 + r["arrival"]
        rows.append(RequestRecord(
            id=r["id"], task="t", target="synthetic", scheduled_ts=send, send_ts=send,
            schedule_delay_ms=0.0, status=200,
            ttft_ms=(seen[0] - r["arrival"]) * 1e3, e2e_ms=(seen[-1] - r["arrival"]) * 1e3,
            itl_ms=list(np.diff(seen) * 1e3), chunks=len(seen), prompt_tokens=r["prompt"],
            output_tokens=r["output"], token_source="server",
            tpot_ms=((seen[-1] - seen[0]) / (r["output"] - 1) * 1e3
                     if r["output"] > 1 else None)))
    return rows


def _workload(seed: int = 3, n: int = 300, rate: float = 6.0) -> list[RequestRecord]:
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(1 / rate, n))
    return _serve([(float(t), int(rng.integers(10, 80)), int(rng.integers(2, 40)))
                   for t in times])


def test_steps_are_rebuilt_from_client_timings() -> None:
    samples, cold = steps(_workload())
    assert len(samples) > 500 and len(cold) >= 3
    for s in samples[:200]:
        expected = COEF[0] + COEF[1] * s.prefill_tokens + COEF[2] * s.decode_seqs \
            + COEF[3] * s.kv_tokens
        assert s.duration_s == pytest.approx(expected, rel=1e-9)


def _write_records(folder: Path, rows: list[RequestRecord]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requests.jsonl").write_text("".join(r.to_line() for r in rows))
    return folder


def test_calibration_recovers_the_coefficients_and_overhead(tmp_path: Path) -> None:
    rows = _workload()
    _write_records(tmp_path, rows)
    calibration = calibrate(tmp_path, slots=64)
    st = calibration.step_time
    assert st.fixed_ms == pytest.approx(COEF[0] * 1e3, rel=1e-4)
    assert st.per_prefill_token_us == pytest.approx(COEF[1] * 1e6, rel=1e-4)
    assert st.per_decode_seq_us == pytest.approx(COEF[2] * 1e6, rel=1e-4)
    assert st.per_kv_token_ns == pytest.approx(COEF[3] * 1e9, rel=1e-4)
    assert calibration.client_overhead_ms == pytest.approx(OVERHEAD_S * 1e3, rel=1e-3)
    assert calibration.fit.r2 > 0.9999
    # the calibrated simulator replays those requests to the same latencies
    path = calibration.write(tmp_path / "calibration.yaml")
    result = compare(rows, calibrated_deployment(path))
    for metric in ("ttft_ms", "e2e_ms", "tpot_ms"):
        for q, err in result.error_pct[metric].items():
            assert abs(err) < 0.5, (metric, q, err)


def test_several_runs_are_fitted_together(tmp_path: Path) -> None:
    """Two runs at different rates, each rebuilt on its own clock, one fit over both."""
    from typer.testing import CliRunner

    from llmplan.cli import app

    first = _write_records(tmp_path / "a", _workload(seed=3, n=150, rate=4.0))
    second = _write_records(tmp_path / "b", _workload(seed=5, n=150, rate=9.0))
    alone = [calibrate(run, slots=64).fit.steps for run in (first, second)]
    both = calibrate([first, second], slots=64)
    assert both.fit.steps == sum(alone)
    assert both.fit.requests == 300
    assert both.step_time.per_decode_seq_us == pytest.approx(COEF[2] * 1e6, rel=1e-4)
    result = CliRunner().invoke(app, ["calibrate", str(first), str(second), "--slots", "64",
                                      "--out", str(tmp_path / "c.yaml")])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert written["fit"]["steps"] == sum(alone)
    assert str(first) in written["source"] and str(second) in written["source"]
