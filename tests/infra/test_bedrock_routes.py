"""The Bedrock id the gateway calls keeps the plan's data where the scenario allows it, and the
gateway's IAM policy names exactly what that id reaches (llmplan.provision.bedrock_routing,
bedrock_access). Destinations are AWS's for each source Region (the catalog's
bedrock_routing, from the Bedrock user guide's "Supported Regions and models for inference
profiles"); the ARNs are AWS's IAM policy requirements for geographic and global profiles."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from infra_scenarios import Simulated, simulate_text
from pulumi_harness import ACCOUNT, run_program, stack_values
from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.errors import InputError
from llmplan.provision.bedrock_access import invoke_policy, model_arns
from llmplan.provision.bedrock_routing import RouteError, bedrock_route
from llmplan.provision.gateway_manifests import gateway_endpoints
from llmplan.provision.router_config import router_config
from llmplan.provision.stack import WrittenStack, write_stack
from llmplan.provision.stack_config import Plan, StackConfig

#: The fuzzer's case: EU data, Claude and Llama on Bedrock in Frankfurt (RESIDENCY filled in)
EU = """
name: eu-bedrock
seed: 30
duration: 60
traffic: {kind: poisson, rate_per_s: 0.5}
tasks:
  - {name: support, prompt_tokens: {kind: fixed, tokens: 800},
     output_tokens: {kind: fixed, tokens: 300}}
slo: {ttft_ms: 3000, tpot_ms: 80}
constraints:
  data_residency: [RESIDENCY]
deployments:
  claude-eu: {kind: cloud, model: claude-sonnet-4.5-bedrock, region: eu-central-1}
  llama-eu: {kind: cloud, model: llama-3.3-70b-bedrock, region: eu-central-1}
"""
SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
#: AWS: the EU Claude Sonnet 4.5 profile called from eu-central-1 routes to these
EU_SONNET_45 = ["eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1",
                "eu-west-3"]
OIDC = "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/abc"


@pytest.fixture(scope="module")
def eu_area() -> Simulated:
    """EU data may be processed anywhere in the EU (data_residency: [eu])."""
    return simulate_text(EU.replace("RESIDENCY", "eu"))


@pytest.fixture(scope="module")
def frankfurt_only() -> Simulated:
    """EU data may be processed in eu-central-1 only, as the fuzzer's scenario says."""
    return simulate_text(EU.replace("RESIDENCY", "eu-central-1"))


def _write(simulated: Simulated, deployment: str, folder: Path,
           aws_region: str) -> WrittenStack:
    loaded, result = simulated
    return write_stack(folder / f"Pulumi.{deployment}.yaml", loaded, result, deployment,
                       {"aws_region": aws_region})


def _bedrock_entry(config: StackConfig) -> dict[str, object]:
    [entry] = [m["litellm_params"] for m in router_config(config, gateway_endpoints(config))[
        "model_list"] if m["model_info"]["id"].endswith("--cloud")]
    return entry


def _policy(written: WrittenStack) -> list[dict[str, object]]:
    """The gateway role's IAM statements, from the Pulumi program under mocks."""
    run = run_program({**stack_values(written.path), "oidcProviderArn": OIDC},
                      {"gatewayMasterKey": "mk"})
    statements: list[dict[str, object]] = json.loads(
        run.mocks.named("cloud-bedrock-invoke").inputs["policy"])["Statement"]
    alarm = run.mocks.named("cloud-bedrock-throttles").inputs
    assert alarm["dimensions"] == {"ModelId": str(_bedrock_entry(written.config)["model"])
                                   .removeprefix("bedrock/")}
    return statements


