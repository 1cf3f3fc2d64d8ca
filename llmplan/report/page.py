"""report.html: the decision and the evidence behind it, in one self-contained file.

Opens offline (plotly.js is inlined once). Sections: the recommendation and what would
flip it, the seed's decision table with this scenario's numbers, the evaluation checklist,
latency CDFs per candidate, latency and goodput versus load, utilisation and queue over
time, the cost breakdown, the break-even chart, and the per-deployment figures.
"""

from __future__ import annotations

import html
from pathlib import Path

from llmplan.report.break_even_words import (
    break_even_words,
    excluded_words,
    per_useful_words,
)
from llmplan.report.cost_charts import break_even_chart, cost_breakdown
from llmplan.report.figure import figure_html
from llmplan.report.glossary import glossary_html
from llmplan.report.html_text import fmt, prose, prose_ids, table
from llmplan.report.sections import (
    conversations,
    folded_cost_items,
    hybrid_routing,
    seed_question,
    unanswered,
)
from llmplan.report.serving_charts import latency_cdfs, load_curves, over_time
from llmplan.results.decision import Result

CHARTS = (latency_cdfs, load_curves, over_time, cost_breakdown, break_even_chart)
#: what a chart that can come out with nothing to draw says in its place (the others
#: always draw: arrivals, a total per candidate, a cost line per candidate)
EMPTY_CHART = {
    "latency_cdfs": "No latency distribution: no candidate answered a request.",
    "load_curves": "Goodput and TTFT p95 versus offered load come from planning, which "
                   "this run skipped (--no-plan) or which had no fleet to size.",
}


