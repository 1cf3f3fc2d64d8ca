"""The page's tables past the candidates': conversations by turn, hybrid routing per task,
each candidate's cost items, the seed's decision-table questions, unanswered requests."""

from __future__ import annotations

import html

from llmplan.decide.table import SEED_FIT, share_shown
from llmplan.report.cost_items import item_label
from llmplan.report.html_text import fmt, prose, table
from llmplan.results.decision import Candidate
from llmplan.results.simulation import TURNS_SHOWN, SessionOutcome, TurnStats
from llmplan.scenario.cloud import SEED_CLOUD_KINDS, SEED_LOCAL_KINDS


def conversations(talks: dict[str, SessionOutcome]) -> str:
    """Each candidate's sessions, and TTFT by turn: a row per turn, the turns past the
    first TURNS_SHOWN together in a last row ("11-16"), so the rows count every request."""
    summary = table(["deployment", "sessions completed", "median session s",
                      "requests (turns)"],
                     [[name, f"{t.completed_sessions:,} of {t.sessions:,}",
                       fmt(t.session_duration_p50_s), fmt(t.turns)]
                      for name, t in talks.items()])
    rows: dict[str, dict[str, TurnStats]] = {}
    for name, t in talks.items():
        for stats in t.by_turn:
            rows.setdefault(str(stats.turn + 1), {})[name] = stats
        if t.later_turns is not None:
            later = t.later_turns
            span = f"{later.turn + 1}-{later.last_turn + 1}" \
                if later.last_turn > later.turn else str(later.turn + 1)
            rows.setdefault(span, {})[name] = later
    # a candidate's stream may (in principle) differ: one figure when all agree
    def same(by: dict[str, TurnStats], field: str, digits: int = 0) -> str:
        shown = list(dict.fromkeys(fmt(getattr(s, field), digits) for s in by.values()))
        return " / ".join(shown)

    tail = [t.later_turns for t in talks.values() if t.later_turns is not None]
    note = (f" Turns {TURNS_SHOWN + 1} on are counted together in the last row "
            f"(sessions ran up to {max(t.last_turn for t in tail) + 1} turns)." if tail else "")
    return ("<h2>Conversations</h2><p>Each later turn resends the history and is sent when "
            "the previous answer has ended: a slow candidate stretches the conversations "
            "it serves.</p>" + summary + "<p>TTFT p50 (ms) by turn; every request is in "
            "one row." + html.escape(note) + "</p>" + table(
                ["turn", "requests", "mean prompt tokens",
                 *[f"{name} TTFT p50 ms" for name in talks]],
                [[turn, same(by, "requests"), same(by, "prompt_tokens_mean"),
                  *[fmt(by[name].ttft_p50_ms) if name in by else "-" for name in talks]]
                 for turn, by in rows.items()]))


def hybrid_routing(hybrids: dict[str, Candidate]) -> str:
    """The seed's hybrid pattern as each hybrid ran it: per task, its requests and the share
    each path answered (the routes send whole tasks one way; spill-over, fall-back and
    the restricted rule move single requests)."""
    def share(count: int, of: int) -> str:
        # never "100%" beside requests left unanswered
        return f"{fmt(count)} ({share_shown(count, of)})" if of else "-"

    rows = []
    for name, dep in hybrids.items():
        for task, outcome in dep.per_task.items():
            rows.append([name, task, fmt(outcome.requests),
                         share(outcome.completed - outcome.served_cloud, outcome.requests),
                         share(outcome.served_cloud, outcome.requests),
                         fmt(outcome.ttft_p95_ms)])
    moved = "; ".join(
        f"{name}: {dep.hybrid.moved_between_paths:,} requests moved between the paths "
        f"(spill-over or fall-back); {dep.hybrid.restricted_requests:,} restricted, "
        f"{dep.hybrid.restricted_served_by_cloud:,} of them answered by the API"
        for name, dep in hybrids.items() if dep.hybrid is not None)
    # a hybrid kept in past its API's daily limit: what was simulated and what was not
    daily = "".join(f"<p>{prose(f'{name}: {dep.daily_limit}', list(hybrids))}.</p>"
                    for name, dep in hybrids.items() if dep.daily_limit is not None)
    local, cloud = (", ".join(k.replace("_", " ") for k in kinds)
                    for kinds in (SEED_LOCAL_KINDS, SEED_CLOUD_KINDS))
    return ("<h2>Hybrid routing</h2><p>The seed's hybrid pattern: a router sends each task "
            "to the fleet or the API by its rules, restricted data never leaves the fleet. "
            f"The guide's own split (a hybrid's <code>routes: seed</code>, by each task's "
            f"<code>kind</code>): {html.escape(local)} on the fleet, sensitive preprocessing "
            f"kept close; {html.escape(cloud)} on the API, where a stronger managed model's "
            "quality matters. Where each task's requests were answered: "
            + prose(moved, list(hybrids)) + ".</p>"
            + table(["deployment", "task", "requests", "answered on the fleet",
                      "answered by the API", "TTFT p95 ms"], rows) + daily)


def unanswered(dep: Candidate) -> str:
    """Requests that got no answer, with every way they ended (as the terminal says)."""
    counts = dep.requests
    ways = counts.not_answered()
    if not ways:
        return "0"
    return f"{counts.total - counts.completed:,} (" + ", ".join(
        f"{count:,} {words}" for count, words in ways) + ")" + dep.too_long_by_task()


def seed_question(question: str) -> str:
    """A decision-table question with the seed guide's two answers to it."""
    fit = SEED_FIT.get(question)
    words = question.replace("_", " ")
    return f"{words} (local: {fit[0]}; cloud: {fit[1]})" if fit else words


def folded_cost_items(name: str, dep: Candidate) -> str:
    """One candidate's cost items, folded under its name and monthly total."""
    rows = [[item_label(line.item), fmt(line.usd_per_month, 2),
             "yes" if line.variable else "no", line.basis] for line in dep.cost.items]
    return (f"<details><summary>{prose(name, [name])}: "
            f"${dep.cost.monthly_usd:,.0f} a month in {len(rows)} items</summary>"
            + table(["item", "USD/month", "grows with volume", "basis"], rows)
            + "</details>")
