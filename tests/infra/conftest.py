"""Stacks of the bundled examples, written once per session (each needs a full decision)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT

from llmplan.pipeline import evaluate
from llmplan.provision.stack import WrittenStack, write_stack
from llmplan.results.decision import Result
from llmplan.scenario import LoadedScenario, load_scenario

#: Each bundled example, the deployment it recommends and the kind of stack that makes.
EXAMPLES = {"support-assistant": ("hybrid", "hybrid"),
            "bulk-extraction": ("owned-h100", "local"),
            "agent-workflow": ("api", "cloud"),
            "regulated-records": ("on-prem", "local")}


@dataclass(frozen=True)
class ExampleStack:
    loaded: LoadedScenario
    result: Result
    written: WrittenStack


@pytest.fixture(scope="session")
def example_stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ExampleStack]]:
    folder: Path = tmp_path_factory.mktemp("stacks")
    stacks = {}
    for name in EXAMPLES:
        loaded = load_scenario(ROOT / "examples" / f"{name}.yaml")
        result = evaluate(loaded)
        written = write_stack(folder / f"Pulumi.{name}.yaml", loaded, result, None, {})
        stacks[name] = ExampleStack(loaded, result, written)
    yield stacks
