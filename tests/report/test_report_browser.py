"""report.html opens offline in a real headless Chromium: every chart renders, no console
errors. Chromium comes from Debian's package (installed by .ci/run)."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import ExampleResult, page_text

from llmplan.report.cost_charts import WIDE_SPREAD, break_even_chart, cost_breakdown
from llmplan.report.page import CHARTS, render, write_decision_report
from llmplan.report.serving_charts import load_curves
from llmplan.results import write_result
from llmplan.results.decision import Result

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Debian's chromium is needed for this test (.ci/run installs it)"
    return path


def _open(page: Path, tmp_path: Path, window: str | None = None) -> tuple[str, str]:
    """(the page's DOM after its scripts ran, Chromium's stderr), in a window of
    `window` ("width,height") pixels when given."""
    size = [f"--window-size={window}"] if window else []
    done = subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           *size, "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    return done.stdout, done.stderr


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, example_result: ExampleResult) -> Path:
    out = tmp_path_factory.mktemp("report")
    result = example_result("support-assistant", True)
    write_result(result, out)
    return write_decision_report(result, out)


def test_every_chart_renders_without_console_errors(report: Path, tmp_path: Path) -> None:
    dom, log = _open(report, tmp_path)
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert console == []
    for chart in CHARTS:
        start = dom.index(f'id="chart-{chart.__name__}"')
        block = dom[start:dom.find('class="chart"', start + 1)]
        assert "main-svg" in block, f"{chart.__name__} did not render"
        # plotly drew data, not just axes
        assert re.search(r'class="(trace|point|bars)', block), f"{chart.__name__} is empty"
        # the browser drew an x and a y axis title, and a legend entry per trace
        for kind in ("g-xtitle", "g-ytitle"):
            title = re.search(rf'class="{kind}".*?<text[^>]*>([^<]+)</text>', block)
            assert title and title.group(1).strip(), f"{chart.__name__}: no {kind}"
        assert 'class="legend"' in block, f"{chart.__name__}: no legend"
    dom = page_text(dom)
    assert "Recommendation: hybrid" in dom
    # the seed's hybrid pattern, task by task: chat to the API, the restricted tasks kept
    assert "Hybrid routing" in dom and "restricted, 0 of them answered by the API" in dom
    assert re.search(r"<td>hybrid</td><td>chat</td><td>[\d,]+</td><td>0 \(0%\)</td>", dom)
    assert "What decides it" in dom
    assert re.search(r"useful results: \d+% of requests for hybrid against \d+% for gpu-fleet",
                     dom)
    assert "The searches simulated" in dom          # which stretch planning simulated
    assert dom.count("<table>") >= 4            # candidates, decision table, checklist, plan
    assert "http://" not in dom.split("<script", 1)[0]   # nothing fetched from the web


def test_the_check_does_catch_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    _, log = _open(page, tmp_path)
    assert any(":CONSOLE" in line and "undefinedFunction" in line for line in log.splitlines())


@pytest.fixture(scope="module")
def results(example_result: ExampleResult) -> list[Result]:
    return [example_result(name, planning)
            for name, planning in (("support-assistant", True), ("agent-workflow", False),
                                   ("regulated-records", False),
                                   # gpt-4o at ~45x the owned fleet's month: log cost axes
                                   ("bulk-extraction", False))]


def test_every_axis_has_a_title_and_every_trace_a_name(results: list[Result]) -> None:
    for result in results:
        for chart in CHARTS:
            fig = chart(result)
            layout = fig.to_plotly_json()["layout"]
            axes = [k for k in layout if k.startswith(("xaxis", "yaxis"))]
            assert {"xaxis", "yaxis"} <= set(axes), chart.__name__
            for axis in axes:
                # a panel's copy of the axis below it (shared, no labels) needs no title
                shared = layout[axis].get("matches") and \
                    layout[axis].get("showticklabels") is False
                if layout[axis].get("visible", True) and not shared:
                    assert layout[axis].get("title", {}).get("text"), (chart.__name__, axis)
            for trace in fig.data:
                assert trace.name, (chart.__name__, trace)


def test_cost_items_have_human_names_and_distinct_colours(results: list[Result]) -> None:
    for result in results:
        fig = cost_breakdown(result)
        names = [t.name for t in fig.data]
        assert all("_" not in n for n in names), names
        # one legend entry per item, each its own colour and fill pattern
        legend = [t for t in fig.data if t.type == "bar" and t.showlegend is not False]
        looks = [(t.marker.color, t.marker.pattern.shape) for t in legend]
        assert len(set(looks)) == len(looks) == len({t.name for t in legend})


def test_break_even_draws_every_candidate_and_where_the_scenario_is(
        results: list[Result]) -> None:
    for result in results:
        fig = break_even_chart(result)
        drawn = {t.name.removesuffix(" (recommended)") for t in fig.data
                 if not t.name.startswith("break-even")}
        assert drawn == set(result.deployments)
        winner = result.recommendation.deployment
        assert f"{winner} (recommended)" in {t.name for t in fig.data}
        here = [s for s in fig.layout.shapes if s.type == "line"]
        volume = max(d.cost.requests_per_month for d in result.deployments.values())
        costs = [d.cost.monthly_usd for d in result.deployments.values() if d.cost.monthly_usd]
        if max(costs) > 20 * min(costs):
            # far apart: log scales (a shape still sits at its data value: the browser
            # test below checks where it is drawn)
            assert (fig.layout.xaxis.type, fig.layout.yaxis.type) == ("log", "log")
        assert len(here) == 1 and here[0].x0 == pytest.approx(volume)
        if max(costs) <= 20 * min(costs):
            # no negative counts or costs on the axes
            assert fig.layout.yaxis.rangemode == "nonnegative"
        label = [a for a in fig.layout.annotations if a.text == "you are here"]
        # an annotation's x on a log axis is the log of its place (a shape's is not)
        assert len(label) == 1 and label[0].x == pytest.approx(
            math.log10(volume) if fig.layout.xaxis.type == "log" else volume)
        # every candidate planning found a sustainable rate for (APIs and hybrids too) is
        # solid only up to the month's volume at that rate at the busiest stretch's pace
        planning = result.planning
        if planning is not None and planning.window.requests:
            pace = planning.window.requests / planning.window.span_s
            for name, plan in planning.deployments.items():
                rate = plan.max_sustainable_requests_per_s
                solid = [t for t in fig.data if t.legendgroup == name and t.line.dash == "solid"]
                if rate is None or not solid:
                    continue
                most = result.deployments[name].cost.requests_per_month * rate / pace
                assert max(solid[0].x) <= most * (1 + 1e-9), name


def test_on_log_scales_the_volume_line_is_drawn_where_the_volume_is(
        tmp_path: Path, example_result: ExampleResult) -> None:
    """bulk-extraction's costs are far apart (log scales): its "you are here" line must sit
    at its ~10^8 requests a month. At the log of that (8) it was drawn at the axis' left end,
    which it stretched down to 10 requests a month, the curves squeezed to the right."""
    result = example_result("bulk-extraction", True)
    out = tmp_path / "out"
    out.mkdir()
    write_result(result, out)
    dom, _ = _open(write_decision_report(result, out), tmp_path)
    start = dom.index('id="chart-break_even_chart"')
    block = dom[start:dom.find('class="chart"', start + 1)]
    labels = re.findall(r'class="xtick"><text[^>]*>([^<]+)</text>', block)
    scale = {"k": 1e3, "M": 1e6, "B": 1e9, "G": 1e9}
    values = [float(t[:-1]) * scale[t[-1]] if t[-1] in scale else float(t)
              for t in labels if re.fullmatch(r"[\d.]+[kMGB]?", t) and t not in {"2", "5"}]
    volume = max(d.cost.requests_per_month for d in result.deployments.values())
    assert values and min(values) >= volume / 1000, labels


def test_every_chart_axis_with_a_fixed_range_holds_its_data(
        results: list[Result], example_result: ExampleResult) -> None:
    """A series over a fixed axis range would be cut off (MBU of 1.19 under [0, 1.05]), at
    either end (retail-assistant's minutes with under a hundredth of a request waiting ran
    off the log queue axis' floor), in every example's charts."""
    result = results[0]
    name, dep = next((n, d) for n, d in result.deployments.items() if d.local is not None)
    assert dep.local is not None
    series = dep.local.timeseries.model_copy(update={"mbu_fraction": [0.2, 1.19, 0.4]})
    local = dep.local.model_copy(update={"timeseries": series})
    tall = result.model_copy(update={"deployments": {
        **result.deployments, name: dep.model_copy(update={"local": local})}})
    # with planning: the load curves' fixed goodput and TTFT ranges
    planned = [example_result(name, True) for name in (
        "retail-assistant", "bulk-extraction", "coding-agent", "agent-workflow",
        "reasoning-model", "regulated-records")]
    for outcome in (*results, *planned, tall):
        for chart in CHARTS:
            fig = chart(outcome)
            for trace in fig.data:
                for letter, data in (("x", trace.x), ("y", trace.y)):
                    ref = getattr(trace, f"{letter}axis") or letter
                    axis = fig.layout[f"{letter}axis{ref[1:]}"]
                    if axis.range is None or data is None:
                        continue
                    values = [v for v in data if isinstance(v, int | float)]
                    if axis.type == "log":      # a log axis's range is in powers of ten
                        values = [math.log10(v) for v in values if v > 0]
                    # either end (a reversed axis lists its top first)
                    low, high = min(axis.range), max(axis.range)
                    assert all(low <= v <= high for v in values), (chart.__name__, trace.name)


def test_stale_prices_and_retiring_models_have_their_own_headings(
        results: list[Result]) -> None:
    page = render(results[1], ["gpt-4o prices are from 2024-05-13"],
                  ["cloud model gpt-4o (used by api): shut down on 2027-01-14"])
    stale = page.index("<b>Prices out of date:</b> gpt-4o prices are from 2024-05-13")
    retiring = page.index("<b>Models retiring:</b> cloud model gpt-4o (used by api)")
    assert stale < retiring
    # the retirement line is not in the stale-price paragraph
    assert "shut down" not in page[stale:retiring]
    alone = render(results[1], [], ["cloud model gpt-4o (used by api): shut down"])
    assert "Prices out of date" not in alone and "Models retiring" in alone


def test_a_chart_with_nothing_to_draw_says_why_instead(results: list[Result]) -> None:
    """Without planning there is no load curve: the report says so where the chart would
    be, rather than drawing empty axes; a planned run draws every chart."""
    planned, unplanned = results[0], results[1]
    assert unplanned.planning is None and not load_curves(unplanned).data
    page = render(unplanned)
    assert "<p class='chart-missing' id='chart-load_curves'>" in page
    assert "this run skipped (--no-plan)" in page
    assert "plotly" in page.split("chart-over_time", 1)[1]   # the library still comes along
    assert "chart-missing" not in render(planned)


def test_the_same_result_renders_the_same_page(results: list[Result]) -> None:
    """Plotly names each chart's div at random unless told: the page is now a function of
    the result, as result.json is."""
    for result in results:
        assert render(result) == render(result)


def test_costs_far_apart_stay_linear_stacked_with_a_closer_look(results: list[Result]) -> None:
    """Bar lengths on a log axis mislead (a $13 bar looked a third of a $7.2k one): bulk-
    extraction's candidates (gpt-4o at ~40 times the owned fleet's month) stay stacked on
    a linear axis, and a second panel shows those within WIDE_SPREAD of the cheapest again
    at their own scale; close costs have the one panel."""
    wide, close = cost_breakdown(results[3]), cost_breakdown(results[0])
    for fig in (wide, close):
        axes = [k for k in fig.layout.to_plotly_json() if k.startswith("yaxis")]
        assert all(fig.layout[k].type == "linear" for k in axes)
        assert fig.layout.barmode == "stack"
    assert "xaxis2" not in close.layout.to_plotly_json()
    totals = {n: d.cost.monthly_usd for n, d in results[3].deployments.items()}
    cheapest = min(totals.values())
    second = {n for t in wide.data if t.xaxis == "x2" for n in t.x}
    assert second == {n for n, t in totals.items() if t <= WIDE_SPREAD * cheapest}
    assert max(totals.values()) > WIDE_SPREAD * cheapest and len(second) >= 2
    # each item's amount reads on hover, the legend lists it once
    assert all("$%{y:,.0f}" in t.hovertemplate for t in wide.data if t.type == "bar")
    assert not any(t.showlegend for t in wide.data if t.xaxis == "x2")


# candidates, a model and dates with hyphens, in a table squeezed by a narrow window
HYPHENS = """
    seed: 1
    duration: 60
    traffic: {kind: poisson, rate_per_s: 0.5}
    tasks: [{name: short-notes, prompt_tokens: {kind: fixed, tokens: 200},
             output_tokens: {kind: fixed, tokens: 20}}]
    deployments:
      small-l4-fleet: {gpu: L4, model: Llama-3.1-8B}
      managed-api: {kind: cloud, model: gpt-4o-mini}
