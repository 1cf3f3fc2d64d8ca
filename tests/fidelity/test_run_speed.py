"""A validation reads the speed its run's server ran at, so a busy host's slowdown is not
mistaken for the model's error: the records of a known server (synth.py, not the
simulator) calibrated at one speed and measured at another."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synth import COEF, poisson_workload, serve, write_run
from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.fidelity.calibrate import calibrate
from llmplan.fidelity.validate import (
    SPEED_AGREEMENT,
    RunClock,
    RunSpeed,
    calibrated_deployment,
    compare,
)
from llmplan.perf.steptime_spec import (
    CalibratedStepTime,
    Calibration,
    FittedStepTime,
    LinearStepTime,
    TabulatedStepTime,
)
from llmplan.scenario.models import LocalDeployment

LATENCIES = (("ttft_ms", "p50"), ("e2e_ms", "p50"), ("e2e_ms", "p95"), ("tpot_ms", "p50"))


def _calibrated(folder: Path, coef: tuple[float, ...] = COEF) -> Path:
    rows = poisson_workload(seed=3, n=300, rate=6.0, prompt=(10, 80), output=(2, 40), coef=coef)
    return calibrate(write_run(folder, rows), slots=64).write(folder / "calibration.yaml")


def at_speed(dep: LocalDeployment, ratio: float) -> LocalDeployment:
    """The calibrated deployment with every step taking `ratio` times as long."""
    assert isinstance(dep.step_time, CalibratedStepTime) and dep.step_time.calibration
    calibration = dep.step_time.calibration
    fitted = calibration.step_time
    if isinstance(fitted, LinearStepTime):
        scaled: FittedStepTime = fitted.model_copy(update={
            f: getattr(fitted, f) * ratio
            for f in ("fixed_ms", "per_prefill_token_us", "per_decode_seq_us",
                      "per_kv_token_ns", "per_prefill_pair_ns")})
    else:
        scaled = TabulatedStepTime(
            tokens_ms=[(t, v * ratio) for t, v in fitted.tokens_ms],
            per_kv_token_ns=fitted.per_kv_token_ns * ratio,
            per_prefill_pair_ns=fitted.per_prefill_pair_ns * ratio)
    step = CalibratedStepTime(file=dep.step_time.file,
                              calibration=calibration.model_copy(update={"step_time": scaled}))
    return dep.model_copy(update={"step_time": step})


@pytest.mark.parametrize("slowdown", [1.25, 0.8])
def test_a_run_on_a_slower_or_faster_machine_is_read_at_its_own_speed(
        tmp_path: Path, slowdown: float) -> None:
    """Calibrated at COEF, measured on the same server with every step `slowdown` times as
    long, at a load where the queue multiplies the change: the plain prediction misses the
    latencies by far more than the slowdown, the run's steps read the slowdown back, and
    the replay at that speed meets the measurements."""
    dep = calibrated_deployment(_calibrated(tmp_path))
    measured = poisson_workload(seed=5, n=300, rate=9.0, prompt=(10, 80), output=(2, 40),
                                coef=tuple(c * slowdown for c in COEF))
    result = compare(measured, dep)
    assert result.step_time_ratio == pytest.approx(slowdown, rel=0.01)
    assert result.step_time_ratio_range == pytest.approx((slowdown, slowdown), rel=0.01)
    assert result.speed_parts >= 1
    assert result.error_pct_at_run_speed is not None
    for metric, q in LATENCIES:
        assert abs(result.error_pct_at_run_speed[metric][q]) < 2.5, (metric, q)
    # the plain errors are the host's: as large as the slowdown at least, the other way
    off_pct = 100.0 * (1.0 / slowdown - 1.0)
    assert np.sign(result.error_pct["e2e_ms"]["p95"]) == np.sign(off_pct)
    assert abs(result.error_pct["e2e_ms"]["p95"]) > abs(off_pct) * 0.9


def test_a_host_that_slows_down_mid_run_is_replayed_at_each_parts_speed(tmp_path: Path) -> None:
    """The first 100 arrivals at the calibration's speed, the 200 after them 30% slower (a
    tenant moved in): no one speed replays it, but each part of the run read at its own
    speed does, and the plain prediction misses."""
    dep = calibrated_deployment(_calibrated(tmp_path))
    rng = np.random.default_rng(5)
    times = np.cumsum(rng.exponential(1 / 9.0, 300))
    change_s = float(times[100])
    measured = serve([(float(t), int(rng.integers(10, 80)), int(rng.integers(2, 40)))
                      for t in times], speed=lambda t: 1.0 if t < change_s else 1.3)
    result = compare(measured, dep)
    assert result.step_time_ratio_range is not None
    fastest, slowest = result.step_time_ratio_range
    assert fastest == pytest.approx(1.0, abs=0.01) and slowest == pytest.approx(1.3, rel=0.01)
    assert result.step_time_ratio is not None
    assert fastest <= result.step_time_ratio <= slowest
    assert result.error_pct_at_run_speed is not None
    # one of the parts spans the change (the parts count decode-only steps, which the fast
    # half has more of): within 10%, where the plain prediction is off by 15% or more
    for metric, q in LATENCIES:
        assert abs(result.error_pct_at_run_speed[metric][q]) < 10, (metric, q)
    assert result.error_pct["e2e_ms"]["p95"] < -15
    # one speed for the whole run cannot replay it: the whole run's speed misses p95
    whole = compare(measured, at_speed(dep, result.step_time_ratio))
    assert abs(whole.error_pct["e2e_ms"]["p95"]) > \
        2 * abs(result.error_pct_at_run_speed["e2e_ms"]["p95"]) + 3


def test_a_slow_spell_shorter_than_the_queue_it_leaves_is_replayed_on_the_runs_clock(
        tmp_path: Path) -> None:
    """Every step 30% longer while 60 of 300 arrivals come in (about 7 s), then the
    calibration's speed again: the queue built in the spell drains after it, so requests
    sent after the spell still wait for it. The replay on the run's clock meets p50 and
    p95; the whole run's one speed, and the plain prediction, miss p95 by a quarter."""
    dep = calibrated_deployment(_calibrated(tmp_path))
    rng = np.random.default_rng(5)
    times = np.cumsum(rng.exponential(1 / 9.0, 300))
    start_s, end_s = float(times[100]), float(times[160])
    measured = serve([(float(t), int(rng.integers(10, 80)), int(rng.integers(2, 40)))
                      for t in times], speed=lambda t: 1.3 if start_s <= t < end_s else 1.0)
    result = compare(measured, dep)
    assert result.error_pct_at_run_speed is not None and result.step_time_ratio is not None
    for metric, q in (("ttft_ms", "p50"), ("ttft_ms", "p95"), ("e2e_ms", "p50"),
                      ("e2e_ms", "p95")):
        assert abs(result.error_pct_at_run_speed[metric][q]) < 10, (metric, q)
    whole = compare(measured, at_speed(dep, result.step_time_ratio))
    for errors in (whole.error_pct, result.error_pct):
        assert errors["ttft_ms"]["p95"] < -25 and errors["e2e_ms"]["p95"] < -20


