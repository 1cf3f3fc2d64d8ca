"""summary.csv and metrics.prom say what summary.json says; --repeat gives intervals."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from fakes import FakeOpenAI
from lt_helpers import llmplan, targets_file

from llmplan.fidelity.promtext import parse_snapshots
from llmplan.loadtests.exports import prometheus_text, write_summary_csv
from llmplan.loadtests.repeats import confidence_interval
from llmplan.loadtests.summary import summarise_records

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fidelity"))
from synth import poisson_workload


def test_csv_and_prometheus_text_carry_the_summary(tmp_path: Path) -> None:
    rows = poisson_workload(seed=1, n=80, rate=4.0, prompt=(10, 40), output=(2, 20))
    summary = summarise_records(rows, planned=80, planned_span_s=20.0, slo_by_task={},
                                mode="open")
    table = {r["metric"]: r for r in csv.DictReader(
        write_summary_csv(summary, tmp_path / "s.csv").read_text().splitlines())}
    assert float(table["ttft"]["p99_9"]) == pytest.approx(summary.latency.ttft_ms.p99_9)
    assert float(table["e2e"]["std"]) == pytest.approx(summary.latency.e2e_ms.std, rel=1e-5)
    assert float(table["requests_finished"]["value"]) == 80
    text = prometheus_text(summary, {"target": 'my "llama"', "run": "r1"})
    snapshot = parse_snapshots(text)[0]
    p95 = [v for labels, v in snapshot.samples["llmplan_loadtest_ttft_seconds"]
           if labels.get("quantile") == "0.95"]
    assert p95 == [pytest.approx((summary.latency.ttft_ms.p95 or 0) / 1e3)]
    finished = [v for labels, v in snapshot.samples["llmplan_loadtest_requests"]
                if labels["outcome"] == "finished"]
    assert finished == [80.0]
    assert all(labels["target"] == 'my "llama"' for labels, _ in
               snapshot.samples["llmplan_loadtest_requests"])


def test_confidence_interval_of_known_values() -> None:
    interval = confidence_interval([10.0, 12.0, 14.0])
    # mean 12, s = 2, sem = 2/sqrt(3), t(0.975, 2) = 4.303
    assert interval.mean == 12.0
    assert interval.high - 12.0 == pytest.approx(4.303 * 2 / 3 ** 0.5, rel=1e-3)


def test_repeat_runs_the_plan_again_and_reports_intervals(tmp_path: Path) -> None:
    with FakeOpenAI(token_delay_s=0.003) as fake:
        targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                               "model": "ok"})
        result = llmplan("loadtest", "--targets", str(targets), "--target", "fake",
                         "--prompt-tokens", "20", "--output-tokens", "8", "--concurrency", "2",
                         "--requests", "20", "--repeat", "3", "--duration", "30s",
                         "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    repeats = json.loads((tmp_path / "out" / "repeats.json").read_text())
    assert repeats["runs"] == 3
    ttft = repeats["intervals"]["ttft_ms"]["p50"]
    assert len(ttft["values"]) == 3 and ttft["low"] <= ttft["mean"] <= ttft["high"]
    prompts = [json.loads((tmp_path / "out" / f"repeat-{i}" / "plan.json").read_text())[0]
               ["prompt"] for i in (1, 2, 3)]
    assert len(set(prompts)) == 3                       # each repeat salts its prompts
    assert "95% confidence interval" in result.stdout