"""

#: marks the page's body with every hyphenated word of a table cell that the browser laid
#: out over more than one line (its text's boxes at different heights)
PROBE = r"""<script>window.addEventListener('load', () => {
  const broken = []; let words = 0;
  for (const td of document.querySelectorAll('td')) {
    const walk = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
    for (let node = walk.nextNode(); node; node = walk.nextNode()) {
      for (const m of node.textContent.matchAll(/\S*\w-\w\S*/g)) {
        const range = document.createRange();
        range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        words += 1; if (tops.size > 1) broken.push(m[0]);
      }
    }
  }
  document.body.setAttribute('data-words', String(words));
  document.body.setAttribute('data-broken', broken.join('|'));
});</script>"""


def test_table_cells_never_break_a_hyphenated_word(tmp_path: Path) -> None:
    """A candidate, GPU or model name stays on one line in the report's tables, however
    narrow the column (Chromium broke lines after its hyphens: "gpt-6-" / "luna")."""
    from helpers import scenario_from

    from llmplan.pipeline import evaluate

    page = tmp_path / "report.html"
    html = render(evaluate(scenario_from(HYPHENS), planning=False))
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom, stderr = _open(page, tmp_path, "480,2000")
    words = re.search(r'data-words="(\d+)"', dom)
    broken = re.search(r'data-broken="([^"]*)"', dom)
    assert words and broken, stderr[-2000:]
    assert int(words.group(1)) > 10          # the candidates, the model, dates: checked
    assert broken.group(1) == ""


#: marks the page's body with every x tick label the browser drew over a y tick label of
#: the same chart ("0" on "50 ms" at the corner of an axis from 0), and how many it checked
TICK_PROBE = r"""<script>window.addEventListener('load', () => setTimeout(() => {
  const over = []; let pairs = 0;
  for (const chart of document.querySelectorAll('.chart')) {
    const boxes = sel => [...chart.querySelectorAll(sel)].filter(t => t.textContent)
      .map(t => [t.textContent, t.getBoundingClientRect()]);
    const xs = boxes('.xaxislayer-above text'), ys = boxes('.yaxislayer-above text');
    for (const [x, a] of xs) for (const [y, b] of ys) {
      pairs += 1;
      if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)
        over.push(`${chart.id}: ${x} on ${y}`);
    }
  }
  document.body.setAttribute('data-pairs', String(pairs));
  document.body.setAttribute('data-over', over.join('|'));
}, 0));</script>"""


def test_no_tick_label_is_drawn_over_another(report: Path, tmp_path: Path) -> None:
    """support-assistant's load curves drew the x axis' "0" on the TTFT axis' "50 ms",
    and its break-even chart "0" on "0": where an x axis from 0 meets the y axis' lowest
    label, in Chromium's own layout of the page."""
    page = tmp_path / "report.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", TICK_PROBE
                                                               + "</body>"), encoding="utf-8")
    dom, stderr = _open(page, tmp_path, "1280,800")
    pairs = re.search(r'data-pairs="(\d+)"', dom)
    over = re.search(r'data-over="([^"]*)"', dom)
    assert pairs and over, stderr[-2000:]
    assert int(pairs.group(1)) > 100          # every chart's labels were laid out
    assert over.group(1) == ""


