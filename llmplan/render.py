"""Terminal rendering: every table the CLI prints, from typed results (rich)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from llmplan.catalog import Catalog
from llmplan.decide.sweep import SweepResult
from llmplan.fidelity.fit import Fit
from llmplan.fidelity.validate import METRICS, Comparison
from llmplan.loadtests.repeats import RepeatSummary
from llmplan.perf.steptime_spec import Calibration
from llmplan.results.decision import Result
from llmplan.results.loadtest import LoadTestSummary


def fmt(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators, or '-' when there is none."""
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def summary_table(result: Result) -> Table:
    """One row per deployment: the figures a capacity planner looks at first."""
    meta = result.scenario
    table = Table(title=f"{meta.name}: {meta.requests:,} requests over "
                        f"{meta.duration_s / 3600:.2f} h (seed {meta.seed})")
    for column in ("deployment", "serving", "TTFT p50/p95 ms", "TPOT p50/p95 ms", "E2E p95 s",
                   "req/s", "out tok/s", "goodput", "SLO", "KV use", "preempt", "not served",
                   "$/month", "$/useful", "feasible"):
        table.add_column(column, justify="left" if column == "deployment" else "right")
    for name, dep in result.deployments.items():
        lat, req = dep.latency, dep.requests
        e2e = lat.e2e_ms.p95
        local, cloud = dep.local, dep.cloud
        if local is not None and cloud is not None:
            serving = f"{local.gpus}x {local.gpu} + {cloud.model}"
        elif local is not None:
            serving = f"{local.gpus}x {local.gpu}"
        else:
            serving = f"API {cloud.model if cloud is not None else '?'}"
        kv = local.utilisation.kv_cache_mean_fraction if local is not None else None
        table.add_row(
            name, serving,
            f"{fmt(lat.ttft_ms.p50)} / {fmt(lat.ttft_ms.p95)}",
            f"{fmt(lat.tpot_ms.p50, 1)} / {fmt(lat.tpot_ms.p95, 1)}",
            fmt(None if e2e is None else e2e / 1e3, 1),
            fmt(dep.throughput.requests_per_s, 2), fmt(dep.throughput.output_tokens_per_s),
            _pct(dep.slo.goodput_fraction),
            "[green]met[/]" if dep.slo.met else "[red]missed[/]",
            "-" if kv is None else f"{kv:.0%}",
            f"{req.preemptions:,}", f"{req.total - req.completed:,}",
            fmt(dep.cost.monthly_usd), fmt(dep.cost.usd_per_useful_result, 4),
            "[green]yes[/]" if dep.feasible else "[red]no[/]")
    return table


def loadtest_table(summary: LoadTestSummary, title: str) -> Table:
    """One row: what was sent and what came back (README "Names across tools")."""
    table = Table(title=title)
    for column in ("sent", "finished", "failed", "cancelled", "429", "req/s requested",
                   "req/s achieved", "TTFT p50/p95 ms", "TPOT p50 ms", "ITL p50 ms",
                   "E2E p50/p95 ms", "out tok/s/user p50", "goodput", "cache hit",
                   "sched. delay p99 ms"):
        table.add_column(column, justify="right")
    req, lat, thr = summary.requests, summary.latency, summary.throughput
    cache = summary.cache
    table.add_row(
        f"{req.sent}/{req.planned}", str(req.finished), str(req.failed), str(req.cancelled),
        str(req.errors_by_class.get("http_429", 0)),
        fmt(thr.requested_rate_per_s, 2), fmt(thr.achieved_rate_per_s, 2),
        f"{fmt(lat.ttft_ms.p50)} / {fmt(lat.ttft_ms.p95)}",
        fmt(lat.tpot_ms.p50, 1), fmt(lat.itl_ms.p50, 1),
        f"{fmt(lat.e2e_ms.p50)} / {fmt(lat.e2e_ms.p95)}",
        fmt(thr.output_tokens_per_s_per_user.p50, 1),
        _pct(summary.slo.goodput_fraction),
        _pct(cache.hit_rate if cache is not None else None),
        fmt(summary.schedule_delay_ms.p99, 1))
    return table


