"""`llmplan stack`: the recommended deployment of each bundled example becomes a stack file
that reads back into exactly the deployment that was simulated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLES, HYBRID, ExampleStack
from helpers import ROOT
from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.errors import InputError
from llmplan.pipeline import evaluate
from llmplan.provision.cluster_sizing import gpu_node_counts
from llmplan.provision.stack import WrittenStack, replay_scenario, setting_notes, write_stack
from llmplan.provision.stack_config import (
    PROJECT,
    SECRET_KEYS,
    project_config_declarations,
    read_stack_file,
)
from llmplan.scenario import load_scenario


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_each_example_gets_a_stack_for_its_recommendation(
        example_stacks: dict[str, ExampleStack], example: str) -> None:
    stack = example_stacks[example]
    deployment, kind = EXAMPLES[example]
    assert stack.result.recommendation.deployment == deployment
    config, _ = read_stack_file(stack.written.path)
    assert (config.plan.deployment, config.kind) == (deployment, kind)
    assert config.monthly_budget_usd >= stack.result.deployments[deployment].cost.monthly_usd
    assert config.monthly_budget_usd - stack.result.deployments[deployment].cost.monthly_usd < 1


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_the_stack_reads_back_into_the_simulated_deployment(
        example_stacks: dict[str, ExampleStack], example: str) -> None:
    """Same scenario, the stack's deployments and catalog entries only: byte-identical result."""
    stack = example_stacks[example]
    config, _ = read_stack_file(stack.written.path)
    name = config.plan.deployment
    assert config.plan.chosen == stack.loaded.scenario.deployments[name]
    replayed = evaluate(replay_scenario(stack.loaded, config.plan))
    assert set(replayed.deployments) == set(config.plan.deployments)
    original = stack.result.deployments[name].model_dump_json()
    assert replayed.deployments[name].model_dump_json() == original


def test_the_hybrid_stack_carries_both_parts_and_the_catalog_entries_they_use(
        example_stacks: dict[str, ExampleStack]) -> None:
    config = example_stacks[HYBRID].written.config
    assert set(config.plan.deployments) == {"hybrid", "gpu-small", "api"}
    assert set(config.plan.catalog.gpus) == {"L40S"}
    assert set(config.plan.catalog.models) == {"Llama-3.1-8B"}
    assert set(config.plan.catalog.cloud_models) == {"gpt-6-luna"}
    assert [t.sensitivity for t in config.plan.tasks] == ["internal", "restricted", "restricted"]
    simulated = config.plan.simulated
    assert set(simulated.cloud_requests_by_task) == {"chat"}   # restricted never went out
    assert simulated.kv_cache_tokens_per_replica and simulated.local_requests_per_s_per_replica


def test_rewriting_is_idempotent_and_keeps_secrets_and_edits(
        example_stacks: dict[str, ExampleStack], tmp_path: Path) -> None:
    stack = example_stacks["agent-workflow"]
    path = tmp_path / "Pulumi.prod.yaml"
    shutil.copy(stack.written.path, path)
    again = write_stack(path, stack.loaded, stack.result, None, {})
    assert not again.changed and path.read_text() == stack.written.path.read_text()
    # what `pulumi config set --secret` and a hand edit leave in the file
    data = yaml.safe_load(path.read_text())
    data["encryptionsalt"] = "v1:abc:def"
    data["config"][f"{PROJECT}:gatewayMasterKey"] = {"secure": "v1:AAAA:BBBB"}
    data["config"][f"{PROJECT}:namespace"] = "llm-prod"
    data["config"]["aws:region"] = "eu-west-1"
    path.write_text(yaml.safe_dump(data))
    rewritten = write_stack(path, stack.loaded, stack.result, None, {})
    kept = yaml.safe_load(path.read_text())
    assert kept["encryptionsalt"] == "v1:abc:def"
    assert kept["config"][f"{PROJECT}:gatewayMasterKey"] == {"secure": "v1:AAAA:BBBB"}
    assert kept["config"]["aws:region"] == "eu-west-1"
    assert rewritten.config.namespace == "llm-prod"
    assert [s.already_set for s in rewritten.secrets if s.key == "gatewayMasterKey"] == [True]
    # a command-line option wins over the file
    moved = write_stack(path, stack.loaded, stack.result, None, {"namespace": "llm-b"})
    assert moved.config.namespace == "llm-b"


