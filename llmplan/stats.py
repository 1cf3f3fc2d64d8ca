"""The one rule for percentiles, used by the simulator, the load tests and the fidelity checks.

Rule: values that are NaN are dropped; a percentile interpolates linearly between the two
nearest order statistics (numpy's default "linear" method, the one most load tools use); no
values at all gives None, never 0 or NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

#: The percentiles every latency summary reports.
PERCENTILES: tuple[float, ...] = (50, 90, 95, 99)
#: Up to this many values a percentile is computed from a full sort in Python, with
#: numpy's own arithmetic: np.percentile's set-up costs ~0.1 ms a call, most of a small
#: simulation's summary (planning summarises dozens of them); past it, numpy's partial sort
#: is the faster.
SMALL = 2000


def finite(values: Iterable[float | None] | np.ndarray) -> np.ndarray:
    """The values as a float array, without NaN (None counts as NaN)."""
    array: np.ndarray = (values.astype(float, copy=False) if isinstance(values, np.ndarray)
                         else np.array([np.nan if v is None else v for v in values], dtype=float))
    kept: np.ndarray = array[~np.isnan(array)]
    return kept


def percentiles(values: Iterable[float | None] | np.ndarray,
                qs: Sequence[float] = PERCENTILES) -> dict[float, float | None]:
    """Percentile q of the values for each q in `qs` (see the module rule)."""
    array = finite(values)
    if array.size == 0:
        return {q: None for q in qs}
    if array.size <= SMALL:
        ordered = np.sort(array).tolist()
        if math.isfinite(ordered[0]) and math.isfinite(ordered[-1]):
            return {q: _linear(ordered, q) for q in qs}
    points = np.percentile(array, list(qs))
    return {q: float(v) for q, v in zip(qs, points, strict=True)}


def _linear(ordered: list[float], q: float) -> float:
    """Percentile q of finite sorted values, as np.percentile's "linear" method computes it
    (numpy 2's _quantile and _lerp, operation for operation: the same float every time)."""
    if not 0 <= q <= 100:
        raise ValueError("Percentiles must be in the range [0, 100]")
    last = len(ordered) - 1
    virtual = last * (q / 100)
    if virtual >= last:
        return ordered[-1]
    below = math.floor(virtual)
    gamma = virtual - below
    a, b = ordered[below], ordered[below + 1]
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def percentile(values: Iterable[float | None] | np.ndarray, q: float) -> float | None:
    """One percentile (see the module rule)."""
    return percentiles(values, (q,))[q]


def mean(values: Iterable[float | None] | np.ndarray) -> float | None:
    """Arithmetic mean of the finite values; None when there are none."""
    array = finite(values)
    return float(array.mean()) if array.size else None
