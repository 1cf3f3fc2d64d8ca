"""The serving charts: latency distributions, goodput and TTFT versus load (planning's
curves), and GPU memory-bandwidth use, queue depth and arrivals over the run."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from llmplan.report.axes import (
    QUEUE_LOG_FLOOR,
    goodput_axis,
    log_ticks_count,
    log_ticks_ms,
    queue_axis_is_log,
)
from llmplan.report.figure import NEAR, candidate_colour, coinciding
from llmplan.results.decision import Result


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
