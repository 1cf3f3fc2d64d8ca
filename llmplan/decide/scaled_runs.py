"""A deployment simulated on the scenario's traffic made heavier or lighter: its local fleet
resized, the stream sped up and repeated over the whole duration (what a sweep point
simulates), and how long a sped-up stretch drains."""

from __future__ import annotations

import math

import numpy as np

from llmplan.results.simulation import DeploymentResult
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import HybridDeployment
from llmplan.scenario.models import LocalDeployment, SimulationMode
from llmplan.sim.metrics import summarise_run
from llmplan.sim.run import run_steady
from llmplan.traffic import RequestStream, build_request_stream
from llmplan.traffic.stream import MAX_SIMULATED_REQUESTS


def resized(loaded: LoadedScenario, name: str, replicas: int | None) -> LoadedScenario:
    """The scenario with deployment `name`'s local fleet at `replicas` (None: unchanged)."""
    scenario = loaded.scenario
    if replicas is None:
        return loaded
    dep = scenario.deployments[name]
    fleet = dep.local if isinstance(dep, HybridDeployment) else name
    local = scenario.deployments[fleet]
    assert isinstance(local, LocalDeployment)
    deployments = dict(scenario.deployments)
    deployments[fleet] = local.model_copy(update={"replicas": replicas})
    return LoadedScenario(scenario.model_copy(update={"deployments": deployments}),
                          loaded.catalog, loaded.path)


def scaled_stream(loaded: LoadedScenario, rate_factor: float,
                  seed: int | None = None) -> RequestStream:
    """The scenario's traffic at `rate_factor` times its rate over its whole duration: the
    stream sped up, and repeated back to back until the duration is full (at 20x, twenty
    copies of a twentieth of the time), so an overload lasts as long as the scenario and
    its queue builds as it would; slowed down, the part that fits the duration."""
    stream = build_request_stream(loaded.scenario, seed)
    duration = loaded.scenario.duration_s
    if not len(stream) or rate_factor == 1.0:
        return stream
    period = duration / rate_factor
    copies = math.ceil(rate_factor)
    if copies * len(stream) > MAX_SIMULATED_REQUESTS:
        raise ValueError(f"{rate_factor:g} times the traffic is about "
                         f"{rate_factor * len(stream):,.0f} requests, more than the "
                         f"{MAX_SIMULATED_REQUESTS:,} a run simulates")
    repeated = stream.scaled(1.0 / rate_factor).repeated(copies, period)
    return repeated.rows(np.flatnonzero(repeated.arrival_s < duration))


def simulate_one(loaded: LoadedScenario, name: str, *, rate_factor: float = 1.0,
                 seed: int | None = None) -> tuple[DeploymentResult, int]:
    """Summary of one deployment on the scenario's traffic at `rate_factor` times its rate
    over its whole duration (`scaled_stream`: what a sweep point simulates), and the
    requests that was."""
    stream = scaled_stream(loaded, rate_factor, seed)
    if not len(stream):
        raise ValueError(f"the traffic at x{rate_factor:g} draws no request in "
                         f"{loaded.scenario.duration_s:g} s: expected a larger scale (or a "
                         f"longer duration)")
    duration = loaded.scenario.duration_s
    run = run_steady(loaded, name, stream, duration, seed=seed, mode=SimulationMode.FAST,
                     drain_s=loaded.scenario.simulation.drain_s)
    return summarise_run(run, stream, loaded.scenario), len(stream)


def drain_after_s(loaded: LoadedScenario, span_s: float, factor: float) -> float:
    """Time to finish after the last arrival of `span_s` of traffic sped up `factor` times:
    the scenario's drain, else the unscaled span (more traffic comes sooner, but each answer
    takes as long; a slowed-down span keeps its own longer length)."""
    drain = loaded.scenario.simulation.drain_s
    return max(span_s, span_s / factor) if drain is None else drain
