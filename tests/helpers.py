"""Helpers for simulator tests: build scenarios from YAML snippets, run one deployment."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path

from llmplan.perf.engine import SpeculativeSpec
from llmplan.results import Result
from llmplan.scenario import LoadedScenario, load_scenario_text
from llmplan.scenario.models import SimulationMode
from llmplan.sim.engine import DeploymentRun, simulate_deployment
from llmplan.traffic import RequestStream, build_request_stream

ROOT = Path(__file__).resolve().parent.parent

#: A bundled example's whole evaluation: (example name, with planning) -> its result (the
#: `example_result` fixture of tests/conftest.py: once per run, shared by the workers).
ExampleResult = Callable[[str, bool], Result]

#: Speculative decoding of each kind the release rules key on (vLLM's n-gram, draft-model
#: and EAGLE-3 methods), with plausible acceptance
NGRAM = SpeculativeSpec(method="ngram", num_speculative_tokens=3, mean_acceptance_length=1.8)
DRAFT = SpeculativeSpec(method="draft_model", num_speculative_tokens=3,
                        mean_acceptance_length=2.0, drafter="Llama-3.2-1B")
EAGLE3 = SpeculativeSpec(method="eagle3", num_speculative_tokens=3, mean_acceptance_length=2.6,
                         draft_params_b=0.5)


def chat_scenario(name: str, deployments: str) -> str:
    """A short chat scenario's text (300-token prompts, 20-token answers, 0.5 req/s for
    30 s) with these deployments (YAML lines under `deployments:`, indented)."""
    return f"""
name: {name}
seed: 5
duration: 30
traffic: {{kind: poisson, rate_per_s: 0.5}}
tasks:
  - {{name: chat, prompt_tokens: {{kind: fixed, tokens: 300}},
     output_tokens: {{kind: fixed, tokens: 20}}}}
deployments:
{deployments.strip(chr(10))}
"""


def page_text(page: str) -> str:
    """report.html without the spans that keep hyphenated words on one line, a table
    cell's (`<span class='w'>gpu-fleet</span>`) and the prose's ids (`<span class='id'>`),
    for tests that look for a cell's or a sentence's words (in a browser's DOM too, which
    quotes the class with ")."""
    return re.sub(r"<span class=(['\"])(?:w|id)\1>([^<]*)</span>", r"\2", page)


def scenario_from(text: str, base_dir: Path | None = None) -> LoadedScenario:
    return load_scenario_text(textwrap.dedent(text), base_dir=base_dir or ROOT)


def run_first(loaded: LoadedScenario, mode: SimulationMode = SimulationMode.FAST,
              stream: RequestStream | None = None) -> tuple[DeploymentRun, RequestStream]:
    """Simulate the scenario's first deployment; return the run and its request stream."""
    scenario = loaded.scenario
    stream = stream if stream is not None else build_request_stream(scenario)
    name, dep = next(iter(scenario.deployments.items()))
    run = simulate_deployment(name, dep, loaded.catalog, stream, scenario.duration_s,
                              drain_s=scenario.simulation.drain_s,
                              mode=mode)
    return run, stream
