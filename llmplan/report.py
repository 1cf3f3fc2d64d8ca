"""report.html: the decision and the evidence behind it, in one self-contained file.

Opens offline (plotly.js is inlined once). Sections: the recommendation and what would
flip it, the seed's decision table with this scenario's numbers, the evaluation checklist,
latency CDFs per candidate, latency and goodput versus load, utilisation and queue over
time, the cost breakdown, the break-even chart, and the per-deployment figures.
"""

from __future__ import annotations

import functools
import html
import math
import re
from collections.abc import Callable
from pathlib import Path

import plotly.colors
import plotly.graph_objects as go
from plotly.io import to_html
from plotly.subplots import make_subplots

from llmplan.decide.table import SEED_FIT, share_shown
from llmplan.results.decision import BreakEven, Candidate, Result
from llmplan.results.simulation import TURNS_SHOWN, SessionOutcome, TurnStats
from llmplan.scenario.cloud import SEED_CLOUD_KINDS, SEED_LOCAL_KINDS

CHART_HEIGHT = 520


#: the gap between an x axis and its tick labels, in pixels: past the half height of a
#: 12-pixel label on the y axis' bottom tick (Plotly's own gap leaves them overlapping)
TICK_STANDOFF_PX = 8


def _figure_html(fig: go.Figure, first: bool, div_id: str) -> str:
    # the legend under the plot: on the right it would cover the right-hand axes
    # a figure may ask for more height, or more room above (a subtitle over panel titles)
    fig.update_layout(height=fig.layout.height or CHART_HEIGHT, template="plotly_white",
                      margin={"l": 60, "r": 20, "t": max(50, fig.layout.margin.t or 0),
                              "b": 50},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.15,
                              "xanchor": "left", "x": 0})
    # an axis from 0 puts its "0" under the y axis' lowest label, centred on the bottom
    # edge ("0" on "50 ms", "0" on "0"): the x labels a little lower clear it
    fig.update_xaxes(ticklabelstandoff=TICK_STANDOFF_PX)
    # a fixed div id (plotly's own is random): the same result renders the same page
    return str(to_html(fig, include_plotlyjs="inline" if first else False, full_html=False,
                       div_id=div_id, config={"displaylogo": False, "responsive": True}))


#: each candidate's colour in the line charts (latency, load, over time, break-even)
CANDIDATE_COLOURS = plotly.colors.qualitative.Plotly


def candidate_colour(result: Result, name: str) -> str:
    """A candidate's colour, by its place among the scenario's deployments."""
    names = list(result.deployments)
    place = names.index(name) if name in names else len(names)
    return str(CANDIDATE_COLOURS[place % len(CANDIDATE_COLOURS)])


#: series whose every value is within this share of another's are drawn as one line
#: ("mini ≈ flagship"): on a log axis 5% is a pixel or two, one line hidden under another
NEAR = 0.05


def coinciding(series: dict[str, object], near: float = 0.0) -> dict[str, str]:
    """The candidates whose series are equal (every number within `near` of the other's,
    relative), as one line: the first of each group (in order) -> its legend name
    ("owned-h100 = rented-h100", "mini ≈ flagship" when only near). Two candidates that run
    the same simulation (an owned and a rented fleet of the same GPUs) draw the same line,
    and two legend entries for one visible line read as a line missing."""
    groups: dict[str, list[str]] = {}
    for name, values in series.items():
        first = next((f for f in groups if _near(series[f], values, near)), name)
        groups.setdefault(first, []).append(name)
    return {first: (" = " if all(series[n] == series[first] for n in names) else " ≈ ").join(
        names) for first, names in groups.items()}


def _near(a: object, b: object, near: float) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_near(x, y, near) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= near * max(abs(a), abs(b))
    return a == b


def latency_cdfs(result: Result) -> go.Figure:
    fig = go.Figure()
    shown = {metric: coinciding({name: getattr(dep.latency_cdf, metric)
                                 for name, dep in result.deployments.items()}, NEAR)
             for metric in ("ttft_ms", "e2e_ms")}
    every: list[float | None] = []
    for name, dep in result.deployments.items():
        for metric, dash in (("ttft_ms", "solid"), ("e2e_ms", "dot")):
            values = getattr(dep.latency_cdf, metric)
            if values and name in shown[metric]:
                every.extend(values)
                fig.add_trace(go.Scatter(x=values, y=[(i + 1) / 100 for i in range(len(values))],
                                         mode="lines",
                                         name=f"{shown[metric][name]} {metric[:-3].upper()}",
                                         line={"dash": dash,
                                               "color": candidate_colour(result, name)}))
    near = any(" ≈ " in names for names in (*shown["ttft_ms"].values(),
                                             *shown["e2e_ms"].values()))
    fig.update_layout(title="Latency distribution per candidate (solid TTFT, dotted E2E)"
                            + (f"<br><sup>≈: within {NEAR:.0%} of each other at every "
                               "percentile, drawn as one line</sup>" if near else ""),
                      xaxis={"title": "latency (log scale)", "type": "log",
                             # every tick a whole value with its unit ("20 ms", "5 s"), not
                             # Plotly's lone "2" and "5" between "100" and "1000"
                             **log_ticks_ms(every, spanned=True), "showgrid": True},
                      yaxis_title="share of requests")
    return fig


