"""The path a user takes: calibrate on one staging GPU, then plan the production fleet."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import scenario_from
from test_calibrate_synthetic import _workload

from llmplan.fidelity.calibrate import calibrate, write_calibration
from llmplan.report import render
from sim.run import simulate_scenario

PRODUCTION = """
    seed: 2
    duration: 600
    traffic: {kind: poisson, rate_per_s: 40}
    tasks: [{name: t, prompt_tokens: {kind: uniform, min_tokens: 10, max_tokens: 80},
             output_tokens: {kind: uniform, min_tokens: 2, max_tokens: 40}}]
    slo: {ttft_ms: 1000}
    deployments:
      staging-size:
        gpu: L4
        model: SmolLM2-135M
        engine: {max_num_seqs: 64}
        step_time: {kind: calibrated, file: calibration.yaml}
      production:
        gpu: L4
        model: SmolLM2-135M
        replicas: 8
        engine: {max_num_seqs: 64}
        step_time: {kind: calibrated, file: calibration.yaml}
      uncalibrated:
        gpu: L4
        model: SmolLM2-135M
        replicas: 8
"""


def test_calibrate_on_staging_then_simulate_the_fleet(tmp_path: Path) -> None:
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "requests.jsonl").write_text("\n".join(
        json.dumps(r) for r in _workload()) + "\n")
    write_calibration(calibrate(tmp_path / "staging", slots=64), tmp_path / "calibration.yaml")
    loaded = scenario_from(PRODUCTION, base_dir=tmp_path)
    result = simulate_scenario(loaded)
    deps = result["deployments"]
    # the measured coefficients are what the production fleet runs on
    for name in ("staging-size", "production"):
        step = deps[name]["engine"]["step_time"]
        assert step["source"].startswith("calibrated: ")
        assert abs(step["fixed_ms"] - 4.0) < 1e-3 and abs(step["client_overhead_ms"] - 1.5) < 1e-2
    assert deps["uncalibrated"]["engine"]["step_time"]["source"] == "roofline"
    # one staging-sized replica cannot carry production traffic; eight can
    assert not deps["staging-size"]["slo"]["met"] and deps["production"]["slo"]["met"]
    html = render(result)
    assert "measured: calibrated: " in html and "defaults: roofline" in html
