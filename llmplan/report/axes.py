"""Chart axes a reader can read: goodput spaced by nines, log axes of milliseconds and of
counts ticked with whole labels, and when the queue axis turns logarithmic."""

from __future__ import annotations

import math
from collections.abc import Callable


def goodput_axis(values: list[float], targets: list[float]) -> tuple[dict[str, object], float]:
    """A goodput axis spaced by nines for these goodputs and SLO targets, and where a
    goodput of 1 is drawn on it.

    Goodputs of 0.97, 0.98 and 1 beside an SLO of 0.95 lay on one line at the top of a
    linear axis from 0 to 1. Drawn as the share missed (1 - goodput) on a reversed log axis
    they stand apart, labelled as goodput ("99%", "99.9%"), and a collapse to 0.01 still
    fits at the bottom: nothing is cut off. None missed cannot sit on a log axis: it is
    drawn a decade above the fewest missed, labelled "100%"."""
    missed = [1 - v for v in [*values, *targets] if v < 1]
    # the decade of the fewest missed (at least that of 90%)
    first = min(-1, math.floor(math.log10(min(missed, default=0.1))))
    perfect = 10.0 ** (first - 1)
    # the axis reaches "100%" only for a goodput of 1 drawn there
    end = perfect if any(v >= 1 for v in values) else 10.0 ** first
    # to six digits: an SLO of 0.99 has its tick where 99% is (1 - 0.99 is 0.0100...09)
    ticks = sorted({float(f"{t:.6g}") for t in (end, *(10.0 ** k for k in range(first, 1)),
                                                0.5, *(1 - t for t in targets if 0 < t < 1))})

    def label(tick: float) -> str:
        if math.isclose(tick, perfect):
            return "100%"
        # as many decimals as the goodput has ("99.95%"), no more
        digits = next((d for d in range(6) if abs(round((1 - tick) * 100, d)
                                                  - (1 - tick) * 100) < 1e-9), 6)
        return f"{(1 - tick) * 100:.{digits}f}%"

    return ({"type": "log", "tickmode": "array", "tickvals": ticks,
             "ticktext": [label(t) for t in ticks],
             # reversed (up is more goodput): from all missed to a little above the top tick
             "range": [0.05, math.log10(end) - 0.15]}, perfect)


def log_ticks_ms(values_ms: list[float | None], spanned: bool = False) -> dict[str, object]:
    """Tick settings of a log axis of milliseconds: 1-2-5 steps (only powers of ten over more
    than four decades) covering the values, labelled whole ("50 ms", "2 s"), never Plotly's
    lone leading digits ("4", "2", "8") when the axis follows another axis' grid; `spanned`:
    a range holding every value with room at both ends, out to the tick past each end when
    it is near (under a third of a decade), so no point sits on the plot's edge."""
    ticks = _log_ticks(values_ms, _duration_label)
    tickvals = ticks.get("tickvals")
    positive = [v for v in values_ms if v is not None and v > 0]
    if spanned and isinstance(tickvals, list) and tickvals and positive:
        low, high = math.log10(min(positive)), math.log10(max(positive))
        first, last = math.log10(tickvals[0]), math.log10(tickvals[-1])
        ticks["range"] = [min(low, first if low - first < 1 / 3 else low - 0.05),
                          max(high, last if last - high < 1 / 3 else high + 0.05)]
    return ticks


def log_ticks_count(values: list[float | None]) -> dict[str, object]:
    """The same for a log axis of mean counts (waiting requests): "0.01", "20", "5,000",
    from a hundredth up (a minute's mean under that is as good as nobody waiting), the axis
    spanning the ticks (else a minute's 1e-5 stretches it over decades of nothing)."""
    ticks = _log_ticks(values, lambda n: f"{n:g}" if n < 1 else f"{round(n):,}",
                       floor=QUEUE_LOG_FLOOR)
    tickvals = ticks.get("tickvals")
    if isinstance(tickvals, list) and tickvals:
        ticks["range"] = [math.log10(tickvals[0]), math.log10(tickvals[-1])]
    return ticks


def _log_ticks(values: list[float | None], label: Callable[[float], str],
               floor: float = 1.0) -> dict[str, object]:
    positive = [v for v in values if v is not None and v > 0]
    if not positive:
        return {}
    # from `floor` up: every label whole (or a tenth, below 1)
    bottom, top = max(floor, min(positive)), max(floor, *positive)
    low, high = math.floor(math.log10(bottom)), math.ceil(math.log10(top))
    steps = (1, 2, 5) if high - low <= 4 else (1,)
    scale = [step * 10.0 ** exponent for exponent in range(low, high + 1) for step in steps]
    first = max(i for i, tick in enumerate(scale) if tick <= bottom)
    last = min(i for i, tick in enumerate(scale) if tick >= top)
    ticks = scale[first:max(last, first + 1) + 1]
    return {"tickmode": "array", "tickvals": ticks, "ticktext": [label(t) for t in ticks],
            "showgrid": False}


def _duration_label(ms: float) -> str:
    """A tick of 1 ms or more on a 1-2-5 scale: "500 ms", "2 s", "10,000 s"."""
    return f"{round(ms / 1000):,} s" if ms >= 1000 else f"{round(ms)} ms"


#: how many times one candidate's longest queue may exceed another's before the queue axis
#: turns logarithmic: on a shared linear axis a saturated candidate flattens the others
QUEUE_LOG_SPREAD = 20.0
#: on that axis, a minute's mean queue under this is drawn as none (below the axis)
QUEUE_LOG_FLOOR = 0.01


def queue_axis_is_log(queues: list[list[float]]) -> bool:
    """Whether the candidates' queue depths need a log axis to all be readable: the
    longest queue of one is QUEUE_LOG_SPREAD times another's (among those that queue)."""
    peaks = [max(q) for q in queues if q and max(q) > 0]
    return len(peaks) > 1 and max(peaks) > QUEUE_LOG_SPREAD * min(peaks)
