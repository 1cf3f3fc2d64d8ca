"""The policy pack holds on every stack the program builds, and catches one bad resource per
rule. Policies are plain functions, called here on the resources the mocks recorded (built
into the same argument objects the policy analyzer hands them, secrets unwrapped as it does)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import HYBRID
from pulumi_harness import ProgramRun
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)
from pulumi_policy.deserialize import deserialize_properties

from llmplan.provision.policies import (
    RESOURCE_RULES,
    images_pinned,
    network_policy_per_namespace,
    no_iam_wildcards,
    no_plaintext_secrets,
    pods_non_root_with_limits,
    policies,
)

OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _args(typ: str, name: str, props: dict[str, Any]) -> ResourceValidationArgs:
    return ResourceValidationArgs(typ, deserialize_properties(props), f"urn:{typ}::{name}", name,
                                  OPTIONS, None)


def _stack(resources: list[tuple[str, str, dict[str, Any]]]) -> StackValidationArgs:
    return StackValidationArgs([PolicyResource(typ, deserialize_properties(props),
                                               f"urn:{typ}::{name}", name, OPTIONS, None, None,
                                               [], {})
                                for typ, name, props in resources])


def _violations(rule: Any, args: Any) -> list[str]:
    found: list[str] = []
    rule(args, lambda message, urn=None: found.append(message))
    return found


def _recorded(run: ProgramRun) -> list[tuple[str, str, dict[str, Any]]]:
    return [(r.typ, r.name, dict(r.inputs)) for r in run.mocks.resources]


@pytest.mark.parametrize("example", ["regulated-records", "agent-workflow", HYBRID,
                                     "bedrock-eks"])
def test_every_rule_holds_on_the_programs_resources(program_runs: dict[str, ProgramRun],
                                                    example: str) -> None:
    resources = _recorded(program_runs[example])
    for typ, name, props in resources:
        for _, (_, rule) in RESOURCE_RULES.items():
            assert _violations(rule, _args(typ, name, props)) == [], (example, name)
    kinds = {typ for typ, _, _ in resources}
    assert {"kubernetes:apps/v1:Deployment", "kubernetes:core/v1:ConfigMap"} <= kinds
    if example == "bedrock-eks":   # IAM documents, the endpoint policy, the device plugin
        assert {"aws:iam/policy:Policy", "aws:iam/role:Role", "aws:ec2/vpcEndpoint:VpcEndpoint",
                "kubernetes:apps/v1:DaemonSet"} <= kinds
    assert _violations(network_policy_per_namespace, _stack(resources)) == []


def test_the_pack_has_five_mandatory_rules() -> None:
    pack = policies()
    assert sorted(p.name for p in pack) == sorted([*RESOURCE_RULES,
                                                   "network-policy-per-namespace"])
    assert all(isinstance(p, ResourceValidationPolicy) for p in pack[:4])


def test_an_iam_wildcard_is_caught() -> None:
    for statement in ({"Action": "bedrock:*", "Resource": "arn:aws:bedrock:us-east-1::x"},
                      {"Action": ["bedrock:InvokeModel"], "Resource": "*"},
                      {"Action": "sts:AssumeRole", "Principal": {"AWS": "*"}}):
        doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                                                                  **statement}]})
        field = "assumeRolePolicy" if "Principal" in statement else "policy"
        typ = "aws:iam/role:Role" if field == "assumeRolePolicy" else "aws:iam/policy:Policy"
        [message] = _violations(no_iam_wildcards, _args(typ, "bad", {field: doc}))
        assert "wildcard" in message


def _workload(container: dict[str, Any], namespace: str = "llm") -> dict[str, Any]:
    return {"metadata": {"name": "w", "namespace": namespace},
            "spec": {"template": {"spec": {"containers": [container]}}}}


GOOD = {"name": "c", "image": "vllm/vllm-openai:v0.33.0",
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}


def test_a_root_pod_and_a_pod_without_limits_are_caught() -> None:
    typ = "kubernetes:apps/v1:Deployment"
    assert _violations(pods_non_root_with_limits, _args(typ, "ok", _workload(GOOD))) == []
    root = {**GOOD, "securityContext": {"allowPrivilegeEscalation": False}}
    [message] = _violations(pods_non_root_with_limits, _args(typ, "root", _workload(root)))
    assert "may run as root" in message
    unlimited = {**GOOD, "resources": {"limits": {"cpu": "1"}}}
    [message] = _violations(pods_non_root_with_limits, _args(typ, "nolim", _workload(unlimited)))
    assert "no memory limit" in message
    # the cluster's own add-ons (the device plugin) are exempt
    assert _violations(pods_non_root_with_limits,
                       _args(typ, "addon", _workload(root, "kube-system"))) == []


def test_a_namespace_without_network_policy_is_caught() -> None:
    workload = ("kubernetes:apps/v1:StatefulSet", "serving", _workload(GOOD, "llm"))
    fence = ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "fence",
             {"metadata": {"name": "f", "namespace": "llm"}})
    assert _violations(network_policy_per_namespace, _stack([workload, fence])) == []
    [message] = _violations(network_policy_per_namespace, _stack([workload]))
    assert "namespace 'llm'" in message


def test_a_plaintext_secret_is_caught() -> None:
    config_map = "kubernetes:core/v1:ConfigMap"
    for data in ({"config.yaml": "api_key: sk-proj-abcdefghijklmnopqrstuvwxyz"},
                 {"config.yaml": "model_list: []\npassword: 'correcthorsebatterystaple'"},
                 {"token": "hf_abcdefghijklmnopqrstuvwxyz"}):
        assert _violations(no_plaintext_secrets, _args(config_map, "cm", {"data": data}))
    env = {**GOOD, "env": [{"name": "OPENAI_API_KEY", "value": "not-a-reference"}]}
    [message] = _violations(no_plaintext_secrets, _args("kubernetes:apps/v1:Deployment", "d",
                                                        _workload(env)))
    assert "OPENAI_API_KEY" in message
    # references are fine, and Secrets are where secrets belong
    fine = {"config.yaml": "api_key: os.environ/CLOUD_API_KEY\napi_key: no-key"}
    assert _violations(no_plaintext_secrets, _args(config_map, "cm", {"data": fine})) == []
    secret = {"stringData": {"k": "sk-proj-abcdefghijklmnopqrstuvwxyz"}}
    assert _violations(no_plaintext_secrets,
                       _args("kubernetes:core/v1:Secret", "s", secret)) == []


def test_an_unpinned_image_is_caught() -> None:
    typ = "kubernetes:apps/v1:Deployment"
    for image in ("vllm/vllm-openai:latest", "vllm/vllm-openai"):
        [message] = _violations(images_pinned, _args(typ, "d", _workload({**GOOD,
                                                                          "image": image})))
        assert "not pinned" in message
