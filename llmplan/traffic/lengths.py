"""Token-length distributions for prompts and outputs, one class per kind."""

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

from llmplan.errors import InputError
from llmplan.traffic.trace import describe, read_trace

Z95 = 1.6448536269514722  # standard normal quantile at 0.95


class _Length(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_tokens: int | None = Field(default=None, gt=0, description="Clip samples to this many.")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` token counts (int64, each >= 1)."""
        raw = self._draw(rng, n)
        out: np.ndarray = np.maximum(np.rint(raw), 1).astype(np.int64)
        if self.max_tokens is not None:
            np.minimum(out, self.max_tokens, out=out)
        return out

    @abstractmethod
    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Raw (unrounded, unclipped) samples."""

    @abstractmethod
    def mean_tokens(self) -> float:
        """Mean before rounding and clipping (for sizing estimates only)."""


class FixedLength(_Length):
    kind: Literal["fixed"] = "fixed"
    tokens: int = Field(gt=0)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.tokens, dtype=np.float64)

    def mean_tokens(self) -> float:
        return float(self.tokens)


class UniformLength(_Length):
    """Integers from min_tokens to max_tokens, both included, equally likely."""

    kind: Literal["uniform"] = "uniform"
    min_tokens: int = Field(gt=0)
    max_tokens: int = Field(gt=0)  # required here: the upper bound

    @model_validator(mode="after")
    def _ordered(self) -> UniformLength:
        if self.max_tokens < self.min_tokens:
            raise ValueError("max_tokens must be >= min_tokens")
        return self

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.min_tokens, self.max_tokens + 1, size=n).astype(float)

    def mean_tokens(self) -> float:
        return (self.min_tokens + self.max_tokens) / 2


class LognormalLength(_Length):
    """Lognormal fixed by its mean and 95th percentile (what people usually know)."""

    kind: Literal["lognormal"] = "lognormal"
    mean: float = Field(gt=0)
    p95: float = Field(gt=0)

    @model_validator(mode="after")
    def _reachable(self) -> LognormalLength:
        ratio = self.p95 / self.mean
        if ratio <= 1.0:
            raise ValueError("p95 must be larger than mean for a lognormal length")
        if 2.0 * math.log(ratio) > Z95 * Z95:
            raise ValueError(f"p95/mean = {ratio:.2f} is more skew than a lognormal allows "
                             f"(at most {math.exp(Z95 * Z95 / 2):.2f}); use kind: empirical")
        return self

    def mu_sigma(self) -> tuple[float, float]:
        """Parameters of the underlying normal: mean = exp(mu + s^2/2), p95 = exp(mu + z s)."""
        gap = math.log(self.p95 / self.mean)
        sigma = Z95 - math.sqrt(Z95 * Z95 - 2.0 * gap)
        return math.log(self.mean) - sigma * sigma / 2.0, sigma

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        mu, sigma = self.mu_sigma()
        return rng.lognormal(mu, sigma, size=n)

    def mean_tokens(self) -> float:
        return self.mean


class ExponentialLength(_Length):
    """Geometric on 1, 2, ...: the discrete exponential (memoryless lengths, as in M/M/1)."""

    kind: Literal["exponential"] = "exponential"
    mean: float = Field(ge=1)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.geometric(1.0 / self.mean, size=n).astype(float)

    def mean_tokens(self) -> float:
        return self.mean


class EmpiricalLength(_Length):
    """Resample the lengths seen in a trace file (CSV or JSONL), optionally of one task."""

    kind: Literal["empirical"] = "empirical"
    path: str
    column: Literal["prompt_tokens", "output_tokens"]
    task: str | None = Field(default=None, description="Only rows of this task.")
    values: tuple[int, ...] = Field(default=(), exclude=True,
                                    description="Filled from `path` when validated (not "
                                                "an input: refused in a scenario).")

    @field_validator("values", mode="before")
    @classmethod
    def _not_given(cls, values: object) -> object:
        if values not in ((), [], None):
            raise ValueError("the lengths come from `path` (and `column`, `task`): leave "
                             "values out, or use kind: uniform / fixed for lengths of your "
                             "own")
        return ()

    @field_validator("path")
    @classmethod
    def _check_file(cls, path: str, info: ValidationInfo) -> str:
        try:
            read_trace(Path((info.context or {}).get("base_dir", ".")) / path)
        except InputError as exc:
            raise ValueError(describe(exc.problems)) from None
        return path

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> EmpiricalLength:
        trace = read_trace(Path((info.context or {}).get("base_dir", ".")) / self.path)
        column = trace[self.column]
        if self.task is not None:
            column = column[trace["task"] == self.task]
        if len(column) == 0:
            raise ValueError(f"no rows for task {self.task!r} in {self.path}")
        object.__setattr__(self, "values", tuple(int(v) for v in column))
        return self

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        pool = np.asarray(self.values, dtype=float)
        return pool[rng.integers(0, len(pool), size=n)]

    def mean_tokens(self) -> float:
        return float(np.mean(self.values)) if self.values else 0.0


LengthSpec = Annotated[
    FixedLength | UniformLength | LognormalLength | ExponentialLength | EmpiricalLength,
    Field(discriminator="kind"),
]
