"""Terminal rendering: every table the CLI prints, from typed results (rich)."""

from __future__ import annotations

import datetime

from rich.console import Group
from rich.markup import escape
from rich.table import Table

from llmplan.catalog import STALE_AFTER_DAYS, Catalog, CloudModelSpec, is_stale
from llmplan.catalog.lifecycle import lifecycle
from llmplan.decide.sweep import SweepResult
from llmplan.decide.table import limit_words, share_shown
from llmplan.fidelity.fit import Fit
from llmplan.fidelity.validate import METRICS, Comparison
from llmplan.loadtests.repeats import RepeatSummary
from llmplan.perf.steptime_spec import Calibration, TabulatedStepTime
from llmplan.results.decision import Result
from llmplan.results.loadtest import LoadTestSummary
from llmplan.tables import Col, Fitted, cell_width, grid, groups_unbroken


def fmt(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators, or '-' when there is none; one that `digits`
    decimals would show with fewer than two significant digits (0.004 at 2) with two."""
    if value is None:
        return "-"
    if value != 0 and abs(value) < 10.0 ** (1 - digits):
        return f"{value:.2g}"
    return f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


#: the simulate summary's figures, units in the headers
SUMMARY_FIGURES = (Col("TTFT\np95 ms"), Col("TPOT\np50 ms"), Col("E2E\np95 s"), Col("goodput"),
                   Col("$ per\nmonth"), Col("$ per 1k\nuseful"), Col("feasible", "left"))
#: the latency figures' positions in SUMMARY_FIGURES, the one a narrow layout leaves out
#: first first
_LATENCIES = (("e2e_ms", 2), ("tpot_ms", 1), ("ttft_ms", 0))
#: SUMMARY_FIGURES in words (name, unit), for captions and the one-line layout
_FIGURE_WORDS = (("TTFT p95", " ms"), ("TPOT p50", " ms"), ("E2E p95", " s"), ("goodput", ""),
                 ("$ per month", ""), ("$ per 1k useful", ""), ("feasible", ""))


def _in_words(cells: list[str]) -> str:
    """A candidate's summary figures as one line of words ("TTFT p95 74 ms, ...")."""
    return ", ".join(f"{name} {cell}{unit if cell != '-' else ''}"
                     for (name, unit), cell in zip(_FIGURE_WORDS, cells, strict=True))


def summary_table(result: Result, bounded: frozenset[str] = frozenset()) -> Fitted:
    """One row per candidate, units in the headers. What serves each candidate has a
    column of its own, or goes under its name, or into a note under the table. Narrower,
    the latency figures no SLO bounds (`bounded`: "ttft_ms", "tpot_ms", "e2e_ms") are left
    out, E2E first (result.json has them); narrowest, each candidate's figures are one line
    of words, wrapped, so nothing is lost."""
    meta = result.scenario
    hours = meta.duration_s / 3600
    span = (f"{hours:,.0f} h" if hours >= 100 else f"{hours:.3g} h" if hours >= 1 else
            f"{meta.duration_s / 60:.3g} min" if meta.duration_s >= 60 else
            f"{meta.duration_s:.3g} s")
    title = (f"{meta.name}: {meta.requests:,} request{'s' if meta.requests != 1 else ''} "
             f"over {span} (seed {meta.seed})")
    names, serving, figures = [], [], []
    for name, dep in result.deployments.items():
        lat = dep.latency
        e2e = lat.e2e_ms.p95
        per_useful = dep.cost.usd_per_useful_result
        goodput = dep.slo.goodput_shown()
        names.append(escape(name))
        serving.append(groups_unbroken(escape(dep.serves_with())))
        figures.append([
            fmt(lat.ttft_ms.p95), fmt(lat.tpot_ms.p50, 1),
            fmt(None if e2e is None else e2e / 1e3, 1),
            f"[green]{goodput}[/]" if dep.slo.met else f"[red]{goodput}[/]",
            fmt(dep.cost.monthly_usd), fmt(None if per_useful is None else per_useful * 1e3, 2),
            "[green]yes[/]" if dep.feasible else "[red]no[/]"])
    rows = list(zip(names, serving, figures, strict=True))
    volume = result.monthly_volume()
    if meta.slo:
        volume += f"\nSLO: {meta.slo}"
    served = "\nserves with: " + "; ".join(f"{n} = {w}" for n, w, _ in rows)
    # a fleet's words break badly ("4 x B200 (tp 4) (8" / "bought)"): wrapped only when
    # long, else the next layout puts them under the name
    wrap = max(cell_width(w) for _, w, _ in rows) > SERVES_WITH_UNBROKEN if rows else True
    layouts = [
        grid(title, [Col("candidate", "left"), Col("serves with", "left", wrap=wrap),
                     *SUMMARY_FIGURES], [[n, w, *f] for n, w, f in rows], caption=volume),
        grid(title, [Col("candidate\nserves with", "left", wrap=True), *SUMMARY_FIGURES],
             [[f"{n}\n[dim]{w}[/]", *f] for n, w, f in rows], caption=volume),
        grid(title, [Col("candidate", "left"), *SUMMARY_FIGURES],
             [[n, *f] for n, _, f in rows], caption=volume + served)]
    left_out: list[int] = []
    for name, index in _LATENCIES:
        if name in bounded:
            continue
        left_out.append(index)
        keep = [i for i in range(len(SUMMARY_FIGURES)) if i not in left_out]
        gone = ", ".join(_FIGURE_WORDS[i][0] for i in sorted(left_out))
        layouts.append(grid(
            title, [Col("candidate", "left"), *(SUMMARY_FIGURES[i] for i in keep)],
            [[n, *(f[i] for i in keep)] for n, _, f in rows],
            caption=f"{volume}{served}\nleft out for width (bounded by no SLO; in "
                    f"result.json): {gone}"))
    # one column: each candidate's name on a line of its own, then its figures in words
    layouts.append(grid(
        title, [Col("candidate: serves with; figures", "left", wrap=True)],
        [[f"{n}: [dim]{w}[/]\n  {_in_words(f)}"] for n, w, f in rows], caption=volume))
    return Fitted(*layouts)


def not_served(result: Result) -> list[str]:
    """Per candidate that left requests unanswered: how many, and how they ended."""
    lines = []
    for name, dep in result.deployments.items():
        counts = dep.requests
        parts = [f"{count:,} {words}" for count, words in counts.not_answered()]
        if parts:
            lost = counts.total - counts.completed
            # the latency columns describe the answered requests alone: say so where they
            # are few, or a 0%-goodput row reads as fast
            few = f"; its latencies are of the {counts.completed:,} answered only" \
                if lost >= LATENCY_OF_FEW * counts.total else ""
            # two significant digits of a small share: 14 of 39,606 is 0.035%, not "0.0%";
            # near all, of what was answered: 39,594 of 39,606 is 99.970%, not "100.0%"
            share = fmt(100 * lost / counts.total, 1)
            if share == "100.0" and lost < counts.total:
                share = share_shown(lost, counts.total).removesuffix("%")
            lines.append(f"{name} {lost:,} of {counts.total:,} requests "
                         f"({share}%): " + ", ".join(parts) + few
                         + dep.too_long_by_task())
    return lines


def one_sided(result: Result) -> list[str]:
    """Hybrids whose run answered everything on one side: no route, spill-over or fall-back
    reached the other, so the run says nothing about it (but for its fixed costs)."""
    lines = []
    for name, dep in result.deployments.items():
        hybrid = dep.hybrid
        if hybrid is None or dep.requests.completed == 0:
            continue
        sent = dep.cloud.requests_sent if dep.cloud is not None else hybrid.served_cloud
        if hybrid.served_cloud == 0 and sent == 0:
            lines.append(f"{name} answered every request on {hybrid.local}: its routes and "
                         f"spill-over sent {hybrid.cloud} nothing, so it ran as "
                         f"{hybrid.local} alone (with the API's fixed costs)")
        elif hybrid.served_local == 0:
            moved = hybrid.moved_between_paths
            why = (f"{hybrid.local} answered none ({moved:,} moved between the two: too long "
                   f"for it, spilled over or fallen back)" if moved else
                   f"its routes sent {hybrid.local} nothing to answer")
            lines.append(f"{name} answered every request on {hybrid.cloud}: {why}, though "
                         f"its GPUs are paid for")
    return lines


#: the widest "serves with" cell kept on one line in the summary table's widest layout
SERVES_WITH_UNBROKEN = 32

#: the share of a candidate's requests left unanswered from which its line says that the
#: table's latencies are of the answered ones only (a p95 of the rest: 5% lost is its
#: whole tail)
LATENCY_OF_FEW = 0.05


def api_limits(result: Result) -> str | None:
    """Each cloud API's binding rate limit and the rate it admits at the traffic's token
    mix, against the rate the traffic brings on average (None: no API with limits)."""
    mean = result.scenario.long_run_requests_per_s
    parts = [f"{name} {words}" for name, dep in result.deployments.items()
             if (words := limit_words(dep, mean)) is not None]
    return "; ".join(parts) or None


def exclusions(result: Result) -> list[str]:
    """Every reason each infeasible candidate was left out, and each deployment that
    cannot be built as written (not simulated)."""
    return [f"{name}: " + "; and ".join(dep.infeasible_because)
            for name, dep in result.deployments.items() if dep.infeasible_because] + [
        f"{name}: cannot be built, not simulated: {why}"
        for name, why in (result.unbuildable or {}).items()]


def loadtest_table(summary: LoadTestSummary, title: str) -> Group:
    """What was sent and what came back (README "Names across tools"): the requests, then
    the latencies; each a column of figures when the terminal is too narrow for a row."""
    req, lat, thr = summary.requests, summary.latency, summary.throughput
    cache = summary.cache
    counts = [
        (Col("sent"), f"{req.sent}/{req.planned}"), (Col("finished"), str(req.finished)),
        (Col("failed"), str(req.failed)), (Col("cancelled"), str(req.cancelled)),
        (Col("429"), str(req.errors_by_class.get("http_429", 0))),
        (Col("req/s\noffered"), fmt(thr.requested_rate_per_s, 2)),
        (Col("req/s\nachieved"), fmt(thr.achieved_rate_per_s, 2)),
        (Col("goodput"), _pct(summary.slo.goodput_fraction) if summary.slo.bounded
         else "no SLO"),
        (Col("cache\nhit"), _pct(cache.hit_rate if cache is not None else None))]
    times = [
        (Col("TTFT ms\np50 / p95"), f"{fmt(lat.ttft_ms.p50)} / {fmt(lat.ttft_ms.p95)}"),
        (Col("TPOT ms\np50"), fmt(lat.tpot_ms.p50, 1)),
        (Col("ITL ms\np50"), fmt(lat.itl_ms.p50, 1)),
        (Col("E2E ms\np50 / p95"), f"{fmt(lat.e2e_ms.p50)} / {fmt(lat.e2e_ms.p95)}"),
        (Col("out tok/s per\nuser p50"), fmt(thr.output_tokens_per_s_per_user.p50, 1)),
        (Col("sched. delay\nms p99"), fmt(summary.schedule_delay_ms.p99, 1))]
    return Group(*(Fitted(grid(head, [c for c, _ in part], [[v for _, v in part]]),
                          grid(head, [Col("measure", "left"), Col("value")],
                               [[c.header.replace("\n", " "), v] for c, v in part]))
                   for head, part in ((title, counts), (None, times))))


def repeat_table(repeats: RepeatSummary) -> Table:
    """Mean of each percentile over the repeats, with its confidence interval."""
    rows = []
    for metric, points in repeats.intervals.items():
        cells = [metric]
        for q in ("p50", "p95"):
            iv = points.get(q)
            cells += ["-", "-"] if iv is None else [
                fmt(iv.mean, 1), f"{fmt(iv.low, 1)} - {fmt(iv.high, 1)} "
                                 f"(+/-{iv.half_width_pct:.1f}%)"]
        rows.append(cells)
    return grid(f"{repeats.runs} repeats: mean and {repeats.confidence:.0%} confidence interval",
                [Col("metric", "left"), Col("p50\nmean"), Col("p50\ninterval"),
                 Col("p95\nmean"), Col("p95\ninterval")], rows)


def calibration_table(calibration: Calibration) -> Table:
    """The fitted step time, one coefficient per row (what each costs, per what), and the
    fit's size and quality."""
    st, fit = calibration.step_time, calibration.fit
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
    return grid(f"calibration from {escape(calibration.source)}",
                [Col("step time", "left"), Col("value"), Col("unit", "left"),
                 Col("fit", "left"), Col("")],
                [[*row, *fact] for row, fact in zip(rows, facts, strict=True)])


def fit_kind_table(fit: Fit) -> Table:
    """How the step model explains each kind of step (trimming never empties a kind)."""
    unit = fit.observed
    return grid(f"fit by kind of {unit} (held in)",
                [Col("kind", "left"), Col(f"{unit}s"), Col("kept after\ntrim"),
                 Col("total time\nbias %"), Col(f"single-{unit}\nmedian |err| %")],
                [[name, f"{kind.steps:,}", f"{kind.kept:,}", fmt(kind.bias_pct, 1),
                  fmt(kind.median_abs_error_pct, 1)]
                 for name, kind in (("carried a prompt", fit.prefill),
                                    ("decode only", fit.decode))])


def validation_table(comparison: Comparison) -> Fitted:
    """Measured, predicted and error at p50, p95 and p99 per metric; narrower terminals
    keep the whole p50 and the errors of the tails (then only p50 whole), never a cut
    number."""
    title = f"{comparison.requests} measured requests replayed through the simulator"
    layouts = []
    for whole in (("p50", "p95", "p99"), ("p50", "p95"), ("p50",)):
        columns = [Col("metric", "left")]
        for q in ("p50", "p95", "p99"):
            columns += [Col(f"{q}\nmeasured"), Col(f"{q}\npredicted"), Col(f"{q}\nerr %")] \
                if q in whole else [Col(f"{q}\nerr %")]
        rows = []
        for metric in METRICS:
            m, p = comparison.measured[metric], comparison.predicted[metric]
            e = comparison.error_pct[metric]
            cells = [metric]
            for q in ("p50", "p95", "p99"):
                cells += [fmt(m.get(q), 1), fmt(p.get(q), 1), fmt(e.get(q), 1)] \
                    if q in whole else [fmt(e.get(q), 1)]
            rows.append(cells)
        layouts.append(grid(title, columns, rows))
    return Fitted(*layouts)


def sweep_table(sweep: SweepResult) -> Fitted:
    """One row per grid point, its name whole; a point that could not run says why in a
    numbered note under the table. Narrow terminals get the SLO next to the goodput and no
    TTFT column (E2E p95 stays: the Pareto front is drawn on it). The cost per useful
    result is per 1,000 of them, as in simulate's summary (0.000402 and 0.000411 would
    both read 0.0004)."""
    on_front = {r.name for r in sweep.pareto_front}
    notes: list[str] = []
    wide_rows, narrow_rows = [], []
    for r in sweep.points:
        name = ("* " if r.name in on_front else "  ") + escape(r.name)
        if r.error:
            notes.append(f"({len(notes) + 1}) {escape(r.name)}: {escape(r.error)}")
            status = f"error ({len(notes)})"
            wide_rows.append([name, status, "-", "-", "-", "-", "-"])
            narrow_rows.append([name, status, "-", "-", "-"])
            continue
        slo = "met" if r.slo_met else "missed"
        if r.overloaded:
            notes.append(f"({len(notes) + 1}) {escape(r.name)}: {escape(r.overloaded)}")
            slo = f"met, overloaded ({len(notes)})"
        per_useful = r.usd_per_useful_result
        money = [fmt(r.monthly_usd), fmt(None if per_useful is None else per_useful * 1e3, 2)]
        wide_rows.append([name, slo, _pct(r.goodput_fraction), fmt(r.ttft_p95_ms),
                          fmt(r.e2e_p95_ms), *money])
        narrow_rows.append([name, f"{_pct(r.goodput_fraction)} {slo}", fmt(r.e2e_p95_ms),
                            *money])
    scales = len({r.traffic_scale for r in sweep.points})
    front = "Pareto front" + (" of its traffic scale" if scales > 1 else "")
    title = f"sweep of {sweep.base}: {len(sweep.points)} points (* = {front})"
    caption = "\n".join([_point_legend(sweep), *notes])
    money_cols = [Col("$ per\nmonth"), Col("$ per 1k\nuseful")]
    return Fitted(
        grid(title, [Col("point", "left"), Col("SLO", "left"), Col("goodput"),
                     Col("TTFT p95\nms"), Col("E2E p95\nms"), *money_cols], wide_rows, caption),
        grid(title, [Col("point", "left"), Col("goodput\nSLO"), Col("E2E p95\nms"),
                     *money_cols], narrow_rows,
             # said, as simulate's summary says what it leaves out: the TTFT is often
             # the figure the SLO bounds
             f"{caption}\nleft out for width (in sweep.json): TTFT p95"))


def _point_legend(sweep: SweepResult) -> str:
    """How a point's name reads: H100-SXMx2 is two replicas, not two GPUs, when a replica
    spans several (the layout part, -tp4, says how many where the sweep varies it)."""
    layout = "[-layout and GPUs]" if any(r.layout for r in sweep.points) else ""
    legend = f"point: GPUxreplicas{layout}-router-traffic scale"
    per_replica = {r.tp * r.pp for r in sweep.points}
    if not layout and per_replica != {1}:
        counts = " or ".join(str(n) for n in sorted(per_replica))
        legend += f"; a replica is {counts} GPUs"
    return legend


def _num(value: float | None) -> str:
    """A compact count: '-' for none, 128k / 1.05M from a thousand up."""
    if value is None:
        return "-"
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}" + suffix
    return f"{value:g}"