def test_no_secret_is_written_and_a_plain_one_is_refused(
        example_stacks: dict[str, ExampleStack], tmp_path: Path) -> None:
    stack = example_stacks[HYBRID]
    text = stack.written.path.read_text()
    config = yaml.safe_load(text)["config"]
    assert not [k for k in config if k.split(":", 1)[1] in SECRET_KEYS]
    for key in ("gatewayMasterKey", "cloudApiKey", "hfToken"):
        assert f"pulumi config set --secret {key} <value>" in text
    path = tmp_path / "Pulumi.leaky.yaml"
    config[f"{PROJECT}:cloudApiKey"] = "sk-this-should-never-be-here-123456"
    path.write_text(yaml.safe_dump({"config": config}))
    with pytest.raises(InputError, match="cloudApiKey") as caught:
        read_stack_file(path)
    problem = caught.value.problems[0]
    assert problem.line is not None and "pulumi config set --secret cloudApiKey" in str(problem)


def test_a_named_deployment_and_bad_names(example_stacks: dict[str, ExampleStack],
                                          tmp_path: Path) -> None:
    stack = example_stacks[HYBRID]
    fleet = write_stack(tmp_path / "Pulumi.fleet.yaml", stack.loaded, stack.result, "gpu-fleet",
                        {})
    assert fleet.config.kind == "local" and set(fleet.config.plan.deployments) == {"gpu-fleet"}
    assert [s.key for s in fleet.secrets] == ["gatewayMasterKey", "hfToken"]
    with pytest.raises(InputError, match=r"unknown deployment 'nope'.*gpu-fleet"):
        write_stack(tmp_path / "Pulumi.x.yaml", stack.loaded, stack.result, "nope", {})
    broken = tmp_path / "Pulumi.broken.yaml"
    broken.write_text(stack.written.path.read_text().replace("replicas: 1", "replicas: -1", 1))
    with pytest.raises(InputError) as caught:
        read_stack_file(broken)
    problem = caught.value.problems[0]
    assert problem.path.startswith("plan.deployments.gpu-small.replicas") and problem.line
    incomplete = yaml.safe_load(stack.written.path.read_text())
    del incomplete["config"][f"{PROJECT}:plan"]["catalog"]["gpus"]["L40S"]
    broken.write_text(yaml.safe_dump(incomplete))
    with pytest.raises(InputError, match=r"catalog lacks gpus\.L40S"):
        read_stack_file(broken)


def test_a_deployment_the_stack_cannot_build_as_simulated_is_refused(
        example_stacks: dict[str, ExampleStack], tmp_path: Path) -> None:
    text = example_stacks[HYBRID].written.path.read_text()
    assert "router: least_outstanding" in text and "prefix_caching: vllm" in text
    broken = tmp_path / "Pulumi.broken.yaml"
    for change, why in ((("router: least_outstanding", "router: prefix_affinity"),
                         "cache-aware router"),
                        (("prefix_caching: vllm", "prefix_caching: per_slot"),
                         "llama.cpp's per-slot prompt cache")):
        broken.write_text(text.replace(*change, 1))
        with pytest.raises(InputError, match=why):
            read_stack_file(broken)


def test_stack_command_takes_the_fleets_image_of_the_simulated_release(tmp_path: Path) -> None:
    args = ["stack", str(ROOT / "examples" / "support-assistant.yaml"), "--stack", "prod",
            "--out", str(tmp_path), "--deployment", "gpu-fleet"]
    other = CliRunner().invoke(app, [*args, "--vllm-image", "vllm/vllm-openai:v0.32.0"])
    said = " ".join(other.output.split())
    assert other.exit_code == 2 and "runs vLLM 0.32.0" in said, other.output
    assert not (tmp_path / "Pulumi.prod.yaml").exists()
    mirror = "registry.local/vllm/vllm-openai:v0.33.0"
    same = CliRunner().invoke(app, [*args, "--vllm-image", mirror])
    assert same.exit_code == 0, same.output
    config, _ = read_stack_file(tmp_path / "Pulumi.prod.yaml")
    assert config.vllm_image == mirror and config.serving_image == mirror