def load_curves(result: Result) -> go.Figure:
    """Planning's load curves: goodput above (on an axis spaced by nines), TTFT p95 below,
    on one axis of offered load; the SLO's goodput, this traffic's busiest stretch and the
    rate the month is costed at as reference lines named in the legend."""
    plans = result.planning.deployments if result.planning is not None else {}
    # two panels, not two y axes over one another: a TTFT line no longer crosses the
    # goodput lines, nor looks like one of them
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4],
                        vertical_spacing=0.05)
    targets = {d.slo.min_goodput_fraction for d in result.deployments.values()}
    goodputs = coinciding({name: [(p.requests_per_s, p.goodput_fraction)
                                  for p in plan.load_curve] for name, plan in plans.items()})
    ttfts = coinciding({name: [(p.requests_per_s, p.ttft_p95_ms) for p in plan.load_curve]
                        for name, plan in plans.items()}, NEAR)
    axis, perfect = goodput_axis([p.goodput_fraction for plan in plans.values()
                                  for p in plan.load_curve if p.goodput_fraction is not None],
                                 sorted(targets))
    for name, plan in plans.items():
        curve = plan.load_curve
        rates = [p.requests_per_s for p in curve]
        colour = candidate_colour(result, name)
        if name in goodputs:
            # drawn as the share missed, on the axis spaced by nines (1.0: at `perfect`)
            fig.add_trace(go.Scatter(
                x=rates, y=[None if p.goodput_fraction is None
                            else max(1 - p.goodput_fraction, perfect) for p in curve],
                customdata=[p.goodput_fraction for p in curve],
                hovertemplate="%{customdata:.2%} at %{x:.3g} requests/s",
                name=f"{goodputs[name]} goodput", legendgroup=name, mode="lines+markers",
                line={"color": colour}), row=1, col=1)
        if name in ttfts:
            fig.add_trace(go.Scatter(x=rates, y=[p.ttft_p95_ms for p in curve],
                                     name=f"{ttfts[name]} TTFT p95", legendgroup=name,
                                     mode="lines+markers",
                                     line={"dash": "dot", "color": colour},
                                     marker={"symbol": "diamond"}), row=2, col=1)
    ttfts_ms = [p.ttft_p95_ms for plan in plans.values() for p in plan.load_curve]
    # the reference lines are named in the legend: labels by the lines sat on the curves
    # (and on each other)
    if plans and len(targets) == 1:
        # the goodput a candidate needs: where its curve crosses this line is its capacity
        target = targets.pop()
        fig.add_hline(y=1 - target, line={"dash": "dash", "color": "#555", "width": 1},
                      showlegend=True, name=f"SLO goodput ({target:.3g})", row=1, col=1)
    caption = "goodput spaced by nines (99%, 99.9%: the share missed, log)"
    if plans and result.planning is not None and result.planning.window.span_s > 0:
        window = result.planning.window
        here = window.requests / window.span_s
        caption += f"; dashed {here:.3g}/s: this traffic's busiest stretch"
        lines = [(here, "dash", "#555", 1.0, f"this traffic: {here:.3g}/s")]
        costed = result.scenario.long_run_requests_per_s
        if costed and abs(costed / here - 1) > 0.05:
            # the month's costs (and the volume cases, their multiples) are at the long-run
            # rate, which a stretch lighter or busier than it does not show
            caption += (f"; dotted {costed:.3g}/s: the long-run rate the monthly costs are "
                        "at (volume x1)")
            lines.append((costed, "dot", "#999", 1.5, f"costed rate: {costed:.3g}/s"))
        for x, dash, colour, width, label in lines:
            for row in (1, 2):
                fig.add_vline(x=x, line={"dash": dash, "color": colour, "width": width},
                              showlegend=row == 1, name=label, row=row, col=1)
    if any(" ≈ " in names for names in ttfts.values()):
        caption += f"; ≈: TTFT within {NEAR:.0%} at every load, one line"
    fig.update_layout(title=f"Goodput and TTFT p95 versus offered load<br><sup>{caption}"
                            "</sup>", height=LOAD_CHART_HEIGHT)
    fig.update_xaxes(rangemode="tozero")
    fig.update_xaxes(title_text="requests/s at the busiest stretch's pace", row=2, col=1)
    fig.update_yaxes(title_text="goodput (by nines)", **axis, row=1, col=1)
    fig.update_yaxes(title_text="TTFT p95 (log)", type="log",
                     **{**log_ticks_ms(ttfts_ms, spanned=True), "showgrid": True},
                     row=2, col=1)
    return fig


#: the load chart's two panels need more height than one
LOAD_CHART_HEIGHT = 680


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


def over_time(result: Result) -> go.Figure:
    fig = go.Figure()
    top = 1.0           # the MBU axis reaches the highest point drawn (none is cut off)
    fleets = {name: dep.local.timeseries for name, dep in result.deployments.items()
               if dep.local is not None}
    queues = {name: series.queue_depth_mean for name, series in fleets.items()}
    log_queue = queue_axis_is_log(list(queues.values()))
    # candidates that ran the same simulation draw one line, named for all of them
    mbus = coinciding({name: series.mbu_fraction for name, series in fleets.items()})
    waits = coinciding(dict(queues))
    for name, local in fleets.items():
        hours = [m / 60 for m in result.deployments[name].timeseries.minute]
        colour = candidate_colour(result, name)
        top = max([top, *local.mbu_fraction])
        if name in mbus:
            fig.add_trace(go.Scatter(x=hours, y=local.mbu_fraction, mode="lines",
                                     name=f"{mbus[name]} memory bandwidth",
                                     line={"color": colour}))
        if name in waits:
            # on a log axis a minute with nobody waiting (or as good as: under a hundredth
            # of a request) is a gap, not a fall to zero or a line off the axis' floor
            depth = [q if q >= QUEUE_LOG_FLOOR or not log_queue else None
                     for q in queues[name]]
            fig.add_trace(go.Scatter(x=hours, y=depth, mode="lines",
                                     name=f"{waits[name]} queue", yaxis="y2",
                                     line={"dash": "dot", "color": colour}))
    first = next(iter(result.deployments.values())).timeseries
    gpus = bool(fig.data)       # cloud APIs only: the arrivals alone, on their own axis
    behind = {"yaxis": "y3"} if gpus else {}
    if len(first.minute) > STEP_AREA_MINUTES:
        # a day's 1,440 bars are each under a pixel wide, and faded behind the lines they
        # vanished: the same minutes as a shaded step outline
        fig.add_trace(go.Scatter(x=[m / 60 for m in first.minute], y=first.arrivals_per_s,
                                 name="arrivals/s", mode="lines", fill="tozeroy",
                                 line={"shape": "hv", "width": 1, "color": ARRIVALS_LINE},
                                 fillcolor=ARRIVALS_FILL, **behind))
    else:
        fig.add_trace(go.Bar(x=[m / 60 for m in first.minute], y=first.arrivals_per_s,
                             name="arrivals/s", marker={"color": ARRIVALS_BAR},
                             **({**behind, "opacity": 0.35} if gpus else {})))
    if not gpus:
        fig.update_layout(title="Arrivals over the run (no candidate runs on GPUs)",
                          xaxis={"title": "hours"},
                          yaxis={"title": "arrivals/s", "rangemode": "nonnegative"})
        return fig
    fig.update_layout(title="GPU memory-bandwidth use, queue depth and arrivals over the run",
                      xaxis={"title": "hours", "domain": [0, 0.88]},
                      yaxis={"title": "share of peak bandwidth (MBU)", "range": [0, top * 1.05]},
                      # plotly.js 3 syncs an overlaying axis's ticks to the grid of the
                      # axis it overlays, which on a log or differently scaled axis gives
                      # ticks like 1.113455µ: each axis places its own
                      yaxis2={"overlaying": "y", "side": "right", "tickmode": "auto",
                              "showgrid": False,
                              **({"title": "waiting requests (log)",
                                  "type": "log",
                                  **log_ticks_count([q for qs in queues.values() for q in qs])}
                                 if log_queue else
                                 {"title": "waiting requests", "rangemode": "tozero"})},
                      yaxis3={"title": "arrivals/s", "overlaying": "y", "side": "right",
                              "anchor": "free", "position": 1.0, "tickmode": "auto",
                              "showgrid": False, "rangemode": "nonnegative"})
    return fig