def _tokens(count: int) -> str:
    """A context length in decimal thousands, as providers publish it: 128,000 -> 128k,
    131,072 -> 131k, 1,048,576 -> 1.05M (never binary: 128,000 is not "125k")."""
    return _num(count)


def _tflops(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}".rstrip("0").rstrip(".")


def _dropping(title: str, columns: list[Col], rows: list[list[str]], caption: str,
              *drops: tuple[str, ...]) -> Fitted:
    """All the columns, then layouts without the ones each of `drops` names (by header):
    the widest that fits is shown."""
    layouts = []
    for drop in ((), *drops):
        keep = [i for i, c in enumerate(columns) if c.header not in drop]
        left_out = ", ".join(h.replace("\n", " ") for h in drop)
        said = "\n".join(part for part in (caption, left_out and (
            f"not shown at this width: {left_out} (a wider terminal shows them)")) if part)
        layouts.append(grid(title, [columns[i] for i in keep],
                            [[row[i] for i in keep] for row in rows], said))
    return Fitted(*layouts)


def _catalog_overview(cat: Catalog, today: datetime.date | None) -> list[Fitted]:
    def as_of(date: datetime.date) -> str:
        return date.isoformat() + ("*" if today is not None and is_stale(date, today) else "")

    stale = (f"* prices older than {STALE_AFTER_DAYS} days on {today.isoformat()}"
             if today is not None else "")
    gpu_cols = [Col("id", "left"), Col("GiB", note="GiB: total the runtime reports"),
                Col("bf16", note="bf16/fp8/fp4: dense TFLOP/s"), Col("fp8"), Col("fp4"),
                Col("HBM\nGB/s"), Col("link", note="link: GB/s per direction to peers"),
                Col("net", note="net: GB/s per GPU between servers"),
                Col("W"), Col("buy $"), Col("rent\n$/h"), Col("as of", "left")]
    gpu_rows = [[key, f"{g.memory_mib / 1024:.1f}", _tflops(g.bf16_dense_tflops),
                 _tflops(g.fp8_dense_tflops), _tflops(g.fp4_dense_tflops),
                 f"{g.memory_bandwidth_gb_per_s:g}", f"{g.interconnect_gb_per_s:g}",
                 f"{g.network_gb_per_s:g}",
                 f"{g.tdp_w:g}", f"{g.purchase_usd:,.0f}", f"{g.rental_usd_per_gpu_hour:.2f}",
                 as_of(g.prices_as_of)] for key, g in cat.gpus.items()]
    tables = [_dropping("GPUs", gpu_cols, gpu_rows, stale, ("net",), ("net", "link", "W"),
                        ("net", "link", "W", "fp4", "HBM\nGB/s"),
                        ("net", "link", "W", "fp4", "HBM\nGB/s", "fp8", "buy $"))]
    model_cols = [Col("id", "left"), Col("params", note="params: total/active B"),
                  Col("layers"),
                  Col("attention", wrap=True, note="attention: KV heads x head dim, or MLA "
                                                   "latent + rope dims"),
                  Col("KV", note="KV: KiB per token over all layers in bf16"),
                  Col("window", note="window: tokens x layers"),
                  Col("experts", note="experts: routed/top-k+shared"), Col("dtype", "left"),
                  Col("context", note="context: tokens, k = 1,000")]
    model_rows = []
    for key, m in cat.models.items():
        params = f"{m.params_b:g}" + (f"/{m.active_params_b:g}" if m.is_moe else "")
        attention = (f"mla {m.kv_lora_rank}+{m.qk_rope_head_dim}" if m.attention == "mla"
                     else f"{m.kv_heads}x{m.head_dim}")
        window = (f"{m.sliding_window_tokens}x{m.sliding_layers}" if m.sliding_layers else "-")
        experts = (f"{m.experts}/{m.experts_per_token}"
                   + (f"+{m.shared_experts}" if m.shared_experts else "") if m.is_moe else "-")
        model_rows.append([key, params, str(m.layers), attention,
                           f"{m.kv_bytes_per_token('bf16') / 1024:.4g}", window, experts,
                           m.default_dtype, _tokens(m.max_context_tokens)])
    tables.append(_dropping("Models", model_cols, model_rows, "", ("layers", "dtype"),
                            ("layers", "dtype", "window"),
                            ("layers", "dtype", "window", "attention", "experts")))
    cloud_cols = [Col("id", "left"), Col("in", note="USD per million tokens"), Col("cached"),
                  Col("write"), Col("out"), Col("context", note="context: tokens, k = 1,000"),
                  Col("RPM", note="RPM/TPM of the default tier (llmplan catalog --sources "
                                  "names it)"),
                  Col("TPM", note="Anthropic and Gemini TPM: input only"), Col("as of", "left"),
                  Col("retires", "left", note="retires: the shutdown date the provider "
                                              "announced (llmplan catalog --sources)")]
    for provider in dict.fromkeys(c.provider for c in cat.cloud_models.values()):
        rows = [[key, _usd(c.input_usd_per_mtok), _usd(c.cached_input_usd_per_mtok),
                 _usd(c.cache_write_usd_per_mtok), _usd(c.output_usd_per_mtok),
                 _tokens(c.context_tokens), _num(c.default_rpm),
                 _num(c.default_tpm), as_of(c.prices_as_of), _retires(c, today)]
                for key, c in cat.cloud_models.items() if c.provider == provider]
        tables.append(_dropping(f"Cloud models: {provider}", cloud_cols, rows, stale,
                                ("context",), ("context", "TPM"), ("context", "TPM", "RPM"),
                                ("context", "TPM", "RPM", "write", "cached"),
                                ("context", "TPM", "RPM", "write", "cached", "retires")))
    tables.append(_measured_latency(cat))
    return tables


