"""`--repeat N`: the same plan run N times, and how far each percentile can be trusted.

Each repeat gets its own prompt salt (no cache hits from the previous one). For TTFT, TPOT,
ITL and E2E, the p50 and p95 of every repeat are averaged and given a 95% confidence
interval from Student's t with N - 1 degrees of freedom: the spread of a percentile between
identical runs, i.e. the machine's and server's own noise.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats as scipy_stats

from llmplan.results.loadtest import LoadTestSummary

METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
POINTS = ("p50", "p95")


class Interval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mean: float
    low: float
    high: float
    values: list[float]

    @property
    def half_width_pct(self) -> float:
        return 100.0 * (self.high - self.mean) / self.mean if self.mean else math.nan


class RepeatSummary(BaseModel):
    """repeats.json: per metric and percentile, the mean over runs and its 95% interval."""

    model_config = ConfigDict(extra="forbid")

    runs: int
    confidence: float
    intervals: dict[str, dict[str, Interval]]


def confidence_interval(values: list[float], confidence: float = 0.95) -> Interval:
    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    if array.size < 2:
        return Interval(mean=mean, low=mean, high=mean, values=list(values))
    sem = float(array.std(ddof=1)) / math.sqrt(array.size)
    t = float(scipy_stats.t.ppf(0.5 + confidence / 2, array.size - 1))
    return Interval(mean=mean, low=mean - t * sem, high=mean + t * sem, values=list(values))


def summarise_repeats(summaries: list[LoadTestSummary],
                      confidence: float = 0.95) -> RepeatSummary:
    intervals: dict[str, dict[str, Interval]] = {}
    for metric in METRICS:
        for point in POINTS:
            values = [getattr(getattr(s.latency, metric), point) for s in summaries]
            measured = [float(v) for v in values if v is not None]
            if measured:
                intervals.setdefault(metric, {})[point] = confidence_interval(measured,
                                                                              confidence)
    return RepeatSummary(runs=len(summaries), confidence=confidence, intervals=intervals)
