"""The decision again with each fixed local fleet at the fewest replicas meeting the SLO
on the whole stream."""

from __future__ import annotations

from llmplan.decide.candidates import candidate
from llmplan.decide.daily import past_the_daily_limit
from llmplan.decide.peak import at_the_peak
from llmplan.decide.planner import Planner, Point
from llmplan.decide.recommendation import recommend
from llmplan.decide.scaled_runs import resized
from llmplan.results.decision import (
    Candidate,
    DeploymentPlan,
    PlanningWindow,
    RightSized,
    RightSizedFleet,
)
from llmplan.results.simulation import SimulationResult
from llmplan.scenario.cloud import HybridDeployment
from llmplan.scenario.models import LocalDeployment


def right_sized(simulation: SimulationResult, planner: Planner,
                replicas: dict[str, int | None], window: PlanningWindow | None = None,
                plans: dict[str, DeploymentPlan] | None = None) -> RightSized | None:
    """The decision again with each fixed local fleet (a hybrid's local part too) at the
    fewest replicas meeting the SLO on the whole stream, each candidate resized on its own
    (the runs the replica search confirmed, so no new simulation); None when no fleet's
    size changes. A fleet bought larger than it needs, or too small to meet the SLO, is
    what this shows: the answer as configured prices the fleets as written."""
    loaded = planner.loaded
    fleets: dict[str, RightSizedFleet] = {}
    candidates: dict[str, Candidate] = {}
    for name, summary in simulation.deployments.items():
        n, now = replicas.get(name), planner.fleet_replicas(name)
        dep = loaded.scenario.deployments[name]
        fleet = dep.local if isinstance(dep, HybridDeployment) else name
        local = loaded.scenario.deployments[fleet]
        if n is None or now is None or n == now or not isinstance(local, LocalDeployment) \
                or local.autoscaling is not None:
            candidates[name] = candidate(name, summary, loaded, simulation.scenario)
            continue
        resized_run = planner.simulate(Point(name, replicas=n, whole=True))
        candidates[name] = found = candidate(name, resized_run, resized(loaded, name, n),
                                             simulation.scenario)
        fleets[name] = RightSizedFleet(fleet=fleet, replicas=n, simulated_replicas=now,
                                       monthly_usd=found.cost.monthly_usd,
                                       usd_per_useful_result=found.cost.usd_per_useful_result,
                                       feasible=found.feasible)
    if not fleets:
        return None
    if window is not None and plans is not None:
        # a fleet resized by the replica search meets the SLO at the stretch's pace, the
        # daily peak's when the run misses it; the others are judged as in the decision
        kept = {n: c for n, c in candidates.items() if n in fleets}
        candidates = {**at_the_peak({n: c for n, c in candidates.items() if n not in fleets},
                                    window, plans), **kept}
        candidates = {n: candidates[n] for n in simulation.deployments}
    # past its API's daily limit a hybrid is its fleet alone on the whole traffic: a run of
    # that fleet shows it only at as many replicas as the hybrid's, or fewer
    size = {n: fleets[n].replicas if n in fleets else planner.fleet_replicas(n)
            for n in candidates}
    runs: dict[str, Candidate | None] = {}
    for name in candidates:
        dep = loaded.scenario.deployments[name]
        if isinstance(dep, HybridDeployment) and dep.local in candidates:
            has, alone = size[name], size[dep.local]
            runs[name] = candidates[dep.local] if has is None or alone is None \
                or alone <= has else None
    candidates = past_the_daily_limit(candidates, loaded, simulation.scenario, runs)
    return RightSized(fleets=fleets, recommendation=recommend(candidates, loaded))