#: runs longer than this many minutes draw their arrivals as a shaded step line, not bars
STEP_AREA_MINUTES = 240
#: arrivals in grey, behind the candidates' colours (not one of them)
ARRIVALS_LINE, ARRIVALS_FILL = "rgba(120,120,120,0.6)", "rgba(120,120,120,0.2)"
ARRIVALS_BAR = "rgb(150,150,150)"


def volume_bound(dep: Candidate) -> bool:
    """Whether a candidate is left out only for the volume it was asked to serve (an SLO
    miss, full batches under the traffic, a daily API limit): at less, it may serve."""
    return bool(dep.infeasible_because) and all(
        why.startswith(("misses the SLO", "its full batches answer")) or "daily limit (" in why
        for why in dep.infeasible_because)


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


#: Cost items as a reader names them (result.json keeps the item keys).
ITEM_LABELS = {
    "hardware": "GPUs and servers (amortised)", "gpu_rental": "GPU rental",
    "electricity": "electricity", "cooling": "cooling", "maintenance": "maintenance",
    "rack_colocation": "rack space", "serving_software": "serving software",
    "engineering": "engineering hours", "on_call": "on-call hours",
    "hardware_incidents": "hardware incident hours", "monitoring": "monitoring",
    "replacement_cycle": "replacements", "input_tokens": "API input tokens",
    "output_tokens": "API output tokens", "abandoned_attempts": "API attempts timed out",
    "long_context": "API long-context prices",
    "request_fees": "API request fees",
    "tool_calls": "tool calls", "storage_retrieval": "storage and retrieval",
    "network_egress": "network egress", "observability": "API observability",
    "vendor_review": "vendor review", "rate_limit_planning": "rate-limit planning",
}


def item_label(item: str) -> str:
    """`cloud_input_tokens` -> "API input tokens" (a hybrid's cloud part)."""
    return ITEM_LABELS.get(item.removeprefix("cloud_"), item.replace("_", " "))


#: A colour-blind-safe qualitative palette (Okabe and Ito's, with grey for black): every
#: two of its colours stay apart for the common colour-vision deficiencies.
SAFE_COLOURS = {"orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
                "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00",
                "purple": "#CC79A7", "grey": "#999999"}
#: Each cost item's colour and fill pattern ("" solid, "/" hatched, "." dotted), the same in
#: every report: a candidate pays up to a dozen items and the palette has eight colours, so
#: the smaller items repeat a colour under a pattern; in ITEM_LABELS' order, which is the
#: order the segments stack in, no two items in a row share a colour.
ITEM_STYLES: dict[str, tuple[str, str]] = {
    "GPUs and servers (amortised)": ("blue", ""), "GPU rental": ("sky", "/"),
    "electricity": ("yellow", ""), "cooling": ("blue", "/"),
    "maintenance": ("vermillion", ""), "rack space": ("grey", ""),
    "serving software": ("orange", "/"), "engineering hours": ("green", ""),
    "on-call hours": ("purple", ""), "hardware incident hours": ("vermillion", "/"),
    "monitoring": ("green", "/"), "replacements": ("yellow", "/"),
    "API input tokens": ("orange", ""), "API output tokens": ("sky", ""),
    "API attempts timed out": ("purple", "/"), "API long-context prices": ("blue", "."),
    "API request fees": ("green", "."), "tool calls": ("vermillion", "."),
    "storage and retrieval": ("yellow", "."), "network egress": ("grey", "/"),
    "API observability": ("orange", "."), "vendor review": ("purple", "."),
    "rate-limit planning": ("sky", "."),
}
#: every cost item's label, in a fixed order: the order its segment stacks in
ITEM_ORDER = tuple(dict.fromkeys(ITEM_LABELS.values()))


def item_style(label: str) -> tuple[str, str]:
    """A cost item's colour (hex) and fill pattern, the same in every report (one not in
    ITEM_LABELS: cross-hatched, its colour by its letters, stably)."""
    name, pattern = ITEM_STYLES.get(label) or (
        list(SAFE_COLOURS)[sum(map(ord, label)) % len(SAFE_COLOURS)], "x")
    return SAFE_COLOURS[name], pattern


#: Candidates whose monthly costs differ more than this many times are hard to read on one
#: linear cost axis (the cheap ones, often the real choice, lie flat on the floor): the cost
#: chart shows those within this factor of the cheapest again, at their own scale, and the
#: break-even chart's axes turn logarithmic.
WIDE_SPREAD = 20.0


def _wide(costs: list[float]) -> bool:
    positive = [c for c in costs if c > 0]
    return len(positive) > 1 and max(positive) > WIDE_SPREAD * min(positive)


