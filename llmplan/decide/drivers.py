"""What decides the recommendation: the two or three differences a tech lead should check.

The winner is set against the runner-up (the next feasible candidate): the group of cost
items whose monthly difference is largest (GPUs and servers, people, API tokens), the
share of useful results when task quality differs, how idle a GPU fleet on either side
is; and a cheaper candidate that was excluded, with why. Each driver says where its number
comes from: simulated, an assumption given in the scenario, or the catalog's prices.
"""

from __future__ import annotations

from llmplan.results.decision import Candidate, Driver

#: Cost items by what a reader would call them.
GROUPS = {
    "GPUs and servers": ("hardware", "gpu_rental", "electricity", "cooling", "maintenance",
                         "rack_colocation", "serving_software", "replacement_cycle"),
    "people": ("engineering", "on_call", "monitoring"),
}
API = "API usage"
MAX_DRIVERS = 3
QUALITY_POINTS = 0.02        # useful-result shares this far apart are a driver
UNUSED_FRACTION = 0.5        # a fleet serving under half what it could is a driver


def _group(item: str) -> str:
    for group, items in GROUPS.items():
        if item in items:
            return group
    return API if item.startswith("cloud_") or item in _CLOUD_ITEMS else "other"


_CLOUD_ITEMS = {"input_tokens", "output_tokens", "request_fees", "tool_calls",
                "storage_retrieval", "network_egress", "observability", "vendor_review",
                "rate_limit_planning"}


def _by_group(candidate: Candidate) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in candidate.cost.items:
        group = _group(line.item)
        totals[group] = totals.get(group, 0.0) + line.usd_per_month
    return totals


def _cost_driver(best: str, other: str, candidates: dict[str, Candidate]) -> Driver | None:
    a, b = _by_group(candidates[best]), _by_group(candidates[other])
    diffs = {g: a.get(g, 0.0) - b.get(g, 0.0) for g in set(a) | set(b)}
    group = max(sorted(diffs), key=lambda g: abs(diffs[g]))
    if abs(diffs[group]) < 1.0:
        return None
    basis = "catalog prices x monthly volume (the traffic's long-run rate)" if group == API else \
        "catalog prices and the scenario's economics"
    return Driver(text=f"{group}: ${a.get(group, 0.0):,.0f} a month for {best} against "
                       f"${b.get(group, 0.0):,.0f} for {other}", basis=basis)


def _quality_driver(best: str, other: str, candidates: dict[str, Candidate]) -> Driver | None:
    a, b = candidates[best].useful, candidates[other].useful
    if a.useful_fraction is None or b.useful_fraction is None or \
            abs(a.useful_fraction - b.useful_fraction) < QUALITY_POINTS:
        return None
    return Driver(text=f"useful results: {a.useful_fraction:.0%} of requests for {best} "
                       f"against {b.useful_fraction:.0%} for {other} (task quality x "
                       f"goodput)",
                  basis="assumption: task quality from the scenario; measure it with a "
                        "load test's test set")


def _rate(per_s: float) -> str:
    """Two significant digits below 10 req/s, whole numbers above."""
    return f"{per_s:,.0f}" if per_s >= 10 else f"{per_s:.2g}"


def _idle_driver(names: list[str], candidates: dict[str, Candidate]) -> Driver | None:
    for name in names:
        local = candidates[name].local
        if local is None:
            continue
        use = local.utilisation
        if 1.0 - use.load_fraction >= UNUSED_FRACTION:
            return Driver(text=f"{name}'s {local.gpus} GPU(s) serve {use.load_fraction:.0%} of "
                               f"what they could ({_rate(use.achieved_requests_per_s)} of "
                               f"{_rate(use.full_batch_requests_per_s)} req/s with full "
                               f"batches) and are paid for all of it",
                          basis="simulated")
    return None


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
                        f"token (step_time.frontend_per_token_us in the scenario, shared by "
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
    return Driver(text=f"{name} would cost less (${per_k:,.2f} per 1k useful results against "
                       f"${cost * 1e3:,.2f}) but is excluded: "
                       f"{candidates[name].infeasible_because[0]}",
                  basis="the scenario's constraints and SLO")


def drivers(best: str, feasible: list[str], candidates: dict[str, Candidate]) -> list[Driver]:
    """Up to MAX_DRIVERS reasons the winner wins, most decisive first."""
    found: list[Driver | None] = [_excluded_driver(best, candidates)]
    if len(feasible) == 1 and len(candidates) > 1:
        found.insert(0, Driver(text=f"{best} is the only candidate that meets every "
                                    f"constraint and the SLO",
                               basis="the scenario's constraints and SLO"))
    if len(feasible) > 1:
        other = feasible[1]
        found += [_cost_driver(best, other, candidates),
                  _quality_driver(best, other, candidates),
                  _idle_driver([other, best], candidates)]
    else:
        found.append(_idle_driver([best], candidates))
    found.append(_api_server_driver(best, candidates))
    return [d for d in found if d is not None][:MAX_DRIVERS]