def test_stack_command_prints_the_secrets_then_pulumi_up(tmp_path: Path) -> None:
    args = ["stack", str(ROOT / "examples" / "agent-workflow.yaml"), "--stack", "prod",
            "--out", str(tmp_path), "--aws-region", "us-east-1"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    lines = [line.strip() for line in first.output.splitlines()]
    said = " ".join(first.output.split())      # the console wraps at its width, not in words
    assert "wrote" in said and "deployment 'api' (cloud)" in said
    order = [next(i for i, line in enumerate(lines) if line.startswith(step)) for step in (
        "pulumi stack select prod --create", "pulumi config set --secret gatewayMasterKey",
        "pulumi config set --secret cloudApiKey", "pulumi preview --policy-pack",
        "pulumi up")]
    assert order == sorted(order)
    config, _ = read_stack_file(tmp_path / "Pulumi.prod.yaml")
    assert config.aws_region == "us-east-1" and config.kind == "cloud"
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and "unchanged" in second.output
    wrong = CliRunner().invoke(app, [*args, "--deployment", "nope"])
    assert wrong.exit_code == 2 and "unknown deployment 'nope'" in " ".join(wrong.output.split())
    for option, value in (("--namespace", "Not_A_Name"), ("--cluster-mode", "gke")):
        bad = CliRunner().invoke(app, [*args, option, value])
        assert bad.exit_code == 2 and option.strip("-").split("-")[0] in bad.output


def test_infeasible_deployment_is_written_with_a_warning(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["stack", str(ROOT / "examples" / "regulated-records.yaml"),
                                      "--deployment", "api", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning" in text and "not feasible" in text and "restricted" in text


def test_pulumi_yaml_declares_every_typed_setting() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["config"] == project_config_declarations()
    declared = project["config"]
    assert declared["clusterMode"]["default"] == "kubeconfig"
    assert declared["allowedNamespaces"]["type"] == "array"
    assert declared["gatewayMasterKey"]["secret"] is True
    assert "plan" not in declared   # an object: validated by the program, not by Pulumi


def test_a_loaded_example_round_trips_through_json(example_stacks: dict[str, ExampleStack],
                                                   ) -> None:
    """The stack file is plain YAML: nothing in it needs Python to read back."""
    for stack in example_stacks.values():
        data = yaml.safe_load(stack.written.path.read_text())
        assert json.loads(json.dumps(data)) == data
    assert load_scenario(ROOT / "examples" / "support-assistant.yaml").scenario.name


def test_what_pulumi_up_still_needs_is_said(bedrock_stack: WrittenStack, tmp_path: Path) -> None:
    scaling = ("the fleet's autoscaler reads", "a replica the autoscaler adds starts",
               "hybrid 'both' spills past spillover_wait_s")
    assert all(any(n.startswith(start) for n in bedrock_stack.notes) for start in scaling)
    budget, endpoint, identity = [n for n in bedrock_stack.notes
                                  if not n.startswith(scaling)]
    # the budget filters on the stack's tag, which Bedrock's token spend cannot carry
    assert budget.startswith("the AWS budget counts what carries the stack's tag; Bedrock's")
    # on an existing cluster the program can only add Bedrock's VPC endpoint in its VPC
    assert endpoint.startswith("no VPC endpoint for Bedrock is created without the "
                               "cluster's vpcId and subnetIds")
    assert identity == ("the gateway needs an AWS identity for Bedrock: set eksClusterName (an "
                        "EKS cluster with the Pod Identity agent) or oidcProviderArn")
    placed = bedrock_stack.config.model_copy(update={"vpc_id": "vpc-1",
                                                     "subnet_ids": ["subnet-a"]})
    assert not any("VPC endpoint" in note for note in setting_notes(placed))
    config = bedrock_stack.config.model_copy(update={"aws_region": "", "cluster_mode": "eks"})
    nodes = "clusterMode eks sizes the GPU node group"    # the next test's
    region, _, on_demand = [n for n in setting_notes(config)
                            if not n.startswith((*scaling, nodes))]
    assert region == ("the plan calls AWS Bedrock: set the region (--aws-region, or pulumi "
                      "config set awsRegion)")
    assert on_demand.startswith("clusterMode eks creates the GPU nodes of 'gpus' as on-demand "
                                "EC2 instances (g6e.2xlarge)")


def test_an_autoscaled_fleet_on_the_eks_cluster_the_stack_makes_is_told_nothing_adds_nodes(
        bedrock_stack: WrittenStack) -> None:
    """The simulated fleet scales 1 to 4 replicas; on the EKS cluster the stack creates its
    GPU node group is sized 1 to 4 nodes (one replica each), but no cluster autoscaler runs:
    the stack says that the replicas the HPA adds past the 2 starting nodes stay Pending,
    and what to install. Where the starting nodes hold every replica, or on a cluster of
    one's own, there is nothing to say."""
    eks = bedrock_stack.config.model_copy(update={"cluster_mode": "eks"})
    assert gpu_node_counts(eks) == ("g6e.2xlarge", 1, 2, 4)
    [note] = [n for n in setting_notes(eks) if "cluster autoscaler" in n]
    assert note.startswith("clusterMode eks sizes the GPU node group of 'gpus' 1 to 4 "
                           "g6e.2xlarge nodes and starts 2, but runs no cluster autoscaler: "
                           "replicas the HPA adds past the 2 those nodes hold stay Pending")
    assert "autoDiscovery.clusterName=llmplan-<stack>" in note and "awsRegion=us-east-1" in note
    assert not any("cluster autoscaler" in n for n in setting_notes(bedrock_stack.config))
    # eight L40S a node hold every replica the HPA may run: the node group never changes
    big = eks.model_copy(update={"eks_gpu_instance_type": "g6e.48xlarge"})
    assert gpu_node_counts(big)[1:] == (1, 1, 1)
    assert not any("cluster autoscaler" in n for n in setting_notes(big))


def test_an_api_stack_says_the_gateway_refuses_restricted_tasks(tmp_path: Path) -> None:
    """An API plan with a restricted task is infeasible, and can still be written: the
    gateway then has no route for that task, and the stack says so."""
    from infra_scenarios import simulate_text, stack_of

    written = stack_of(simulate_text("""
        name: restricted-api
        duration: 60
        traffic: {kind: poisson, rate_per_s: 1}
        tasks:
          - {name: chat, prompt_tokens: {kind: fixed, tokens: 100},
             output_tokens: {kind: fixed, tokens: 20}}
          - {name: secret, prompt_tokens: {kind: fixed, tokens: 100},
             output_tokens: {kind: fixed, tokens: 20}, sensitivity: restricted}
        deployments:
          api: {kind: cloud, model: gpt-4o-mini}
        """), "api", tmp_path)
    assert not written.candidate.feasible
    assert any("no route for secret, and refuses those requests" in n for n in written.notes)


def test_a_bad_setting_names_its_option_or_the_file_it_was_kept_from(tmp_path: Path) -> None:
    scenario = str(ROOT / "examples" / "bulk-extraction.yaml")
    result = CliRunner().invoke(app, ["stack", scenario, "--stack", "x", "--out", str(tmp_path),
                                      "--cluster-mode", "eks", "--aws-region", "mars-1",
                                      "--eks-gpu-instance-type", "foo bar!!"])
    assert result.exit_code == 2
    assert "--aws-region: 'mars-1' is no AWS region" in result.output
    assert "--eks-gpu-instance-type: 'foo bar!!' is no EC2 instance type" in result.output
    assert not (tmp_path / "Pulumi.x.yaml").exists()
    # a setting the file kept: its key there, in the file
    assert CliRunner().invoke(app, ["stack", scenario, "--stack", "x",
                                    "--out", str(tmp_path)]).exit_code == 0
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(path.read_text().replace("llm-deploy-planner:clusterMode: kubeconfig",
                                             "llm-deploy-planner:clusterMode: gke"))
    again = CliRunner().invoke(app, ["stack", scenario, "--stack", "x", "--out", str(tmp_path)])
    assert again.exit_code == 2
    said = " ".join(again.output.split())
    assert "Pulumi.x.yaml: llm-deploy-planner:clusterMode:" in said and "(got 'gke')" in said


def test_the_api_latency_alarm_counts_what_a_hybrid_spills_to_it(
        example_stacks: dict[str, ExampleStack]) -> None:
    """retail-assistant routes no task to Bedrock outright: its product questions reach it
    by spilling at the peak. The latency alarm's answer length is of those requests (the
    simulation's count per task), not None for want of a cloud route."""
    from llmplan.provision.router_config import cloud_output_tokens, task_routes
    plan = example_stacks["retail-assistant"].written.config.plan
    assert not any(r.side == "cloud" for r in task_routes(plan))
    sent = plan.simulated.cloud_requests_by_task
    assert sent and all(n >= 0 for n in sent.values())
    by_task = {t.name: t.mean_output_tokens for t in plan.tasks}
    expected = sum(n * by_task[t] for t, n in sent.items()) / sum(sent.values())
    assert cloud_output_tokens(plan) == pytest.approx(expected)


def test_credential_shaped_text_from_the_scenario_is_never_written(tmp_path: Path) -> None:
    """A key pasted where it does not belong (a cloud deployment's region here) would
    reach the stack file as plain text: the stack is not written, and the error names the
    setting, never the key."""
    key = "sk-proj-" + "Q" * 24
    text = (ROOT / "examples" / "agent-workflow.yaml").read_text()
    scenario = tmp_path / "leaky.yaml"
    scenario.write_text(text.replace("kind: cloud", f"kind: cloud\n    region: {key}", 1))
    out = tmp_path / "stack"
    run = CliRunner().invoke(app, ["stack", str(scenario), "--stack", "prod", "--out",
                                   str(out), "--aws-region", "us-east-1",
                                   "--deployment", "api"])
    assert run.exit_code != 0 and "stack file not written" in run.output
    assert "region" in run.output and key not in run.output
    assert not (out / "Pulumi.prod.yaml").exists()


def test_a_rewrite_the_disk_refuses_leaves_the_edited_stack_file_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack file was rewritten in place: a full disk (or a Ctrl-C) mid-write left the
    user's edited Pulumi.<stack>.yaml cut short, and the command ended in a traceback."""
    args = ["stack", str(ROOT / "examples" / "agent-workflow.yaml"), "--stack", "prod",
            "--out", str(tmp_path)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    path = tmp_path / "Pulumi.prod.yaml"
    edited = path.read_text().replace(f"{PROJECT}:namespace: llm", f"{PROJECT}:namespace: mine")
    assert edited != path.read_text()
    path.write_text(edited)
    path.chmod(0o600)
    real_write = Path.write_text

    def full_disk(self: Path, data: str, *args: object, **kwargs: object) -> int:
        real_write(self, data[:len(data) // 2], encoding="utf-8")
        raise OSError(28, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full_disk)
    refused = CliRunner().invoke(app, [*args, "--namespace", "other"])
    monkeypatch.undo()
    assert refused.exit_code == 2, refused.output
    said = " ".join(refused.output.split())
    assert "No space left on device" in said and "Traceback" not in said
    assert path.read_text() == edited
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pulumi.prod.yaml"]
    # a rewrite that succeeds keeps the file's permissions (it may hold encrypted secrets)
    again = CliRunner().invoke(app, [*args, "--namespace", "other"])
    assert again.exit_code == 0, again.output
    assert f"{PROJECT}:namespace: other" in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_rewrite_that_would_drop_the_users_comments_keeps_the_file_as_it_was(
        tmp_path: Path) -> None:
    """The rewrite keeps every value but no comment (PyYAML reads none): a file the user
    commented is kept beside it as .bak, and the command says so; a file without comments
    of the user's leaves no .bak behind."""
    args = ["stack", str(ROOT / "examples" / "agent-workflow.yaml"), "--stack", "prod",
            "--out", str(tmp_path)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    path = tmp_path / "Pulumi.prod.yaml"
    plain = CliRunner().invoke(app, [*args, "--namespace", "other"])
    assert plain.exit_code == 0, plain.output
    assert not path.with_name("Pulumi.prod.yaml.bak").exists()
    edited = path.read_text().replace(
        f"  {PROJECT}:namespace: other",
        f"  # ours: the platform team's namespace\n  {PROJECT}:namespace: other  # ticket 42")
    assert edited != path.read_text()
    path.write_text(edited)
    again = CliRunner().invoke(app, [*args, "--namespace", "third"])
    assert again.exit_code == 0, again.output
    said = " ".join(again.output.split())
    assert "2 comments of your own" in said and "Pulumi.prod.yaml.bak" in said, said
    assert path.with_name("Pulumi.prod.yaml.bak").read_text() == edited
    assert f"{PROJECT}:namespace: third" in path.read_text()