def test_the_runs_clock_runs_slower_where_the_server_did() -> None:
    """Worked by hand: steps twice as long up to 10 s after the first send, half as long
    after it. The work clock gains 1 s per 2 s up to there, then 2 s per second."""
    clock = RunClock.of(RunSpeed(whole=1.0, parts=(2.0, 0.5), part_ends_ts=(110.0, 130.0)),
                        t0_ts=100.0)
    wall = np.array([-4.0, 0.0, 6.0, 10.0, 12.0, 40.0])
    work = clock.to_work(wall)
    assert work == pytest.approx([-2.0, 0.0, 3.0, 5.0, 9.0, 65.0])
    assert clock.to_wall(work) == pytest.approx(wall)
    # a short run is one part: one speed throughout (50-199 busy steps)
    one = RunClock.of(RunSpeed(whole=1.25, parts=(1.25,), part_ends_ts=(105.0,)), t0_ts=100.0)
    assert one.to_work(wall) == pytest.approx(wall / 1.25)
    # a replay far past saturation still maps back (hours of backlog)
    assert one.to_wall(one.to_work(np.array([86_400.0]))) == pytest.approx([86_400.0])


def test_a_short_run_is_replayed_at_its_one_speed(tmp_path: Path) -> None:
    """30 requests at 1.2 times the calibration's step time: fewer than 200 busy steps, one
    part, read back and replayed at it."""
    dep = calibrated_deployment(_calibrated(tmp_path))
    measured = poisson_workload(seed=9, n=30, rate=9.0, prompt=(10, 80), output=(2, 12),
                                coef=tuple(c * 1.2 for c in COEF))
    result = compare(measured, dep)
    assert result.speed_parts == 1 and result.step_time_ratio == pytest.approx(1.2, rel=0.01)
    assert result.error_pct_at_run_speed is not None
    assert abs(result.error_pct_at_run_speed["e2e_ms"]["p50"]) < 3


