"""Queue depth over a run: how many requests waited to start, integrated over time."""

from __future__ import annotations

import math

import numpy as np

from llmplan.sim.records import CONVERSATION_ENDED, MINUTE_S, REJECTED, TIMED_OUT, TOO_LONG
from llmplan.sim.table import RequestTable


def queue_depth(table: RequestTable, duration_s: float,
                horizon_s: float) -> tuple[float, float, np.ndarray]:
    """Time-average and max of waiting requests over [0, duration], and per-minute means."""
    queued = (table.outcome != REJECTED) & (table.outcome != TOO_LONG) \
        & (table.outcome != CONVERSATION_ENDED)
    enter = table.arrival_s[queued]
    leave = table.start_s[queued]
    leave = np.where(np.isnan(leave), np.where(table.outcome[queued] == TIMED_OUT,
                                               table.refused_s[queued], horizon_s), leave)
    times = np.concatenate([enter, leave])
    steps = np.concatenate([np.ones(len(enter)), -np.ones(len(leave))])
    order = np.lexsort((steps, times))   # leave before enter at equal times
    times, depth = times[order], np.cumsum(steps[order])
    minutes = max(1, math.ceil(duration_s / MINUTE_S))
    per_minute = np.zeros(minutes)
    if len(times) == 0:
        return 0.0, 0.0, per_minute
    # integrate the step function depth(t) over each minute
    edges = np.minimum(np.arange(minutes + 1) * MINUTE_S, duration_s)
    grid = np.unique(np.concatenate([times[times < duration_s], edges]))
    idx = np.searchsorted(times, grid, side="right") - 1
    level = np.where(idx >= 0, depth[np.maximum(idx, 0)], 0.0)
    widths = np.diff(grid)
    area = level[:-1] * widths
    which = np.minimum((grid[:-1] // MINUTE_S).astype(int), minutes - 1)
    np.add.at(per_minute, which, area)
    span = np.diff(edges)
    per_minute = np.divide(per_minute, span, out=np.zeros(minutes), where=span > 0)
    inside = times < duration_s
    peak = float(depth[inside].max()) if inside.any() else 0.0
    return float(area.sum() / duration_s), peak, per_minute
