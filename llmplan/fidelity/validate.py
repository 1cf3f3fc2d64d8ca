"""`llmplan validate`: replay measured requests through the simulator and compare.

Every finished request of a load test is replayed with its real send time, the prompt
tokens the server computed (its count less those it served from its prompt cache, as the
fit counts them) and its output tokens through one calibrated replica; the predicted and
measured TTFT, TPOT, ITL and E2E percentiles and the throughput are set side by side with
the error of each.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from llmplan.catalog import builtin_catalog
from llmplan.fidelity.calibrate import read_measurements
from llmplan.fidelity.timeline import computed_prompt
from llmplan.loadtests.records import RequestRecord
from llmplan.perf.engine import EngineSpec
from llmplan.perf.steptime_spec import CalibratedStepTime, Calibration
from llmplan.scenario.models import AdmissionSpec, LocalDeployment
from llmplan.sim.engine import DeploymentRun, simulate_deployment
from llmplan.sim.table import request_table
from llmplan.stats import PERCENTILES, percentiles
from llmplan.traffic import RequestStream

METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
#: Percentiles by the keys the comparison uses ("p50", ...), None when unmeasured.
Points = dict[str, float | None]


class Comparison(BaseModel):
    """validation.json: predicted vs measured, per metric and percentile, errors in %."""

    model_config = ConfigDict(extra="forbid")

    requests: int
    measured: dict[str, Points]
    predicted: dict[str, Points]
    error_pct: dict[str, dict[str, float]]


def calibrated_deployment(calibration_path: Path, gpu: str = "L4",
                          model: str = "SmolLM2-135M") -> LocalDeployment:
    """One replica with the calibration's coefficients and engine limits, whose clients
    wait for every answer: it replays measured requests, all of which were answered (the
    scenario default gives up after 60 s in the queue)."""
    calibration = Calibration.read(calibration_path)
    engine = EngineSpec(**calibration.engine.model_dump(exclude_none=True))
    step = CalibratedStepTime.model_validate(
        {"kind": "calibrated", "file": str(calibration_path.resolve())},
        context={"base_dir": "/"})
    return LocalDeployment(gpu=gpu, model=model, engine=engine, step_time=step, replicas=1,
                           admission=AdmissionSpec(queue_timeout_s=None))


def replay_stream(rows: list[RequestRecord]) -> tuple[RequestStream, list[RequestRecord]]:
    """The measured requests as a simulator request stream (finished ones only)."""
    done = sorted((r for r in rows if r.ok and r.output_tokens and r.prompt_tokens
                   and r.e2e_ms is not None), key=lambda r: r.send_ts)
    if not done:
        raise ValueError("no finished requests with token counts to replay")
    t0 = done[0].send_ts
    stream = RequestStream(
        arrival_s=np.array([r.send_ts - t0 for r in done]),
        task_index=np.zeros(len(done), dtype=np.int64),
        # what the server computed: the fit's per-token cost is per computed prompt token
        prompt_tokens=np.array([max(1, computed_prompt(r)) for r in done], dtype=np.int64),
        output_tokens=np.array([r.output_tokens or 0 for r in done], dtype=np.int64),
        task_names=("measured",))
    return stream, done


def simulate_replay(rows: list[RequestRecord], dep: LocalDeployment) -> tuple[
        DeploymentRun, RequestStream, list[RequestRecord]]:
    stream, done = replay_stream(rows)
    span = float(stream.arrival_s[-1]) + 1.0
    run = simulate_deployment("replay", dep, builtin_catalog(), stream, span,
                              drain_s=max(600.0, 10 * span))
    return run, stream, done


def _points(values: list[float | None] | np.ndarray) -> Points:
    return {f"p{q:g}": v for q, v in percentiles(values, PERCENTILES).items()}


def compare(rows: list[RequestRecord], dep: LocalDeployment) -> Comparison:
    """Predicted vs measured per metric and percentile, with relative errors in %."""
    run, stream, done = simulate_replay(rows, dep)
    table = request_table(run, stream)
    measured: dict[str, Points] = {
        "ttft_ms": _points([r.ttft_ms for r in done]),
        "tpot_ms": _points([r.tpot_ms for r in done]),
        "itl_ms": _points([x for r in done for x in r.itl_ms]),
        "e2e_ms": _points([r.e2e_ms for r in done]),
    }
    _, itl = run.records.itl_percentiles_s(PERCENTILES)
    predicted: dict[str, Points] = {
        "ttft_ms": _points(table.ttft_s * 1e3),
        "tpot_ms": _points(table.tpot_s * 1e3),
        "itl_ms": {f"p{q:g}": itl[q] * 1e3 for q in PERCENTILES},
        "e2e_ms": _points(table.e2e_s * 1e3),
    }
    window_measured = max(r.send_ts + (r.e2e_ms or 0.0) / 1e3 for r in done) - done[0].send_ts
    finish = table.arrival_s + table.e2e_s
    window_predicted = float(np.nanmax(finish))
    measured["throughput"] = {"requests_per_s": len(done) / window_measured}
    predicted["throughput"] = {"requests_per_s": int(np.sum(~np.isnan(finish)))
                               / window_predicted}
    errors = {metric: {k: 100.0 * (p - v) / v for k, v in values.items()
                       if v and (p := predicted[metric].get(k)) is not None}
              for metric, values in measured.items()}
    return Comparison(requests=len(done), measured=measured, predicted=predicted,
                      error_pct=errors)


def write_validation(result: Comparison, rows: list[RequestRecord], dep: LocalDeployment,
                     out_dir: Path) -> None:
    """validation.json and validation.html (both latency distributions, overlaid)."""
    import plotly.graph_objects as go
    from plotly.io import to_html
    from plotly.subplots import make_subplots

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "validation.json").write_text(
        json.dumps(result.model_dump(mode="json"), indent=1, sort_keys=True))
    run, stream, done = simulate_replay(rows, dep)
    table = request_table(run, stream)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("TTFT CDF (ms)", "E2E CDF (ms)"))
    for col, (measured, predicted) in enumerate((
            ([r.ttft_ms or 0.0 for r in done], table.ttft_s * 1e3),
            ([r.e2e_ms or 0.0 for r in done], table.e2e_s * 1e3)), start=1):
        for name, values in (("measured", np.sort(measured)), ("simulated", np.sort(predicted))):
            fig.add_trace(go.Scatter(x=values, y=np.linspace(0, 1, len(values)), name=name,
                                     mode="lines", showlegend=col == 1), row=1, col=col)
    (out_dir / "validation.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>llmplan validate</title>"
        + to_html(fig, include_plotlyjs="inline", full_html=False), encoding="utf-8")


def load_rows(path: Path) -> list[RequestRecord]:
    return read_measurements(path)
