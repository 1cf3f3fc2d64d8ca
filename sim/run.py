"""Simulate a scenario's deployments: the one place scenario settings become a simulation.

`run_deployment` passes everything a deployment's simulation needs from the scenario (its
parts if hybrid, each task's sensitivity, the drain time, the seed); planning and sweeps
call it with a sped-up stream. `simulate_scenario` runs every deployment against the same
request stream and summarises each (no decision: that is llmplan.decide's job), with a
cloud API's rate limits as the traffic, kept up, leaves them (`run_steady`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np

from llmplan.errors import Problem, ScenarioError
from llmplan.results.simulation import RunInfo, SimulationResult
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import Scenario, SimulationMode
from llmplan.sim.cloud import limit_cache_share, make_limiter, token_mix
from llmplan.sim.engine import (
    AnyDeployment,
    DeploymentRun,
    simulate_deployment,
    unasked_reasoning,
)
from llmplan.sim.metrics import summarise_run
from llmplan.sim.requests_csv import write_requests_csv
from llmplan.traffic import RequestStream, build_request_stream, long_run_requests

Progress = Callable[[str, float], None]


def run_deployment(loaded: LoadedScenario, name: str, stream: RequestStream,
                   duration_s: float, *, seed: int | None = None,
                   mode: SimulationMode | None = None,
                   progress: Callable[[float], None] | None = None,
                   prime_limits: bool = False,
                   cloud_demand: tuple[float, float, float, float] | None = None,
                   drain_s: float | None = None) -> DeploymentRun:
    """Simulate deployment `name` of the scenario serving `stream` for `duration_s`
    (`prime_limits`, `cloud_demand`: see `simulate_deployment`; `drain_s`: the time left
    after the last arrival, the scenario's by default)."""
    scenario = loaded.scenario
    return simulate_deployment(
        name, scenario.deployments[name], loaded.catalog, stream, duration_s,
        drain_s=scenario.simulation.drain_s if drain_s is None else drain_s,
        mode=mode or scenario.simulation.mode,
        progress=progress, seed=scenario.seed if seed is None else seed,
        prime_limits=prime_limits, cloud_demand=cloud_demand, **_task_facts(scenario))


class TaskFacts(TypedDict):
    """What the simulation reads of the scenario's tasks and constraints beside the stream:
    the deployments (a hybrid's parts), each task's sensitivity, kind and whether it asks
    for no reasoning, and the restricted-data rule."""

    deployments: Mapping[str, AnyDeployment]
    task_sensitivity: Sequence[str]
    task_kinds: Sequence[str | None]
    restricted_stays_local: bool
    plain_tasks: Sequence[bool]


def _task_facts(scenario: Scenario) -> TaskFacts:
    return TaskFacts(deployments=scenario.deployments,
                     task_sensitivity=[t.sensitivity for t in scenario.tasks],
                     task_kinds=[t.kind for t in scenario.tasks],
                     restricted_stays_local=scenario.constraints.restricted_stays_local,
                     plain_tasks=[t.reasoning_tokens is None for t in scenario.tasks])


def served_stream(loaded: LoadedScenario, name: str, stream: RequestStream) -> RequestStream:
    """`stream` as deployment `name`'s simulation serves it (`run_deployment`): with the
    hidden reasoning its API adds to each answer of a task that asks for none, on a model
    that cannot answer without (`unasked_reasoning`), so what is judged before a run (the
    rate an API's limits sustain) counts the tokens the run charges."""
    return unasked_reasoning(loaded.scenario.deployments[name], loaded.catalog, stream,
                             **_task_facts(loaded.scenario))


def run_steady(loaded: LoadedScenario, name: str, stream: RequestStream, duration_s: float,
               *, seed: int | None = None, mode: SimulationMode | None = None,
               progress: Callable[[float], None] | None = None,
               drain_s: float | None = None) -> DeploymentRun:
    """`run_deployment` with a cloud API's rate limits as the same traffic, kept up, leaves
    them rather than with a full minute's allowance (a scenario is a stretch of a long run:
    a month is made of it): a cloud deployment's from its own stream; a hybrid's, when its
    first run sent the API more requests per second than the limits sustain, from that
    rate, in a second run (its router decides what the API gets)."""
    run = run_deployment(loaded, name, stream, duration_s, seed=seed, mode=mode,
                         progress=progress, prime_limits=True, drain_s=drain_s)
    demand = cloud_demand_over_limits(loaded, name, run, stream, duration_s)
    if demand is None:
        return run
    return run_deployment(loaded, name, stream, duration_s, seed=seed, mode=mode,
                          progress=progress, prime_limits=True, cloud_demand=demand,
                          drain_s=drain_s)


def cloud_demand_over_limits(loaded: LoadedScenario, name: str, run: DeploymentRun,
                             stream: RequestStream, span_s: float
                             ) -> tuple[float, float, float, float] | None:
    """A hybrid whose run sent its API more requests per second than the API's limits
    sustain at their token mix: (that rate, tokens charged, tokens used and prompt tokens
    per request), to start its limits from; None otherwise."""
    dep = loaded.scenario.deployments[name]
    if not isinstance(dep, HybridDeployment) or span_s <= 0:
        return None
    cloud = loaded.scenario.deployments[dep.cloud]
    assert isinstance(cloud, CloudDeployment)
    # every call it sent the API as the API served it (a plain task's with the hidden
    # reasoning its model adds, a fall-back the fleet then answered too)
    stream = run.api_stream if run.api_stream is not None else run.served(stream)
    taken = np.asarray(run.records.attempts) > 0
    sent = np.flatnonzero(taken)
    if not len(sent):
        return None
    mix = token_mix(cloud, stream.prompt_tokens[sent], stream.output_tokens[sent])
    model = loaded.catalog.cloud_models[cloud.model]
    sustained = make_limiter(cloud, model, limit_cache_share(cloud, model, stream, taken,
                                                            span_s)).sustained(*mix)
    rate = len(sent) / span_s
    if sustained is None or rate <= sustained.requests_per_s:
        return None
    return (rate, *mix)


def simulate_scenario(loaded: LoadedScenario, seed: int | None = None, *,
                      mode: SimulationMode | None = None, progress: Progress | None = None,
                      requests_dir: Path | None = None) -> SimulationResult:
    """Every deployment against the scenario's request stream (same scenario and seed: same
    result). With `requests_dir`, also one CSV of per-request rows per deployment."""
    scenario = loaded.scenario
    seed = scenario.seed if seed is None else seed
    stream = build_request_stream(scenario, seed)
    if not len(stream):
        raise ScenarioError([Problem(
            str(loaded.path), None, "traffic",
            f"draws no request in {scenario.duration_s:g} s (seed {seed}); expected a "
            "rate and duration that send at least one: raise the rate or lengthen duration")])
    mode = mode or scenario.simulation.mode
    deployments = {}
    for name in scenario.deployments:
        def report(t: float, name: str = name) -> None:
            if progress is not None:
                progress(name, t)

        run = run_steady(loaded, name, stream, scenario.duration_s, seed=seed, mode=mode,
                         progress=report)
        deployments[name] = summarise_run(run, stream, scenario)
        if requests_dir is not None:
            requests_dir.mkdir(parents=True, exist_ok=True)
            write_requests_csv(run, stream, requests_dir / f"{name}.csv")
    return SimulationResult(scenario=run_info(scenario, stream, seed, mode),
                            deployments=deployments)


def run_info(scenario: Scenario, stream: RequestStream, seed: int,
             mode: SimulationMode) -> RunInfo:
    """What a run of `scenario` serving `stream` simulates, with the traffic's long-run
    request rate (what a month is made of)."""
    volume = long_run_requests(scenario.traffic, stream, scenario.duration_s,
                               scenario.requests_per_session())
    return RunInfo(name=scenario.name, seed=seed, duration_s=scenario.duration_s,
                   requests=len(stream), mode=mode.value, tasks=list(stream.task_names),
                   long_run_requests_per_s=volume.requests_per_s, volume_basis=volume.basis,
                   slo=scenario.slo_in_words())