def render(result: Result, price_warnings: list[str] | None = None,
           retiring: list[str] | None = None, risks: list[str] | None = None, *,
           notes: list[str] | None = None) -> str:
    """The page; `price_warnings` name catalog prices the run used that are out of date,
    `retiring` the cloud models it used that the provider retires within the horizon,
    `risks` those of them the recommendation uses, `notes` what else the terminal notes
    (a hybrid that ran one side only, a deployment the stack builds otherwise)."""
    meta, rec = result.scenario, result.recommendation
    names = list(result.deployments)
    # no feasible candidate: the answer is "none", in the warning's colours, not a success's
    box = "rec" if rec.deployment is not None else "warn"
    named = result.headline()
    ids = prose_ids(result)

    def say(text: str) -> str:
        return prose(text, ids)

    parts = [f"<h1>{say(meta.name)}: local, cloud or both?</h1>",
             f"<p class='{box}'><b>Recommendation: {say(named)}</b>. "
             f"{say(rec.reason)}.</p>"]
    parts.append("<p class='small'>Terms (SLO, TTFT, goodput, tp/pp, spill-over...) are "
                 "explained <a href='#terms'>at the end</a>.</p>")
    if rec.drivers:
        parts.append("<div class='drivers'><b>What decides it</b><ul>" + "".join(
            f"<li>{say(d.text)} <i>({say(d.basis)})</i></li>"
            for d in rec.drivers) + "</ul></div>")
    if risks:
        parts.append("<p class='warn'><b>Risk to the recommendation:</b> " + "; ".join(
            say(r) for r in risks) + ".</p>")
    right_sized = result.right_sized_line()
    if right_sized is not None:
        parts.append(f"<p class='warn'><b>Right-sized:</b> {say(right_sized)}.</p>")
    cases = result.planning.sensitivity if result.planning is not None else []
    flips = [c for c in cases if c.winner != rec.deployment]
    if flips:
        parts.append("<p>The answer would change: " + "; ".join(
            say(f"to {c.winner or 'no feasible candidate'} if {c.change}")
            for c in flips) + ".</p>")
    held = [c.change for c in cases if c.winner == rec.deployment]
    if held and rec.deployment is not None:
        parts.append("<p>It holds if " + say("; ".join(held)) + ".</p>")
    if price_warnings:
        parts.append("<p class='warn'><b>Prices out of date:</b> " + "; ".join(
            say(w) for w in price_warnings) + ". Override them under the scenario's "
            "<code>catalog:</code> with today's figures.</p>")
    others = [w for w in retiring or [] if w not in (risks or [])]
    if others:
        parts.append("<p class='warn'><b>Models retiring:</b> " + "; ".join(
            say(w) for w in others) + ".</p>")
    if notes:
        parts.append("<div class='warn' id='notes'><b>Notes</b><ul>" + "".join(
            f"<li>{say(n)}</li>" for n in notes) + "</ul></div>")
    summary_rows = []
    for name, dep in result.deployments.items():
        lat, cost = dep.latency, dep.cost
        engine = dep.local.engine if dep.local is not None else None
        summary_rows.append([
            name, dep.serves_with(), dep.latency_from,
            "yes" if dep.feasible else "no: " + "; ".join(dep.infeasible_because),
            fmt(engine.kv_cache_tokens) if engine else "-",
            fmt(engine.max_concurrency_at_mean_request) if engine else "-",
            fmt(lat.ttft_ms.p95), fmt(lat.tpot_ms.p50, 1), fmt(lat.e2e_ms.p95),
            dep.slo.goodput_shown(), unanswered(dep),
            fmt(cost.monthly_usd),
            fmt(cost.usd_per_1k_requests, 3),
            # per 1,000 useful results, as the terminal's table and the sweep give it
            fmt(None if cost.usd_per_useful_result is None
                 else cost.usd_per_useful_result * 1e3, 2)])
    for name, why in (result.unbuildable or {}).items():
        summary_rows.append([name, "not simulated", "-", f"no: cannot be built: {why}",
                             *["-"] * 10])
    slo = f" SLO: {result.scenario.slo}." if result.scenario.slo else ""
    parts.append("<h2>Candidates</h2><p>" + say(result.monthly_volume().capitalize())
                 + "." + say(slo) + "</p>" + table(
        ["deployment", "serves with", "latency from", "feasible",
         "KV cache tokens per replica",
         "requests of mean length the KV cache holds", "TTFT p95 ms", "TPOT p50 ms",
         "E2E p95 ms",
         "goodput", "not answered", "USD/month",
         "USD per 1k requests", "USD per 1k useful results"], summary_rows))
    answers = result.first_answer_tokens()
    if answers:
        parts.append("<p><b>Answer starts</b> (p95 of the first answer token, after the "
                     "hidden reasoning; TTFT above is the first token of any kind): "
                     + say("; ".join(answers)) + ".</p>")
    cached = {name: dep.local.prefix_cache for name, dep in result.deployments.items()
              if dep.local is not None and dep.local.prefix_cache is not None}
    if cached:
        parts.append("<h2>Prefix caching</h2><p>Prompts share prefixes (system prompts, "
                     "documents, conversations so far): how much of them the engines found "
                     "cached instead of computing it again.</p>" + table(
            ["deployment", "engine cache", "requests started", "prompt tokens cached",
             "requests with a hit", "TTFT p50 ms with a hit", "TTFT p50 ms without"],
            [[name, c.policy, fmt(c.requests),
              f"{c.hit_rate_tokens:.1%} ({fmt(c.cached_prompt_tokens)})",
              fmt(c.requests_with_hit), fmt(c.ttft_p50_ms_hit), fmt(c.ttft_p50_ms_miss)]
             for name, c in cached.items()]))
    hybrids = {name: dep for name, dep in result.deployments.items() if dep.hybrid is not None}
    if hybrids:
        parts.append(hybrid_routing(hybrids))
    talks = {name: dep.sessions for name, dep in result.deployments.items()
             if dep.sessions is not None}
    if talks:
        parts.append(conversations(talks))
    parts.append("<h2>Decision table</h2>" + table(
        ["question (the seed guide: local may fit / cloud may fit)", *names],
        [[seed_question(row.question)] + [row.answers.get(n, "-") for n in names]
         for row in result.decision_table]))
    parts.append("<h2>Evaluation checklist</h2>" + table(
        ["question", "status", "evidence"],
        [[c.item, c.status, c.evidence] for c in result.checklist]))
    parts.append("<h2>Cost items</h2><p>Every item of the seed's two cost lists each "
                 "candidate pays, per month, with how it was reached; items at $0 are listed "
                 "too (a default of $0 says so: set the field to price it).</p>"
                 + "".join(folded_cost_items(name, dep)
                           for name, dep in result.deployments.items()))
    if result.planning is not None:
        window = result.planning.window
        where = ("the whole request stream" if window.whole_stream else
                 f"the busiest stretch of the request stream: {window.requests:,} requests "
                 f"from {window.start_s:,.0f} s on")
        if window.sped_up_to_peak is not None:
            where += (f", sped up {window.sped_up_to_peak:.3g}x to the traffic's daily peak "
                      f"({window.requests:,} requests in {window.span_s:,.0f} s)")
        elif not window.whole_stream:
            where += f" arriving in {window.span_s:,.0f} s"
        checked = "" if window.whole_stream else (
            "; the replica counts were checked on the whole stream, the sustainable rates on "
            "a stretch three times as long")
        parts.append("<h2>Planning</h2><p>" + say(
            f"The searches simulated {where}{checked}. Rates are requests per second at "
            f"the pace the simulated stretch arrives.")
            + "</p>" + "".join(
            f"<p class='warn'>{say(note)}</p>" for note in result.planning.notes)
            + table(
            ["deployment", "fewest replicas meeting the SLO",
             "max sustainable requests/s (at the busiest stretch's pace)"],
            [[n, fmt(p.min_replicas_meeting_slo),
              fmt(p.max_sustainable_requests_per_s, 2)]
             for n, p in result.planning.deployments.items()]))
    if result.break_even:
        parts.append("<h2>Break-even</h2>" + table(
            ["local", "cloud", "break-even requests/month",
             "per useful result, the ranking's measure (share of requests useful: local, "
             "cloud)", "simulated requests/month",
             "local fleet serves at most (full batches)", "within the SLO (planning)",
             "excluded by the decision"],
            [[r.local, r.cloud, break_even_words(r), per_useful_words(r),
              fmt(r.simulated_requests_per_month),
              fmt(r.local_capacity_requests_per_month),
              fmt(r.local_slo_capacity_requests_per_month),
              r.excluded or "neither"] for r in result.break_even]))
    # each named by its pair, marked as the table and the chart mark a pair with a side
    # the decision excluded (its break-even is no choice between the two)
    grow = [say(f"{r.local} / {r.cloud}{excluded_words(result, r)}: {r.fleet_must_grow}")
            for r in result.break_even if r.fleet_must_grow]
    if grow:
        parts.append("<p class='warn'><b>Break-even past a fleet's capacity:</b> "
                     + "; ".join(grow) + ".</p>")
    first = True
    for chart in CHARTS:
        fig = chart(result)
        if not fig.data:        # nothing to draw: say why instead of empty axes
            parts.append(f"<p class='chart-missing' id='chart-{chart.__name__}'>"
                         f"{html.escape(EMPTY_CHART.get(chart.__name__, 'Nothing to draw.'))}"
                         "</p>")
            continue
        parts.append(f"<div class='chart' id='chart-{chart.__name__}'>"
                     f"{figure_html(fig, first=first, div_id=f'plot-{chart.__name__}')}"
                     "</div>")
        first = False
    parts.append(glossary_html())
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;"
             "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;"
             "font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;"
             "text-align:left}th{background:#f3f3f3}.rec{font-size:18px;background:#eef6ee;"
             "padding:12px;border-left:4px solid #3a3}.warn{background:#fff4e0;padding:8px;"
             "border-left:4px solid #e90}.small{font-size:13px;color:#555}"
             ".w{white-space:nowrap}.id{display:inline-block;max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>llmplan: "
            f"{html.escape(meta.name)}</title><style>{style}</style></head><body>"
            + "".join(parts) + "</body></html>")


def write_decision_report(result: Result, out_dir: Path,
                          price_warnings: list[str] | None = None,
                          retiring: list[str] | None = None,
                          risks: list[str] | None = None, *,
                          notes: list[str] | None = None) -> Path:
    """out_dir/report.html for a simulation's result."""
    path = out_dir / "report.html"
    path.write_text(render(result, price_warnings, retiring, risks, notes=notes), encoding="utf-8")
    return path
