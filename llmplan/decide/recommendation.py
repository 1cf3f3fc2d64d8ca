"""The recommendation: the feasible candidates ranked by cost per useful result, the
excluded ones nearest the bar first, and the reason in words."""

from __future__ import annotations

import math

from llmplan.decide.drivers import SloHeadroom, drivers, slo_noise_words
from llmplan.results.decision import Candidate, Recommendation
from llmplan.scenario import LoadedScenario


def unit_usd(usd: float) -> str:
    """A unit cost to three significant figures ($0.000423, $0.0123, $0.500, $2.50,
    $1,234.56): fractions of a cent keep their digits, whole dollars their cents."""
    if usd <= 0 or usd >= 1:
        return f"${usd:,.2f}"
    return f"${usd:.{max(2, 2 - math.floor(math.log10(usd)))}f}"


def recommend(candidates: dict[str, Candidate], loaded: LoadedScenario,
              headroom: dict[str, SloHeadroom] | None = None) -> Recommendation:
    """The cheapest feasible candidate per useful result that can be built, and why."""
    ranking = sorted((n for n, c in candidates.items() if c.feasible),
                     key=lambda n: (per_useful_usd(candidates[n]), n))
    ranking += sorted((n for n, c in candidates.items() if not c.feasible),
                      key=lambda n: _nearest_first(candidates[n], n))
    return _recommendation(ranking, candidates, dict(sorted(loaded.unbuildable.items())),
                           loaded.not_provisionable, headroom)


def _nearest_first(found: Candidate, name: str) -> tuple[int, int, float, str]:
    """How far an excluded candidate is from the bar, as a sort key: one that only misses
    the SLO first (the nearer its goodput, the earlier), then by how many rules it breaks
    (a restricted task sent to a provider, a budget, a limit), then by name."""
    only_slo = all(reason.startswith("misses the SLO") for reason in found.infeasible_because)
    goodput = found.slo.goodput_fraction or 0.0
    return (0 if only_slo else 1, len(found.infeasible_because), -goodput, name)



def _recommendation(ranking: list[str], candidates: dict[str, Candidate],
                    unbuildable: dict[str, str],
                    not_provisionable: dict[str, str] | None = None,
                    headroom: dict[str, SloHeadroom] | None = None) -> Recommendation:
    feasible = [n for n in ranking if candidates[n].feasible]
    not_built = "".join(f"; {n} cannot be built ({why})" for n, why in unbuildable.items())
    # a cheaper candidate the stack cannot build as simulated is passed over while a
    # feasible one it can build remains (what is provisioned must be what was simulated)
    blocked = not_provisionable or {}
    passed_over = []
    if any(n not in blocked for n in feasible):
        passed_over = [n for n in feasible if n in blocked]
        passed_over = passed_over[:next(i for i, n in enumerate(feasible) if n not in blocked)]
        feasible = [n for n in feasible if n not in passed_over]
        ranking = [*feasible, *passed_over, *(n for n in ranking if n not in feasible
                                              and n not in passed_over)]
    if not feasible:
        return Recommendation(deployment=None, ranking=ranking,
                              reason="no candidate is feasible: " + "; ".join(
                                  f"{n}: {', '.join(candidates[n].infeasible_because)}"
                                  + slo_noise_words(candidates[n])
                                  for n in ranking) + not_built)
    best = feasible[0]
    cost = candidates[best].cost
    per_useful = per_useful_usd(candidates[best])
    reason = (f"{best} meets every constraint and the SLO "
              f"({candidates[best].slo.goodput_fraction or 0.0:.1%} goodput) at "
              f"{unit_usd(per_useful)} per useful result (${cost.monthly_usd:,.0f}/month)")
    if len(feasible) > 1:
        runner_up = feasible[1]
        other = per_useful_usd(candidates[runner_up])
        if other <= per_useful * 1.005:
            reason += f", within 0.5% of {runner_up}'s cost per useful result"
        elif per_useful == 0:
            reason += f", free per useful result where {runner_up} costs {unit_usd(other)}"
        else:
            reason += (f", {other / per_useful:.2f}x cheaper per useful result "
                       f"than {runner_up}")
    if (spill := candidates[best].daily_limit) is not None:
        reason += f"; {spill}"
    if best in blocked:
        # every feasible candidate is one the stack cannot build as simulated: the answer
        # stands, and says what to change before building it
        reason += (f"; but {blocked[best]}, and no feasible candidate can be: change that "
                   f"before `llmplan stack`")
    for n in passed_over:
        other = per_useful_usd(candidates[n])
        reason += (f"; {n} would cost {unit_usd(other)} per useful result but cannot be "
                   f"provisioned as simulated ({blocked[n]})")
    excluded = [n for n in ranking if not candidates[n].feasible]
    if excluded:
        reason += "; excluded: " + "; ".join(
            f"{n} ({candidates[n].infeasible_because[0]})" for n in excluded)
    reason += not_built
    return Recommendation(deployment=best, ranking=ranking, reason=reason,
                          drivers=drivers(best, feasible, candidates, headroom, passed_over))


def per_useful_usd(candidate: Candidate) -> float:
    """Its cost per useful result; none (nothing useful) ranks after every cost, free too."""
    usd = candidate.cost.usd_per_useful_result
    return math.inf if usd is None else usd
