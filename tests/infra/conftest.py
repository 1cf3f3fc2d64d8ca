"""Stacks of the bundled examples, written once per session (each needs a full decision)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, ExampleResult

from llmplan.provision.stack import WrittenStack, write_stack
from llmplan.results.decision import Result
from llmplan.scenario import LoadedScenario, load_scenario

#: Each bundled example, the deployment it recommends and the kind of stack that makes.
EXAMPLES = {"support-assistant": ("hybrid", "hybrid"),
            "bulk-extraction": ("owned-h100", "local"),
            "agent-workflow": ("api", "cloud"),
            "regulated-records": ("on-prem", "local"),
            "retail-assistant": ("hybrid", "hybrid")}
#: The support assistant's hybrid candidate (its winner too), provisioned by name: a stack
#: for any candidate is made the same way as the recommended one's.
HYBRID = "support-assistant-hybrid"


@dataclass(frozen=True)
class ExampleStack:
    loaded: LoadedScenario
    result: Result
    written: WrittenStack


@pytest.fixture(scope="session")
def example_stacks(tmp_path_factory: pytest.TempPathFactory,
                   example_result: ExampleResult) -> Iterator[dict[str, ExampleStack]]:
    folder: Path = tmp_path_factory.mktemp("stacks")
    stacks = {}
    for name in EXAMPLES:
        loaded = load_scenario(ROOT / "examples" / f"{name}.yaml")
        result = example_result(name, False)
        written = write_stack(folder / f"Pulumi.{name}.yaml", loaded, result, None, {})
        stacks[name] = ExampleStack(loaded, result, written)
    loaded, result = stacks["support-assistant"].loaded, stacks["support-assistant"].result
    written = write_stack(folder / f"Pulumi.{HYBRID}.yaml", loaded, result, "hybrid", {})
    stacks[HYBRID] = ExampleStack(loaded, result, written)
    yield stacks


@pytest.fixture(scope="session")
def bedrock_stack(tmp_path_factory: pytest.TempPathFactory) -> WrittenStack:
    from infra_scenarios import bedrock_hybrid_stack

    return bedrock_hybrid_stack(tmp_path_factory.mktemp("bedrock"),
                                {"aws_region": "us-east-1"})


@pytest.fixture(scope="session")
def formats() -> tuple[LoadedScenario, Result]:
    """infra_scenarios.FORMATS, simulated once: fleets in every weight format, speculative
    decoding, an AMD GPU."""
    from infra_scenarios import formats_scenario

    return formats_scenario()


#: What `pulumi config set --secret` would hold; planted to check where they end up.
PLANTED = {"gatewayMasterKey": "mk-planted-master-key-7f3a",
           "cloudApiKey": "sk-plantedcloudkey1234567890",
           "hfToken": "hf_plantedhubtokenABCDEFGHIJ"}


@pytest.fixture(scope="session")
def program_runs(example_stacks: dict[str, ExampleStack],
                 bedrock_stack: WrittenStack) -> dict[str, Any]:
    """The Pulumi program under mocks for a local, a cloud, two hybrids (an OpenAI one by
    name, the retail example's Bedrock one as recommended) and a Bedrock-on-EKS stack."""
    from pulumi_harness import run_program, stack_values

    runs = {name: run_program(stack_values(example_stacks[name].written.path), PLANTED)
            for name in ("support-assistant", "bulk-extraction", "regulated-records",
                         "agent-workflow", HYBRID)}
    # the retail example's Bedrock hybrid, on an existing EKS cluster (Pod Identity)
    runs["retail-assistant"] = run_program(
        {**stack_values(example_stacks["retail-assistant"].written.path),
         "awsRegion": "us-east-1", "eksClusterName": "shop"},
        {"gatewayMasterKey": PLANTED["gatewayMasterKey"], "hfToken": PLANTED["hfToken"]})
    values = {**stack_values(bedrock_stack.path), "clusterMode": "eks"}
    runs["bedrock-eks"] = run_program(values, {"gatewayMasterKey": PLANTED["gatewayMasterKey"],
                                               "hfToken": PLANTED["hfToken"]})
    return runs
