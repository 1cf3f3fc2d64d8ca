"""Planning's notes on rates a candidate cannot sustain at the costed volume: an API's
limits under the busiest stretch, a candidate that meets the SLO over the run but not on
its busiest stretch."""

from __future__ import annotations

from llmplan.decide.planner import Planner
from llmplan.results.decision import DeploymentPlan
from llmplan.results.simulation import DeploymentResult, SimulationResult
from llmplan.scenario.cloud import CloudDeployment


def over_limit_notes(planner: Planner, simulation: SimulationResult) -> list[str]:
    """Cloud APIs whose limits do not sustain the scenario's own busiest stretch at the
    costed volume (the stretch as it arrives, times the light draw)."""
    notes = []
    costed_pace = len(planner.window) / planner.window_s * planner.light_draw
    for name in planner.limits:
        limit = planner.limit_factor(name)
        if limit is None or limit >= planner.light_draw * (1 - 1e-9):
            continue
        sustained = planner.limits[name]
        dep = planner.loaded.scenario.deployments[name]
        assert isinstance(dep, CloudDeployment)
        met = simulation.deployments[name].slo.met
        needed = sustained.needed_for(costed_pace)
        notes.append(
            f"{name}: {dep.model}'s limits ({sustained.limit}) sustain "
            f"{sustained.requests_per_s:,.2f} requests/s at this token mix, less than the "
            f"traffic's busiest stretch "
            f"({costed_pace:,.2f}/s"
            + (" with the costed volume" if planner.light_draw > 1 else "") + "), "
            f"so at most {limit * _mean_rate(planner, simulation):,.2f}/s on average "
            "with this traffic's shape (the planning's max sustainable rate is the first: "
            "the busiest stretch's pace)"
            + (_met_anyway(simulation.deployments[name]) if met else "")
            + f"; raise the account's tier or its limits to at least {needed} ("
            + ", ".join(f"limits.{key}" for key in sustained.fields_for(costed_pace))
            + ")")
    return notes


def _mean_rate(planner: Planner, simulation: SimulationResult) -> float:
    """The traffic's mean requests/s the busiest stretch stands for: the run's own, or the
    day's when the stretch was sped up to a daily peak the run misses."""
    long_run = simulation.scenario.long_run_requests_per_s
    if planner.sped_up_to_peak is not None and long_run is not None:
        return long_run
    return len(planner.stream) / planner.duration_s


def _met_anyway(result: DeploymentResult) -> str:
    """Why a run over its API's sustained rate still met the SLO."""
    cloud = result.cloud
    if cloud is not None and cloud.throttled_requests:
        return "; the run still met the SLO, its refused calls retried in time"
    return ("; the run met the SLO without a refusal: it starts with the limit's whole "
            "allowance, which it did not spend")



def bursts_missed_notes(planner: Planner, simulation: SimulationResult,
                         plans: dict[str, DeploymentPlan], pace: float) -> list[str]:
    """Candidates that meet the SLO over the run but sustain less than the busiest
    stretch's pace at the costed volume (`pace`, as simulated, times the light draw):
    what Planning.monthly_capacity, and so the break-even's "serves at most", holds the
    sustainable rate to. A stretch sped up to a daily peak excludes such a candidate
    instead (peak.at_the_peak)."""
    if planner.sped_up_to_peak is not None:
        return []
    costed = simulation.scenario.long_run_requests_per_s
    arrives = pace * planner.light_draw
    mean = f" ({costed:,.3g} on average)" \
        if costed and abs(arrives / costed - 1) > 0.005 else ""
    notes = []
    for name, found_plan in plans.items():
        top = found_plan.max_sustainable_requests_per_s
        run = simulation.deployments.get(name)
        limit = planner.limit_factor(name)
        if limit is not None and top is not None and abs(top / (pace * limit) - 1) < 1e-9:
            continue        # its API's limits, which over_limit_notes names
        if top is not None and top < arrives * (1 - 1e-9) and run is not None \
                and run.slo.met:
            notes.append(f"{name} meets the SLO over the run ({run.slo.goodput_shown()}) but "
                         f"not on its busiest stretch: planning finds it sustains at most "
                         f"{top:,.3g} requests/s there, below the {arrives:,.3g} the stretch "
                         f"arrives at with the costed volume{mean}, so bursts like it miss "
                         f"the SLO and it serves less than the month's volume within it")
    return notes