def cost_breakdown(result: Result) -> go.Figure:
    """Each candidate's month as stacked items on a linear axis (bar lengths that mean
    what they show; never a log axis). Costs far apart: a second panel shows the cheaper
    candidates again at their own scale. The small items read on hover, and every item is
    listed under "Cost items"."""
    names = list(result.deployments)
    # one bar segment per item as a reader names it (a hybrid's cloud_input_tokens and an
    # API's input_tokens are both "API input tokens"), in the fixed stacking order
    present = {item_label(i.item) for d in result.deployments.values()
               for i in d.cost.items if i.usd_per_month > 0}
    labels = [label for label in ITEM_ORDER if label in present] \
        + sorted(present - set(ITEM_ORDER))
    totals = {n: result.deployments[n].cost.monthly_usd for n in names}
    wide = _wide(list(totals.values()))
    cheapest = min((t for t in totals.values() if t > 0), default=0.0)
    close = [n for n in names if totals[n] <= WIDE_SPREAD * cheapest]
    panels = [names, close] if wide else [names]
    fig = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.08,
                        subplot_titles=["every candidate", f"within {WIDE_SPREAD:g}x of "
                                        "the cheapest, at their own scale"] if wide else None)
    for col, shown in enumerate(panels, start=1):
        for label in labels:
            colour, pattern = item_style(label)
            fig.add_trace(go.Bar(
                name=label, x=shown, legendgroup=label, showlegend=col == 1,
                marker={"color": colour, "line": {"color": "white", "width": 0.5},
                        "pattern": {"shape": pattern, "fillmode": "overlay",
                                    "solidity": 0.35}},
                y=[sum(i.usd_per_month for i in result.deployments[n].cost.items
                       if item_label(i.item) == label) for n in shown],
                hovertemplate="%{x}: $%{y:,.0f} a month<extra>%{fullData.name}</extra>"),
                row=1, col=col)
        fig.add_trace(go.Scatter(x=shown, y=[totals[n] for n in shown], mode="text",
                                 name="total", showlegend=False, hoverinfo="skip",
                                 text=[f"${totals[n]:,.0f}" for n in shown],
                                 textposition="top center"), row=1, col=col)
        fig.update_xaxes(title_text="candidate", row=1, col=col)
        # room above the tallest bar for its total
        top = max((totals[n] for n in shown), default=0.0)
        fig.update_yaxes(title_text="USD/month", type="linear",
                         range=[0, top * 1.12 if top > 0 else 1], row=1, col=col)
    hint = "hover a segment for its amount; every item is listed under Cost items"
    fig.update_layout(barmode="stack", title=f"Monthly cost by item<br><sup>{hint}</sup>",
                      # the subtitle above the panels' titles
                      **({"margin": {"t": 95}} if wide else {}))
    return fig


def break_even_chart(result: Result) -> go.Figure:
    """Every candidate's monthly cost as fixed + per-request x volume (an autoscaled rented
    fleet's flat below the volume its floor carries), the break-even points
    of each local/cloud pair, and the scenario's own volume ("you are here")."""
    fig = go.Figure()
    here = max((d.cost.requests_per_month for d in result.deployments.values()), default=1.0)
    top = max([max(r.break_even_requests_per_month or 0,
                   r.local_dearer_again_requests_per_month or 0) for r in result.break_even]
              + [here, 1.0]) * 1.5
    # costs far apart: both axes log, from a thousandth of the top volume (a line of
    # fixed + per request x volume is then a curve, every candidate readable)
    wide = _wide([d.cost.monthly_usd for d in result.deployments.values()])
    volumes = [top * 1000 ** (k / 50 - 1) for k in range(51)] if wide \
        else [top * k / 50 for k in range(51)]
    capacity = _monthly_capacity(result)
    within_slo = _monthly_capacity(result, within_slo=True)
    for name, dep in result.deployments.items():
        cost = dep.cost
        label = f"{name} (recommended)" if name == result.recommendation.deployment else name
        color = candidate_colour(result, name)
        # solid while the fleet serves the volume (within the SLO when planning found how
        # much), dotted past it; an infeasible candidate dotted throughout, but for one
        # left out only for the volume it missed, which serves less (planning's figure)
        # (planning's rate within the SLO only, below the volume it missed at: never the
        # full batches, which a candidate missing the SLO at any load still has)
        most = capacity.get(name, math.inf) if dep.feasible else \
            min(within_slo.get(name, 0.0), cost.requests_per_month) if volume_bound(dep) \
            else 0.0
        within = [v for v in volumes if v <= most] if most > 0 else []
        beyond = [] if len(within) == len(volumes) else \
            [v for v in volumes if v >= (within[-1] if within else 0.0)]
        for part, dash, shown in ((within, "solid", True), (beyond, "dot", not within)):
            if part:
                fig.add_trace(go.Scatter(
                    x=part, mode="lines", name=label, legendgroup=name, showlegend=shown,
                    y=[cost.usd_at(v) for v in part],
                    line={"dash": dash, "color": color}))
    for r in result.break_even:
        # where the fleet starts to cost less, and where its GPUs above a reserved floor
        # make it cost more again
        crossings = [v for v in (r.break_even_requests_per_month,
                                 r.local_dearer_again_requests_per_month) if v]
        if crossings:
            # a pair with a side the decision excluded: an open marker, and the legend
            # says which side (the crossing is no choice between the two)
            fig.add_trace(go.Scatter(x=crossings,
                                     y=[r.cloud_fixed_usd + r.cloud_usd_per_request * v
                                        for v in crossings],
                                     mode="markers",
                                     marker={"size": 11, "symbol": "x-open"
                                             if _excluded_words(result, r) else "x"},
                                     name=f"break-even {r.local} / {r.cloud}"
                                     + (f" ({r.local} must grow)" if r.fleet_must_grow
                                        else "") + _excluded_words(result, r)))
    # the bundled plotly.js places a shape at its data value on a log axis (the log of it
    # drew the line at ~8 requests a month and stretched the axis down to it), and an
    # annotation at the log of its value: the label is added apart
    fig.add_vline(x=here, line={"dash": "dash", "color": "#555"})
    # inside the plot's top edge (above it, the label ran over the subtitle), on the
    # line's roomier side (left of a line near the axis' start, it ran off the plot)
    at = math.log10(here / volumes[0]) / math.log10(top / volumes[0]) if wide \
        else here / top
    fig.add_annotation(x=math.log10(here) if wide else here, xref="x", y=1, yref="paper",
                       text="you are here", showarrow=False,
                       xanchor="right" if at > 0.5 else "left", yanchor="top",
                       bgcolor="rgba(255,255,255,0.8)")
    # the ranking is by cost per useful result: a candidate whose answers are right less
    # often can cost less a month and still lose
    # two lines: one would run under the chart's toolbar and past the page's width
    title = ("Monthly cost versus monthly volume<br><sup>dotted: past what it serves within "
             "the SLO, or infeasible at any volume; the ranking is per useful result")
    if wide:
        fig.update_layout(title=title + "; log scales</sup>",
                          xaxis={"title": "requests per month (log)", "type": "log"},
                          yaxis={"title": "USD/month (log)", "type": "log"})
    else:
        fig.update_layout(title=title + "</sup>",
                          xaxis={"title": "requests per month", "rangemode": "nonnegative"},
                          yaxis={"title": "USD/month", "rangemode": "nonnegative"})
    return fig


