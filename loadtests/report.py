"""report.html of a load test: what was asked, what came back, and how it moved over time.

Summary cards (achieved vs offered rate, goodput, outcomes, errors by class), latency
distributions with the SLO bounds drawn in, a per-task table, time series on the run's own
clock (seconds since the first send), and the raw files behind links. Self-contained and
offline (plotly inline); opened in a real browser by tests/loadtests/test_report.py.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.io import to_html
from plotly.subplots import make_subplots

from llmplan.loadtests.records import ERROR_MEANINGS, RequestRecord
from llmplan.results.loadtest import LoadTestSummary
from llmplan.scenario.models import SloSpec
from llmplan.stats import percentile

CHART_HEIGHT = 420
Chart = Callable[[LoadTestSummary, list[RequestRecord], Mapping[str, SloSpec]], go.Figure]


def _start(rows: list[RequestRecord]) -> float:
    return min((r.send_ts for r in rows), default=0.0)


def _slo_bounds(slo_by_task: Mapping[str, SloSpec], field: str) -> list[tuple[str, float]]:
    bounds: dict[float, list[str]] = {}
    for task, slo in slo_by_task.items():
        value = getattr(slo, field, None)
        if value is not None:
            bounds.setdefault(float(value), []).append(task)
    return [(", ".join(tasks), value) for value, tasks in sorted(bounds.items())]


def latency_distributions(summary: LoadTestSummary, rows: list[RequestRecord],
                          slo_by_task: Mapping[str, SloSpec]) -> go.Figure:
    """CDFs of TTFT, TPOT and E2E per task, with each task's SLO bound as a dashed line."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("TTFT (ms)", "TPOT (ms)", "E2E (ms)"))
    ok = [r for r in rows if r.ok]
    for col, (field, slo_field) in enumerate((("ttft_ms", "ttft_ms"), ("tpot_ms", "tpot_ms"),
                                              ("e2e_ms", "e2e_ms")), start=1):
        for task in sorted({r.task for r in ok}):
            values = np.sort([v for r in ok if r.task == task
                              and (v := getattr(r, field)) is not None])
            if values.size:
                fig.add_trace(go.Scatter(x=values, y=np.arange(1, values.size + 1) / values.size,
                                         mode="lines", name=task, legendgroup=task,
                                         showlegend=col == 1), row=1, col=col)
        for tasks, bound in _slo_bounds(slo_by_task, slo_field):
            fig.add_vline(x=bound, line_dash="dash", line_color="#c33", row=1, col=col,
                          annotation_text=f"SLO {bound:g} ({tasks})",
                          annotation_font_size=10)
    fig.update_yaxes(title_text="share of requests", range=[0, 1.02], row=1, col=1)
    fig.update_layout(title="Latency distributions (finished requests)")
    return fig


def inter_token_latency(summary: LoadTestSummary, rows: list[RequestRecord],
                        slo_by_task: Mapping[str, SloSpec]) -> go.Figure:
    """Every gap between streamed chunks (our ITL, AIPerf's inter-chunk latency)."""
    gaps = [x for r in rows if r.ok for x in r.itl_ms]
    fig = go.Figure(go.Histogram(x=gaps, nbinsx=80, name="ITL"))
    for tasks, bound in _slo_bounds(slo_by_task, "tpot_ms"):
        fig.add_vline(x=bound, line_dash="dash", line_color="#c33",
                      annotation_text=f"TPOT SLO {bound:g} ({tasks})")
    fig.update_layout(title=f"Inter-token latency: {len(gaps):,} gaps", xaxis_title="ms",
                      yaxis_title="gaps")
    return fig


