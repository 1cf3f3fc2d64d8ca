"""What decides the recommendation: the two or three differences a tech lead should check.

The winner is set against the runner-up (the next feasible candidate): the group of cost
items on which the winner saves the most a month (GPUs and servers, power and space,
people, API tokens), with what it pays more for elsewhere; the share of useful results when
task quality differs; how idle a GPU fleet on either side is; and a cheaper candidate that
was excluded, with why. A difference that goes against the winner is worded as what the
winner pays, never given as a reason for it. Each driver says where its number comes from:
simulated, an assumption given in the scenario, or the catalog's prices.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import NamedTuple

from llmplan.results.decision import Candidate, Driver

#: Cost items by what a reader would call them, each item in one group.
GROUPS = {
    "GPUs and servers": ("hardware", "gpu_rental", "maintenance", "replacement_cycle"),
    "power and space": ("electricity", "cooling", "rack_colocation"),
    "serving software and monitoring": ("serving_software", "monitoring"),
    "people": ("engineering", "on_call", "hardware_incidents"),
    "API usage": ("input_tokens", "output_tokens", "long_context", "abandoned_attempts",
                  "request_fees", "tool_calls"),
    "API overheads": ("storage_retrieval", "network_egress", "observability",
                      "vendor_review", "rate_limit_planning"),
}
API = "API usage"
#: Each cost item as a reader says it (the driver lists those a group holds).
ITEM_WORDS = {"hardware": "amortised purchase", "gpu_rental": "rental",
              "maintenance": "maintenance", "replacement_cycle": "replacements",
              "electricity": "electricity", "cooling": "cooling",
              "rack_colocation": "rack space", "serving_software": "serving software",
              "monitoring": "monitoring", "engineering": "engineering", "on_call": "on-call",
              "hardware_incidents": "hardware incidents",
              "input_tokens": "input tokens", "output_tokens": "output tokens",
              "abandoned_attempts": "attempts billed without an answer",
              "long_context": "long-context prices",
              "request_fees": "request fees", "tool_calls": "tool calls",
              "storage_retrieval": "storage", "network_egress": "egress",
              "observability": "observability", "vendor_review": "vendor review",
              "rate_limit_planning": "rate-limit planning"}
MAX_DRIVERS = 3
QUALITY_POINTS = 0.02        # useful-result shares this far apart are a driver
UNUSED_FRACTION = 0.5        # a fleet serving under half what it could is a driver
MIN_USD = 1.0                # monthly differences below this are no difference
MINOR_SHARE = 0.02           # cost groups apart by less than this share of the bill: "the rest"


def _item(name: str) -> str:
    """A cost item's name without the `cloud_` a hybrid's API items carry."""
    return name.removeprefix("cloud_")


def _group(item: str) -> str:
    for group, items in GROUPS.items():
        if _item(item) in items:
            return group
    return "other"


def _by_group(candidate: Candidate) -> dict[str, dict[str, float]]:
    """Each group's items and their monthly cost."""
    totals: dict[str, dict[str, float]] = {}
    for line in candidate.cost.items:
        items = totals.setdefault(_group(line.item), {})
        items[_item(line.item)] = items.get(_item(line.item), 0.0) + line.usd_per_month
    return totals