@pytest.mark.parametrize(("wrong", "prompt", "output"), [
    # the prompt cost a fifth of the server's: prompt-heavy TTFT stays wrong at any speed
    ((COEF[0], COEF[1] / 5, COEF[2], COEF[3]), (200, 400), (2, 10)),
    # the per-sequence cost 1.6 times and the KV cost 0.3 times the server's: every decode
    # step is mispredicted alike, which the fitted reading takes for a fast host
    ((COEF[0], COEF[1], COEF[2] * 1.6, COEF[3] * 0.3), (10, 80), (2, 40)),
])
def test_a_model_that_is_wrong_is_not_passed_off_as_the_hosts_speed(
        tmp_path: Path, wrong: tuple[float, ...], prompt: tuple[int, int],
        output: tuple[int, int]) -> None:
    """A calibration whose coefficients are wrong (its speed reference the true server's)
    replays a run of the true server at the calibration's speed: either the error stays
    at the run's speed, or the two readings of the speed disagree and `validate` says the
    model mispredicts the run's steps."""
    fitted = poisson_workload(seed=3, n=300, rate=6.0, prompt=prompt, output=output)
    path = calibrate(write_run(tmp_path, fitted), slots=64).write(tmp_path / "c.yaml")
    calibration = Calibration.read(path)
    assert calibration.step_time.kind == "linear" and calibration.speed_reference
    wrong_step = calibration.step_time.model_copy(update={
        "fixed_ms": wrong[0] * 1e3, "per_prefill_token_us": wrong[1] * 1e6,
        "per_decode_seq_us": wrong[2] * 1e6, "per_kv_token_ns": wrong[3] * 1e9})
    calibration.model_copy(update={"step_time": wrong_step}).write(path)
    measured = poisson_workload(seed=5, n=300, rate=9.0, prompt=prompt, output=output)
    result = compare(measured, calibrated_deployment(path))
    assert result.error_pct_at_run_speed is not None
    assert result.step_time_ratio is not None and result.step_time_ratio_measured is not None
    assert result.step_time_ratio_measured == pytest.approx(1.0, abs=0.03)
    stays = max(abs(result.error_pct_at_run_speed[m]["p50"]) for m in ("ttft_ms", "e2e_ms"))
    disagree = abs(result.step_time_ratio / result.step_time_ratio_measured - 1.0)
    assert stays > 20 or disagree > SPEED_AGREEMENT, (stays, disagree)
    out = tmp_path / "validation"
    shown = CliRunner().invoke(app, ["validate", str(write_run(tmp_path / "m", measured)),
                                     "--calibration", str(path), "--out", str(out)],
                               env={"COLUMNS": "100"})
    assert shown.exit_code == 0, shown.output
    if disagree > SPEED_AGREEMENT:
        assert "the model mispredicts this run's steps" in " ".join(shown.output.split())


def test_a_run_at_the_calibrations_speed_reads_one(tmp_path: Path) -> None:
    dep = calibrated_deployment(_calibrated(tmp_path))
    measured = poisson_workload(seed=5, n=300, rate=9.0, prompt=(10, 80), output=(2, 40))
    result = compare(measured, dep)
    assert result.step_time_ratio == pytest.approx(1.0, abs=0.005)
    assert result.error_pct_at_run_speed is not None
    for metric, q in LATENCIES:
        assert result.error_pct_at_run_speed[metric][q] == pytest.approx(
            result.error_pct[metric][q], abs=0.5)


def test_a_tabulated_calibration_is_read_at_its_runs_speed(tmp_path: Path) -> None:
    """A CPU server's step table (see test_calibrate_synthetic): each point scales."""
    truth = [(1, 0.0022), (2, 0.0046), (3, 0.0069), (4, 0.0072), (40, 0.045), (400, 0.39)]
    rng = np.random.default_rng(11)

    def run(rate: float, slowdown: float, n: int = 400) -> list:
        times = np.cumsum(rng.exponential(1 / rate, n))
        return serve([(float(t), int(rng.integers(20, 200)), int(rng.integers(2, 30)))
                      for t in times], coef=(0.0, 0.0, 0.0, 2e-7 * slowdown),
                     tokens_s=[(k, s * slowdown) for k, s in truth])

    path = calibrate(write_run(tmp_path, run(3.0, 1.0)), slots=64).write(tmp_path / "c.yaml")
    dep = calibrated_deployment(path)
    assert dep.step_time.kind == "calibrated"
    assert dep.step_time.calibration is not None
    assert dep.step_time.calibration.step_time.kind == "tabulated"
    result = compare(run(4.0, 1.2), dep)
    assert result.step_time_ratio == pytest.approx(1.2, rel=0.03)
    assert result.error_pct_at_run_speed is not None
    for metric, q in LATENCIES:
        assert abs(result.error_pct_at_run_speed[metric][q]) < 4, (metric, q)
    assert result.error_pct["e2e_ms"]["p50"] < -10


def test_too_few_steps_to_read_a_speed_leave_it_unread(tmp_path: Path) -> None:
    dep = calibrated_deployment(_calibrated(tmp_path))
    one = serve([(0.0, 20, 3)])
    result = compare(one, dep)
    assert result.step_time_ratio is None and result.error_pct_at_run_speed is None


def test_validate_says_how_fast_the_run_was_and_writes_it(tmp_path: Path) -> None:
    calibration = _calibrated(tmp_path / "fit")
    slow = poisson_workload(seed=5, n=300, rate=9.0, prompt=(10, 80), output=(2, 40),
                            coef=tuple(c * 1.25 for c in COEF))
    run = write_run(tmp_path / "slow", slow)
    out = tmp_path / "validation"
    result = CliRunner().invoke(app, ["validate", str(run), "--calibration", str(calibration),
                                      "--out", str(out)], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "the run's steps took 1.25" in text
    assert "Replayed on the run's own clock, each part at its speed: TTFT" in text
    written = json.loads((out / "validation.json").read_text())
    assert written["step_time_ratio"] == pytest.approx(1.25, rel=0.01)
    assert abs(written["error_pct_at_run_speed"]["e2e_ms"]["p95"]) < 1.5
    html = (out / "validation.html").read_text()
    assert "server step time" in html and "simulated at the run" in html
    assert "seconds into the run" in html