CHARTS = (latency_cdfs, load_curves, over_time, cost_breakdown, break_even_chart)
#: what a chart that can come out with nothing to draw says in its place (the others
#: always draw: arrivals, a total per candidate, a cost line per candidate)
EMPTY_CHART = {
    "latency_cdfs": "No latency distribution: no candidate answered a request.",
    "load_curves": "Goodput and TTFT p95 versus offered load come from planning, which "
                   "this run skipped (--no-plan) or which had no fleet to size.",
}


#: a word with a hyphen inside it (a candidate, a GPU, a model, a date): browsers break a
#: line after a hyphen, and a narrow column showed "gpt-6-" over "luna"
HYPHENATED = re.compile(r"\S*\w-\w\S*")


def _cell(text: str) -> str:
    """A table cell's text, escaped, its hyphenated words kept whole on a line (the cell
    still wraps between words)."""
    return HYPHENATED.sub(lambda word: f"<span class='w'>{word.group(0)}</span>",
                          html.escape(text))


def _ids(result: Result) -> list[str]:
    """The hyphenated ids a report's prose names: the scenario, its candidates and tasks,
    the GPUs and models they run (longest first, so "gpu-small-2" is not read as
    "gpu-small")."""
    found = {result.scenario.name, *result.deployments, *(result.unbuildable or {})}
    for dep in result.deployments.values():
        found.update(dep.per_task)
        if dep.local is not None:
            found.update((dep.local.gpu, dep.local.model))
        if dep.cloud is not None:
            found.add(dep.cloud.model)
    return sorted((i for i in found if HYPHENATED.fullmatch(i)), key=lambda i: (-len(i), i))


def _prose(text: str, ids: list[str]) -> str:
    """Prose, escaped, each of `ids` in it kept whole on a line: a box that moves to the
    next line when the id does not fit at the end of this one, and breaks inside only
    when the id is wider than the whole line (never past the page's edge)."""
    escaped = html.escape(text)
    if not ids:
        return escaped
    return _id_pattern(tuple(ids)).sub(lambda m: f"<span class='id'>{m.group(1)}</span>",
                                       escaped)


@functools.lru_cache(maxsize=8)
def _id_pattern(ids: tuple[str, ...]) -> re.Pattern[str]:
    """Any of `ids`, escaped as in the page, standing alone (compiled once a report)."""
    return re.compile(r"(?<![\w.-])(" + "|".join(re.escape(html.escape(i)) for i in ids)
                      + r")(?![\w-])")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _conversations(talks: dict[str, SessionOutcome]) -> str:
    """Each candidate's sessions, and TTFT by turn: a row per turn, the turns past the
    first TURNS_SHOWN together in a last row ("11-16"), so the rows count every request."""
    summary = _table(["deployment", "sessions completed", "median session s",
                      "requests (turns)"],
                     [[name, f"{t.completed_sessions:,} of {t.sessions:,}",
                       _fmt(t.session_duration_p50_s), _fmt(t.turns)]
                      for name, t in talks.items()])
    rows: dict[str, dict[str, TurnStats]] = {}
    for name, t in talks.items():
        for stats in t.by_turn:
            rows.setdefault(str(stats.turn + 1), {})[name] = stats
        if t.later_turns is not None:
            later = t.later_turns
            span = f"{later.turn + 1}-{later.last_turn + 1}" \
                if later.last_turn > later.turn else str(later.turn + 1)
            rows.setdefault(span, {})[name] = later
    # a candidate's stream may (in principle) differ: one figure when all agree
    def same(by: dict[str, TurnStats], field: str, digits: int = 0) -> str:
        shown = list(dict.fromkeys(_fmt(getattr(s, field), digits) for s in by.values()))
        return " / ".join(shown)

    tail = [t.later_turns for t in talks.values() if t.later_turns is not None]
    note = (f" Turns {TURNS_SHOWN + 1} on are counted together in the last row "
            f"(sessions ran up to {max(t.last_turn for t in tail) + 1} turns)." if tail else "")
    return ("<h2>Conversations</h2><p>Each later turn resends the history and is sent when "
            "the previous answer has ended: a slow candidate stretches the conversations "
            "it serves.</p>" + summary + "<p>TTFT p50 (ms) by turn; every request is in "
            "one row." + html.escape(note) + "</p>" + _table(
                ["turn", "requests", "mean prompt tokens",
                 *[f"{name} TTFT p50 ms" for name in talks]],
                [[turn, same(by, "requests"), same(by, "prompt_tokens_mean"),
                  *[_fmt(by[name].ttft_p50_ms) if name in by else "-" for name in talks]]
                 for turn, by in rows.items()]))


