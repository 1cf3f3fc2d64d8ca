"""report.html of a load test: latency over time and distributions, self-contained offline."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import plotly.graph_objects as go
from plotly.io import to_html
from plotly.subplots import make_subplots

from llmplan.loadtests.records import RequestRecord
from llmplan.results.loadtest import LoadTestSummary
from llmplan.scenario.models import SloSpec


def _figure(rows: list[RequestRecord]) -> go.Figure:
    ok = [r for r in rows if r.ok]
    start = min((r.send_ts for r in rows), default=0.0)
    fig = make_subplots(rows=2, cols=2, subplot_titles=(
        "TTFT over the run (ms)", "E2E over the run (ms)", "TTFT distribution (ms)",
        "Inter-token latency distribution (ms)"))
    t = [r.send_ts - start for r in ok]
    fig.add_trace(go.Scattergl(x=t, y=[r.ttft_ms for r in ok], mode="markers",
                               name="TTFT", marker={"size": 4}), row=1, col=1)
    fig.add_trace(go.Scattergl(x=t, y=[r.e2e_ms for r in ok], mode="markers",
                               name="E2E", marker={"size": 4}), row=1, col=2)
    failed = [r for r in rows if not r.ok]
    if failed:
        fig.add_trace(go.Scattergl(x=[r.send_ts - start for r in failed],
                                   y=[r.e2e_ms or 0 for r in failed], mode="markers",
                                   name="failed", marker={"size": 6, "symbol": "x"}),
                      row=1, col=2)
    fig.add_trace(go.Histogram(x=[r.ttft_ms for r in ok if r.ttft_ms is not None],
                               name="TTFT", nbinsx=60), row=2, col=1)
    fig.add_trace(go.Histogram(x=[x for r in ok for x in r.itl_ms], name="ITL",
                               nbinsx=80), row=2, col=2)
    fig.update_xaxes(title_text="seconds since start", row=1)
    fig.update_layout(height=800, showlegend=False, template="plotly_white")
    return fig


def write_loadtest_report(summary: LoadTestSummary, rows: list[RequestRecord], path: Path,
                          title: str, slo_by_task: Mapping[str, SloSpec] | None = None) -> Path:
    """report.html of one load test."""
    figure = to_html(_figure(rows), include_plotlyjs="inline", full_html=False)
    body = (f"<h1>{html.escape(title)}</h1>"
            f"<pre>{html.escape(summary.model_dump_json(indent=1))}</pre>{figure}")
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>"
                    f"{html.escape(title)}</title></head><body>{body}</body></html>",
                    encoding="utf-8")
    return path
