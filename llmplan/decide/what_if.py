"""What-if variants of a simulated result that need no new simulation: the task quality
figures changed (the useful results re-counted from each task's goodput).

The quality figures of a scenario are usually typed in, not measured, and they can decide
the answer on their own; these variants show whether they do.
"""

from __future__ import annotations

from collections.abc import Callable

from llmplan.results.simulation import DeploymentResult, SimulationResult, Useful
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import HybridDeployment
from llmplan.scenario.models import Scenario, TaskSpec

#: quality of (task, deployment) -> the variant's quality
QualityChange = Callable[[TaskSpec, str], float]


def _quality(task: TaskSpec, name: str) -> float:
    return task.quality.get(name, 1.0)


def _gap_halved(task: TaskSpec, name: str) -> float:
    best = max(task.quality.values(), default=1.0)
    return (_quality(task, name) + best) / 2.0


def _ignored(task: TaskSpec, name: str) -> float:
    return 1.0


def _useful(result: DeploymentResult, name: str, scenario: Scenario,
            change: QualityChange) -> Useful:
    """Useful results of one candidate with changed quality: per task, requests inside the
    SLO times the quality of the path that served them (a hybrid's in proportion of the
    requests each side served)."""
    dep = scenario.deployments[name]
    useful = 0.0
    for task in scenario.tasks:
        outcome = result.per_task.get(task.name)
        if outcome is None or not outcome.requests:
            continue
        met = (outcome.goodput_fraction or 0.0) * outcome.requests
        if isinstance(dep, HybridDeployment):
            cloud = outcome.served_cloud / outcome.requests
            rate = cloud * change(task, dep.cloud) + (1 - cloud) * change(task, dep.local)
        else:
            rate = change(task, name)
        useful += met * rate
    n = result.requests.total
    return Useful(expected_useful_requests=useful, useful_fraction=useful / n if n else None,
                  quality_source="what-if")


def quality_variants(simulation: SimulationResult,
                     loaded: LoadedScenario) -> list[tuple[str, SimulationResult]]:
    """(label, result) for each quality what-if, when the scenario gives quality figures
    that differ between candidates; none otherwise."""
    scenario = loaded.scenario
    names = [n for n, d in scenario.deployments.items() if not isinstance(d, HybridDeployment)]
    if not any(len({_quality(task, n) for n in names}) > 1 for task in scenario.tasks):
        return []
    out = []
    changes: tuple[tuple[str, QualityChange], ...] = (
        ("the task quality gaps were halved", _gap_halved),
        ("the task quality figures were left out (every answer useful)", _ignored))
    for label, change in changes:
        deployments = {name: result.model_copy(update={
            "useful": _useful(result, name, scenario, change)})
            for name, result in simulation.deployments.items()}
        out.append((label, simulation.model_copy(update={"deployments": deployments})))
    return out