def _hybrid_routing(hybrids: dict[str, Candidate]) -> str:
    """The seed's hybrid pattern as each hybrid ran it: per task, its requests and the share
    each path answered (the routes send whole tasks one way; spill-over, fall-back and
    the restricted rule move single requests)."""
    def share(count: int, of: int) -> str:
        # never "100%" beside requests left unanswered
        return f"{_fmt(count)} ({share_shown(count, of)})" if of else "-"

    rows = []
    for name, dep in hybrids.items():
        for task, outcome in dep.per_task.items():
            rows.append([name, task, _fmt(outcome.requests),
                         share(outcome.completed - outcome.served_cloud, outcome.requests),
                         share(outcome.served_cloud, outcome.requests),
                         _fmt(outcome.ttft_p95_ms)])
    moved = "; ".join(
        f"{name}: {dep.hybrid.moved_between_paths:,} requests moved between the paths "
        f"(spill-over or fall-back); {dep.hybrid.restricted_requests:,} restricted, "
        f"{dep.hybrid.restricted_served_by_cloud:,} of them answered by the API"
        for name, dep in hybrids.items() if dep.hybrid is not None)
    local, cloud = (", ".join(k.replace("_", " ") for k in kinds)
                    for kinds in (SEED_LOCAL_KINDS, SEED_CLOUD_KINDS))
    return ("<h2>Hybrid routing</h2><p>The seed's hybrid pattern: a router sends each task "
            "to the fleet or the API by its rules, restricted data never leaves the fleet. "
            f"The guide's own split (a hybrid's <code>routes: seed</code>, by each task's "
            f"<code>kind</code>): {html.escape(local)} on the fleet, sensitive preprocessing "
            f"kept close; {html.escape(cloud)} on the API, where a stronger managed model's "
            "quality matters. Where each task's requests were answered: "
            + _prose(moved, list(hybrids)) + ".</p>"
            + _table(["deployment", "task", "requests", "answered on the fleet",
                      "answered by the API", "TTFT p95 ms"], rows))


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _unanswered(dep: Candidate) -> str:
    """Requests that got no answer, with every way they ended (as the terminal says)."""
    counts = dep.requests
    ways = counts.not_answered()
    if not ways:
        return "0"
    return f"{counts.total - counts.completed:,} (" + ", ".join(
        f"{count:,} {words}" for count, words in ways) + ")" + dep.too_long_by_task()