def _measured_latency(cat: Catalog) -> Fitted:
    """The cloud models whose latency a public benchmark measured: median output speed and
    time to first token, by whom and when; the others are simulated at llmplan's default."""
    # the provider first: a line of this table never starts with a model id, which the
    # provider tables above give one line each
    cols = [Col("provider", "left"), Col("id", "left"),
            Col("tok/s", note="tok/s: median output tokens per second; TTFT: median time to "
                              "first token"),
            Col("TTFT\nms"), Col("measured by", "left"), Col("as of", "left")]
    rows = []
    for key, c in cat.cloud_models.items():
        measured = c.latency
        if measured is None:
            continue
        rate, ttft = measured.output_tokens_per_s, measured.ttft_ms
        rows.append([c.provider, key, "-" if rate is None else f"{rate:g}",
                     "-" if ttft is None else f"{ttft:,.0f}", measured.measured_by,
                     measured.as_of.isoformat()])
    caption = (f"the provider's own API, public benchmarks (llmplan catalog --sources quotes "
               f"them); the {len(cat.cloud_models) - len(rows)} cloud models not listed "
               f"have no measurement found and are simulated at llmplan's default provider "
               f"latency (90 tok/s, 350 ms), as is any figure shown '-'")
    return _dropping("Cloud models: measured latency", cols, rows, caption)


