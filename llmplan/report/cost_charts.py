"""The cost charts: each candidate's month by item, and monthly cost versus monthly volume
with the break-even points and the volume each candidate serves."""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from llmplan.report.break_even_words import excluded_words
from llmplan.report.cost_items import ITEM_ORDER, item_label, item_style
from llmplan.report.figure import candidate_colour
from llmplan.results.decision import Candidate, Result


def volume_bound(dep: Candidate) -> bool:
    """Whether a candidate is left out only for the volume it was asked to serve (an SLO
    miss, full batches under the traffic, a daily API limit): at less, it may serve."""
    return bool(dep.infeasible_because) and all(
        why.startswith(("misses the SLO", "its full batches answer")) or "daily limit (" in why
        for why in dep.infeasible_because)


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
                                             if excluded_words(result, r) else "x"},
                                     name=f"break-even {r.local} / {r.cloud}"
                                     + (f" ({r.local} must grow)" if r.fleet_must_grow
                                        else "") + excluded_words(result, r)))
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
