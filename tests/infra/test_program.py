"""The Pulumi program under mocks: the expected resources for each kind of stack, wired to
each other, secrets only where secrets belong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import HYBRID, PLANTED
from pulumi_harness import ACCOUNT, ProgramRun, run_program, stack_values

from llmplan.provision.stack import WrittenStack

SECRET_SIG = "4dabf18193072939515e22adb298388d"     # pulumi's marker of a secret value
SECRET_STORES = {"kubernetes:core/v1:Secret", "aws:secretsmanager/secretVersion:SecretVersion"}


def _types(run: ProgramRun) -> list[str]:
    return sorted(r.typ for r in run.mocks.resources)


@pytest.mark.parametrize(("example", "serving", "aws"), [
    ("support-assistant", True, False), ("bulk-extraction", True, False),
    ("regulated-records", True, False), ("agent-workflow", False, False),
    (HYBRID, True, False), ("bedrock-eks", True, True), ("retail-assistant", True, True)])
def test_each_stack_has_its_resources(program_runs: dict[str, ProgramRun], example: str,
                                      serving: bool, aws: bool) -> None:
    run = program_runs[example]
    types = _types(run)
    assert types.count("kubernetes:apps/v1:StatefulSet") == int(serving)
    assert types.count("kubernetes:apps/v1:Deployment") == 1
    assert types.count("kubernetes:networking.k8s.io/v1:NetworkPolicy") == 1 + int(serving)
    assert types.count("kubernetes:policy/v1:PodDisruptionBudget") == 1 + int(serving)
    assert types.count("kubernetes:core/v1:Namespace") == 1
    assert ("llmplan:infra:GpuServing" in types) == serving
    assert any(t.startswith("aws:") for t in types) == aws
    assert run.exports["gateway"] == "http://llm-gateway.llm.svc:4000/v1"
    if serving:
        assert run.exports["serving"].endswith(".llm.svc:8000/v1")
        # the hub token reaches only its Secret
        assert types.count("kubernetes:core/v1:Secret") == 2


@pytest.mark.parametrize("example", ["regulated-records", "agent-workflow", HYBRID,
                                     "bedrock-eks", "retail-assistant"])
def test_secrets_reach_only_secret_stores_and_stay_secret(program_runs: dict[str, ProgramRun],
                                                          example: str) -> None:
    run = program_runs[example]
    for resource in run.mocks.resources:
        text = json.dumps(resource.inputs, default=str)
        if resource.typ in SECRET_STORES:
            assert SECRET_SIG in text, resource.name      # encrypted in Pulumi's state
        else:
            assert not [v for v in PLANTED.values() if v in text], resource.name
    gateway = run.mocks.named("gateway-secret").inputs["stringData"]
    assert gateway[SECRET_SIG] and gateway["value"]["master-key"] == PLANTED["gatewayMasterKey"]
    assert ("cloud-api-key" in gateway["value"]) == (example in {"agent-workflow",
                                                                 HYBRID})


def test_the_hybrid_gateway_routes_to_the_fleet_it_deploys(
        program_runs: dict[str, ProgramRun]) -> None:
    run = program_runs[HYBRID]
    config = run.mocks.named("gateway-config-map-llm-gateway").inputs["data"]["config.yaml"]
    assert "api_base: http://127.0.0.1:8001/v1" in config        # the balancer beside it
    balancer = run.mocks.named("gateway-config-map-llm-gateway").inputs["data"]["nginx.conf"]
    assert "server gpu-small-pods.llm.svc.cluster.local:8000 resolve;" in balancer
    statefulset = run.mocks.named("serving-stateful-set-gpu-small").inputs
    metadata = statefulset["metadata"]
    assert {k: metadata[k] for k in ("name", "namespace", "labels")} == {
        "name": "gpu-small", "namespace": "llm",
        "labels": statefulset["spec"]["selector"]["matchLabels"]}
    assert int(metadata["annotations"]["pulumi.com/timeoutSeconds"]) > 10 * 60


def test_the_recommended_bedrock_hybrid_serves_and_routes_what_was_simulated(
        program_runs: dict[str, ProgramRun]) -> None:
    run = program_runs["retail-assistant"]
    config = run.mocks.named("gateway-config-map-llm-gateway").inputs["data"]["config.yaml"]
    assert "api_base: http://127.0.0.1:8001/v1" in config
    balancer = run.mocks.named("gateway-config-map-llm-gateway").inputs["data"]["nginx.conf"]
    assert "server gpu-base-pods.llm.svc.cluster.local:8000 resolve;" in balancer
    assert "bedrock/us.meta.llama3-3-70b-instruct-v1:0" in config
    statefulset = run.mocks.named("serving-stateful-set-gpu-base").inputs
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert statefulset["spec"]["replicas"] == 1
    assert "--max-num-seqs" in container["args"] and "24" in container["args"]
    types = _types(run)
    assert "aws:eks/podIdentityAssociation:PodIdentityAssociation" in types
    assert "aws:eks/cluster:Cluster" not in types          # the cluster exists already


def test_eks_cluster_with_gpu_nodes_device_plugin_and_storage(
        program_runs: dict[str, ProgramRun]) -> None:
    run = program_runs["bedrock-eks"]
    cluster = run.mocks.named("cluster-eks")
    assert cluster.typ == "eks:index:Cluster"
    # the default VPC's, but for us-east-1e's (use1-az3), where EKS refuses a cluster
    assert cluster.inputs["subnetIds"] == ["subnet-a", "subnet-b"]
    gpu = run.mocks.named("cluster-gpu").inputs
    # a g6e.xlarge carries the L40S but not the pod's 6 cores
    assert gpu["instanceTypes"] == ["g6e.2xlarge"] and gpu["amiType"] == "AL2023_x86_64_NVIDIA"
    assert gpu["labels"]["nvidia.com/gpu.product"] == "NVIDIA-L40S"
    assert gpu["taints"] == [{"key": "nvidia.com/gpu", "value": "true",
                              "effect": "NO_SCHEDULE"}]
    assert gpu["scalingConfig"] == {"minSize": 1, "desiredSize": 2, "maxSize": 4}
    # a node per gateway pod (one 1.5-CPU pod fits an m6i.large) and one for the rolling
    # update's surge pod, which no cluster autoscaler would make room for
    system = run.mocks.named("cluster-system").inputs
    gateway = run.mocks.named("gateway-deployment-llm-gateway").inputs
    replicas = gateway["spec"]["replicas"]
    assert gateway["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 1
    assert system["instanceTypes"] == ["m6i.large"]
    assert system["scalingConfig"]["desiredSize"] == system["scalingConfig"]["minSize"] \
        == replicas + 1
    pod = gateway["spec"]["template"]["spec"]
    [litellm] = pod["containers"]
    cpu = float(litellm["resources"]["requests"]["cpu"]) + sum(
        float(c["resources"]["requests"]["cpu"].rstrip("m")) / 1e3 for c in pod["initContainers"])
    assert 1.93 / 2 < cpu <= 1.93 - 0.2      # one a node, beside the daemonsets
    plugin = run.mocks.named("cluster-device-plugin").inputs
    assert plugin["metadata"]["namespace"] == "kube-system"
    assert plugin["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "nvcr.io/nvidia/k8s-device-plugin:v")
    storage = run.mocks.named("cluster-storage-class").inputs
    assert storage["provisioner"] == "ebs.csi.aws.com"
    # gp3 at its 1,000 MiB/s (and the 4,000 IOPS that takes), not its 125 MiB/s baseline
    assert storage["parameters"] == {"type": "gp3", "encrypted": "true", "throughput": "1000",
                                     "iops": "4000", "tagSpecification_1": "llmplan-stack=test"}
    # the budget filters on the stack's tag: the nodes and their volumes carry it (a managed
    # node group's own tags reach neither), with the GPU nodes' 200 GiB root volume
    for group in ("cluster-gpu", "cluster-system"):
        template_ref = run.mocks.named(group).inputs["launchTemplate"]
        [template] = [r for r in run.mocks.of_type("aws:ec2/launchTemplate:LaunchTemplate")
                      if template_ref["id"] == f"{r.name}-id"]
        kinds = {t["resourceType"]: t["tags"] for t in template.inputs["tagSpecifications"]}
        assert kinds["instance"] == kinds["volume"] == {"llmplan-stack": "test"}
        assert "diskSize" not in run.mocks.named(group).inputs
    gpu_template = next(r for r in run.mocks.of_type("aws:ec2/launchTemplate:LaunchTemplate")
                        if r.name == "cluster-gpu-template")
    assert gpu_template.inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 200
    statefulset = run.mocks.named("serving-stateful-set-gpus").inputs
    claim = statefulset["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "llmplan-gp3"
    addons = {r.inputs["addonName"] for r in run.mocks.of_type("aws:eks/addon:Addon")}
    assert addons == {"eks-pod-identity-agent", "aws-ebs-csi-driver"}


def test_bedrock_access_is_the_planned_model_only(program_runs: dict[str, ProgramRun]) -> None:
    run = program_runs["bedrock-eks"]
    policy = json.loads(run.mocks.named("cloud-bedrock-invoke").inputs["policy"])
    # the US profile from us-east-1, and the model in its destinations through it only
    profile, models = policy["Statement"]
    assert profile["Action"] == models["Action"] == ["bedrock:InvokeModel",
                                                     "bedrock:InvokeModelWithResponseStream"]
    arn = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.meta.llama3-1-8b-instruct-v1:0"
    assert profile["Resource"] == [arn]
    assert models["Resource"] == [
        "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-1-8b-instruct-v1:0",
        "arn:aws:bedrock:us-east-2::foundation-model/meta.llama3-1-8b-instruct-v1:0",
        "arn:aws:bedrock:us-west-2::foundation-model/meta.llama3-1-8b-instruct-v1:0"]
    assert models["Condition"] == {"StringEquals": {"bedrock:InferenceProfileArn": arn}}
    trust = json.loads(run.mocks.named("cloud-bedrock-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    identity = run.mocks.named("cloud-bedrock-identity").inputs
    assert (identity["namespace"], identity["serviceAccount"]) == ("llm", "llm-gateway")
    assert identity["clusterName"] == "llmplan-test"
    endpoint = run.mocks.named("cloud-bedrock-runtime").inputs
    assert endpoint["serviceName"] == "com.amazonaws.us-east-1.bedrock-runtime"
    assert endpoint["vpcEndpointType"] == "Interface" and endpoint["privateDnsEnabled"] is True
    assert json.loads(endpoint["policy"])["Statement"][0]["Resource"] == [
        *profile["Resource"], *models["Resource"]]
    group = run.mocks.named("cloud-bedrock-endpoint").inputs
    assert group["ingress"][0]["cidrBlocks"] == ["172.31.0.0/16"]


def test_alarms_and_budget_follow_the_plan(program_runs: dict[str, ProgramRun],
                                           bedrock_stack: WrittenStack) -> None:
    run = program_runs["bedrock-eks"]
    throttles = run.mocks.named("cloud-bedrock-throttles").inputs
    assert (throttles["namespace"], throttles["metricName"]) == ("AWS/Bedrock",
                                                                 "InvocationThrottles")
    assert throttles["dimensions"] == {"ModelId": "us.meta.llama3-1-8b-instruct-v1:0"}
    latency = run.mocks.named("cloud-bedrock-latency").inputs
    # SLO: TTFT 2,000 ms + TPOT 100 ms x (100 output tokens - 1) = 11,900 ms
    assert latency["extendedStatistic"] == "p95" and latency["threshold"] == 11900.0
    budget = run.mocks.named("cloud-budget").inputs
    assert budget["limitAmount"] == str(bedrock_stack.config.monthly_budget_usd)
    assert (budget["limitUnit"], budget["timeUnit"]) == ("USD", "MONTHLY")
    assert budget["costFilters"] == [{"name": "TagKeyValue",
                                      "values": ["user:llmplan-stack$test"]}]


def test_bedrock_on_another_cluster_federates_the_gateway_account(
        bedrock_stack: WrittenStack) -> None:
    oidc = "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/abc"
    values = {**stack_values(bedrock_stack.path), "oidcProviderArn": oidc, "vpcId": "vpc-1",
              "subnetIds": ["subnet-1"]}
    run = run_program(values, {"gatewayMasterKey": "mk"})
    trust = json.loads(run.mocks.named("cloud-bedrock-role").inputs["assumeRolePolicy"])
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert condition["oidc.example.com/abc:sub"] == "system:serviceaccount:llm:llm-gateway"
    # no IRSA webhook outside EKS: the pod carries its own token for STS and the variables
    # boto3's credential chain reads (AssumeRoleWithWebIdentity)
    pod = run.mocks.named("gateway-deployment-llm-gateway").inputs["spec"]["template"]["spec"]
    [litellm] = pod["containers"]
    env = {e["name"]: e.get("value") for e in litellm["env"]}
    assert env["AWS_ROLE_ARN"].startswith("arn:")
    token_file = env["AWS_WEB_IDENTITY_TOKEN_FILE"]
    [mount] = [m for m in litellm["volumeMounts"] if token_file.startswith(m["mountPath"] + "/")]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    [source] = volume["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == trust["Statement"][0]["Condition"][
        "StringEquals"]["oidc.example.com/abc:aud"]
    assert token_file.endswith("/" + source["serviceAccountToken"]["path"])
    assert not run.mocks.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert run.mocks.named("cloud-bedrock-runtime").inputs["subnetIds"] == ["subnet-1"]
    with pytest.raises(ValueError, match="oidcProviderArn"):
        run_program(stack_values(bedrock_stack.path), {"gatewayMasterKey": "mk"})


def test_a_provider_key_goes_to_secrets_manager_on_aws(tmp_path: Path,
                                                       example_stacks: dict[str, Any]) -> None:
    values = {**stack_values(example_stacks["agent-workflow"].written.path),
              "awsRegion": "eu-west-1"}
    run = run_program(values, {"gatewayMasterKey": "mk", "cloudApiKey": PLANTED["cloudApiKey"]})
    secret = run.mocks.named("cloud-cloud-api-key").inputs
    assert secret["name"] == "llmplan/test/cloud-api-key"
    version = run.mocks.named("cloud-cloud-api-key-value").inputs["secretString"]
    assert version[SECRET_SIG] and version["value"] == PLANTED["cloudApiKey"]
    assert run.mocks.of_type("aws:budgets/budget:Budget")
    with pytest.raises(Exception, match="cloudApiKey"):
        run_program(stack_values(example_stacks["agent-workflow"].written.path),
                    {"gatewayMasterKey": "mk"})
