"""Load levels: run one plan, or raise the request rate until the target saturates.

A level is saturated when the target achieved under 90% of the rate its plan offered (its
own arrivals, not the nominal rate) or goodput fell under the scenario's minimum. A sweep
stops at the first saturated level and writes sweep.json beside the levels' folders.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from llmplan.loadtests.plan import PlanItem
from llmplan.loadtests.runner import LoadTestResult, LoadTestSettings, run_load_test
from llmplan.loadtests.targets import Target
from llmplan.results.loadtest import LoadTestSummary
from llmplan.scenario import LoadedScenario


class SweepLevel(BaseModel):
    """One row of sweep.json."""

    model_config = ConfigDict(extra="forbid")

    requested_rate_per_s: float | None
    offered_rate_per_s: float | None
    achieved_rate_per_s: float
    goodput_fraction: float | None
    ttft_p50_ms: float | None
    e2e_p95_ms: float | None


#: a level whose target finished under this share of the rate offered is saturated
SATURATED_SHARE = 0.9


def saturated(summary: LoadTestSummary, rate: float, min_goodput: float) -> bool:
    """Achieved under 90% of what the plan offered (its own arrivals), or the SLO broke."""
    offered = summary.throughput.requested_rate_per_s or rate
    goodput = summary.slo.goodput_fraction or 0.0
    return summary.throughput.achieved_rate_per_s < SATURATED_SHARE * offered \
        or goodput < min_goodput


@dataclass(frozen=True)
class LevelRun:
    """One finished level: its requested rate (None: the scenario's own), folder, result."""

    rate: float | None
    folder: Path
    result: LoadTestResult
    saturated: bool


def run_levels(loaded: LoadedScenario, target_name: str, target: Target, *,
               rates: list[float | None],
               plan_for: Callable[[float | None, int], list[PlanItem]],
               settings: LoadTestSettings, out_dir: Path) -> Iterator[LevelRun]:
    """Run each level in turn (None: the plan as the scenario gives it); stop after an
    interrupted or dead run, or a saturated sweep level. Writes sweep.json for sweeps.

    `plan_for(rate, level_index)` builds each level's plan (with its own prompt salt)."""
    done: list[tuple[float | None, LoadTestResult]] = []
    try:
        for index, rate in enumerate(rates):
            level_dir = out_dir if rate is None else out_dir / f"rate-{rate:g}"
            result = run_load_test(target_name, target, plan_for(rate, index), settings,
                                   level_dir, loaded=loaded)
            done.append((rate, result))
            full = rate is not None and saturated(result.summary, rate,
                                                  loaded.scenario.slo.min_goodput_fraction)
            yield LevelRun(rate, level_dir, result, full)
            if result.interrupted or result.target_down or full:
                return
    finally:
        if any(rate is not None for rate, _ in done):
            write_sweep(done, out_dir)


def write_sweep(levels: list[tuple[float | None, LoadTestResult]], out_dir: Path) -> Path:
    rows = [SweepLevel(requested_rate_per_s=rate,
                       offered_rate_per_s=r.summary.throughput.requested_rate_per_s,
                       achieved_rate_per_s=r.summary.throughput.achieved_rate_per_s,
                       goodput_fraction=r.summary.slo.goodput_fraction,
                       ttft_p50_ms=r.summary.latency.ttft_ms.p50,
                       e2e_p95_ms=r.summary.latency.e2e_ms.p95).model_dump()
            for rate, r in levels]
    path = out_dir / "sweep.json"
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return path
