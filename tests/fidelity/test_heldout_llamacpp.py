"""The fidelity bar, on every CI run: calibrate on one level of a real llama.cpp server,
predict held-out levels (at 35% and 75% of the measured saturation rate, and one past
saturation), and meet the issue's error bars."""

from __future__ import annotations

import pytest
from heldout import run_experiment


def test_held_out_predictions_meet_the_bars(capsys: pytest.CaptureFixture[str]) -> None:
    # 100 requests a level (the experiment's default): the comparisons replay each level's
    # own requests, so the workload's sampling noise cancels and what is left is the
    # server's timing, which the noise floor reads. 130 took 850 s of a 2-core CI run, most
    # of it at the low held-out level (130 requests at ~0.5 req/s); 100 takes ~650 s.
    experiment = run_experiment()
    e2e_p50 = experiment.median_abs_error_pct("e2e_ms", "p50")
    e2e_p95 = experiment.median_abs_error_pct("e2e_ms", "p95")
    ttft_p50 = experiment.median_abs_error_pct("ttft_ms", "p50")
    saturation = experiment.saturation_err_pct
    with capsys.disabled():
        print("\nheld-out fidelity on a real llama.cpp server (offered req/s, load, role: "
              "TTFT p50 / E2E p50 / E2E p95 error %):")
        for row in experiment.table():
            load = "" if row["load"] is None else f"{row['load']:.2f}"
            print(f"  {row['rate_per_s']:5.2f} {load:>4} {row['role']:<10} "
                  f"{row['ttft_ms_p50_err_pct']:+6.1f} {row['e2e_ms_p50_err_pct']:+6.1f} "
                  f"{row['e2e_ms_p95_err_pct']:+6.1f}  achieved {row['achieved_per_s']:.2f}/s")
        print(f"  median |err|: E2E p50 {e2e_p50:.1f}%, E2E p95 {e2e_p95:.1f}%, "
              f"TTFT p50 {ttft_p50:.1f}%; saturation {saturation:+.1f}%; "
              "noise floor (fit vs repeat) E2E p50 "
              f"{experiment.noise_floor_pct('e2e_ms', 'p50'):.1f}%, E2E p95 "
              f"{experiment.noise_floor_pct('e2e_ms', 'p95'):.1f}%, TTFT p50 "
              f"{experiment.noise_floor_pct('ttft_ms', 'p50'):.1f}%")
    assert experiment.calibration.fit.steps > 200
    # the saturation level really is past saturation
    sat = next(lv for lv in experiment.levels if lv.role == "saturation")
    assert sat.compared.measured["throughput"]["requests_per_s"] < 0.9 * sat.rate_per_s
    # and the others sit where they were placed: below it, give or take the machine's drift
    # between the probe that placed them and the saturation run (a CI clone saw the 0.75
    # level offered at 2.00/s against 1.96/s achieved, its fit runs 73% apart)
    drift = experiment.noise_floor_pct("e2e_ms", "p50")
    achieved = sat.compared.measured["throughput"]["requests_per_s"]
    assert all(lv.rate_per_s < achieved * (1.0 + drift / 100.0)
               for lv in experiment.levels if lv is not sat)
    # each bar is read against the noise floor of the same run: how far the two runs of the
    # fit level differ, on that figure or on E2E p50 (the most precise measure of how much
    # the shared machine's speed drifted, which moves every latency alike). No prediction
    # can be closer than the server is to itself, so noise cannot fail the test; a model
    # off by more than the bar beyond that still does.
    for figure, metric, q, bar in ((e2e_p50, "e2e_ms", "p50", 10.0),
                                   (e2e_p95, "e2e_ms", "p95", 10.0),
                                   (ttft_p50, "ttft_ms", "p50", 15.0)):
        floor = max(drift, experiment.noise_floor_pct(metric, q))
        assert figure <= bar + floor, (metric, q, figure, floor)
    # throughput past saturation moves one for one with the machine's speed: the same drift
    assert abs(saturation) <= 10.0 + drift, (saturation, drift)