def latency_over_time(summary: LoadTestSummary, rows: list[RequestRecord],
                      slo_by_task: Mapping[str, SloSpec]) -> go.Figure:
    """TTFT and E2E of each request at its send time; failures marked by class."""
    start = _start(rows)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("TTFT (ms)", "E2E (ms)"))
    ok = [r for r in rows if r.ok]
    t = [r.send_ts - start for r in ok]
    fig.add_trace(go.Scatter(x=t, y=[r.ttft_ms for r in ok], mode="markers", name="TTFT",
                             marker={"size": 5}), row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=[r.e2e_ms for r in ok], mode="markers", name="E2E",
                             marker={"size": 5}), row=1, col=2)
    for cls in sorted({r.error_class for r in rows if r.error_class}):
        failed = [r for r in rows if r.error_class == cls]
        fig.add_trace(go.Scatter(x=[r.send_ts - start for r in failed],
                                 y=[r.e2e_ms or 0.0 for r in failed], mode="markers",
                                 name=f"failed: {cls}", marker={"size": 8, "symbol": "x"}),
                      row=1, col=2)
    end = max((r.send_ts - start + (r.e2e_ms or 0) / 1e3 for r in rows), default=1.0)
    fig.update_xaxes(title_text="seconds since the first send", range=[0, end * 1.02])
    fig.update_layout(title="Latency over the run")
    return fig


def throughput_over_time(summary: LoadTestSummary, rows: list[RequestRecord],
                         slo_by_task: Mapping[str, SloSpec]) -> go.Figure:
    """Sends, finishes and requests in flight per second of the run."""
    start = _start(rows)
    end = max((r.send_ts - start + (r.e2e_ms or 0) / 1e3 for r in rows), default=1.0)
    bins = np.arange(0.0, max(end, 1.0) + 1.0, 1.0)
    sends = np.histogram([r.send_ts - start for r in rows], bins)[0]
    done = np.histogram([r.send_ts - start + (r.e2e_ms or 0) / 1e3 for r in rows if r.ok],
                        bins)[0]
    mids = bins[:-1] + 0.5
    in_flight = [sum(1 for r in rows if r.send_ts - start <= m
                     < r.send_ts - start + (r.e2e_ms or 0) / 1e3) for m in mids]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=mids, y=sends, name="sent / s", opacity=0.5))
    fig.add_trace(go.Scatter(x=mids, y=done, name="finished / s", mode="lines+markers"))
    fig.add_trace(go.Scatter(x=mids, y=in_flight, name="in flight", mode="lines"))
    rate = summary.throughput.requested_rate_per_s
    if rate is not None:
        fig.add_hline(y=rate, line_dash="dot", annotation_text=f"offered {rate:.2f}/s")
    fig.update_xaxes(title_text="seconds since the first send", range=[0, bins[-1]])
    fig.update_layout(title="Throughput and concurrency over the run")
    return fig


CHARTS: tuple[Chart, ...] = (latency_distributions, inter_token_latency, latency_over_time,
                             throughput_over_time)


def _fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cards(summary: LoadTestSummary) -> str:
    req, thr, lat = summary.requests, summary.throughput, summary.latency
    goodput = summary.slo.goodput_fraction
    cards = [
        ("achieved / offered", f"{_fmt(thr.achieved_rate_per_s, 2)} / "
                                 f"{_fmt(thr.requested_rate_per_s, 2)} req/s"),
        ("goodput", "-" if goodput is None else f"{goodput:.1%}" if summary.slo.bounded
         else "no SLO given"),
        ("finished / sent / planned", f"{req.finished:,} / {req.sent:,} / {req.planned:,}"),
        ("failed / cancelled / not sent", f"{req.failed:,} / {req.cancelled:,} / "
                                          f"{req.not_sent:,}"),
        ("TTFT p50 / p95", f"{_fmt(lat.ttft_ms.p50)} / {_fmt(lat.ttft_ms.p95)} ms"),
        ("E2E p50 / p95", f"{_fmt(lat.e2e_ms.p50)} / {_fmt(lat.e2e_ms.p95)} ms"),
        ("output tokens/s", f"{_fmt(thr.output_tokens_per_s, 1)} (per user p50 "
                            f"{_fmt(thr.output_tokens_per_s_per_user.p50, 1)})"),
        ("prompt cache hits", "-" if summary.cache is None or summary.cache.hit_rate is None
         else f"{summary.cache.hit_rate:.1%}"),
    ]
    return "<div class='cards'>" + "".join(
        f"<div class='card'><div class='k'>{html.escape(k)}</div>"
        f"<div class='v'>{html.escape(v)}</div></div>" for k, v in cards) + "</div>"