def repeat_table(repeats: RepeatSummary) -> Table:
    """Mean of each percentile over the repeats, with its confidence interval."""
    table = Table(title=f"{repeats.runs} repeats: mean and {repeats.confidence:.0%} "
                        f"confidence interval")
    for column in ("metric", "p50 mean", "p50 interval", "p95 mean", "p95 interval"):
        table.add_column(column, justify="right")
    for metric, points in repeats.intervals.items():
        cells = [metric]
        for q in ("p50", "p95"):
            iv = points.get(q)
            cells += ["-", "-"] if iv is None else [
                fmt(iv.mean, 1), f"{fmt(iv.low, 1)} - {fmt(iv.high, 1)} "
                                 f"(+/-{iv.half_width_pct:.1f}%)"]
        table.add_row(*cells)
    return table


def calibration_table(calibration: Calibration) -> Table:
    table = Table(title=f"calibration from {calibration.source}")
    for column in ("fixed ms", "per prefill token us", "per decode seq us", "per KV token ns",
                   "client overhead ms", "slots", "steps fitted", "R2", "median |err| %"):
        table.add_column(column, justify="right")
    st, fit = calibration.step_time, calibration.fit
    table.add_row(f"{st.fixed_ms:.3f}", f"{st.per_prefill_token_us:.1f}",
                  f"{st.per_decode_seq_us:.1f}", f"{st.per_kv_token_ns:.1f}",
                  f"{calibration.client_overhead_ms:.2f}", str(calibration.engine.max_num_seqs),
                  str(fit.steps), f"{fit.r2:.3f}", f"{fit.median_abs_error_pct:.1f}")
    return table


def fit_kind_table(fit: Fit) -> Table:
    """How the step model explains each kind of step (trimming never empties a kind)."""
    table = Table(title="fit by kind of step (held in)")
    for column in ("kind", "steps", "kept after trim", "total time bias %",
                   "single-step median |err| %"):
        table.add_column(column, justify="right")
    for name, kind in (("carried a prompt", fit.prefill), ("decode only", fit.decode)):
        table.add_row(name, f"{kind.steps:,}", f"{kind.kept:,}", fmt(kind.bias_pct, 1),
                      fmt(kind.median_abs_error_pct, 1))
    return table


def validation_table(comparison: Comparison) -> Table:
    table = Table(title=f"{comparison.requests} measured requests replayed through the "
                        f"simulator")
    for column in ("metric", "measured p50", "predicted p50", "err %", "measured p95",
                   "predicted p95", "err %", "measured p99", "predicted p99", "err %"):
        table.add_column(column, justify="right")
    for metric in METRICS:
        m, p = comparison.measured[metric], comparison.predicted[metric]
        e = comparison.error_pct[metric]
        cells = [metric]
        for q in ("p50", "p95", "p99"):
            cells += [fmt(m.get(q), 1), fmt(p.get(q), 1), fmt(e.get(q), 1)]
        table.add_row(*cells)
    return table


def sweep_table(sweep: SweepResult) -> Table:
    table = Table(title=f"sweep of {sweep.base}: {len(sweep.points)} points "
                        f"(* = Pareto front)")
    for column in ("point", "SLO", "goodput", "TTFT p95 ms", "E2E p95 ms", "$/month",
                   "$/useful"):
        table.add_column(column, justify="right")
    on_front = {r.name for r in sweep.pareto_front}
    for r in sweep.points:
        if r.error:
            table.add_row(r.name, "-", "-", "-", "-", "-", escape(r.error[:40]))
            continue
        table.add_row(("* " if r.name in on_front else "") + r.name,
                      "met" if r.slo_met else "missed", _pct(r.goodput_fraction),
                      fmt(r.ttft_p95_ms), fmt(r.e2e_p95_ms), fmt(r.monthly_usd),
                      fmt(r.usd_per_useful_result, 4))
    return table


def catalog_tables(cat: Catalog) -> list[Table]:
    gpus = Table(title="GPUs")
    for column in ("id", "memory GB", "bf16 TFLOP/s", "GB/s", "W", "buy $", "rent $/h"):
        gpus.add_column(column)
    for key, g in cat.gpus.items():
        gpus.add_row(key, f"{g.memory_gb:g}", f"{g.bf16_dense_tflops:g}",
                     f"{g.memory_bandwidth_gb_per_s:g}", f"{g.tdp_w:g}", f"{g.purchase_usd:,.0f}",
                     f"{g.rental_usd_per_gpu_hour:.2f}")
    models = Table(title="Models")
    for column in ("id", "params B", "layers", "kv heads", "head dim", "KiB KV/token (bf16)"):
        models.add_column(column)
    for key, m in cat.models.items():
        models.add_row(key, f"{m.params_b:g}", str(m.layers), str(m.kv_heads), str(m.head_dim),
                       f"{m.kv_bytes_per_token('bf16') / 1024:g}")
    return [gpus, models]
