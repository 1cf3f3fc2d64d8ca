"""Arrival processes, one class per `traffic.kind`.

Every synthetic kind is a rate curve lambda(t) (flat, or a 24-hour diurnal shape, times any
spikes) driven through time-rescaling: a unit-rate renewal process (Poisson, Gamma with a given
coefficient of variation, or perfectly regular) is drawn in operational time and mapped back
through the inverse of Lambda(t) = integral of lambda. So a Gamma process on a diurnal curve
keeps its burstiness at every hour while following the curve.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
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


class _Traffic(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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

    def _interarrival_cv(self) -> float:
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

    def arrival_times_s(self, rng: np.random.Generator, duration_s: float) -> np.ndarray:
        grid, cumulative = self._cumulative(duration_s)
        total = float(np.interp(duration_s, grid, cumulative))
        operational = _renewal_points(rng, total, self._interarrival_cv())
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

    def _interarrival_cv(self) -> float:
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

    def _is_flat(self) -> bool:
        return True


class GammaTraffic(_RateCurve):
    """Bursty (cv > 1) or smoother than Poisson (cv < 1) arrivals at `rate_per_s`."""

    kind: Literal["gamma"] = "gamma"
    rate_per_s: float = Field(gt=0)
    cv: float = Field(gt=0, description="Coefficient of variation of the gaps (1 = Poisson).")

    def base_rate_at(self, t_s: np.ndarray) -> np.ndarray:
        return np.full_like(t_s, self.rate_per_s, dtype=float)

    def _interarrival_cv(self) -> float:
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
    peak_to_mean: float = Field(gt=1.0, le=50.0)
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

    def _interarrival_cv(self) -> float:
        return self.cv if self.arrival == "gamma" else 1.0


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


def _resolve(path: str, info: ValidationInfo) -> str:
    return str((Path((info.context or {}).get("base_dir", ".")) / path).resolve())


TrafficSpec = Annotated[
    ConstantTraffic | PoissonTraffic | GammaTraffic | DiurnalTraffic | TraceTraffic,
    Field(discriminator="kind"),
]