def _retires(model: CloudModelSpec, today: datetime.date | None) -> str:
    """When the provider stops serving the model: its shutdown date, "retired" once it has
    (on `today`), "deprecated" with no date given, "-" when none is announced."""
    life = lifecycle(model)
    if life.status == "retired" or (today is not None and life.retired_on(today)):
        return "retired"
    if life.shutdown is not None:
        return life.shutdown.isoformat()
    return "deprecated" if life.status == "deprecated" else "-"


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
            if isinstance(entry, CloudModelSpec):
                _latency_sources(table, entry)
            tables.append(table)
    return tables


def _latency_sources(table: Table, model: CloudModelSpec) -> None:
    """A cloud model's measured latency and its own sources, one a figure and its date, or
    that none was found."""
    measured = model.latency
    if measured is None:
        table.add_row("latency", "no public measurement found: simulated at llmplan's default "
                                 "provider latency (350 ms median time to first token, 90 "
                                 "output tokens/s), unless the scenario sets its own")
        return
    table.add_row("latency", escape(f"measured by {measured.measured_by}, as of "
                                    f"{measured.as_of.isoformat()}"))
    for name, source in measured.sources.items():
        table.add_row(f"latency.{name}", escape(source))


def catalog_tables(cat: Catalog, *, sources: bool = False,
                   today: datetime.date | None = None) -> list[Table] | list[Fitted]:
    """The catalog at a glance (GPUs, models, cloud models per provider; prices older than
    180 days on `today` starred), or with `sources` one block per entry giving every
    field's source."""
    return _catalog_sources(cat) if sources else _catalog_overview(cat, today)
