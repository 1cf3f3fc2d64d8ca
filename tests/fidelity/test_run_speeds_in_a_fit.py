"""Runs fitted together on a host whose speed changed between them say so.

The synthetic server (synth.py) has known costs, a prefill pair's among them; two runs of
100- and 400-token prompts measure a prompt token's cost apart from its attention's (see
test_fit_gate). When the host runs the second one 0.7 times as fast, one fit of both puts
the slowdown in the costs the runs differ in, and used to pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synth import poisson_workload, serve, write_run

from llmplan.fidelity.calibrate import fit_runs, read_measurements
from llmplan.fidelity.fit import MAX_RUN_SPEED_CHANGE, fit_step_time, run_speed_findings, run_speeds
from llmplan.fidelity.timeline import steps
from llmplan.fidelity.validate import predicted_step_s

COEF = (0.004, 0.0004, 0.003, 1e-6, 2e-6)      # fixed, token, sequence, KV token, pair (s)
DATA = Path(__file__).parent / "data"


def _run(folder: Path, prompt: int, seed: int, *, speed: float = 1.0,
         noise: float = 0.05) -> Path:
    """160 Poisson arrivals of `prompt` new tokens after a 24-token cached template, on a
    host `speed` times as fast as the one COEF was taken on."""
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(1 / 3.0, 160))
    rows = serve([(float(t), prompt + 24, int(rng.integers(10, 40))) for t in times],
                 coef=COEF, cached=24, noise=noise, seed=seed, speed=lambda _: 1 / speed)
    return write_run(folder, rows)


def test_runs_taken_at_different_host_speeds_are_refused_with_the_figure(
        tmp_path: Path) -> None:
    short = _run(tmp_path / "short", 100, 3)
    slow = _run(tmp_path / "long", 400, 4, speed=0.7)
    report = fit_runs([short, slow], slots=64)
    drift = [f for f in report.rejected if f.field == "runs"]
    assert len(drift) == 1, [str(f) for f in report.rejected]
    # nothing else objected: the fit alone would have passed
    assert [f.field for f in report.rejected] == ["runs"]
    text = str(drift[0])
    assert f"{slow}'s steps took 1.4" in text and f"as long as {short}'s" in text, text
    assert "calibrate each run separately" in text
    # the one fit put the slowdown in the KV reads, which the long prompts' steps have more
    # of; with a speed for each run the slowdown and the costs are read back
    assert report.calibration.step_time.per_kv_token_ns > 3 * COEF[3] * 1e9
    samples = [steps(read_measurements(run))[0] for run in (short, slow)]
    found = run_speeds(samples)
    assert found is not None and found.slowest == 1
    assert found.ratio == pytest.approx(1 / 0.7, rel=0.05)
    assert found.ratio_low < 1 / 0.7 < found.ratio_high
    assert found.per_pair_s == pytest.approx(COEF[4], rel=0.2)
    assert found.per_kv_token_s == pytest.approx(COEF[3], rel=0.2)


def test_runs_of_alike_work_at_different_speeds_are_fitted_at_their_average_with_a_note(
        tmp_path: Path) -> None:
    """The same workload (300 Poisson arrivals at 2/s of 10-80-token prompts) on the line
    server of test_run_speed, the second run with every cost 1/0.7 times as large: the
    runs' steps differ too little for the fit to put the change in a cost, so it passes,
    at a speed between the two, with a note of the change."""
    from synth import COEF as LINE

    def run(name: str, seed: int, speed: float) -> Path:
        return write_run(tmp_path / name, poisson_workload(
            seed=seed, n=300, rate=2.0, prompt=(10, 80), output=(2, 40), noise=0.05,
            coef=tuple(c / speed for c in LINE)))

    a, b = run("a", 1, 1.0), run("b", 2, 0.7)
    report = fit_runs([a, b], slots=64)
    assert report.rejected == [], [str(f) for f in report.rejected]
    notes = [str(f) for f in report.advisory if f.field == "runs"]
    assert len(notes) == 1 and "steps took 1.4" in notes[0], notes
    assert "at their average speed" in notes[0]
    # each run's steps are predicted between the two hosts' times: the first run's slower
    # than it ran, the second's faster
    for run_, speed in ((a, 1.0), (b, 0.7)):
        samples, _ = steps(read_measurements(run_))
        predicted = predicted_step_s(report.calibration.step_time, samples).sum()
        at_one = sum(s.duration_s for s in samples) * speed
        assert at_one < predicted < at_one / 0.7, (run_, predicted, at_one)


@pytest.mark.parametrize(("noise", "seeds"), [(0.05, (3, 4)), (0.05, (1, 2)),
                                              (0.15, (3, 4)), (0.15, (5, 6))])
def test_runs_at_one_speed_are_not_called_a_host_change(
        tmp_path: Path, noise: float, seeds: tuple[int, int]) -> None:
    """The same two workloads on one host, its steps jittering 5% or 15% (lognormal)."""
    runs = [_run(tmp_path / "short", 100, seeds[0], noise=noise),
            _run(tmp_path / "long", 400, seeds[1], noise=noise)]
    report = fit_runs(runs, slots=64)
    assert not [f for f in report.rejected if f.field == "runs"], \
        [str(f) for f in report.rejected]


def test_a_host_change_within_the_noise_is_not_claimed(tmp_path: Path) -> None:
    """0.7 times as fast, but steps so noisy (15%) that the ratio's interval holds 1: the
    data cannot tell, and the finding does not guess."""
    runs = [_run(tmp_path / "short", 100, 1, noise=0.15),
            _run(tmp_path / "long", 400, 2, speed=0.7, noise=0.15)]
    found = run_speeds([steps(read_measurements(run))[0] for run in runs])
    assert found is not None and found.ratio > 1 + MAX_RUN_SPEED_CHANGE
    assert found.ratio_low <= 1.0
    assert not [f for f in fit_runs(runs, slots=64).rejected if f.field == "runs"]


def test_a_real_servers_run_split_in_two_reads_one_speed() -> None:
    """A one-thread llama.cpp server's recorded quick run, its steps' first and second
    halves taken as two runs: one host, one speed, within the noise."""
    samples, cold = steps(read_measurements(DATA / "llamacpp_quick1"))
    half = len(samples) // 2
    runs = [samples[:half], samples[half:]]
    found = run_speeds(runs)
    assert found is not None and found.ratio_low <= 1.0 <= found.ratio_high
    assert found.ratio < 1 + MAX_RUN_SPEED_CHANGE
    assert run_speed_findings(fit_step_time(samples, cold), runs, ["first", "second"]) == \
        ([], [])


def test_one_run_has_no_speed_to_compare() -> None:
    samples, _ = steps(read_measurements(DATA / "llamacpp_quick1"))
    assert run_speeds([samples]) is None


@pytest.mark.parametrize("speed", [1.0, 0.7])
def test_a_server_the_line_does_not_fit_reads_its_runs_speeds(speed: float) -> None:
    """A CPU server's step table (see test_calibrate_synthetic; not a line, as the speed
    fit assumes): 20-60-token prompts at 3/s and 150-400-token ones at 1/s, the second on a
    host `speed` times as fast, with 10% jitter. One speed reads one; 0.7 reads 1/0.7."""
    truth = [(1, 0.0022), (2, 0.0046), (3, 0.0069), (4, 0.0072), (40, 0.045), (400, 0.39)]

    def run(seed: int, prompt: tuple[int, int], rate: float, slow: float) -> list:
        rng = np.random.default_rng(seed)
        times = np.cumsum(rng.exponential(1 / rate, 300))
        rows = serve([(float(t), int(rng.integers(*prompt)), int(rng.integers(2, 30)))
                      for t in times], coef=(0.0, 0.0, 0.0, 2e-7 * slow),
                     tokens_s=[(k, s * slow) for k, s in truth], noise=0.1, seed=seed)
        return steps(rows)[0]

    runs = [run(1, (20, 60), 3.0, 1.0), run(2, (150, 400), 1.0, 1 / speed)]
    found = run_speeds(runs)
    assert found is not None
    assert found.ratio == pytest.approx(1 / speed, rel=0.04)
    blocking, notes = run_speed_findings(fit_step_time(runs[0] + runs[1], []), runs,
                                         ["short", "long"])
    assert bool(blocking or notes) == (speed != 1.0)


def test_a_run_that_rebuilds_no_step_is_named_not_a_crash(tmp_path: Path) -> None:
    """A run of one request that answered one token rebuilds no step (its single token came
    with the prompt's step, a cold start): fitted beside a full run, the per-run speed check
    named it as too short to compare, where the empty run had made a step matrix of no
    columns and calibrate stopped with an IndexError."""
    full = _run(tmp_path / "full", 100, 3)
    lone = write_run(tmp_path / "lone", serve([(0.0, 124, 1)], coef=COEF, cached=24))
    assert steps(read_measurements(lone))[0] == []
    report = fit_runs([full, lone], slots=64)
    notes = [str(f) for f in report.advisory if f.field == "runs"]
    assert notes == [f"{lone} gave 0 steps, fewer than 8: its host's speed is not compared "
                     f"with the other runs', and a change of speed in it would go into the "
                     f"fit's costs unseen: run it for longer, or leave it out"], notes