def render(result: Result, price_warnings: list[str] | None = None,
           retiring: list[str] | None = None, risks: list[str] | None = None, *,
           notes: list[str] | None = None) -> str:
    """The page; `price_warnings` name catalog prices the run used that are out of date,
    `retiring` the cloud models it used that the provider retires within the horizon,
    `risks` those of them the recommendation uses, `notes` what else the terminal notes
    (a hybrid that ran one side only, a deployment the stack builds otherwise)."""
    meta, rec = result.scenario, result.recommendation
    names = list(result.deployments)
    # no feasible candidate: the answer is "none", in the warning's colours, not a success's
    box = "rec" if rec.deployment is not None else "warn"
    named = result.headline()
    ids = _ids(result)

    def say(text: str) -> str:
        return _prose(text, ids)

    parts = [f"<h1>{say(meta.name)}: local, cloud or both?</h1>",
             f"<p class='{box}'><b>Recommendation: {say(named)}</b>. "
             f"{say(rec.reason)}.</p>"]
    parts.append("<p class='small'>Terms (SLO, TTFT, goodput, tp/pp, spill-over...) are "
                 "explained <a href='#terms'>at the end</a>.</p>")
    if rec.drivers:
        parts.append("<div class='drivers'><b>What decides it</b><ul>" + "".join(
            f"<li>{say(d.text)} <i>({say(d.basis)})</i></li>"
            for d in rec.drivers) + "</ul></div>")
    if risks:
        parts.append("<p class='warn'><b>Risk to the recommendation:</b> " + "; ".join(
            say(r) for r in risks) + ".</p>")
    right_sized = result.right_sized_line()
    if right_sized is not None:
        parts.append(f"<p class='warn'><b>Right-sized:</b> {say(right_sized)}.</p>")
    cases = result.planning.sensitivity if result.planning is not None else []
    flips = [c for c in cases if c.winner != rec.deployment]
    if flips:
        parts.append("<p>The answer would change: " + "; ".join(
            say(f"to {c.winner or 'no feasible candidate'} if {c.change}")
            for c in flips) + ".</p>")
    held = [c.change for c in cases if c.winner == rec.deployment]
    if held and rec.deployment is not None:
        parts.append("<p>It holds if " + say("; ".join(held)) + ".</p>")
    if price_warnings:
        parts.append("<p class='warn'><b>Prices out of date:</b> " + "; ".join(
            say(w) for w in price_warnings) + ". Override them under the scenario's "
            "<code>catalog:</code> with today's figures.</p>")
    others = [w for w in retiring or [] if w not in (risks or [])]
    if others:
        parts.append("<p class='warn'><b>Models retiring:</b> " + "; ".join(
            say(w) for w in others) + ".</p>")
    if notes:
        parts.append("<div class='warn' id='notes'><b>Notes</b><ul>" + "".join(
            f"<li>{say(n)}</li>" for n in notes) + "</ul></div>")
    summary_rows = []
    for name, dep in result.deployments.items():
        lat, cost = dep.latency, dep.cost
        engine = dep.local.engine if dep.local is not None else None
        summary_rows.append([
            name, dep.serves_with(), dep.latency_from,
            "yes" if dep.feasible else "no: " + "; ".join(dep.infeasible_because),
            _fmt(engine.kv_cache_tokens) if engine else "-",
            _fmt(engine.max_concurrency_at_mean_request) if engine else "-",
            _fmt(lat.ttft_ms.p95), _fmt(lat.tpot_ms.p50, 1), _fmt(lat.e2e_ms.p95),
            dep.slo.goodput_shown(), _unanswered(dep),
            _fmt(cost.monthly_usd),
            _fmt(cost.usd_per_1k_requests, 3),
            # per 1,000 useful results, as the terminal's table and the sweep give it
            _fmt(None if cost.usd_per_useful_result is None
                 else cost.usd_per_useful_result * 1e3, 2)])
    for name, why in (result.unbuildable or {}).items():
        summary_rows.append([name, "not simulated", "-", f"no: cannot be built: {why}",
                             *["-"] * 10])
    slo = f" SLO: {result.scenario.slo}." if result.scenario.slo else ""
    parts.append("<h2>Candidates</h2><p>" + say(result.monthly_volume().capitalize())
                 + "." + say(slo) + "</p>" + _table(
        ["deployment", "serves with", "latency from", "feasible",
         "KV cache tokens per replica",
         "requests of mean length the KV cache holds", "TTFT p95 ms", "TPOT p50 ms",
         "E2E p95 ms",
         "goodput", "not answered", "USD/month",
         "USD per 1k requests", "USD per 1k useful results"], summary_rows))
    answers = result.first_answer_tokens()
    if answers:
        parts.append("<p><b>Answer starts</b> (p95 of the first answer token, after the "
                     "hidden reasoning; TTFT above is the first token of any kind): "
                     + say("; ".join(answers)) + ".</p>")
    cached = {name: dep.local.prefix_cache for name, dep in result.deployments.items()
              if dep.local is not None and dep.local.prefix_cache is not None}
    if cached:
        parts.append("<h2>Prefix caching</h2><p>Prompts share prefixes (system prompts, "
                     "documents, conversations so far): how much of them the engines found "
                     "cached instead of computing it again.</p>" + _table(
            ["deployment", "engine cache", "requests started", "prompt tokens cached",
             "requests with a hit", "TTFT p50 ms with a hit", "TTFT p50 ms without"],
            [[name, c.policy, _fmt(c.requests),
              f"{c.hit_rate_tokens:.1%} ({_fmt(c.cached_prompt_tokens)})",
              _fmt(c.requests_with_hit), _fmt(c.ttft_p50_ms_hit), _fmt(c.ttft_p50_ms_miss)]
             for name, c in cached.items()]))
    hybrids = {name: dep for name, dep in result.deployments.items() if dep.hybrid is not None}
    if hybrids:
        parts.append(_hybrid_routing(hybrids))
    talks = {name: dep.sessions for name, dep in result.deployments.items()
             if dep.sessions is not None}
    if talks:
        parts.append(_conversations(talks))
    parts.append("<h2>Decision table</h2>" + _table(
        ["question (the seed guide: local may fit / cloud may fit)", *names],
        [[_seed_question(row.question)] + [row.answers.get(n, "-") for n in names]
         for row in result.decision_table]))
    parts.append("<h2>Evaluation checklist</h2>" + _table(
        ["question", "status", "evidence"],
        [[c.item, c.status, c.evidence] for c in result.checklist]))
    parts.append("<h2>Cost items</h2><p>Every item of the seed's two cost lists each "
                 "candidate pays, per month, with how it was reached; items at $0 are listed "
                 "too (a default of $0 says so: set the field to price it).</p>"
                 + "".join(_cost_items(name, dep) for name, dep in result.deployments.items()))
    if result.planning is not None:
        window = result.planning.window
        where = ("the whole request stream" if window.whole_stream else
                 f"the busiest stretch of the request stream: {window.requests:,} requests "
                 f"from {window.start_s:,.0f} s on")
        if window.sped_up_to_peak is not None:
            where += (f", sped up {window.sped_up_to_peak:.3g}x to the traffic's daily peak "
                      f"({window.requests:,} requests in {window.span_s:,.0f} s)")
        elif not window.whole_stream:
            where += f" arriving in {window.span_s:,.0f} s"
        checked = "" if window.whole_stream else (
            "; the replica counts were checked on the whole stream, the sustainable rates on "
            "a stretch three times as long")
        parts.append("<h2>Planning</h2><p>" + say(
            f"The searches simulated {where}{checked}. Rates are requests per second at "
            f"the pace the simulated stretch arrives.")
            + "</p>" + "".join(
            f"<p class='warn'>{say(note)}</p>" for note in result.planning.notes)
            + _table(
            ["deployment", "fewest replicas meeting the SLO",
             "max sustainable requests/s (at the busiest stretch's pace)"],
            [[n, _fmt(p.min_replicas_meeting_slo),
              _fmt(p.max_sustainable_requests_per_s, 2)]
             for n, p in result.planning.deployments.items()]))
    if result.break_even:
        parts.append("<h2>Break-even</h2>" + _table(
            ["local", "cloud", "break-even requests/month",
             "per useful result, the ranking's measure (share of requests useful: local, "
             "cloud)", "simulated requests/month",
             "local fleet serves at most (full batches)", "within the SLO (planning)",
             "excluded by the decision"],
            [[r.local, r.cloud, _break_even_words(r), _per_useful_words(r),
              _fmt(r.simulated_requests_per_month),
              _fmt(r.local_capacity_requests_per_month),
              _fmt(r.local_slo_capacity_requests_per_month),
              r.excluded or "neither"] for r in result.break_even]))
    # each named by its pair, marked as the table and the chart mark a pair with a side
    # the decision excluded (its break-even is no choice between the two)
    grow = [say(f"{r.local} / {r.cloud}{_excluded_words(result, r)}: {r.fleet_must_grow}")
            for r in result.break_even if r.fleet_must_grow]
    if grow:
        parts.append("<p class='warn'><b>Break-even past a fleet's capacity:</b> "
                     + "; ".join(grow) + ".</p>")
    first = True
    for chart in CHARTS:
        fig = chart(result)
        if not fig.data:        # nothing to draw: say why instead of empty axes
            parts.append(f"<p class='chart-missing' id='chart-{chart.__name__}'>"
                         f"{html.escape(EMPTY_CHART.get(chart.__name__, 'Nothing to draw.'))}"
                         "</p>")
            continue
        parts.append(f"<div class='chart' id='chart-{chart.__name__}'>"
                     f"{_figure_html(fig, first=first, div_id=f'plot-{chart.__name__}')}"
                     "</div>")
        first = False
    parts.append(_glossary())
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;"
             "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;"
             "font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;"
             "text-align:left}th{background:#f3f3f3}.rec{font-size:18px;background:#eef6ee;"
             "padding:12px;border-left:4px solid #3a3}.warn{background:#fff4e0;padding:8px;"
             "border-left:4px solid #e90}.small{font-size:13px;color:#555}"
             ".w{white-space:nowrap}.id{display:inline-block;max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>llmplan: "
            f"{html.escape(meta.name)}</title><style>{style}</style></head><body>"
            + "".join(parts) + "</body></html>")


