"""The load-curve chart's log TTFT axis is labelled with whole values and their unit, not
Plotly's lone leading digits ("4", "2", "8") that an axis following another's grid gets."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from llmplan.report.serving_charts import load_curves
from llmplan.results.decision import (
    DeploymentPlan,
    LoadPoint,
    Planning,
    PlanningWindow,
    Result,
)
from llmplan.results.simulation import RunInfo

#: TTFT p95 of the support-assistant example's load curve, as the reviewer saw it
TTFTS_MS = [39.0, 174.0, 770.0, 3404.0, 15046.0, 66500.0]


def _result(ttfts_ms: list[float | None]) -> Result:
    curve = [LoadPoint(requests_per_s=float(i + 1), goodput_fraction=1.0, ttft_p95_ms=t,
                       e2e_p95_ms=t) for i, t in enumerate(ttfts_ms)]
    plan = DeploymentPlan(min_replicas_meeting_slo=1, max_sustainable_requests_per_s=1.0,
                          load_curve=curve)
    # only the planning part is read by the chart (and the candidates' goodput targets,
    # none here): the rest is left out
    window = PlanningWindow(requests=6000, start_s=0.0, span_s=600.0, whole_stream=False)
    planning: dict[str, Any] = {"deployments": {"gpu": plan}, "window": window}
    result: dict[str, Any] = {"planning": Planning.model_construct(**planning),
                              "deployments": {},
                              "scenario": RunInfo.model_construct(long_run_requests_per_s=None)}
    return Result.model_construct(**result)


def _ms(label: str) -> float:
    """'500 ms' -> 500, '2 s' -> 2000, '10,000 s' -> 10,000,000; whole numbers only."""
    match = re.fullmatch(r"([\d,]+) (ms|s)", label)
    assert match, f"not a whole value with its unit: {label!r}"
    return int(match.group(1).replace(",", "")) * (1000 if match.group(2) == "s" else 1)


@pytest.mark.parametrize("ttfts_ms", [TTFTS_MS, [3.0, 9.0], [120.0], [2.0, 4e7], [None, 0.4]])
def test_the_ttft_axis_labels_are_whole_values_at_their_ticks(
        ttfts_ms: list[float | None]) -> None:
    axis = load_curves(_result(ttfts_ms)).layout.yaxis2
    assert axis.type == "log" and axis.tickmode == "array"
    values, labels = list(axis.tickvals), list(axis.ticktext)
    assert len(values) == len(labels) >= 2
    assert [_ms(label) for label in labels] == pytest.approx(values)   # labels say the value
    assert values == sorted(values) and len(set(labels)) == len(labels)
    shown = [t for t in ttfts_ms if t is not None and t >= 1]
    if shown:       # the ticks span the values, a decade at most beyond each end
        assert values[0] <= min(shown) and values[-1] >= max(shown)
        assert math.log10(min(shown) / values[0]) < 1 and math.log10(values[-1] / max(shown)) < 1