def _cost_driver(best: str, other: str, candidates: dict[str, Candidate]) -> Driver | None:
    """The two monthly totals and every group of cost items that sets them apart: those the
    winner saves on, most first, then those it pays more for, as costs it pays (an API's
    tokens that replace GPUs are not a reason to choose the API). None when the winner
    saves on no group."""
    a, b = _by_group(candidates[best]), _by_group(candidates[other])
    diffs = {g: sum(a.get(g, {}).values()) - sum(b.get(g, {}).values())
             for g in sorted(set(a) | set(b))}
    if min(diffs.values(), default=0.0) > -MIN_USD:
        return None
    total_a = candidates[best].cost.monthly_usd
    total_b = candidates[other].cost.monthly_usd
    # groups apart by less than this share of the larger bill go into "the rest"
    shown = max(MIN_USD, MINOR_SHARE * max(total_a, total_b))
    saved = sorted((g for g in diffs if diffs[g] <= -shown), key=lambda g: (diffs[g], g))
    extra = sorted((g for g in diffs if diffs[g] >= shown), key=lambda g: (-diffs[g], g))
    saved = saved or [min(sorted(diffs), key=lambda g: diffs[g])]
    rest = sum(d for g, d in diffs.items() if g not in saved and g not in extra)

    def items(group: str) -> str:
        return ", ".join(ITEM_WORDS.get(i, i) for i in dict.fromkeys(
            [*a.get(group, {}), *b.get(group, {})])
            if a.get(group, {}).get(i, 0.0) or b.get(group, {}).get(i, 0.0))

    gap = total_a - total_b
    text = (f"monthly cost: ${total_a:,.0f} for {best} against ${total_b:,.0f} for {other}"
            + (f", ${-gap:,.0f} less" if gap <= -MIN_USD else
               f", ${gap:,.0f} more" if gap >= MIN_USD else ", the same") + ": ")
    text += "; ".join(f"{g} ${sum(a.get(g, {}).values()):,.0f} against "
                      f"${sum(b.get(g, {}).values()):,.0f} ({items(g)})" for g in saved)
    if extra:
        text += f"; {best} pays " + ", ".join(
            f"${diffs[g]:,.0f} a month more for {g} ({items(g)})" for g in extra)
    if abs(rest) >= MIN_USD:
        text += f"; the rest ${abs(rest):,.0f} {'less' if rest < 0 else 'more'}"
    basis = ["catalog prices x monthly volume (the traffic's long-run rate)"
             if saved[0] == API else "catalog prices and the scenario's economics"]
    if "people" in saved or "people" in extra:
        basis.append("people's hours are an assumption (costs.engineering_hours_per_month, "
                     "oncall_hours_per_month)")
    return Driver(text=text, basis="; ".join(basis))


def _quality_driver(best: str, other: str, candidates: dict[str, Candidate]) -> Driver | None:
    a, b = candidates[best].useful, candidates[other].useful
    if a.useful_fraction is None or b.useful_fraction is None or \
            abs(a.useful_fraction - b.useful_fraction) < QUALITY_POINTS:
        return None
    sources = (a.quality_source, b.quality_source)
    measured = all(q.startswith("measured") for q in sources)
    given = any(q == "scenario" or q.startswith("measured") for q in sources)
    shares = (f"useful results: {a.useful_fraction:.0%} of requests for {best} against "
              f"{b.useful_fraction:.0%} for {other} "
              + ("(task quality x goodput)" if given else "(goodput: no task quality given)"))
    if a.useful_fraction < b.useful_fraction:    # the winner wins on cost despite it
        shares += f"; {best} wins on cost per useful result despite fewer"
    basis = ("measured: task quality from load-test evaluations x simulated goodput"
             if measured else "assumption: task quality from the scenario; measure it with a "
             "load test's test set" if given else "simulated")
    return Driver(text=shares, basis=basis)


def _rate(per_s: float) -> str:
    """Three significant digits below 100 req/s, whole numbers above: a share computed from
    two rates reads right from the rates shown ("2.96 of 11.5", not "3 of 12 ... 26%")."""
    return f"{per_s:,.0f}" if per_s >= 100 else f"{per_s:.3g}"


class SloHeadroom(NamedTuple):
    """A local fleet's busiest-stretch arrival rate and the highest rate at which it holds
    the SLO (planning's max_sustainable_requests_per_s), both in requests/s."""

    busiest_requests_per_s: float
    slo_requests_per_s: float


def _used_share(name: str, candidates: dict[str, Candidate],
                headroom: dict[str, SloHeadroom] | None) -> float | None:
    """The share of its fleet's capacity a candidate uses, as `_idle_driver` reads it
    (None: no fleet of its own)."""
    local = candidates[name].local
    if local is None:
        return None
    if headroom is not None and name in headroom:
        busiest, slo = headroom[name]
        return busiest / slo if slo > 0 else None
    return local.utilisation.load_fraction


def _better_used(best: str, other: str, candidates: dict[str, Candidate],
                 headroom: dict[str, SloHeadroom] | None) -> bool:
    """Whether the winner uses what it pays for better than `other` does, by IDLE_GAP (an
    API pays per use): else the runner-up's idle share is no reason it loses (the same
    fleet bought or rented is as idle either way)."""
    # like with like: the shares of what each sustains within the SLO when planning found
    # both, else of their full batches
    both = headroom if headroom is not None and best in headroom and other in headroom \
        else None
    mine = _used_share(best, candidates, both)
    theirs = _used_share(other, candidates, both)
    return mine is None or theirs is None or mine - theirs >= IDLE_GAP