def test_eu_data_goes_through_the_eu_profile_and_the_role_reaches_eu_regions_only(
        eu_area: Simulated, tmp_path: Path) -> None:
    # an area allows the Regions named after it: the decision and the stack agree
    assert eu_area[1].deployments["claude-eu"].feasible
    written = _write(eu_area, "claude-eu", tmp_path, "eu-central-1")
    entry = _bedrock_entry(written.config)
    assert entry["model"] == f"bedrock/eu.{SONNET_45}"
    assert entry["aws_region_name"] == "eu-central-1"
    profile, models = _policy(written)
    arn = f"arn:aws:bedrock:eu-central-1:{ACCOUNT}:inference-profile/eu.{SONNET_45}"
    assert profile["Resource"] == [arn]
    assert models["Resource"] == [f"arn:aws:bedrock:{region}::foundation-model/{SONNET_45}"
                                  for region in EU_SONNET_45]
    assert models["Condition"] == {"StringEquals": {"bedrock:InferenceProfileArn": arn}}
    # the notes say where else in the EU it may run
    said = " ".join(written.notes)
    assert "may process its data in eu-north-1, eu-south-1, eu-south-2, eu-west-1, " \
           "eu-west-3 too, outside its region eu-central-1" in said


def test_one_allowed_region_refuses_every_profile_that_leaves_it(
        frankfurt_only: Simulated, tmp_path: Path) -> None:
    with pytest.raises(InputError) as claude:
        _write(frankfurt_only, "claude-eu", tmp_path, "eu-central-1")
    said = " ".join(str(claude.value).split())
    assert "deployments.claude-eu: deployment 'claude-eu' (claude-sonnet-4.5-bedrock, " \
           "region eu-central-1): every Bedrock route of " in said
    assert "leaves the scenario's data_residency (eu-central-1)" in said
    assert f"the eu profile eu.{SONNET_45} may process it in eu-north-1" in said
    assert f"the global profile global.{SONNET_45} may process it in any commercial" in said
    assert "allow those Regions in constraints.data_residency" in said
    # Llama 3.3 70B has a US profile only: nothing is callable from Frankfurt
    with pytest.raises(InputError) as llama:
        _write(frankfurt_only, "llama-eu", tmp_path, "eu-central-1")
    said = " ".join(str(llama.value).split())
    assert "deployment 'llama-eu' (llama-3.3-70b-bedrock, region eu-central-1): the catalog " \
           "knows no Bedrock route of meta.llama3-3-70b-instruct-v1:0 callable from " \
           "eu-central-1, only through the us profile from us-east-1, us-east-2, us-west-2" \
        in said
    assert not list(tmp_path.iterdir())


def test_a_model_served_in_the_region_keeps_to_one_allowed_region(
        frankfurt_only: Simulated, eu_area: Simulated, tmp_path: Path) -> None:
    """Where the catalog says Bedrock serves the model in the Region itself, the gateway
    calls the model's own id there: the one route that stays in eu-central-1."""
    plan = _write(eu_area, "claude-eu", tmp_path, "eu-central-1").config.plan
    spec = plan.catalog.cloud_models["claude-sonnet-4.5-bedrock"]
    assert spec.bedrock_routing is not None
    routing = spec.bedrock_routing.model_copy(update={"in_region": ["eu-central-1"]})
    catalog = plan.catalog.model_copy(update={"cloud_models": {
        "claude-sonnet-4.5-bedrock": spec.model_copy(update={"bedrock_routing": routing})}})
    pinned = plan.model_copy(update={"catalog": catalog, "data_residency": ["eu-central-1"]})
    route = bedrock_route(pinned, "eu-central-1")
    assert (route.kind, route.model_id, route.destinations) == (
        "in_region", SONNET_45, ("eu-central-1",))
    arns = model_arns(route, ACCOUNT)
    assert arns.profile is None
    assert arns.models == (f"arn:aws:bedrock:eu-central-1::foundation-model/{SONNET_45}",)
    [statement] = json.loads(invoke_policy(arns))["Statement"]
    assert statement["Resource"] == list(arns.models) and "Condition" not in statement


SAO_PAULO = """
name: sao-paulo
seed: 31
duration: 60
traffic: {kind: poisson, rate_per_s: 0.5}
tasks:
  - {name: support, prompt_tokens: {kind: fixed, tokens: 800},
     output_tokens: {kind: fixed, tokens: 300}}
slo: {ttft_ms: 3000, tpot_ms: 80}
deployments:
  claude: {kind: cloud, model: claude-sonnet-4.5-bedrock, region: sa-east-1}
"""


