"""The path a user takes: calibrate on one staging GPU, then plan the production fleet."""

from __future__ import annotations

from pathlib import Path

from helpers import scenario_from
from test_calibrate_synthetic import _workload

from llmplan.fidelity.calibrate import calibrate
from llmplan.pipeline import evaluate
from llmplan.report.page import render
from llmplan.results.simulation import StepTimeCoefficients

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
    (tmp_path / "staging" / "requests.jsonl").write_text(
        "".join(r.to_line() for r in _workload()))
    calibrate(tmp_path / "staging", slots=64).write(tmp_path / "calibration.yaml")
    loaded = scenario_from(PRODUCTION, base_dir=tmp_path)
    result = evaluate(loaded)
    deps = result.deployments

    def step_of(name: str) -> StepTimeCoefficients:
        local = deps[name].local
        assert local is not None
        return local.engine.step_time

    # the measured coefficients are what the production fleet runs on
    for name in ("staging-size", "production"):
        step = step_of(name)
        assert step.source.startswith("calibrated: ")
        assert abs(step.serial_ms - 4.0) < 1e-3 and abs(step.client_overhead_ms - 1.5) < 1e-2
    assert step_of("uncalibrated").source == "roofline"
    # one staging-sized replica cannot carry production traffic; eight can
    assert not deps["staging-size"].slo.met and deps["production"].slo.met
    html = render(result)
    assert "measured: calibrated (" in html and "defaults: roofline step model" in html