#: a candidate's name as long as a name may be (64 characters): wider than a narrow window
LONG_NAME = "a-candidate-named-at-such-length-that-it-fills-a-narrow-window-x"

#: marks the page's body with every id (the ids in its data-ids) that a paragraph, list
#: item, heading or summary (outside the tables) laid out over more than one line, and
#: every one that ran past its paragraph's right edge
PROSE_PROBE = r"""<script>window.addEventListener('load', () => {
  const ids = JSON.parse(document.body.dataset.ids);
  const broken = [], past = []; let found = 0;
  for (const el of document.querySelectorAll('p, li, h1, summary')) {
    if (el.closest('table')) continue;
    const edge = el.getBoundingClientRect().right + 0.5;
    const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walk.nextNode(); node; node = walk.nextNode()) {
      for (const id of ids) {
        for (let at = node.textContent.indexOf(id); at >= 0;
             at = node.textContent.indexOf(id, at + id.length)) {
          const range = document.createRange();
          range.setStart(node, at); range.setEnd(node, at + id.length);
          const rects = [...range.getClientRects()].filter(r => r.width > 0);
          found += 1;
          if (new Set(rects.map(r => Math.round(r.top))).size > 1) broken.push(id);
          if (rects.some(r => r.right > edge)) past.push(id);
        }
      }
    }
  }
  document.body.setAttribute('data-found', String(found));
  document.body.setAttribute('data-broken', [...new Set(broken)].join('|'));
  document.body.setAttribute('data-past', [...new Set(past)].join('|'));
});</script>"""