#: how many points more of its capacity the winner must use for the runner-up's idle GPUs
#: to count as a reason it loses
IDLE_GAP = 0.1


def _gpus_words(gpus: int) -> tuple[str, str, str, str]:
    """A fleet's GPUs as a sentence's subject, with its verbs agreeing: ("one GPU",
    "serves", "it sustains", "is") or ("4 GPUs", "serve", "they sustain", "are")."""
    if gpus == 1:
        return "one GPU", "serves", "it sustains", "is"
    return f"{gpus} GPUs", "serve", "they sustain", "are"


def _idle_driver(names: list[str], candidates: dict[str, Candidate],
                 headroom: dict[str, SloHeadroom] | None = None) -> Driver | None:
    """A fleet paid for far more than it serves. With planning, 'what it could' is what it
    sustains within the SLO, which binds before full batches do (often by far)."""
    for name in names:
        local = candidates[name].local
        if local is None:
            continue
        use = local.utilisation
        if headroom is not None and name in headroom:
            busiest, slo = headroom[name]
            if busiest / slo <= 1.0 - UNUSED_FRACTION:
                gpus, serve, they_sustain, are = _gpus_words(local.gpus)
                return Driver(text=f"{name}'s {gpus} {serve} {busiest / slo:.0%} "
                                   f"of what {they_sustain} within the SLO ({_rate(busiest)} "
                                   f"of {_rate(slo)} req/s at the busiest stretch's pace) "
                                   f"and {are} paid for all of it{_unused(candidates[name])}",
                              basis="simulated: planning's highest rate meeting the SLO")
            continue
        if 1.0 - use.load_fraction >= UNUSED_FRACTION:
            gpus, serve, they_sustain, are = _gpus_words(local.gpus)
            they = they_sustain.split()[0]
            return Driver(text=f"{name}'s {gpus} {serve} {use.load_fraction:.0%} of "
                               f"what {they} could ({_rate(use.achieved_requests_per_s)} of "
                               f"{_rate(use.full_batch_requests_per_s)} req/s with full "
                               f"batches) and {are} paid for all of it"
                               f"{_unused(candidates[name])}",
                          basis="simulated")
    return None


def _unused(found: Candidate) -> str:
    """The GPUs bought beyond those simulated (whole baseboards), which serve nothing."""
    local, bought = found.local, found.cost.gpus_bought
    if local is None or bought is None or bought <= local.gpus:
        return ""
    return (f", as are the {bought - local.gpus} more its whole baseboards bring "
            f"({bought} bought), which serve nothing")


def _api_server_driver(best: str, candidates: dict[str, Candidate]) -> Driver | None:
    """The winner's capacity is set by its API server, not its GPUs: say how to lift it."""
    local = candidates[best].local
    if local is None or local.utilisation.full_batch_step_bound_by != "api_server":
        return None
    use = local.utilisation
    per_token_us = local.engine.step_time.frontend_per_seq_us
    return Driver(text=f"{best}'s full batches ({use.full_batch_sequences:,} sequences per "
                       f"replica) wait on the API server streaming their tokens, not on the "
                       f"GPUs: more engine.api_server_count raises the "
                       f"{_rate(use.full_batch_requests_per_s)} req/s it can serve",
                  basis=f"simulated: {per_token_us:g} us of API server time per streamed "
                        f"token, the replica's servers together (step_time."
                        f"frontend_per_token_us, its default or the scenario's, divided among "
                        f"the engine.api_server_count processes)")


def _excluded_driver(best: str, candidates: dict[str, Candidate]) -> Driver | None:
    cost = candidates[best].cost.usd_per_useful_result
    if cost is None:
        return None
    cheaper = [n for n, c in sorted(candidates.items()) if not c.feasible
               and c.cost.usd_per_useful_result is not None
               and c.cost.usd_per_useful_result < cost]
    if not cheaper:
        return None
    name = min(cheaper, key=lambda n: candidates[n].cost.usd_per_useful_result or 0.0)
    per_k = (candidates[name].cost.usd_per_useful_result or 0.0) * 1e3
    shown = _apart(per_k, cost * 1e3)
    compared = (f"would cost less (${shown[0]} per 1k useful results against ${shown[1]})"
                if shown is not None else
                f"would cost about the same (${per_k:,.2f} per 1k useful results)")
    excluded = candidates[name]
    why = excluded.infeasible_because[0]
    basis = "the scenario's constraints and SLO"
    why += slo_noise_words(excluded)
    counts = excluded.requests
    # the assumed latency is why only if answering in time would have met the SLO: a
    # candidate that leaves too many requests unanswered (throttled past its retries,
    # refused) misses it whatever its latency
    answered_enough = counts.total > 0 and \
        counts.completed / counts.total >= excluded.slo.min_goodput_fraction
    if why.startswith("misses the SLO:") and "assumed: " in excluded.latency_from \
            and answered_enough:
        basis = ("the scenario's SLO against llmplan's default provider latency, assumed "
                 "(set the deployment's latency from a load test)")
    elif why.startswith("misses the SLO:") and answered_enough \
            and (measured := _catalog_latency(excluded.latency_from)) is not None:
        basis = (f"the scenario's SLO against the provider latency a public benchmark "
                 f"measured ({measured}, from the catalog; set the deployment's latency "
                 f"from your own load test)")
    return Driver(text=f"{name} {compared} but is excluded: {why}", basis=basis)


