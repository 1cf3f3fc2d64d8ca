"""What a failure does to the recommended deployment when the scenario does not simulate
one: a fleet that runs a single replica has nothing to carry its requests while it is down."""

from __future__ import annotations

from llmplan.results.decision import Result
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import HybridDeployment
from llmplan.scenario.models import LocalDeployment


def single_replica_risks(loaded: LoadedScenario, result: Result) -> list[str]:
    """A line when the recommendation (or a hybrid's fleet) runs one replica, at least at
    its autoscaler's floor, and when the right-sized answer would, with no replica
    failures simulated: the run never saw the fleet down."""
    lines = []
    written = result.recommendation.deployment
    if written is not None and (line := _single(loaded, written, None)) is not None:
        lines.append(line)
    answer = result.right_sized_answer()
    if answer is not None:
        sized, best = answer
        fleet = sized.fleets.get(best)
        if fleet is not None and fleet.replicas == 1 and \
                (line := _single(loaded, best, 1)) is not None:
            lines.append(f"right-sized, {line}")
    return lines


def _single(loaded: LoadedScenario, name: str, replicas: int | None) -> str | None:
    scenario = loaded.scenario
    dep = scenario.deployments.get(name)
    fleet = dep.local if isinstance(dep, HybridDeployment) else name
    local = scenario.deployments.get(fleet)
    if not isinstance(local, LocalDeployment) or local.failures is not None:
        return None
    floor = replicas if replicas is not None else local.autoscaling.min_replicas \
        if local.autoscaling is not None else local.replicas
    if floor > 1:
        return None
    when = "scales down to one replica" if local.autoscaling is not None and replicas is None \
        else "runs one replica"
    lost = ("the requests it keeps (restricted ones never go to the API) wait or fail; the "
            "API path carries only what routing sends it" if isinstance(dep, HybridDeployment)
            else "nothing is served")
    who = name if fleet == name else f"{name}'s fleet {fleet}"
    return (f"{who} {when}: while it fails or restarts {lost} (replica failures are not "
            f"simulated: add failures: with an MTBF to see the SLO with them, or run two "
            f"replicas)")
