"""The fidelity bar, on every CI run: calibrate on one level of a real llama.cpp server,
predict held-out levels (at 35% and 75% of the measured saturation rate, and one past
saturation), and meet the issue's error bars, read at the speeds the shared machine let
the server run during each level (benchmarks/heldout.py)."""

from __future__ import annotations

import pytest
from heldout import run_experiment

from llmplan.fidelity.validate import SPEED_AGREEMENT


def test_held_out_predictions_meet_the_bars(capsys: pytest.CaptureFixture[str]) -> None:
    # 80 requests a level (the experiment's default): the comparisons replay each level's
    # own requests, so the workload's sampling noise cancels, and each is read at the speed
    # the server ran at, so the host's drift does too. 130 took 850 s of a 2-core CI run,
    # most of it at the low held-out level (130 requests at ~0.5 req/s); 100 ~650 s. 80 failed
    # before the speed was read (a fit level 47% from its own repeat); read at speed, one
    # run at 80 gave 2.1 / 1.4 / 1.7% on a 6.2 / 4.6 / 5.9% in-sample floor.
    experiment = run_experiment()
    at_speed = {(metric, q): experiment.median_abs_error_pct(metric, q, basis="at_run_speed")
               for metric, q in (("e2e_ms", "p50"), ("e2e_ms", "p95"), ("ttft_ms", "p50"))}
    plain = {key: experiment.median_abs_error_pct(*key) for key in at_speed}
    saturation = experiment.saturation_error_pct(basis="at_run_speed")
    with capsys.disabled():
        print("\nheld-out fidelity on a real llama.cpp server (offered req/s, load, role, "
              "the server's speed against the calibration's over the level, its fastest and "
              "slowest part and read measured against measured, then TTFT p50 / E2E p50 / "
              "E2E p95 error %, plain and at the server's speed):")
        if experiment.fitted_alone_because is not None:
            print(f"  calibrated on the fit run alone: {experiment.fitted_alone_because}")
        for row in experiment.table():
            load = "" if row["load"] is None else f"{row['load']:.2f}"
            fastest, slowest = row["step_time_ratio_range"]
            print(f"  {row['rate_per_s']:5.2f} {load:>4} {row['role']:<10} "
                  f"x{row['step_time_ratio']:.3f} ({fastest:.3f}-{slowest:.3f}, measured "
                  f"x{row['step_time_ratio_measured']:.3f}) "
                  f"{row['ttft_ms_p50_err_pct']:+6.1f} {row['e2e_ms_p50_err_pct']:+6.1f} "
                  f"{row['e2e_ms_p95_err_pct']:+6.1f} | "
                  f"{row['ttft_ms_p50_at_run_speed_pct']:+6.1f} "
                  f"{row['e2e_ms_p50_at_run_speed_pct']:+6.1f} "
                  f"{row['e2e_ms_p95_at_run_speed_pct']:+6.1f}  "
                  f"achieved {row['achieved_per_s']:.2f}/s")
        print("  median |err| plain / at the server's speed / noise floor at speed: " + "; ".join(
            f"{metric.removesuffix('_ms').upper()} {q} {plain[metric, q]:.1f} / "
            f"{at_speed[metric, q]:.1f} / {experiment.noise_at_speed_pct(metric, q):.1f}%"
            for metric, q in at_speed) + f"; saturation {experiment.saturation_err_pct:+.1f} / "
            f"{saturation:+.1f}%")
    assert experiment.calibration.fit.steps > 200
    # the saturation level really is past saturation
    sat = next(lv for lv in experiment.levels if lv.role == "saturation")
    assert sat.compared.measured["throughput"]["requests_per_s"] < 0.9 * sat.rate_per_s
    # and the others sit where they were placed: below it, give or take the machine's drift
    # between the probe that placed them and the saturation run (a CI clone saw the 0.75
    # level offered at 2.00/s against 1.96/s achieved, its fit runs 73% apart)
    drift = experiment.noise_floor_pct("e2e_ms", "p50")
    achieved = sat.compared.measured["throughput"]["requests_per_s"]
    speed = sat.compared.step_time_ratio or 1.0      # the saturation level's own
    assert all(lv.rate_per_s < achieved * max(1.0, speed) * (1.0 + drift / 100.0)
               for lv in experiment.levels if lv is not sat)
    # the speeds read against the fit are the host's, not the model's: the busy time read
    # against the fit and the same-size steps' time read against the calibration runs' own
    # agree within SPEED_AGREEMENT (at most 6.2% over 60 recorded held-out levels; a
    # per-sequence decode cost 0.8 or 1.25 times the server's, or a per-prompt-token cost
    # 0.7 times, fails this test, here or at the bars, on each of 12 recorded runs whose
    # fit has that term: FIDELITY.md)
    for level in experiment.held_out():
        assert experiment.speed_disagreement_pct(level) <= 100.0 * SPEED_AGREEMENT, level.role
    # each bar is read on the prediction at the speed the server ran at (one replay on the
    # run's clock: each 100-step part at the wall time its steps took against the
    # calibration's prediction): a shared machine's speed moves every latency, and the
    # queue of a loaded level multiplies it (a CI run read the 0.75 level 27% slow with the
    # fit and its repeat 6% apart). The floor is how far the fit level's two runs, read the
    # same way, differ on that figure or on E2E p50 (which every latency moves with): what
    # the server does not reproduce of itself. A model error every level shares is in both
    # runs alike and stays in the figure.
    drift_at_speed = experiment.noise_at_speed_pct("e2e_ms", "p50")
    for (metric, q), bar in zip(at_speed, (10.0, 10.0, 15.0), strict=True):
        floor = max(drift_at_speed, experiment.noise_at_speed_pct(metric, q))
        assert at_speed[metric, q] <= bar + floor, (metric, q, at_speed[metric, q], floor)
    # throughput past saturation, at the level's speed, with the same drift (the busy time
    # is then the server's: this checks that the simulator fits the same steps into it)
    assert abs(saturation) <= 10.0 + drift_at_speed, (saturation, drift_at_speed)