def test_prose_keeps_ids_whole_and_within_the_page(tmp_path: Path) -> None:
    """The recommendation and the other sentences broke candidate, GPU and model ids at
    their hyphens ("small-l4-" / "fleet"): each moves to the next line whole instead, and
    one wider than the whole line breaks inside rather than run past the page's edge."""
    from helpers import scenario_from

    from llmplan.pipeline import evaluate

    text = HYPHENS.replace("managed-api:", f"{LONG_NAME}: {{gpu: L40S, model: Llama-3.1-8B}}"
                           "\n      managed-api:")
    result = evaluate(scenario_from(text), planning=False)
    ids = ["small-l4-fleet", "managed-api", "short-notes", "Llama-3.1-8B", "gpt-4o-mini",
           LONG_NAME]
    page = tmp_path / "report.html"
    page.write_text(render(result).replace("<body>", f"<body data-ids='{json.dumps(ids)}'>")
                    .replace("</body>", PROSE_PROBE + "</body>"), encoding="utf-8")
    broken, past = {}, {}
    for width in (480, 800, 1280):
        dom, stderr = _open(page, tmp_path, f"{width},3000")
        found = re.search(r'data-found="(\d+)"', dom)
        said = {key: re.search(rf'data-{key}="([^"]*)"', dom) for key in ("broken", "past")}
        assert found and said["broken"] and said["past"], stderr[-2000:]
        assert int(found.group(1)) > 10        # the ids were in the prose, and checked
        broken[width], past[width] = (set(filter(None, m.group(1).split("|")))
                                      for m in (said["broken"], said["past"]))
    # only the name wider than a narrow window's line breaks, and only there
    assert broken == {480: {LONG_NAME}, 800: set(), 1280: set()}
    assert past == {480: set(), 800: set(), 1280: set()}
