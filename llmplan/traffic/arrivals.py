"""Arrival processes, one class per `traffic.kind`.

Every synthetic kind is a rate curve lambda(t) (flat, or a 24-hour diurnal shape, times any
spikes) driven through time-rescaling: a unit-rate renewal process (Poisson, Gamma with a given
coefficient of variation, or perfectly regular) is drawn in operational time and mapped back
through the inverse of Lambda(t) = integral of lambda. So a Gamma process on a diurnal curve
keeps its burstiness at every hour while following the curve.

Each kind also states its long-run mean rate (`long_run_rate`), what a month of it is made
of whatever stretch is simulated: a flat rate is its own, a diurnal curve's is its day's
mean however busy the simulated hours, a trace's is its own requests over its own span.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from scipy.optimize import brentq
from scipy.special import i0e

from llmplan.errors import InputError
from llmplan.traffic.trace import describe, read_trace

DAY_S = 86_400.0


class Spike(BaseModel):
    """A window during which the rate is multiplied (a launch, a batch job, an incident)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    start_s: float = Field(ge=0)
    duration_s: float = Field(gt=0)
    multiplier: float = Field(gt=0, description="Rate factor inside the window.")


@dataclass(frozen=True)
class LongRunRate:
    """New requests per second over the long run (a month), and where that figure comes from
    (a conversation's later turns come on top: see traffic/volume.py)."""

    requests_per_s: float
    basis: str


#: points of the simulated hours at which a diurnal curve's highest rate is read
PEAK_SAMPLES = 2049


def duration_words(seconds: float) -> str:
    """A run's length as a reader says it, to three figures: "1.5 h", "5 min", "6.44 s",
    "1,080 h" (the unit chosen after rounding: 59.99 s is "1 min", not "60 s")."""
    if (shown := float(f"{seconds:.3g}")) < 60:
        return f"{shown:g} s"
    if (minutes := float(f"{seconds / 60:.3g}")) < 60:
        return f"{minutes:g} min"
    hours = seconds / 3600
    return f"{hours:,.0f} h" if hours >= 100 else f"{float(f'{hours:.3g}'):g} h"


