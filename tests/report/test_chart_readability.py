"""What a reviewer met in the report's first minute: cost items in near-identical colours,
candidates that ran alike hiding each other's lines, goodput curves piled onto the SLO
line, latency ticks in mixed formats, and a conversations table that dropped every turn
past the tenth."""

from __future__ import annotations

import itertools
import math
import re

import pytest
from helpers import ExampleResult, page_text

from llmplan.report.axes import goodput_axis
from llmplan.report.cost_charts import cost_breakdown
from llmplan.report.cost_items import ITEM_LABELS, ITEM_ORDER, ITEM_STYLES, SAFE_COLOURS, item_style
from llmplan.report.page import render
from llmplan.report.serving_charts import latency_cdfs, load_curves, over_time
from llmplan.results.decision import Result


def _lab(colour: str) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB hex colour."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(int(colour[i:i + 2], 16) / 255) for i in (1, 3, 5))
    xyz = (0.4124 * r + 0.3576 * g + 0.1805 * b, 0.2126 * r + 0.7152 * g + 0.0722 * b,
           0.0193 * r + 0.1192 * g + 0.9505 * b)

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    x, y, z = (f(v / w) for v, w in zip(xyz, (0.95047, 1.0, 1.08883), strict=True))
    return 116 * y - 16, 500 * (x - y), 200 * (y - z)