def test_the_global_profile_is_for_plans_without_residency_and_named_as_aws_asks(
        tmp_path: Path) -> None:
    """From sa-east-1 AWS offers Claude Sonnet 4.5 through its global profile only. With no
    data_residency, the gateway calls it, and the role gets AWS's three ARNs: the profile,
    the model in the source Region, and the global model, which names no Region."""
    written = _write(simulate_text(SAO_PAULO), "claude", tmp_path, "sa-east-1")
    assert _bedrock_entry(written.config)["model"] == f"bedrock/global.{SONNET_45}"
    profile, models = _policy(written)
    arn = f"arn:aws:bedrock:sa-east-1:{ACCOUNT}:inference-profile/global.{SONNET_45}"
    assert profile["Resource"] == [arn]
    assert models["Resource"] == [f"arn:aws:bedrock:sa-east-1::foundation-model/{SONNET_45}",
                                  f"arn:aws:bedrock:::foundation-model/{SONNET_45}"]
    said = " ".join(written.notes)
    assert "may process its data outside its region sa-east-1" in said
    # the plan priced the US profile (geographic), and AWS prices the global one apart
    assert f"the catalog's prices of us.{SONNET_45}, and the gateway calls global.{SONNET_45}" \
        in said
    # once the scenario keeps the data in a Region, the global profile is never taken
    kept: Plan = written.config.plan.model_copy(update={"data_residency": ["sa-east-1"]})
    with pytest.raises(RouteError, match=r"the global profile global\.anthropic"):
        bedrock_route(kept, "sa-east-1")


def test_an_aws_region_that_contradicts_the_deployment_is_refused(tmp_path: Path) -> None:
    scenario = tmp_path / "eu.yaml"
    scenario.write_text(textwrap.dedent(EU.replace("RESIDENCY", "eu")))
    args = ["stack", str(scenario), "--deployment", "claude-eu", "--stack", "eu",
            "--out", str(tmp_path)]
    us = CliRunner().invoke(app, [*args, "--aws-region", "us-east-1"])
    said = " ".join(us.output.split())
    assert us.exit_code == 2, us.output
    assert "--aws-region: deployment 'claude-eu' (claude-sonnet-4.5-bedrock, region " \
           "eu-central-1) was simulated processing its data in eu-central-1, and the stack " \
           "would call Bedrock from us-east-1" in said
    assert "set --aws-region to eu-central-1" in said
    stack = tmp_path / "Pulumi.eu.yaml"
    assert not stack.exists()
    # a Region kept in the stack file is checked too, and named where it was set
    assert CliRunner().invoke(app, [*args, "--aws-region", "eu-central-1"]).exit_code == 0
    data = yaml.safe_load(stack.read_text())
    data["config"]["llm-deploy-planner:awsRegion"] = "eu-west-2"
    stack.write_text(yaml.safe_dump(data))
    kept = CliRunner().invoke(app, args)
    assert kept.exit_code == 2
    assert "Pulumi.eu.yaml: llm-deploy-planner:awsRegion: deployment 'claude-eu'" in " ".join(
        kept.output.split())


def test_simulate_passes_over_a_bedrock_deployment_the_stack_would_refuse() -> None:
    """What `llmplan stack` refuses for want of a route is known when the scenario is
    simulated: the recommendation passes over it while a buildable candidate exists
    (a recommendation that cannot be built is a bug), a hybrid over such an API too."""
    from helpers import scenario_from

    from llmplan.pipeline import evaluate, with_provisioning

    frankfurt = EU.replace("RESIDENCY", "eu-central-1") + (
        "  fleet: {gpu: L40S, model: Llama-3.1-8B}\n"
        "  both: {kind: hybrid, local: fleet, cloud: llama-eu}\n")
    loaded = with_provisioning(scenario_from(frankfurt))
    problems = loaded.not_provisionable
    assert set(problems) == {"claude-eu", "llama-eu", "both"}
    assert "every Bedrock route of" in problems["claude-eu"]
    assert problems["both"].startswith("its API part: deployment 'llama-eu'")
    assert evaluate(loaded).recommendation.deployment == "fleet"
    # with the EU as the allowed area, the EU profile keeps Claude buildable
    area = with_provisioning(scenario_from(EU.replace("RESIDENCY", "eu")))
    assert "claude-eu" not in area.not_provisionable
    assert "llama-eu" in area.not_provisionable
