"""The load-test report opens offline in a real headless Chromium: cards, tables, every chart
drawn (with SLO lines and the run's own time axis), raw data behind links, no console errors.
Chromium comes from Debian's package (installed by .ci/run)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from llmplan.loadtests.records import RequestRecord
from llmplan.loadtests.report import CHARTS, write_loadtest_report
from llmplan.loadtests.summary import summarise_records
from llmplan.scenario.models import SloSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fidelity"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from synth import poisson_workload
from test_report_browser import _open


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    rows = poisson_workload(seed=2, n=150, rate=3.0, prompt=(10, 80), output=(2, 40))
    rows = [r.model_copy(update={"task": "chat" if r.id % 3 else "classify"}) for r in rows]
    rows.append(RequestRecord(id=999, task="chat", target="x", scheduled_ts=1010.0,
                              send_ts=1010.0, schedule_delay_ms=0.0, status=503,
                              error_class="http_5xx", error="overloaded", e2e_ms=5.0))
    rows.sort(key=lambda r: r.send_ts)
    slo = {"chat": SloSpec(ttft_ms=150, tpot_ms=40), "classify": SloSpec(ttft_ms=80)}
    summary = summarise_records(rows, planned=160, planned_span_s=50.0, slo_by_task=slo,
                                mode="open")
    out = tmp_path_factory.mktemp("loadtest-report")
    path = write_loadtest_report(summary, rows, out / "report.html", "support -> local", slo)
    span = max(r.send_ts for r in rows) - min(r.send_ts for r in rows)
    return path, span


def test_the_report_renders_in_a_browser(page: tuple[Path, float], tmp_path: Path) -> None:
    path, span = page
    dom, log = _open(path, tmp_path)
    assert [line for line in log.splitlines() if ":CONSOLE" in line] == []
    for chart in CHARTS:
        start = dom.index(f'id="chart-{chart.__name__}"')
        end = dom.find('class="chart"', start + 1)
        block = dom[start:end if end > 0 else len(dom)]
        assert "main-svg" in block, f"{chart.__name__} did not render"
        assert re.search(r'class="(trace|point|bars)', block), f"{chart.__name__} is empty"
    # summary cards, errors with their meaning, the per-task table, SLO lines, raw data links
    assert "achieved / offered" in dom and "goodput" in dom
    assert "http_5xx" in dom and "the server failed" in dom
    assert ">classify<" in dom and "Per task" in dom
    assert "SLO 150 (chat)" in dom and "SLO 80 (classify)" in dom
    assert 'href="summary.json"' in dom and 'href="requests.jsonl"' in dom
    # the time axis is the run's own: ticks reach most of its ~50 s
    block = dom[dom.index('id="chart-latency_over_time"'):]
    ticks = [float(t) for t in re.findall(r'class="xtick"><text[^>]*>([\d.]+)<', block)]
    assert ticks and max(ticks) >= 0.6 * span and span > 30
