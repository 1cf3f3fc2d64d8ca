"""Terminal rendering: every table the CLI prints, from typed results (rich)."""

from __future__ import annotations

import datetime

from rich import box
from rich.console import JustifyMethod
from rich.markup import escape
from rich.table import Table

from llmplan.catalog import STALE_AFTER_DAYS, Catalog, is_stale
from llmplan.decide.sweep import SweepResult
from llmplan.fidelity.fit import Fit
from llmplan.fidelity.validate import METRICS, Comparison
from llmplan.loadtests.repeats import RepeatSummary
from llmplan.perf.steptime_spec import Calibration, TabulatedStepTime
from llmplan.results.decision import Candidate, Result
from llmplan.results.loadtest import LoadTestSummary


def fmt(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators, or '-' when there is none."""
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _serving(dep: Candidate) -> str:
    local, cloud = dep.local, dep.cloud
    parts = []
    if local is not None:
        parts.append(f"{local.gpus} x {local.gpu}")
    if cloud is not None:
        parts.append(cloud.model)
    return " + ".join(parts)


def summary_table(result: Result) -> Table:
    """One row per candidate, units in the headers; fits 100 columns."""
    meta = result.scenario
    table = Table(title=f"{meta.name}: {meta.requests:,} requests over "
                        f"{meta.duration_s / 3600:.2f} h (seed {meta.seed})",
                  caption=result.monthly_volume(), caption_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    columns: list[tuple[str, JustifyMethod]] = [
        ("candidate", "left"), ("serves with", "left"), ("TTFT p95\nms", "right"),
        ("TPOT p50\nms", "right"), ("E2E p95\ns", "right"), ("goodput", "right"),
        ("$ per\nmonth", "right"), ("$ per 1k\nuseful", "right"), ("feasible", "left")]
    for column, justify in columns:
        table.add_column(column, justify=justify, overflow="fold")
    for name, dep in result.deployments.items():
        lat = dep.latency
        e2e = lat.e2e_ms.p95
        per_useful = dep.cost.usd_per_useful_result
        goodput = _pct(dep.slo.goodput_fraction)
        table.add_row(
            name, _serving(dep), fmt(lat.ttft_ms.p95), fmt(lat.tpot_ms.p50, 1),
            fmt(None if e2e is None else e2e / 1e3, 1),
            f"[green]{goodput}[/]" if dep.slo.met else f"[red]{goodput}[/]",
            fmt(dep.cost.monthly_usd), fmt(None if per_useful is None else per_useful * 1e3, 2),
            "[green]yes[/]" if dep.feasible else "[red]no[/]")
    return table


def not_served(result: Result) -> list[str]:
    """Per candidate that left requests unanswered: how many, and how they ended."""
    lines = []
    for name, dep in result.deployments.items():
        counts = dep.requests
        parts = [f"{count:,} {words}" for count, words in counts.not_answered()]
        if parts:
            lost = counts.total - counts.completed
            lines.append(f"{name} {lost:,} of {counts.total:,} requests "
                         f"({lost / counts.total:.1%}): " + ", ".join(parts))
    return lines


def exclusions(result: Result) -> list[str]:
    """Every reason each infeasible candidate was left out."""
    return [f"{name}: {reason}" for name, dep in result.deployments.items()
            for reason in dep.infeasible_because]


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
    """The fitted step time, one coefficient per row (what each costs, per what), and the
    fit's size and quality."""
    st, fit = calibration.step_time, calibration.fit
    table = Table(title=f"calibration from {calibration.source}")
    table.add_column("step time")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("fit")
    table.add_column("", justify="right")
    if isinstance(st, TabulatedStepTime):
        rows = [(f"step of {tokens:,} token{'s' if tokens > 1 else ''}", f"{ms:.1f}",
                 "ms (prompt + decodes)") for tokens, ms in st.tokens_ms]
        rows += [("per KV token read", f"{st.per_kv_token_ns:.1f}", "ns (decode context)"),
                 ("per prefill pair", f"{st.per_prefill_pair_ns:.1f}", "ns (query, key)")]
    else:
        rows = [("fixed", f"{st.fixed_ms:.3f}", "ms per step"),
                ("per prompt token", f"{st.per_prefill_token_us:.1f}", "us (computed tokens)"),
                ("per decoding sequence", f"{st.per_decode_seq_us:.1f}", "us per step"),
                ("per KV token read", f"{st.per_kv_token_ns:.1f}", "ns (decode context)"),
                ("per prefill pair", f"{st.per_prefill_pair_ns:.1f}", "ns (query, key)")]
    rows.append(("client overhead", f"{calibration.client_overhead_ms:.2f}", "ms per request"))
    facts = [("slots", str(calibration.engine.max_num_seqs)), ("steps fitted", f"{fit.steps:,}"),
             ("R2", f"{fit.r2:.3f}"), ("median |err| %", f"{fit.median_abs_error_pct:.1f}"),
             ("requests", f"{fit.requests:,}")]
    facts += [("", "")] * (len(rows) - len(facts))
    for (name, value, unit), (fact, figure) in zip(rows, facts, strict=True):
        table.add_row(name, value, unit, fact, figure)
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


def _num(value: float | None) -> str:
    """A compact count: '-' for none, 128k / 1.05M from a thousand up."""
    if value is None:
        return "-"
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}" + suffix
    return f"{value:g}"