def _catalog_latency(latency_from: str) -> str | None:
    """"Artificial Analysis, 2026-12-07" of a latency_from whose provider latency is the
    catalog's measured one (None: it is not)."""
    found = re.search(r"catalog: measured \(([^)]*)\)", latency_from)
    return found.group(1) if found else None


def _dearer(name: str, than: str, candidates: dict[str, Candidate]) -> bool:
    """Whether `name` costs more a month than `than` (past a rounding's 1%)."""
    return candidates[name].cost.monthly_usd > 1.01 * candidates[than].cost.monthly_usd


#: how many standard errors of a share measured on n requests count as noise
NOISE_SE = 2.0


def slo_noise_words(found: Candidate) -> str:
    """What a candidate whose only fault is a goodput miss within the run's sampling noise
    is told, beside a winner or in the answer "none" ("" otherwise)."""
    why = found.infeasible_because
    if len(why) != 1 or not why[0].startswith("misses the SLO:"):
        return ""
    return _sampling_noise(found) or ""


def _sampling_noise(found: Candidate) -> str | None:
    """Words for a goodput that misses its bar by less than the run's sampling noise (a
    share measured on n requests moves by about sqrt(p (1 - p) / n) between seeds)."""
    share, bar = found.slo.goodput_fraction, found.slo.min_goodput_fraction
    counted = found.requests.total
    if share is None or counted <= 0 or share >= bar:
        return None
    noise = NOISE_SE * math.sqrt(max(share * (1 - share), 1.0 / counted) / counted)
    if bar - share >= noise:
        return None
    return (f", within this run's sampling noise (about {noise:.1%} at {counted:,} requests: "
            f"another seed may pass it; simulate longer to tell)")


def _apart(a: float, b: float) -> tuple[str, str] | None:
    """Two dollar figures with the fewest decimals (2 to 4) that tell them apart; None when
    they are the same to 4 decimals."""
    for digits in (2, 3, 4):
        shown = f"{a:,.{digits}f}", f"{b:,.{digits}f}"
        if shown[0] != shown[1]:
            return shown
    return None


def drivers(best: str, feasible: list[str], candidates: dict[str, Candidate],
            headroom: dict[str, SloHeadroom] | None = None,
            passed_over: Sequence[str] = ()) -> list[Driver]:
    """Up to MAX_DRIVERS reasons the winner wins, most decisive first (`passed_over`:
    feasible candidates the stack could not build as simulated, not in `feasible`)."""
    found: list[Driver | None] = [_excluded_driver(best, candidates)]
    if len(feasible) == 1 and len(candidates) > 1:
        found.insert(0, Driver(text=f"{best} is the only candidate that meets every "
                                    f"constraint and the SLO"
                                    + (" and that the stack builds as simulated"
                                       if passed_over else ""),
                               basis="the scenario's constraints and SLO"
                                     + ("; llmplan stack's rules" if passed_over else "")))
    if len(feasible) > 1:
        other = feasible[1]
        found += [_cost_driver(best, other, candidates),
                  _quality_driver(best, other, candidates),
                  # the runner-up's idle GPUs are a reason it loses when they make it
                  # dearer and the winner's are busier; the winner's own would argue
                  # against it
                  _idle_driver([other], candidates, headroom)
                  if _dearer(other, best, candidates)
                  and _better_used(best, other, candidates, headroom) else None]
    else:
        found.append(_idle_driver([best], candidates, headroom))
    found.append(_api_server_driver(best, candidates))
    return [d for d in found if d is not None][:MAX_DRIVERS]