#: the report's terms, as the simulator and the checklist use them
GLOSSARY = (
    ("SLO", "service-level objective: the latency bounds each request should meet (slo: in "
            "the scenario) and the share of requests that must meet them"),
    ("TTFT", "time to first token: from a request's arrival to its first streamed token "
             "(queueing and prefill included); with hidden reasoning, a reasoning token"),
    ("TPOT", "time per output token after the first: the gap between streamed tokens"),
    ("E2E", "end to end: from arrival to the last token of the answer"),
    ("p50, p95", "the median, and the value 95% of requests stay within"),
    ("goodput", "the share of requests answered within every SLO bound of their task; a "
                "candidate meets the SLO when it reaches slo.min_goodput_fraction"),
    ("useful result", "a request answered within the SLO, times its task's quality (the "
                      "share of right answers): what the cost per useful result divides by"),
    ("busiest stretch", "the run of consecutive requests that arrives in the shortest time: "
                        "planning's searches speed it up to find the highest rate a "
                        "candidate sustains within the SLO"),
    ("full batches", "a replica running its fullest batch every step (max_num_seqs, or "
                     "what the KV cache holds): what it finishes per second as a mean over a "
                     "long run, which the SLO usually binds first; the rate planning finds "
                     "within the SLO is at the busiest stretch's pace, and a stretch a "
                     "little above the mean can exceed it while the queue absorbs it"),
    ("KV cache tokens", "tokens of context a replica's KV cache holds, as vLLM logs it at "
                        "start-up ('GPU KV cache size')"),
    ("MBU", "model bandwidth utilisation: the bytes the steps read (weights, and the KV "
            "cache of decoding sequences) over the GPUs' peak memory bandwidth, over the run"),
    ("tp, pp, ep", "tensor parallel (each layer split over tp GPUs), pipeline parallel "
                   "(the layers split into pp stages, a stage a GPU or a server), expert "
                   "parallel (a mixture of experts' experts spread over the GPUs)"),
    ("bought", "GPUs an owned fleet buys: SXM/OAM GPUs come on 4- or 8-GPU baseboards, so a "
               "fleet of 2 buys a board of 4; PCIe cards are sold one by one"),
    ("429, throttled", "HTTP 429: the provider refused a call over the account's rate limits "
                       "(requests or tokens a minute); the client retries after a wait"),
    ("spill-over", "a hybrid sends a request to the API when its own fleet's queue is too "
                   "long (restricted tasks never go)"),
    ("PUE", "power usage effectiveness: a data centre's total power over its IT power; "
            "electricity is billed at the servers' draw times PUE"),
    ("right-sized", "the answer again with each fixed fleet at the fewest replicas meeting "
                    "the SLO (as simulated on the whole run)"),
    ("checklist status", "given (the scenario says it), assumed (llmplan's default, or "
                         "no figure), simulated or measured (from the runs), provisioned "
                         "(what the stack builds), constraint (a rule of the scenario), "
                         "not applicable"),
)


def _glossary() -> str:
    return ("<h2 id='terms'>Terms</h2><dl>" + "".join(
        f"<dt><b>{html.escape(term)}</b></dt><dd>{html.escape(text)}</dd>"
        for term, text in GLOSSARY) + "</dl>")


def _seed_question(question: str) -> str:
    """A decision-table question with the seed guide's two answers to it."""
    fit = SEED_FIT.get(question)
    words = question.replace("_", " ")
    return f"{words} (local: {fit[0]}; cloud: {fit[1]})" if fit else words


def _monthly_capacity(result: Result, *, within_slo: bool = False) -> dict[str, float]:
    """The monthly volume each candidate serves: within the SLO when planning found its
    highest sustainable rate (the month's volume at which the busiest stretch arrives at
    that rate: a cloud API's limits, a hybrid's, a fleet's), else (unless `within_slo`)
    for a local fleet with full batches (from the break-even rows, which carry both)."""
    found: dict[str, float] = {}
    for row in result.break_even:
        most = row.local_slo_capacity_requests_per_month or (
            None if within_slo else row.local_capacity_requests_per_month)
        if most:
            found[row.local] = most
    planning = result.planning
    if planning is None:
        return found
    for name, dep in result.deployments.items():
        most = planning.monthly_capacity(name, dep.cost.requests_per_month)
        if name not in found and most is not None:
            found[name] = most
    return found


def _excluded_words(result: Result, row: BreakEven) -> str:
    """" (api excluded)": the sides of a break-even pair the decision excluded; ""
    when both may be chosen."""
    out = [n for n in (row.local, row.cloud) if not result.deployments[n].feasible]
    return f" ({' and '.join(out)} excluded)" if out else ""


def _break_even_words(row: BreakEven) -> str:
    """The break-even volume, or which side is cheaper at every volume."""
    return _crossing_words(row, row.break_even_requests_per_month,
                           row.local_dearer_again_requests_per_month) \
        or f"none: {row.cheaper_at_every_volume()} is cheaper at every volume"


def _crossing_words(row: BreakEven, volume: float | None, again: float | None) -> str:
    """"1,234 (gpu costs less only up to 5,678)": where the local side starts costing
    less and where it stops (a break-even's, or per useful result's); "" for neither."""
    if volume:
        return _fmt(volume) + (f" ({row.local} costs less only up to {_fmt(again)})"
                               if again else "")
    if again:
        return f"{_fmt(again)} ({row.local} costs less below it, {row.cloud} above)"
    return ""


def _per_useful_words(row: BreakEven) -> str:
    """The break-even per useful result with the two useful shares that move it, and, as
    the terminal's line says, when that volume is past what the local fleet serves."""
    ul, uc = row.local_useful_share, row.cloud_useful_share
    if ul is None or uc is None:
        return "-"
    crossings = _crossing_words(row, row.break_even_useful_requests_per_month,
                                row.local_dearer_again_useful_requests_per_month)
    past = row.per_useful_past_capacity()
    return f"{crossings or 'none'} ({ul:.0%}, {uc:.0%})" + (f"; {past}" if past else "")


def _cost_items(name: str, dep: Candidate) -> str:
    """One candidate's cost items, folded under its name and monthly total."""
    rows = [[item_label(line.item), _fmt(line.usd_per_month, 2),
             "yes" if line.variable else "no", line.basis] for line in dep.cost.items]
    return (f"<details><summary>{_prose(name, [name])}: "
            f"${dep.cost.monthly_usd:,.0f} a month in {len(rows)} items</summary>"
            + _table(["item", "USD/month", "grows with volume", "basis"], rows)
            + "</details>")


def write_decision_report(result: Result, out_dir: Path,
                          price_warnings: list[str] | None = None,
                          retiring: list[str] | None = None,
                          risks: list[str] | None = None, *,
                          notes: list[str] | None = None) -> Path:
    """out_dir/report.html for a simulation's result."""
    path = out_dir / "report.html"
    path.write_text(render(result, price_warnings, retiring, risks, notes=notes), encoding="utf-8")
    return path
