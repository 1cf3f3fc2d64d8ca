"""The break-even monthly volume between every local and every cloud candidate: where
their cost lines cross, and what the fleet must grow to when that is past what it serves."""

from __future__ import annotations

import math

from llmplan.results.decision import BreakEven, Candidate, CostSummary, Planning
from llmplan.scenario import LoadedScenario
from llmplan.scenario.models import LocalDeployment


def break_even(candidates: dict[str, Candidate], loaded: LoadedScenario,
               peak_per_s: float | None = None) -> list[BreakEven]:
    """Monthly request volume where each local and each cloud candidate cost the same.

    Costs are modelled as fixed + variable x volume (variable per request at the simulated
    mix); the local side is only valid up to its simulated capacity, and a break-even past
    it says so (the fleet must grow, adding fixed costs). `peak_per_s`: a diurnal
    traffic's daily peak, which lasts hours: the capacity is judged at it, whether or not
    the simulated hours reach it.
    """
    out = []
    kinds = {n: loaded.scenario.deployments[n].kind for n in candidates}
    for local in (n for n in candidates if kinds[n] == "local"):
        for cloud in (n for n in candidates if kinds[n] == "cloud"):
            a, b = candidates[local].cost, candidates[cloud].cost
            volume, dearer_again = _crossings(a, b)
            useful_a, useful_b = a.useful_share(), b.useful_share()
            # per useful result, local's L/u_l under cloud's C/u_c: u_c L under u_l C
            useful, useful_again = _crossings(a, b, useful_b, useful_a) \
                if useful_a and useful_b else (None, None)
            fleet = loaded.scenario.deployments[local]
            assert isinstance(fleet, LocalDeployment)
            capacity = _capacity_per_month(candidates[local], fleet, peak_per_s)
            knee = a.floor_requests_per_month
            out.append(BreakEven(
                local=local, cloud=cloud, local_fixed_usd=a.fixed_usd_per_month,
                local_usd_per_request=a.usd_per_request_from(knee or 0.0),
                local_floor_requests_per_month=knee,
                cloud_fixed_usd=b.fixed_usd_per_month,
                cloud_usd_per_request=b.usd_per_request_from(0.0),
                break_even_requests_per_month=volume,
                local_dearer_again_requests_per_month=dearer_again,
                local_useful_share=useful_a, cloud_useful_share=useful_b,
                break_even_useful_requests_per_month=useful,
                local_dearer_again_useful_requests_per_month=useful_again,
                simulated_requests_per_month=a.requests_per_month,
                local_capacity_requests_per_month=capacity,
                fleet_must_grow=_must_grow(local, loaded, volume, capacity,
                                           again=dearer_again),
                excluded=_excluded_sides(candidates, local, cloud)))
    return out


def _excluded_sides(candidates: dict[str, Candidate], *names: str) -> str | None:
    """"api is excluded by the decision (restricted data ...)": each side of a break-even
    pair the decision left out, with its reasons (None: both may be chosen). A reader of
    the break-even alone would otherwise take the cheaper side below it for an option."""
    words = [f"{name} is excluded by the decision ({'; '.join(found.infeasible_because)})"
             for name in names if not (found := candidates[name]).feasible]
    return "; ".join(words) or None


def _crossings(local: CostSummary, cloud: CostSummary, local_weight: float = 1.0,
               cloud_weight: float = 1.0) -> tuple[float | None, float | None]:
    """The monthly volume past which `local` costs less than `cloud`, and the one past
    which it costs more (again): where the two cost lines (CostSummary.usd_at, an
    autoscaled rented fleet's with its knee at the volume its floor carries), each times
    its weight, cross, the local one falling below, or rising above (None: it does not).
    Both: a reserved floor cheap enough to beat the API, with on-demand GPUs above it that
    cost more per request than the API does. Only the second: a fleet whose fixed costs
    are under the API's own (its monthly fees) and whose requests cost more. Weighted by
    the other side's share of useful requests, the lines cross where the two cost the
    same per useful result."""
    starts = [0.0, *([local.floor_requests_per_month]
                     if local.floor_requests_per_month else [])]
    below, above = None, None
    for lo, hi in zip(starts, [*starts[1:], math.inf], strict=True):
        gap = local_weight * local.usd_at(lo) - cloud_weight * cloud.usd_at(lo)
        closing = cloud_weight * cloud.usd_per_request_from(lo) \
            - local_weight * local.usd_per_request_from(lo)
        if gap == 0 or closing == 0 or (gap > 0) != (closing > 0) \
                or lo + gap / closing > hi:
            continue
        if gap > 0 and below is None:
            below = lo + gap / closing
        elif gap < 0:
            above = lo + gap / closing
            break
    return below, above


