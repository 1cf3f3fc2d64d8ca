"""Rendered Kubernetes manifests validate against the official schemas, and mean the plan."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from conftest import EXAMPLES, ExampleStack
from helpers import chat_scenario
from infra_scenarios import simulate_text, stack_of
from pydantic import ValidationError

from llmplan.provision.gateway_manifests import gateway_manifests
from llmplan.provision.images import LITELLM_IMAGE, VLLM_IMAGE, VLLM_ROCM_IMAGE, is_pinned
from llmplan.provision.manifests import (
    device_plugin_manifest,
    k8s_name,
    namespace_manifest,
    network_policy,
)
from llmplan.provision.serving_manifests import (
    pods_service_name,
    scale_rule,
    serving_manifests,
)
from llmplan.provision.stack import WrittenStack, setting_notes, write_stack
from llmplan.provision.stack_config import StackConfig
from llmplan.results.decision import Result
from llmplan.scenario import LoadedScenario

K8S = kubernetes_validate.latest_version()
#: a Service's name as the API server takes it (ValidateServiceName: a DNS-1035 label, a
#: letter first), which the schemas do not check
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def _all(config: StackConfig) -> list[dict[str, Any]]:
    manifests = [namespace_manifest(config), device_plugin_manifest(),
                 *gateway_manifests(config)]
    return manifests + (serving_manifests(config) if config.plan.local else [])


def _by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(m for m in manifests if m["kind"] == kind)


@pytest.mark.parametrize("example", [*EXAMPLES, "bedrock-hybrid"])
def test_every_manifest_is_valid_kubernetes(example_stacks: dict[str, ExampleStack],
                                            bedrock_stack: WrittenStack, example: str) -> None:
    config = bedrock_stack.config if example == "bedrock-hybrid" else \
        example_stacks[example].written.config
    manifests = _all(config)
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S, strict=True)
    kinds = sorted(m["kind"] for m in manifests)
    assert all(DNS_1035.match(m["metadata"]["name"]) for m in manifests
               if m["kind"] == "Service")
    expected_serving = 1 if config.plan.local else 0
    assert kinds.count("StatefulSet") == expected_serving
    assert kinds.count("NetworkPolicy") == 1 + expected_serving
    assert kinds.count("Deployment") == 1          # the gateway, in every stack


def test_a_fleet_named_with_a_digit_first_gets_names_the_api_server_takes(
        tmp_path: Path) -> None:
    """A deployment named `8b-fleet` is a fine scenario name, but not a Service's: the
    fleet takes `vllm-` in front, and everything that reaches it (the balancer, the
    autoscaler's rule, the StatefulSet's governing Service) names it so."""
    simulated = simulate_text(chat_scenario("digit-first", """
  8b-fleet: {gpu: L40S, model: Llama-3.1-8B, replicas: 2,
             autoscaling: {min_replicas: 1, max_replicas: 3}}