def _tokens(count: int) -> str:
    """A context length as people say it: 128k = 131,072 tokens, 1M = 2^20, 200k = 200,000."""
    if count % 1024 == 0 and count >= 1024:
        kib = count // 1024
        return f"{kib // 1024}M" if kib % 1024 == 0 else f"{kib}k"
    return _num(count)


def _tflops(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}".rstrip("0").rstrip(".")


def _compact(title: str, caption: str = "") -> Table:
    """A table narrow enough for a 100-column terminal: no outer edge, header rule only."""
    return Table(title=title, caption=caption or None, box=box.SIMPLE_HEAD, show_edge=False,
                 pad_edge=False, collapse_padding=True, caption_justify="left")


def _catalog_overview(cat: Catalog, today: datetime.date | None) -> list[Table]:
    def as_of(date: datetime.date) -> str:
        return date.isoformat() + ("*" if today is not None and is_stale(date, today) else "")

    stale_note = (f"* prices older than {STALE_AFTER_DAYS} days on {today.isoformat()}"
                  if today is not None else "")
    gpus = _compact("GPUs", "GiB: total the runtime reports; TFLOP/s dense; link: GB/s per "
                            "direction to peers" + (f"\n{stale_note}" if stale_note else ""))
    for column in ("id", "GiB", "bf16", "fp8", "fp4", "HBM GB/s", "link", "W", "buy $",
                   "rent $/h", "as of"):
        gpus.add_column(column, justify="left" if column in ("id", "as of") else "right")
    for key, g in cat.gpus.items():
        gpus.add_row(key, f"{g.memory_mib / 1024:.1f}", _tflops(g.bf16_dense_tflops),
                     _tflops(g.fp8_dense_tflops), _tflops(g.fp4_dense_tflops),
                     f"{g.memory_bandwidth_gb_per_s:g}", f"{g.interconnect_gb_per_s:g}",
                     f"{g.tdp_w:g}", f"{g.purchase_usd:,.0f}", f"{g.rental_usd_per_gpu_hour:.2f}",
                     as_of(g.prices_as_of))
    models = _compact("Models", "params: total/active B; attention: KV heads x head dim, or MLA "
                                "latent + rope dims; KV: KiB per token over all layers in bf16; "
                                "window: tokens x layers; experts: routed/top-k+shared")
    for column in ("id", "params", "layers", "attention", "KV", "window", "experts", "dtype",
                   "context"):
        models.add_column(column, justify="left" if column in ("id", "dtype") else "right")
    for key, m in cat.models.items():
        params = f"{m.params_b:g}" + (f"/{m.active_params_b:g}" if m.is_moe else "")
        attention = (f"mla {m.kv_lora_rank}+{m.qk_rope_head_dim}" if m.attention == "mla"
                     else f"{m.kv_heads}x{m.head_dim}")
        window = (f"{m.sliding_window_tokens}x{m.sliding_layers}" if m.sliding_layers else "-")
        experts = (f"{m.experts}/{m.experts_per_token}"
                   + (f"+{m.shared_experts}" if m.shared_experts else "") if m.is_moe else "-")
        models.add_row(key, params, str(m.layers), attention,
                       f"{m.kv_bytes_per_token('bf16') / 1024:.4g}", window, experts,
                       m.default_dtype, _tokens(m.max_context_tokens))
    tables = [gpus, models]
    for provider in dict.fromkeys(c.provider for c in cat.cloud_models.values()):
        cloud = _compact(f"Cloud models: {provider}",
                         "USD per million tokens; RPM/TPM of the default tier (Anthropic and "
                         "Gemini TPM: input only)" + (f"\n{stale_note}" if stale_note else ""))
        for column in ("id", "in", "cached", "write", "out", "context", "tier", "RPM", "TPM",
                       "as of"):
            cloud.add_column(column, justify="left" if column in ("id", "tier", "as of")
                             else "right")
        for key, c in cat.cloud_models.items():
            if c.provider == provider:
                cloud.add_row(key, _usd(c.input_usd_per_mtok), _usd(c.cached_input_usd_per_mtok),
                              _usd(c.cache_write_usd_per_mtok), _usd(c.output_usd_per_mtok),
                              _tokens(c.context_tokens), c.default_tier or "-",
                              _num(c.default_rpm), _num(c.default_tpm),
                              as_of(c.prices_as_of))
        tables.append(cloud)
    return tables


def _catalog_sources(cat: Catalog) -> list[Table]:
    tables = []
    for section in ("gpus", "models", "cloud_models"):
        for key, entry in getattr(cat, section).items():
            table = Table(title=f"{section}/{key}", title_justify="left", box=None,
                          show_header=False, pad_edge=False)
            table.add_column("field", style="bold", no_wrap=True)
            table.add_column("source", overflow="fold")
            for name, source in entry.sources.items():
                table.add_row(name, escape(source))
            tables.append(table)
    return tables


def catalog_tables(cat: Catalog, *, sources: bool = False,
                   today: datetime.date | None = None) -> list[Table]:
    """The catalog at a glance (GPUs, models, cloud models per provider; prices older than
    180 days on `today` starred), or with `sources` one block per entry giving every
    field's source."""
    return _catalog_sources(cat) if sources else _catalog_overview(cat, today)