def render(summary: LoadTestSummary, rows: list[RequestRecord], title: str,
           slo_by_task: Mapping[str, SloSpec]) -> str:
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{summary.mode} loop; {summary.throughput.window_s:,.1f} s from the first send "
             f"to the last answer. Raw data: <a href='summary.json'>summary.json</a>, "
             f"<a href='summary.csv'>summary.csv</a>, <a href='requests.jsonl'>requests.jsonl"
             f"</a> (one line per request), <a href='metrics.prom'>metrics.prom</a>.</p>"]
    warnings = [w for w in (summary.target_down,
                            "interrupted: the run was stopped early" if summary.interrupted
                            else None,
                            summary.cache.warning if summary.cache is not None else None,
                            summary.history_note) if w]
    parts += [f"<p class='warn'>{html.escape(w)}</p>" for w in warnings]
    parts.append(_cards(summary))
    errors = [[cls, f"{n:,}", ERROR_MEANINGS.get(cls, "")]
              for cls, n in summary.requests.errors_by_class.items() if n]
    parts.append("<h2>Errors by class</h2>" + (_table(["class", "requests", "meaning"], errors)
                                                if errors else "<p>none</p>"))
    lat = summary.latency
    parts.append("<h2>Latency (ms)</h2>" + _table(
        ["metric", "count", "mean", "std", "min", "p50", "p90", "p95", "p99", "p99.9", "max"],
        [[name, f"{s.count:,}", *(_fmt(getattr(s, f), 1) for f in
                                  ("mean", "std", "min", "p50", "p90", "p95", "p99", "p99_9",
                                   "max"))]
         for name, s in (("TTFT", lat.ttft_ms), ("TPOT", lat.tpot_ms), ("ITL", lat.itl_ms),
                         ("E2E", lat.e2e_ms))]))
    tasks = []
    for name, task in summary.tasks.items():
        mine = [r for r in rows if r.task == name and r.ok]
        tasks.append([name, f"{task.requests:,}", f"{task.ok:,}",
                      f"{task.goodput_fraction:.1%}",
                      _fmt(percentile([r.ttft_ms for r in mine], 50)),
                      _fmt(percentile([r.e2e_ms for r in mine], 95)),
                      "-" if task.correct_fraction is None else f"{task.correct_fraction:.1%}"])
    parts.append("<h2>Per task</h2>" + _table(
        ["task", "requests", "finished", "goodput", "TTFT p50 ms", "E2E p95 ms", "correct"],
        tasks))
    for i, chart in enumerate(CHARTS):
        fig = chart(summary, rows, slo_by_task)
        fig.update_layout(height=CHART_HEIGHT, template="plotly_white",
                          margin={"l": 60, "r": 20, "t": 60, "b": 50})
        figure = to_html(fig, include_plotlyjs="inline" if i == 0 else False, full_html=False,
                         div_id=f"plot-{chart.__name__}",
                         config={"displaylogo": False, "responsive": True})
        parts.append(f"<div class='chart' id='chart-{chart.__name__}'>{figure}</div>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;"
             "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;"
             "font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
             "th{background:#f3f3f3}.cards{display:flex;flex-wrap:wrap;gap:10px}"
             ".card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:200px}"
             ".k{font-size:12px;color:#666}.v{font-size:18px}.warn{background:#fff4e5;"
             "border-left:4px solid #e90;padding:8px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>"
            f"{html.escape(title)}</title><style>{style}</style></head><body>"
            + "".join(parts) + "</body></html>")


def write_loadtest_report(summary: LoadTestSummary, rows: list[RequestRecord], path: Path,
                          title: str, slo_by_task: Mapping[str, SloSpec] | None = None) -> Path:
    """report.html of one load test."""
    path.write_text(render(summary, rows, title, slo_by_task or {}), encoding="utf-8")
    return path
