"""The held-out experiment: calibrate on one load level, predict the others, report errors.

Against a real llama.cpp server (SmolLM2-135M, one thread, 4 slots): open-loop Poisson
levels, one used for fitting and measured twice (the repeat difference is the noise floor
every error must be read against), the others only predicted, one of them past saturation
(its achieved throughput is the measured saturation rate). Used by benchmarks/fidelity.py
and by the CI test, which checks the bars of the fidelity issue.
"""

from __future__ import annotations

import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmplan.fidelity.calibrate import calibrate, read_measurements
from llmplan.fidelity.validate import Comparison, calibrated_deployment, compare
from llmplan.loadtests.llamacpp_server import LlamaCppServer
from llmplan.loadtests.plan import build_plan
from llmplan.loadtests.runner import LoadTestSettings, run_load_test
from llmplan.loadtests.targets import Target
from llmplan.perf.steptime_spec import Calibration
from llmplan.results.loadtest import LoadTestSummary
from llmplan.scenario import load_scenario_text

WORKLOAD = """
    seed: {seed}
    duration: 7200
    traffic: {{kind: poisson, rate_per_s: 1}}
    tasks: [{{name: t, prompt_tokens: {{kind: uniform, min_tokens: 16, max_tokens: 48}},
              output_tokens: {{kind: uniform, min_tokens: 8, max_tokens: 32}}}}]
    deployments: {{x: {{gpu: L4, model: SmolLM2-135M}}}}
"""


@dataclass
class Level:
    rate_per_s: float
    role: str                         # fit | repeat | held-out | saturation
    summary: LoadTestSummary | None = None
    comparison: Comparison | None = None

    @property
    def compared(self) -> Comparison:
        assert self.comparison is not None
        return self.comparison


@dataclass
class Experiment:
    levels: list[Level]
    calibration: Calibration
    noise_floor_e2e_p50_pct: float

    def held_out(self) -> list[Level]:
        return [lv for lv in self.levels if lv.role in {"held-out", "saturation"}]

    def median_abs_error_pct(self, metric: str, q: str) -> float:
        return float(np.median([abs(lv.compared.error_pct[metric][q])
                                for lv in self.held_out()]))

    @property
    def saturation_err_pct(self) -> float:
        level = next(lv for lv in self.levels if lv.role == "saturation")
        return float(level.compared.error_pct["throughput"]["requests_per_s"])

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for lv in self.levels:
            c = lv.compared
            rows.append({
                "rate_per_s": lv.rate_per_s, "role": lv.role, "requests": c.requests,
                "achieved_per_s": c.measured["throughput"]["requests_per_s"],
                **{f"{metric}_{q}_{kind}": src.get(metric, {}).get(q)
                   for metric in ("ttft_ms", "e2e_ms") for q in ("p50", "p95")
                   for kind, src in (("measured", c.measured), ("predicted", c.predicted),
                                     ("err_pct", c.error_pct))}})
        return rows


def run_experiment(*, requests_per_level: int = 100, fit_rate: float = 1.5,
                   held_out_rates: tuple[float, ...] = (1.0, 2.0),
                   saturation_rate: float = 6.0, out_dir: Path | None = None) -> Experiment:
    """Measure, calibrate on `fit_rate`, predict the rest (see module docstring)."""
    workdir = Path(out_dir or tempfile.mkdtemp(prefix="llmplan-fidelity-"))
    plan_of = load_scenario_text(textwrap.dedent(WORKLOAD.format(seed=17)))
    # the fit level runs first and again last: fitting both brackets the held-out runs, so
    # a drift of the shared machine's speed during the experiment averages out
    levels = [Level(fit_rate, "fit")]
    levels += [Level(r, "held-out") for r in held_out_rates]
    levels += [Level(saturation_rate, "saturation"), Level(fit_rate, "repeat")]
    with LlamaCppServer(parallel=4, ctx_per_slot=512) as server:
        target = Target(kind="llamacpp", base_url=server.base_url, model="smollm2",
                        api="completions")
        for i, level in enumerate(levels):
            # a fresh salt per level: the server's prompt cache must not answer a repeat
            plan = build_plan(plan_of, time_scale=1.0 / level.rate_per_s,
                              max_requests=requests_per_level, salt=f"L{i}-")
            result = run_load_test("llamacpp", target, plan,
                                   LoadTestSettings(users=64, duration_s=900),
                                   workdir / f"level-{i}-{level.role}")
            level.summary = result.summary
    folders = [workdir / f"level-{i}-{level.role}" for i, level in enumerate(levels)]
    fit_runs = [lv for lv in levels if lv.role in {"fit", "repeat"}]
    calibration = calibrate([folders[levels.index(lv)] for lv in fit_runs])
    calibration_file = calibration.write(workdir / "calibration.yaml")
    dep = calibrated_deployment(calibration_file)
    for level, folder in zip(levels, folders, strict=True):
        level.comparison = compare(read_measurements(folder), dep)
    first, repeat = (lv.summary.latency.e2e_ms.p50 or 0.0 for lv in fit_runs if lv.summary)
    noise = 100.0 * abs(repeat - first) / first
    return Experiment(levels, calibration, noise)