def _apart(one: str, other: str) -> float:
    """How far apart two colours look: CIEDE2000 (Sharma, Wu and Dalal's formulation);
    about 2 is a just-noticeable difference, and plain Lab distance overstates it for
    saturated colours (the magentas below are 30 apart in Lab, 9 here)."""
    (l1, a1, b1), (l2, a2, b2) = _lab(one), _lab(other)
    mean_c = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(mean_c ** 7 / (mean_c ** 7 + 25 ** 7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = math.hypot(a1, b1), math.hypot(a2, b2)
    h1, h2 = (math.degrees(math.atan2(b, a)) % 360 for a, b in ((a1, b1), (a2, b2)))
    dh = 0.0 if c1 * c2 == 0 else (h2 - h1 + 180) % 360 - 180
    big_dh = 2 * math.sqrt(c1 * c2) * math.sin(math.radians(dh / 2))
    mean_l, mean_cp = (l1 + l2) / 2, (c1 + c2) / 2
    if c1 * c2 == 0:
        mean_h = h1 + h2
    elif abs(h1 - h2) <= 180:
        mean_h = (h1 + h2) / 2
    else:
        mean_h = (h1 + h2 + (360 if h1 + h2 < 360 else -360)) / 2
    t = (1 - 0.17 * math.cos(math.radians(mean_h - 30)) + 0.24 * math.cos(math.radians(2 * mean_h))
         + 0.32 * math.cos(math.radians(3 * mean_h + 6))
         - 0.20 * math.cos(math.radians(4 * mean_h - 63)))
    rotation = -math.sin(math.radians(60 * math.exp(-(((mean_h - 275) / 25) ** 2)))) \
        * 2 * math.sqrt(mean_cp ** 7 / (mean_cp ** 7 + 25 ** 7))
    sl = 1 + 0.015 * (mean_l - 50) ** 2 / math.sqrt(20 + (mean_l - 50) ** 2)
    sc, sh = 1 + 0.045 * mean_cp, 1 + 0.015 * mean_cp * t
    dl, dc, dhh = (l2 - l1) / sl, (c2 - c1) / sc, big_dh / sh
    return math.sqrt(dl ** 2 + dc ** 2 + dhh ** 2 + rotation * dc * dhh)


#: two colours this close (CIEDE2000) read as one in a stacked bar
TOO_CLOSE = 15.0


def test_the_palettes_colours_are_far_apart() -> None:
    # the pairs the reviewer could not tell apart (plotly's Dark24 and Light24) fail it
    assert _apart("#DA16FF", "#FB00D1") < TOO_CLOSE
    assert _apart("#FC0080", "#E15F99") < TOO_CLOSE
    for one, other in itertools.combinations(SAFE_COLOURS.values(), 2):
        assert _apart(one, other) >= TOO_CLOSE, (one, other)


def test_every_cost_item_has_its_own_look_and_stack_neighbours_differ() -> None:
    assert set(ITEM_STYLES) == set(ITEM_LABELS.values())
    looks = [item_style(label) for label in ITEM_ORDER]
    assert len(set(looks)) == len(looks)
    assert all(colour in SAFE_COLOURS.values() for colour, _ in looks)
    # the segments stack in ITEM_ORDER: no two in a row share a colour
    for (one, _), (other, _) in itertools.pairwise(looks):
        assert one != other
    # an item no list names still gets a stable look of the palette
    assert item_style("carbon offsets") == item_style("carbon offsets")
    assert item_style("carbon offsets")[0] in SAFE_COLOURS.values()


@pytest.mark.parametrize("example", ["support-assistant", "retail-assistant",
                                     "bulk-extraction", "agent-workflow"])
def test_in_every_example_neighbouring_segments_differ_in_colour(
        example: str, example_result: ExampleResult) -> None:
    fig = cost_breakdown(example_result(example, False))
    bars = [t for t in fig.data if t.type == "bar" and t.xaxis in (None, "x")]
    for candidate in bars[0].x:
        stack = [t.marker.color for t in bars if t.y[list(t.x).index(candidate)] > 0]
        for one, other in itertools.pairwise(stack):
            assert _apart(one, other) >= TOO_CLOSE, (example, candidate)


def test_candidates_that_ran_alike_are_one_line_named_for_both(
        example_result: ExampleResult) -> None:
    """bulk-extraction's owned and rented H100s run the same simulation: their memory
    bandwidth, queue, latency and load lines are one line each, "owned-h100 =
    rented-h100", not four legend entries for two visible lines; its two APIs, each at
    its own measured latency, keep theirs, and two that differ by under NEAR everywhere
    are drawn once: "mini ≈ flagship"."""
    result = example_result("bulk-extraction", True)
    names = [t.name for t in over_time(result).data]
    assert "owned-h100 = rented-h100 memory bandwidth" in names
    assert "owned-h100 = rented-h100 queue" in names
    assert not any(n.startswith("rented-h100") for n in names)
    cdfs = [t.name for t in latency_cdfs(result).data]
    assert "owned-h100 = rented-h100 TTFT" in cdfs
    assert "mini TTFT" in cdfs and "flagship TTFT" in cdfs and len(cdfs) == 6
    mini = result.deployments["mini"].latency_cdf
    near = mini.model_copy(update={"ttft_ms": [v * 1.03 for v in mini.ttft_ms],
                                   "e2e_ms": [v * 0.98 for v in mini.e2e_ms]})
    alike = result.model_copy(update={"deployments": {
        **result.deployments,
        "flagship": result.deployments["flagship"].model_copy(update={"latency_cdf": near})}})
    cdfs = [t.name for t in latency_cdfs(alike).data]
    assert "mini ≈ flagship TTFT" in cdfs and len(cdfs) == 4
    load = [t.name for t in load_curves(result).data]
    assert "owned-h100 = rented-h100 goodput" in load
    # the near ones only where the lines would hide each other: goodput stays apart
    assert "mini goodput" in load and "flagship goodput" in load
    # candidates that differ keep their own lines
    support = example_result("support-assistant", True)
    assert not any("=" in t.name or "≈" in t.name for t in over_time(support).data)


def test_goodputs_near_one_stand_apart_and_nothing_is_cut_off(
        example_result: ExampleResult) -> None:
    """support-assistant's goodputs of 0.969, 0.9815 and 1 and its SLO of 0.95 lay on one
    line at the top of a linear axis from 0 to 1; on the axis spaced by nines they stand
    apart by a tenth of a decade or more, and gpu-small's collapse to 0.011 still fits."""
    result = example_result("support-assistant", True)
    fig = load_curves(result)
    axis = fig.layout.yaxis
    assert axis.type == "log" and axis.range[0] > axis.range[1]       # up is more goodput
    low, high = min(axis.range), max(axis.range)
    firsts = []
    for trace in fig.data:
        if trace.name.endswith(" goodput"):
            drawn = [math.log10(y) for y in trace.y]
            assert all(low < y < high for y in drawn), trace.name
            firsts.append(drawn[0])
    firsts.sort()
    distinct = [b - a for a, b in itertools.pairwise(firsts) if b - a > 1e-9]
    assert distinct and min(distinct) > 0.1
    # the labels read as goodput, and the SLO's own is among them
    assert {"99%", "99.9%", "95%", "0%"} <= set(axis.ticktext)
    # the share missed: 1 - goodput, a goodput of 1 a decade above the fewest missed
    ticks, perfect = goodput_axis([0.9995, 1.0], [0.98])
    assert perfect == pytest.approx(1e-5)
    assert dict(zip(ticks["tickvals"], ticks["ticktext"], strict=True))[perfect] == "100%"


def test_the_reference_lines_are_named_and_no_label_sits_on_a_curve(
        example_result: ExampleResult) -> None:
    """retail-assistant's "costed rate (volume x1)" label sat on a curve at the bottom, and
    nothing said which of the two vertical lines was which: each is named in the legend
    with its rate, the subtitle says what they are, and no label is drawn on the plot."""
    result = example_result("retail-assistant", True)
    fig = load_curves(result)
    assert not fig.layout.annotations
    named = {s.name for s in fig.layout.shapes if s.showlegend}
    assert named == {"SLO goodput (0.95)", "this traffic: 12.3/s", "costed rate: 3/s"}
    title = fig.layout.title.text
    assert "dashed 12.3/s: this traffic's busiest stretch" in title
    assert "dotted 3/s: the long-run rate the monthly costs are at (volume x1)" in title


def test_latency_ticks_have_one_format(example_result: ExampleResult) -> None:
    """Plotly's log ticks read "100, 2, 5, 1000 ... 10k": every tick is a whole value and
    its unit, and the range holds every percentile."""
    for example in ("support-assistant", "bulk-extraction"):
        result: Result = example_result(example, True)
        axis = latency_cdfs(result).layout.xaxis
        assert axis.type == "log" and axis.tickmode == "array"
        assert all(re.fullmatch(r"[\d,]+ (ms|s)", t) for t in axis.ticktext), axis.ticktext
        values = [v for dep in result.deployments.values()
                  for v in (*dep.latency_cdf.ttft_ms, *dep.latency_cdf.e2e_ms)]
        assert axis.range[0] <= math.log10(min(values))
        assert axis.range[1] >= math.log10(max(values))


def test_the_conversations_table_counts_every_turn(example_result: ExampleResult) -> None:
    """coding-agent's sessions run 4 to 16 turns: the table stopped at turn 10 and dropped
    218 requests. Turns 11-16 are a last row, and the rows count every request."""
    result = example_result("coding-agent", True)
    sessions = result.deployments["gpu"].sessions
    assert sessions is not None and sessions.later_turns is not None
    later = sessions.later_turns
    assert (later.turn, later.last_turn) == (10, 15)
    assert sum(t.requests for t in sessions.by_turn) + later.requests == sessions.turns
    section = page_text(render(result)).split("<h2>Conversations</h2>", 1)[1].split(
        "<h2>", 1)[0]
    rows = re.findall(r"<tr><td>([\d-]+)</td><td>([\d,]+)</td>", section)
    assert [turn for turn, _ in rows] == [*map(str, range(1, 11)), "11-16"]
    assert sum(int(n.replace(",", "")) for _, n in rows) == sessions.turns
    assert "counted together in the last row" in section
