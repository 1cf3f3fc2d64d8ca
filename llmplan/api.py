"""The Python API: what a notebook or a script calls (the same entry points as the CLI).

    import llmplan
    result = llmplan.simulate("examples/support-assistant.yaml", seed=7)
    result.recommendation.deployment, result.deployments["hybrid"].cost.monthly_usd

Every function returns typed models (llmplan.results); bad input raises
`llmplan.errors.InputError` naming the file, line, field and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from llmplan.decide.decision import decide as _decide
from llmplan.pipeline import evaluate, with_provisioning
from llmplan.results.decision import Result
from llmplan.results.simulation import SimulationResult
from llmplan.scenario import LoadedScenario, load_scenario_text
from llmplan.scenario import load_scenario as _load_file
from llmplan.scenario.models import SimulationMode
from llmplan.sim.run import simulate_scenario

ScenarioSource = str | Path | Mapping[str, Any] | LoadedScenario


def load_scenario(source: ScenarioSource, *, base_dir: str | Path = ".") -> LoadedScenario:
    """A validated scenario from a file path, a mapping (as YAML would give) or as it is.

    Relative files a mapping names (traces, calibrations) resolve against `base_dir`.
    """
    if isinstance(source, LoadedScenario):
        return source
    if isinstance(source, Mapping):
        return load_scenario_text(yaml.safe_dump(dict(source), sort_keys=False),
                                  file="<mapping>", base_dir=base_dir)
    return _load_file(source)


def simulate(source: ScenarioSource, *, seed: int | None = None, planning: bool = False,
             mode: SimulationMode | None = None) -> Result:
    """Simulate every deployment, price them and recommend one (result.json, typed).

    `planning=True` also searches replica counts and rates and tests the answer's
    stability (many more simulations).
    """
    return evaluate(load_scenario(source), seed, mode=mode, planning=planning)


def simulate_only(source: ScenarioSource, *, seed: int | None = None) -> SimulationResult:
    """The simulation alone: latency, throughput, goodput per deployment, no costs."""
    return simulate_scenario(load_scenario(source), seed)


def recommend(simulation: SimulationResult, source: ScenarioSource) -> Result:
    """Cost, feasibility and the recommendation for a simulation of `source`."""
    return _decide(simulation, with_provisioning(load_scenario(source)))
