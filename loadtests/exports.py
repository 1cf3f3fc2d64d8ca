"""A load test's figures in the formats other tools take: CSV and Prometheus text.

- `summary.csv`: one row per metric (TTFT, TPOT, ITL, E2E, per-user output tokens/s,
  schedule delay) with count, mean, std, min, p1-p99.9 and max, like AIPerf's CSV; then
  one row per single figure (requests by outcome, rates, throughput...) in `value`.
- `metrics.prom`: the Prometheus text exposition of the run (gauges named
  `llmplan_loadtest_*`, labelled with the target and the run), for a node_exporter textfile
  collector or a Pushgateway (`curl --data-binary @metrics.prom
  http://pushgateway:9091/metrics/job/llmplan`), so a Grafana board can show it.
"""

from __future__ import annotations

import csv
from pathlib import Path

from llmplan.results.loadtest import LoadTestSummary, Stats

STAT_FIELDS = ("count", "mean", "std", "min", "p1", "p5", "p10", "p25", "p50", "p75", "p90",
               "p95", "p99", "p99_9", "max")


def _distributions(summary: LoadTestSummary) -> dict[str, tuple[Stats, str]]:
    lat, thr = summary.latency, summary.throughput
    return {"ttft": (lat.ttft_ms, "ms"), "tpot": (lat.tpot_ms, "ms"), "itl": (lat.itl_ms, "ms"),
            "e2e": (lat.e2e_ms, "ms"),
            "output_tokens_per_s_per_user": (thr.output_tokens_per_s_per_user, "tokens/s"),
            "schedule_delay": (summary.schedule_delay_ms, "ms")}


def write_summary_csv(summary: LoadTestSummary, path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["metric", "unit", *STAT_FIELDS, "value"])
        for name, (stats, unit) in _distributions(summary).items():
            values = stats.model_dump()
            writer.writerow([name, unit, *("" if values[f] is None else f"{values[f]:.6g}"
                                           for f in STAT_FIELDS)])
        req, thr = summary.requests, summary.throughput
        for name, unit, value in (
                ("requests_planned", "requests", req.planned), ("requests_sent", "requests",
                                                                 req.sent),
                ("requests_finished", "requests", req.finished),
                ("requests_failed", "requests", req.failed),
                ("requests_cancelled", "requests", req.cancelled),
                ("requested_rate", "requests/s", thr.requested_rate_per_s),
                ("achieved_rate", "requests/s", thr.achieved_rate_per_s),
                ("output_tokens_per_s", "tokens/s", thr.output_tokens_per_s),
                ("input_tokens_per_s", "tokens/s", thr.input_tokens_per_s),
                ("goodput_fraction", "fraction", summary.slo.goodput_fraction),
                ("cache_hit_rate", "fraction",
                 summary.cache.hit_rate if summary.cache is not None else None)):
            writer.writerow([name, unit, *([""] * len(STAT_FIELDS)),
                             "" if value is None else f"{value:.6g}"])
    return path


def _label_text(labels: dict[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return ",".join(f'{k}="{esc(v)}"' for k, v in sorted(labels.items()))


def prometheus_text(summary: LoadTestSummary, labels: dict[str, str]) -> str:
    """The run as Prometheus text exposition (quantiles as a `quantile` label)."""
    lines: list[str] = []
    base = _label_text(labels)

    def gauge(name: str, help_text: str, rows: list[tuple[str, float | None]]) -> None:
        lines.append(f"# HELP llmplan_loadtest_{name} {help_text}")
        lines.append(f"# TYPE llmplan_loadtest_{name} gauge")
        for extra, value in rows:
            if value is not None:
                both = ",".join(x for x in (base, extra) if x)
                lines.append(f"llmplan_loadtest_{name}{{{both}}} {value:.9g}")

    for name, (stats, unit) in _distributions(summary).items():
        values = stats.model_dump()
        suffix = "_seconds" if unit == "ms" else "_tokens_per_second"
        scale = 1e-3 if unit == "ms" else 1.0
        rows = [(f'quantile="{float(f[1:].replace("_", ".")) / 100:g}"',
                 None if values[f] is None else values[f] * scale)
                for f in STAT_FIELDS if f.startswith("p")]
        rows += [(f'stat="{f}"', None if values[f] is None else values[f] * scale)
                 for f in ("mean", "std", "min", "max")]
        gauge(name + suffix, f"{name} of the load test's requests", rows)
    req = summary.requests
    gauge("requests", "Requests by outcome", [
        (f'outcome="{k}"', float(v)) for k, v in (
            ("planned", req.planned), ("sent", req.sent), ("finished", req.finished),
            ("failed", req.failed), ("cancelled", req.cancelled), ("not_sent", req.not_sent))])
    gauge("errors", "Failed requests by error class",
          [(f'class="{k}"', float(v)) for k, v in req.errors_by_class.items()])
    thr = summary.throughput
    gauge("rate_requests_per_second", "Requested and achieved request rates",
          [('kind="requested"', thr.requested_rate_per_s),
           ('kind="achieved"', thr.achieved_rate_per_s)])
    gauge("tokens_per_second", "Token throughput",
          [('direction="output"', thr.output_tokens_per_s),
           ('direction="input"', thr.input_tokens_per_s)])
    gauge("goodput_ratio", "Share of requests inside every SLO bound",
          [("", summary.slo.goodput_fraction)])
    if summary.cache is not None:
        gauge("prompt_cache_hit_ratio", "Prompt tokens served from the server's cache",
              [("", summary.cache.hit_rate)])
    return "\n".join(lines) + "\n"


def write_exports(summary: LoadTestSummary, out_dir: Path, labels: dict[str, str]) -> None:
    write_summary_csv(summary, out_dir / "summary.csv")
    (out_dir / "metrics.prom").write_text(prometheus_text(summary, labels), encoding="utf-8")