class _Traffic(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @abstractmethod
    def long_run_rate(self, duration_s: float) -> LongRunRate:
        """The mean arrival rate over the long run, when `duration_s` of it is simulated."""

    @abstractmethod
    def arrival_times_s(self, rng: np.random.Generator, duration_s: float) -> np.ndarray:
        """Sorted arrival times in [0, duration_s)."""

    @abstractmethod
    def expected_rate_per_s(self, duration_s: float) -> float:
        """Expected requests per second over the run."""


class _RateCurve(_Traffic):
    """Synthetic traffic: a rate curve plus a renewal process in operational time."""

    spikes: tuple[Spike, ...] = ()

    @abstractmethod
    def base_rate_at(self, t_s: np.ndarray) -> np.ndarray:
        """Rate before spikes at times `t_s`."""

    def interarrival_cv(self) -> float:
        """The coefficient of variation of the gaps between arrivals (1: Poisson)."""
        return 1.0  # Poisson

    def rate_at(self, t_s: np.ndarray) -> np.ndarray:
        rate = self.base_rate_at(t_s)
        for spike in self.spikes:
            inside = (t_s >= spike.start_s) & (t_s < spike.start_s + spike.duration_s)
            rate = np.where(inside, rate * spike.multiplier, rate)
        return rate

    def _is_flat(self) -> bool:
        return False

    def _cumulative(self, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Grid of times and Lambda(t) on it (trapezoid rule, breakpoints at spike edges)."""
        step_s = min(1.0, duration_s / 2000.0)
        grid = np.arange(0.0, duration_s + step_s, step_s)
        edges = [e for s in self.spikes for e in (s.start_s, s.start_s + s.duration_s)]
        eps = step_s * 1e-6
        extra = [x for e in edges if 0 < e < duration_s for x in (e - eps, e)]
        grid = np.unique(np.concatenate([grid, np.asarray(extra, dtype=float)]))
        rate = self.rate_at(grid)
        cumulative = np.concatenate([[0.0], np.cumsum(np.diff(grid) * (rate[1:] + rate[:-1]) / 2)])
        return grid, cumulative

    def expected_rate_per_s(self, duration_s: float) -> float:
        grid, cumulative = self._cumulative(duration_s)
        return float(np.interp(duration_s, grid, cumulative)) / duration_s

    def _spikes_extra_per_s(self, duration_s: float) -> float:
        """Requests the spikes add to the simulated window, per second of it."""
        if not self.spikes:
            return 0.0
        plain = self.model_copy(update={"spikes": ()})
        return self.expected_rate_per_s(duration_s) - plain.expected_rate_per_s(duration_s)

    def _flat_long_run(self, kind: str, rate: float, duration_s: float) -> LongRunRate:
        """A flat rate's long run: the rate, with any spikes' extra requests as often as the
        simulated window (the window stands for every stretch of the month)."""
        extra = self._spikes_extra_per_s(duration_s)
        basis = f"{kind} traffic's rate_per_s {rate:g}/s"
        if extra:
            basis += (f", with its spikes' extra requests once every {duration_words(duration_s)} "
                      f"(the simulated window)")
        return LongRunRate(rate + extra, basis)

    def arrival_times_s(self, rng: np.random.Generator, duration_s: float) -> np.ndarray:
        grid, cumulative = self._cumulative(duration_s)
        total = float(np.interp(duration_s, grid, cumulative))
        operational = _renewal_points(rng, total, self.interarrival_cv())
        if self._is_flat() and not self.spikes:
            return operational * (duration_s / total) if total > 0 else operational
        times: np.ndarray = np.interp(operational, cumulative, grid)
        return times[times < duration_s]


def _renewal_points(rng: np.random.Generator, horizon: float, cv: float) -> np.ndarray:
    """Points of a unit-rate renewal process on [0, horizon) with interarrival CV `cv`."""
    if horizon <= 0:
        return np.empty(0)
    chunk = int(horizon + 6.0 * math.sqrt(horizon) * max(cv, 1.0) + 64)
    pieces, last = [], 0.0
    while True:
        if cv == 0.0:
            gaps = np.ones(chunk)
        elif cv == 1.0:
            gaps = rng.exponential(1.0, size=chunk)
        else:
            shape = 1.0 / (cv * cv)
            gaps = rng.gamma(shape, 1.0 / shape, size=chunk)
        points = last + np.cumsum(gaps)
        pieces.append(points[points < horizon])
        if points[-1] >= horizon:
            return np.concatenate(pieces)
        last = float(points[-1])


class ConstantTraffic(_RateCurve):
    """Perfectly regular arrivals at `rate_per_s` (a synthetic benchmark client)."""

    kind: Literal["constant"] = "constant"
    rate_per_s: float = Field(gt=0)

    def base_rate_at(self, t_s: np.ndarray) -> np.ndarray:
        return np.full_like(t_s, self.rate_per_s, dtype=float)

    def long_run_rate(self, duration_s: float) -> LongRunRate:
        return self._flat_long_run(self.kind, self.rate_per_s, duration_s)

    def interarrival_cv(self) -> float:
        return 0.0

    def _is_flat(self) -> bool:
        return True

    def arrival_times_s(self, rng: np.random.Generator, duration_s: float) -> np.ndarray:
        if self.spikes:
            return super().arrival_times_s(rng, duration_s)
        return np.arange(0.0, duration_s, 1.0 / self.rate_per_s)


class PoissonTraffic(_RateCurve):
    """Independent users: exponential gaps at `rate_per_s`."""

    kind: Literal["poisson"] = "poisson"
    rate_per_s: float = Field(gt=0)

    def base_rate_at(self, t_s: np.ndarray) -> np.ndarray:
        return np.full_like(t_s, self.rate_per_s, dtype=float)

    def long_run_rate(self, duration_s: float) -> LongRunRate:
        return self._flat_long_run(self.kind, self.rate_per_s, duration_s)

    def _is_flat(self) -> bool:
        return True


class GammaTraffic(_RateCurve):
    """Bursty (cv > 1) or smoother than Poisson (cv < 1) arrivals at `rate_per_s`."""

    kind: Literal["gamma"] = "gamma"
    rate_per_s: float = Field(gt=0)
    cv: float = Field(gt=0, description="Coefficient of variation of the gaps (1 = Poisson).")

    def base_rate_at(self, t_s: np.ndarray) -> np.ndarray:
        return np.full_like(t_s, self.rate_per_s, dtype=float)

    def long_run_rate(self, duration_s: float) -> LongRunRate:
        return self._flat_long_run(self.kind, self.rate_per_s, duration_s)

    def interarrival_cv(self) -> float:
        return self.cv

    def _is_flat(self) -> bool:
        return True


class DiurnalTraffic(_RateCurve):
    """A 24-hour cycle with a given mean and peak-to-mean ratio.

    Shape: lambda(t) = mean * exp(k cos(2 pi (h - peak_hour) / 24)) / I0(k), whose daily mean
    is exactly `mean_rate_per_s` and whose peak is `peak_to_mean` times it (k solves
    exp(k) / I0(k) = peak_to_mean). Any ratio above 1 is reachable, unlike a raised cosine.
    """

    kind: Literal["diurnal"] = "diurnal"
    mean_rate_per_s: float = Field(gt=0, description="Mean over a whole day.")
    peak_to_mean: float = Field(gt=1.0, le=50.0, description="The peak hour's rate over the "
                                "day's mean (2: the peak brings twice the mean).")
    peak_hour: float = Field(default=14.0, ge=0, lt=24)
    start_hour: float = Field(default=0.0, ge=0, lt=24, description="Clock hour at t = 0.")
    arrival: Literal["poisson", "gamma"] = "poisson"
    cv: float = Field(default=1.0, gt=0, description="Gap CV when arrival is gamma.")

    def concentration(self) -> float:
        # exp(k)/I0(k) = 1/i0e(k); increasing in k from 1 towards infinity.
        return float(brentq(lambda k: -math.log(i0e(k)) - math.log(self.peak_to_mean),
                            1e-9, 1e4))

    def base_rate_at(self, t_s: np.ndarray) -> np.ndarray:
        k = self.concentration()
        hour = self.start_hour + t_s / 3600.0
        angle = 2.0 * math.pi * (hour - self.peak_hour) / 24.0
        # exp(k cos a) / I0(k) = exp(k (cos a - 1)) / i0e(k): stable for large k.
        rate: np.ndarray = self.mean_rate_per_s * np.exp(k * (np.cos(angle) - 1.0)) / i0e(k)
        return rate

    def interarrival_cv(self) -> float:
        return self.cv if self.arrival == "gamma" else 1.0

    def peak_missed_by(self, duration_s: float) -> float:
        """How many times the day's peak rate exceeds the highest rate of the simulated
        hours (1.0: they include the peak)."""
        t_s = np.linspace(0.0, duration_s, PEAK_SAMPLES)
        highest = float(self.base_rate_at(t_s).max())
        peak = self.mean_rate_per_s * self.peak_to_mean
        return max(1.0, peak / highest)

    def long_run_rate(self, duration_s: float) -> LongRunRate:
        """The day's mean, with any spikes' extra requests once a day (once in the run if it
        is longer), whatever hours of the day are simulated."""
        extra = self._spikes_extra_per_s(duration_s) * duration_s / max(duration_s, DAY_S)
        window = self.expected_rate_per_s(duration_s)
        basis = (f"diurnal traffic's mean_rate_per_s {self.mean_rate_per_s:g}/s (the day's "
                 f"mean; expected over the simulated {duration_words(duration_s)}: {window:.3g}/s, "
                 "which a random draw of arrivals meets only on average)")
        if extra:
            basis += ", with its spikes' extra requests once a day"
        return LongRunRate(self.mean_rate_per_s + extra, basis)


class TraceTraffic(_Traffic):
    """Replay recorded arrivals (and their token counts) from a CSV or JSONL trace."""

    kind: Literal["trace"] = "trace"
    path: str
    time_scale: float = Field(default=1.0, gt=0,
                              description="Multiply trace times by this (0.5 = twice as fast).")
    resolved_path: str = Field(default="", exclude=True)

    @field_validator("path")
    @classmethod
    def _check_file(cls, path: str, info: ValidationInfo) -> str:
        try:
            read_trace(_resolve(path, info))
        except InputError as exc:
            raise ValueError(describe(exc.problems)) from None
        return path

    @model_validator(mode="after")
    def _resolve_path(self, info: ValidationInfo) -> TraceTraffic:
        object.__setattr__(self, "resolved_path", _resolve(self.path, info))
        return self

    def columns(self) -> dict[str, np.ndarray]:
        return read_trace(self.resolved_path or self.path)

    def arrival_times_s(self, rng: np.random.Generator, duration_s: float) -> np.ndarray:
        times = self.columns()["timestamp"] * self.time_scale
        return times[times < duration_s]

    def expected_rate_per_s(self, duration_s: float) -> float:
        return len(self.arrival_times_s(np.random.default_rng(0), duration_s)) / duration_s

    def long_run_rate(self, duration_s: float) -> LongRunRate:
        """The whole trace's own rate: its new requests (conversations' first turns; later
        turns follow from them) over the time from its first to its last arrival."""
        columns = self.columns()
        times = columns["timestamp"] * self.time_scale
        session, turn = columns.get("session"), columns.get("turn")
        first = np.ones(len(times), dtype=bool) if session is None or turn is None \
            else (session < 0) | (turn == 0)
        span_s = float(times.max() - times.min()) if len(times) else 0.0
        count = int(first.sum())
        if count < 2 or span_s <= 0:       # no span to take a rate over: the window's own
            rate = self.expected_rate_per_s(duration_s) * count / max(len(times), 1)
            return LongRunRate(rate, "the simulated window (the trace has no span of its own)")
        rate = (count - 1) / span_s
        return LongRunRate(rate, f"the trace's own rate: {count - 1:,} gaps between its "
                                 f"{count:,} new requests, over its "
                                 f"{duration_words(span_s)}")


def trace_span_s(traffic: TrafficSpec) -> float | None:
    """From a trace's first arrival to its last, as replayed (time_scale applied); None
    for synthetic traffic."""
    if not isinstance(traffic, TraceTraffic):
        return None
    times = traffic.columns()["timestamp"] * traffic.time_scale
    return float(times.max() - times.min()) if len(times) else 0.0


def _resolve(path: str, info: ValidationInfo) -> str:
    return str((Path((info.context or {}).get("base_dir", ".")) / path).resolve())


TrafficSpec = Annotated[
    ConstantTraffic | PoissonTraffic | GammaTraffic | DiurnalTraffic | TraceTraffic,
    Field(discriminator="kind"),
]
