"""Which deployment wins, why, and where the answer would flip: `decide`.

From the simulated results: each candidate's cost per month (pricing.py, from costs.py's
items) and feasibility (candidates.py: hard constraints, then the SLO); those that cannot
serve a diurnal traffic's daily peak the simulated hours miss excluded (peak.py); a
ranking of the feasible ones by cost per useful result (recommendation.py); the seed's
decision table filled with this scenario's numbers and its evaluation checklist saying
what was measured, simulated or assumed (table.py); and the break-even monthly volume
between every local and every cloud candidate (break_even.py). `decide` returns a new
`Result`; the simulation is left as it was.
"""

from __future__ import annotations

from llmplan.decide.break_even import break_even, with_slo_capacity
from llmplan.decide.candidates import candidate
from llmplan.decide.daily import past_the_daily_limit
from llmplan.decide.drivers import SloHeadroom
from llmplan.decide.peak import (
    at_the_peak,
    below_the_peak,
    daily_peak_requests_per_s,
    diurnal_peak_requests_per_s,
)
from llmplan.decide.recommendation import recommend
from llmplan.decide.table import checklist, decision_table
from llmplan.results.decision import DeploymentPlan, Planning, PlanningWindow, Result
from llmplan.results.simulation import SimulationResult
from llmplan.scenario import LoadedScenario
from llmplan.scenario.models import LocalDeployment


def slo_headroom(planning: Planning, loaded: LoadedScenario) -> dict[str, SloHeadroom]:
    """Each local fleet's busiest-stretch arrival rate against the highest rate at which
    planning found it holds the SLO (both in requests/s of that stretch)."""
    window = planning.window
    if window.span_s <= 0 or not window.requests:
        return {}
    pace = window.requests / window.span_s
    return {name: SloHeadroom(pace, found.max_sustainable_requests_per_s)
            for name, found in planning.deployments.items()
            if isinstance(loaded.scenario.deployments.get(name), LocalDeployment)
            and found.max_sustainable_requests_per_s}


def decide(simulation: SimulationResult, loaded: LoadedScenario,
           planning: Planning | None = None, *,
           peak: tuple[PlanningWindow, dict[str, DeploymentPlan]] | None = None) -> Result:
    """Cost, feasibility and the recommendation for a simulation of `loaded`; with
    `planning` (plan() of the same simulation), judged against what the fleets serve
    within the SLO as well as with full batches (`peak`: planning's window and searches
    alone, to judge a variant of the run against a daily peak it misses)."""
    candidates = {name: candidate(name, summary, loaded, simulation.scenario)
                  for name, summary in simulation.deployments.items()}
    if planning is not None:
        peak = planning.window, planning.deployments
    if peak is not None:
        candidates = at_the_peak(candidates, *peak)
    elif (daily := daily_peak_requests_per_s(loaded, simulation)) is not None:
        candidates = below_the_peak(candidates, daily)
    candidates = past_the_daily_limit(candidates, loaded, simulation.scenario)
    unbuildable = dict(sorted(loaded.unbuildable.items())) or None
    headroom = slo_headroom(planning, loaded) if planning is not None else None
    recommendation = recommend(candidates, loaded, headroom)
    rows = break_even(candidates, loaded, diurnal_peak_requests_per_s(loaded, simulation))
    return Result(scenario=simulation.scenario, deployments=candidates,
                  recommendation=recommendation,
                  break_even=with_slo_capacity(rows, planning, loaded) if planning else rows,
                  decision_table=decision_table(
                      candidates, loaded, headroom,
                      mean_requests_per_s=simulation.scenario.long_run_requests_per_s),
                  checklist=checklist(loaded, recommendation.deployment, candidates),
                  unbuildable=unbuildable, planning=planning)