"""))
    config = stack_of(simulated, "8b-fleet", tmp_path).config
    manifests = _all(config)
    services = [m["metadata"]["name"] for m in manifests if m["kind"] == "Service"]
    assert "vllm-8b-fleet" in services and "vllm-8b-fleet-pods" in services
    assert all(DNS_1035.match(name) for name in services), services
    statefulset = _by_kind(manifests, "StatefulSet")
    assert statefulset["metadata"]["name"] == "vllm-8b-fleet"
    assert statefulset["spec"]["serviceName"] == pods_service_name(config) in services
    nginx = _by_kind(gateway_manifests(config), "ConfigMap")["data"]["nginx.conf"]
    assert f"server vllm-8b-fleet-pods.{config.namespace}.svc.cluster.local:" in nginx
    rule = scale_rule(config)
    assert rule is not None and 'pod=~"vllm-8b-fleet-[0-9]+"' in rule["metricsQuery"]
    hpa = _by_kind(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "vllm-8b-fleet"


def test_a_broken_manifest_is_caught_by_the_schema(bedrock_stack: WrittenStack) -> None:
    statefulset = _by_kind(serving_manifests(bedrock_stack.config), "StatefulSet")
    statefulset["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, K8S, strict=True)
    hpa = _by_kind(serving_manifests(bedrock_stack.config), "HorizontalPodAutoscaler")
    hpa["spec"]["maxReplicas"] = "four"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, K8S, strict=True)


def test_the_fleet_runs_the_simulated_engine_hardened(bedrock_stack: WrittenStack) -> None:
    manifests = serving_manifests(bedrock_stack.config)
    statefulset = _by_kind(manifests, "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    flag = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    assert statefulset["spec"]["replicas"] == 2 and container["image"] == VLLM_IMAGE
    assert flag["--model"] == "meta-llama/Llama-3.1-8B-Instruct"
    # 2048 batched tokens: what vLLM (and so the simulation) picks on an L40S when unset
    assert (flag["--max-num-seqs"], flag["--max-num-batched-tokens"]) == ("64", "2048")
    assert (flag["--gpu-memory-utilization"], flag["--block-size"]) == ("0.92", "16")  # v0.21+
    assert flag["--quantization"] == "fp8" and "--enable-chunked-prefill" in args
    assert "--enable-prefix-caching" in args      # vLLM's default, as simulated
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["limits"] == container["resources"]["requests"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L40S",
                                   "kubernetes.io/arch": "amd64"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # weights on a persistent volume per replica, the hub token from a Secret if one is set
    claim = statefulset["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["weights"] == "/models" and "emptyDir" not in str(claim)
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_HOME"]["value"].startswith("/models")
    token = env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": "gpus-hub-token", "key": "token", "optional": True}
    # the non-root uid has no passwd entry in vLLM's image: torch's getpass.getuser()
    # must find a login name in the environment or the server dies on import
    assert env["USER"]["value"] and env["LOGNAME"]["value"] == env["USER"]["value"]
    # /health of a saturated server may take seconds: not Kubernetes' 1 s default
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["timeoutSeconds"] >= 5


def test_the_simulated_autoscaler_becomes_an_hpa_on_its_own_decision(
        bedrock_stack: WrittenStack) -> None:
    """The HPA reads the simulated scaler's decision (add when more than 2.5 requests wait
    per pod, remove when fewer than 1 is in flight) as a ratio to the replicas, from an
    external rule `llmplan stack` writes beside the stack file: an HPA on waiting requests
    alone would scale in whenever the queue is empty, which the simulation never did."""
    import yaml

    config = bedrock_stack.config
    hpa = _by_kind(serving_manifests(config), "HorizontalPodAutoscaler")
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                      "name": "gpus"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 4)
    metric = spec["metrics"][0]["external"]
    assert metric["metric"]["name"] == "llmplan_scale_ratio_gpus"
    assert metric["target"] == {"type": "Value", "value": "1"}
    assert spec["behavior"]["scaleUp"]["policies"] == [{"type": "Pods", "value": 1,
                                                        "periodSeconds": 20}]
    assert spec["behavior"]["scaleDown"]["policies"][0]["periodSeconds"] == 300
    rule = scale_rule(config)
    assert rule is not None and rule["name"]["as"] == "llmplan_scale_ratio_gpus"
    query = rule["metricsQuery"]
    assert "> bool 2.5)" in query and "< bool 1.0)" in query
    assert f'namespace="{config.namespace}",pod=~"gpus-[0-9]+"' in query
    written = bedrock_stack.path.with_name(
        f"prometheus-adapter.{bedrock_stack.path.stem.removeprefix('Pulumi.')}.yaml")
    assert yaml.safe_load(written.read_text()) == {"externalRules": [rule]}
    assert any(written.name in note for note in bedrock_stack.notes)


def test_only_the_gateway_and_named_namespaces_reach_the_fleet(
        example_stacks: dict[str, ExampleStack]) -> None:
    config = example_stacks["regulated-records"].written.config
    policy = _by_kind(serving_manifests(config), "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "on-prem"
    peers = policy["spec"]["ingress"][0]["from"]
    assert peers[0] == {"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "llm-gateway", "app.kubernetes.io/component": "llm-gateway",
        "app.kubernetes.io/part-of": "llm-deploy-planner"}}}
    assert peers[1]["namespaceSelector"]["matchExpressions"][0]["values"] == ["monitoring"]
    # nobody named: the gateway admits no one (an empty `from` would admit everyone)
    closed = config.model_copy(update={"allowed_namespaces": []})
    gateway = network_policy(closed, "llm-gateway", {"a": "b"}, 4000, from_gateway=False)
    assert gateway["spec"]["ingress"] == []
    kubernetes_validate.validate(gateway, K8S, strict=True)


def test_names_and_images() -> None:
    assert k8s_name("H100x2_Llama.8B") == "h100x2-llama-8b" and k8s_name("__") == "llm"
    assert is_pinned(VLLM_IMAGE) and is_pinned(VLLM_ROCM_IMAGE) and is_pinned(LITELLM_IMAGE)
    assert is_pinned("nvcr.io/nvidia/k8s-device-plugin:v0.19.1")
    assert is_pinned("registry:5000/vllm@sha256:" + "a" * 64)
    for moving in ("vllm/vllm-openai", "vllm/vllm-openai:latest", "registry:5000/vllm",
                   "ghcr.io/berriai/litellm:main-latest", "ghcr.io/berriai/litellm:main-stable"):
        assert not is_pinned(moving), moving


def test_the_retail_hybrid_serves_with_the_engine_flags_it_was_simulated_with(
        example_stacks: dict[str, ExampleStack]) -> None:
    """Two H100s per replica, FP8 weights, at most 24 sequences in flight: what the plan ran."""
    config = example_stacks["retail-assistant"].written.config
    statefulset = _by_kind(serving_manifests(config), "StatefulSet")
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = dict(zip(args[::2], args[1::2], strict=False))
    joined = " ".join(args)
    assert "--tensor-parallel-size 2" in joined, joined
    assert "--max-num-seqs 24" in joined, joined
    assert statefulset["spec"]["replicas"] == 1
    limits = statefulset["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert str(limits["nvidia.com/gpu"]) == "2"
    assert flags  # the args are flag/value pairs


def test_extra_api_servers_are_passed_to_vllm_with_a_core_each(
        example_stacks: dict[str, ExampleStack]) -> None:
    """The simulated API-server stage scales with engine.api_server_count; the pod runs that
    many (--api-server-count) and gets a CPU core per extra process."""
    config = example_stacks["retail-assistant"].written.config
    name, dep = config.plan.local  # type: ignore[misc]
    more = dep.model_copy(update={"engine": dep.engine.model_copy(
        update={"api_server_count": 3})})
    plan = config.plan.model_copy(update={"deployments": {**config.plan.deployments,
                                                          name: more}})
    scaled = config.model_copy(update={"plan": plan})

    def container(c: object) -> dict:  # type: ignore[type-arg]
        statefulset = _by_kind(serving_manifests(c), "StatefulSet")  # type: ignore[arg-type]
        return statefulset["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]

    before, after = container(config), container(scaled)
    assert "--api-server-count" not in before["args"]
    assert " ".join(after["args"]).endswith("--api-server-count 3")
    cores = [int(str(c["resources"]["requests"]["cpu"]).rstrip("m") or 0)
             for c in (before, after)]
    assert cores[1] == cores[0] + 2, cores


def test_an_amd_fleet_runs_the_rocm_image_on_amd_gpu_nodes(
        formats: tuple[LoadedScenario, Result], tmp_path: Path) -> None:
    """MI300X replicas ask the AMD device plugin for `amd.com/gpu`, land on nodes its labeller
    marks `amd.com/gpu.product-name=AMD_Instinct_MI300X_OAM` (ROCm/k8s-device-plugin docs),
    and run vLLM's ROCm build of the same release; nothing NVIDIA is left in the pod."""
    loaded, result = formats
    config = write_stack(tmp_path / "Pulumi.amd.yaml", loaded, result, "mi300x", {}).config
    manifests = _all(config)
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S, strict=True)
    statefulset = _by_kind(manifests, "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == VLLM_ROCM_IMAGE == "vllm/vllm-openai-rocm:v0.33.0"
    assert container["resources"]["limits"]["amd.com/gpu"] == "2"
    assert pod["nodeSelector"] == {"amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM",
                                   "kubernetes.io/arch": "amd64"}
    assert pod["tolerations"] == [{"key": "amd.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule"}]
    assert "nvidia" not in json.dumps(statefulset)
    assert any("AMD GPU device plugin" in note for note in setting_notes(config))
    # an EKS cluster llmplan creates has NVIDIA node groups only
    with pytest.raises(ValidationError, match="the plan's GPU is an AMD one"):
        StackConfig.model_validate({**config.model_dump(by_alias=True), "clusterMode": "eks"})


def test_the_amd_fleet_under_the_pulumi_program(formats: tuple[LoadedScenario, Result],
                                                tmp_path: Path) -> None:
    from pulumi_harness import run_program, stack_values

    loaded, result = formats
    written = write_stack(tmp_path / "Pulumi.amd.yaml", loaded, result, "mi300x", {})
    run = run_program(stack_values(written.path), {"gatewayMasterKey": "mk-test-master-key"})
    statefulset = run.mocks.of_type("kubernetes:apps/v1:StatefulSet")[0].inputs
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == VLLM_ROCM_IMAGE
    assert pod["containers"][0]["resources"]["requests"]["amd.com/gpu"] == "2"
    assert statefulset["spec"]["replicas"] == 2


def test_nvidia_fleets_select_the_catalog_gpu_product_label(
        formats: tuple[LoadedScenario, Result], tmp_path: Path) -> None:
    """GPU Feature Discovery labels a B200 node `NVIDIA-B200` (the catalog's
    k8s_product_label), not with llmplan's id `B200`."""
    loaded, result = formats
    config = write_stack(tmp_path / "Pulumi.b200.yaml", loaded, result, "qwen-nvfp4", {}).config
    pod = _by_kind(serving_manifests(config), "StatefulSet")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-B200",
                                   "kubernetes.io/arch": "amd64"}
    assert pod["containers"][0]["image"] == VLLM_IMAGE


