"""Simulate every deployment of a scenario: load -> stream -> simulate -> summarise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from llmplan.scenario import LoadedScenario
from llmplan.traffic import build_request_stream
from sim.engine import simulate_deployment
from sim.metrics import summarise, write_requests_csv

Progress = Callable[[str, float], None]


def simulate_scenario(loaded: LoadedScenario, seed: int | None = None, *,
                      mode: Literal["fast", "reference"] | None = None,
                      progress: Progress | None = None,
                      planning: bool = False,
                      requests_dir: Path | None = None) -> dict[str, Any]:
    """result.json content for a scenario (same scenario and seed: same result).

    With `planning`, also searches replica counts and traffic rates and tests how stable
    the recommendation is (many more simulations).
    """
    scenario = loaded.scenario
    seed = scenario.seed if seed is None else seed
    stream = build_request_stream(scenario, seed)
    mode = mode or scenario.simulation.mode
    deployments: dict[str, Any] = {}
    for name, dep in scenario.deployments.items():
        def report(t: float, name: str = name) -> None:
            if progress is not None:
                progress(name, t)

        run = simulate_deployment(
            name, dep, loaded.catalog, stream, scenario.duration_s,
            drain_s=scenario.simulation.drain_s, mode=mode, progress=report, seed=seed,
            deployments=dict(scenario.deployments),
            task_sensitivity=[t.sensitivity for t in scenario.tasks],
            restricted_stays_local=scenario.constraints.restricted_stays_local)
        deployments[name] = summarise(run, stream, scenario)
        if requests_dir is not None:
            requests_dir.mkdir(parents=True, exist_ok=True)
            write_requests_csv(run, stream, requests_dir / f"{name}.csv")
    result = {
        "scenario": {
            "name": scenario.name, "seed": seed, "duration_s": scenario.duration_s,
            "requests": len(stream), "mode": mode,
            "tasks": list(stream.task_names),
        },
        "deployments": deployments,
    }
    from llmplan.decide.decision import decide

    decide(result, loaded)
    if planning:
        from llmplan.decide.planning import plan

        result["planning"] = plan(result, loaded)
    return result
