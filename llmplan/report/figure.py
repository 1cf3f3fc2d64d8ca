"""What every chart of the report shares: its HTML on the page, a candidate's colour, and
candidates whose series coincide drawn as one line."""

from __future__ import annotations

import plotly.colors
import plotly.graph_objects as go
from plotly.io import to_html

from llmplan.results.decision import Result

CHART_HEIGHT = 520


#: the gap between an x axis and its tick labels, in pixels: past the half height of a
#: 12-pixel label on the y axis' bottom tick (Plotly's own gap leaves them overlapping)
TICK_STANDOFF_PX = 8


def figure_html(fig: go.Figure, first: bool, div_id: str) -> str:
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