def test_a_gateway_pod_rolled_or_scaled_in_finishes_its_requests(
        bedrock_stack: WrittenStack) -> None:
    """A terminating pod first waits for the Service to stop sending it requests, then gets
    SIGTERM (uvicorn finishes what it has) and as long as the longest request it may hold, a
    local one, before it is killed: Kubernetes' 30 s default cut every long answer."""
    from llmplan.provision.router_config import LOCAL_TIMEOUT_S
    gateway = _by_kind(gateway_manifests(bedrock_stack.config), "Deployment")
    pod = gateway["spec"]["template"]["spec"]
    [litellm] = pod["containers"]
    wait_s = litellm["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert wait_s > 0
    assert pod["terminationGracePeriodSeconds"] > wait_s + LOCAL_TIMEOUT_S
    # a hybrid's API request may spend its attempts, then fall back to a local answer
    cloud = bedrock_stack.config.plan.cloud
    assert cloud is not None
    retry = cloud[1].retry
    assert pod["terminationGracePeriodSeconds"] > wait_s + LOCAL_TIMEOUT_S + (
        retry.max_retries + 1) * retry.request_timeout_s
    # the fleet's pods leave the endpoints before vLLM stops taking requests, then drain
    fleet = _by_kind(serving_manifests(bedrock_stack.config), "StatefulSet")
    spec = fleet["spec"]["template"]["spec"]
    [vllm] = spec["containers"]
    settle_s = vllm["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > settle_s + 600