def _capacity_per_month(candidate: Candidate, fleet: LocalDeployment,
                        peak_per_s: float | None = None) -> float | None:
    """Monthly volume at which the traffic's sustained rate reaches the fleet's full-batch
    throughput, an autoscaled fleet's at its max_replicas (its cost line grows with the
    volume up to there): the run's mean rate, or a diurnal traffic's daily peak, which
    lasts hours (None: nothing to scale from)."""
    offered = max(candidate.throughput.offered_requests_per_s, peak_per_s or 0.0)
    if candidate.local is None or offered <= 0:
        return None
    full = candidate.local.full_batch_requests_per_s_with(fleet.autoscaling.max_replicas) \
        if fleet.autoscaling is not None \
        else candidate.local.utilisation.full_batch_requests_per_s
    return candidate.cost.requests_per_month * full / offered if full is not None else None


def _must_grow(local: str, loaded: LoadedScenario, volume: float | None,
               capacity: float | None, within: str = "", *,
               again: float | None = None) -> str | None:
    """What the fleet must grow to when a volume where it and the API cost the same is
    past the most it serves a month (None: none is): the break-even `volume`, above which
    the fleet costs less, or, that one within it, the one where it costs more `again`, up
    to which it does. A fixed fleet, replicas whose fixed costs move the crossing; an
    autoscaled one, replicas past its autoscaling.max_replicas, which it will not start
    until that cap is raised (owned, bought as well)."""
    if capacity is None or capacity <= 0:
        return None
    if volume is not None and volume > capacity:
        at, point = volume, "the break-even"
    elif again is not None and again > capacity:
        at, point = again, "the volume up to which it costs less"
    else:
        return None
    dep = loaded.scenario.deployments[local]
    assert isinstance(dep, LocalDeployment)
    has = dep.max_replicas
    needs = math.ceil(at / capacity * has)
    serves = f"{local} serves at most {capacity / 1e6:,.1f} M requests a month{within} with "
    if dep.autoscaling is None:
        return (f"{serves}{has} replica{'s' if has > 1 else ''}: at {point} "
                f"({at / 1e6:,.1f} M) it needs at least {needs}, whose fixed costs move "
                f"{'the break-even further out' if at == volume else 'it nearer'}")
    # rented, replicas above the cap cost what those above the floor do, as the cost line
    # has them; owned, max_replicas is what was bought, and more must be
    moved = 'the break-even further out' if at == volume else 'that volume nearer'
    cost = (f"more GPUs to buy, which move {moved}" if dep.costs.ownership == "owned" else
            "rented as those above its floor are, they leave "
            f"{'the break-even' if at == volume else 'that volume'} where it is")
    return (f"{serves}its autoscaling.max_replicas of {has}: at {point} "
            f"({at / 1e6:,.1f} M) it needs at least {needs}, past that cap (raise it): "
            f"{cost}")


def with_slo_capacity(rows: list[BreakEven], planning: Planning,
                      loaded: LoadedScenario) -> list[BreakEven]:
    """The break-even rows checked against what each fleet serves within the SLO, which
    planning found: the month's volume at which the busiest stretch arrives at the
    fleet's highest sustainable rate (full batches are an upper bound the SLO binds
    first, often by far: a diurnal peak several times the mean), never above that bound
    (planning caps the rate where the traffic's sustained rate reaches full batches, and
    the stretch's own pace may put the two a hair apart)."""
    out = []
    for row in rows:
        slo = planning.monthly_capacity(row.local, row.simulated_requests_per_month)
        if slo is None:
            out.append(row)
            continue
        if row.local_capacity_requests_per_month is not None:
            slo = min(slo, row.local_capacity_requests_per_month)
        grow = _must_grow(row.local, loaded, row.break_even_requests_per_month, slo,
                          " within the SLO", again=row.local_dearer_again_requests_per_month)
        out.append(row.model_copy(update={"local_slo_capacity_requests_per_month": slo,
                                          "fleet_must_grow": grow}))
    return out
