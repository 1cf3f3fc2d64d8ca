"""The gateway's manifests: LiteLLM with the plan's router config and the restricted guard.

A ConfigMap carries config.yaml (router_config.py), the guard (litellm_guard.py, loaded by
LiteLLM as `llmplan_guard`) and, with a GPU fleet, the request balancer's nginx.conf
(balancer.py); a Deployment runs the pinned LiteLLM image as a non-root user with the
master key and the provider key from the stack's Secret, and beside it the balancer that
sends its local requests to the fleet's pods as the simulated router did, behind a Service,
a PodDisruptionBudget and a NetworkPolicy admitting only the named namespaces.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from llmplan.provision.balancer import (
    BALANCER_CONFIG_KEY,
    balancer_conf,
    balancer_container,
    balancer_volumes,
    local_api_base,
)
from llmplan.provision.manifests import (
    ENDPOINTS_SETTLE_S,
    GATEWAY_NAME,
    GATEWAY_PORT,
    container_security,
    labels,
    network_policy,
    pod_security,
    settle_before_stop,
)
from llmplan.provision.router_config import (
    AZURE_API_BASE_ENV,
    CLOUD_KEY_ENV,
    GUARD_MODULE,
    LOCAL_TIMEOUT_S,
    MASTER_KEY_ENV,
    RESTRICTED_ENV,
    RouterEndpoints,
    pod_connection_cap,
    restricted_groups,
    router_config,
)
from llmplan.provision.serving_manifests import pods_service_name
from llmplan.provision.stack_config import StackConfig

CONFIG_MOUNT = "/etc/litellm"
#: The pod template's checksum of the ConfigMap's files: a changed config rolls the pods.
CONFIG_SHA_ANNOTATION = "llmplan/config-sha256"
MASTER_SECRET_KEY = "master-key"
CLOUD_SECRET_KEY = "cloud-api-key"
#: a service-account token for AWS STS (AssumeRoleWithWebIdentity), where EKS's IRSA
#: webhook mounts its own
STS_AUDIENCE = "sts.amazonaws.com"
STS_TOKEN_MOUNT = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
STS_TOKEN_FILE = "token"


def guard_source() -> str:
    """The guard LiteLLM loads from beside its config (shipped in this package)."""
    return (Path(__file__).parent / "litellm_guard.py").read_text(encoding="utf-8")


def gateway_endpoints(config: StackConfig) -> RouterEndpoints:
    """The addresses the gateway routes to: the fleet through its balancer sidecar."""
    local = local_api_base() if config.plan.local is not None else None
    return RouterEndpoints(local_api_base=local, aws_region=config.aws_region,
                           azure_deployment=config.azure_deployment)


def needs_cloud_key(config: StackConfig) -> bool:
    model = config.plan.cloud_model
    return model is not None and model.provider != "bedrock"


def longest_request_s(config: StackConfig) -> float:
    """The longest a request may stay in the gateway: a local answer (LOCAL_TIMEOUT_S), or
    an API call's attempts (each up to the client's timeout) and then, falling back, a
    local answer."""
    cloud = config.plan.cloud
    if cloud is None:
        return LOCAL_TIMEOUT_S
    hung_s = cloud[1].retry.hung_s
    return max(LOCAL_TIMEOUT_S, hung_s + (LOCAL_TIMEOUT_S if config.plan.local else 0))


def gateway_manifests(config: StackConfig,
                      web_identity_role: Any | None = None) -> list[dict[str, Any]]:
    """ServiceAccount, ConfigMap, Deployment (LiteLLM, and the balancer when there is a GPU
    fleet), Service, PodDisruptionBudget, NetworkPolicy.

    The Secret (master key, provider key) is created by the Pulumi component from secret
    config. `web_identity_role` (an ARN, or Pulumi's output of one): outside EKS's Pod
    Identity, the pod assumes the Bedrock role itself with a service-account token for STS
    (a projected volume, and the AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE that boto3's
    credential chain reads), as EKS's IRSA webhook would add, which other clusters lack."""
    name, ns = GATEWAY_NAME, config.namespace
    pod_labels = labels(name, "llm-gateway")
    meta = {"name": name, "namespace": ns, "labels": pod_labels}
    router = router_config(config, gateway_endpoints(config))
    env: list[dict[str, Any]] = [
        {"name": MASTER_KEY_ENV, "valueFrom": {"secretKeyRef": {
            "name": name, "key": MASTER_SECRET_KEY}}},
        {"name": "LITELLM_LOCAL_MODEL_COST_MAP", "value": "True"},
        {"name": RESTRICTED_ENV, "value": ",".join(restricted_groups(config.plan))},
        {"name": "HOME", "value": "/tmp"}]
    if needs_cloud_key(config):
        env.append({"name": CLOUD_KEY_ENV, "valueFrom": {"secretKeyRef": {
            "name": name, "key": CLOUD_SECRET_KEY}}})
    if config.aws_region:
        env.append({"name": "AWS_REGION", "value": config.aws_region})
    if web_identity_role is not None:
        env += [{"name": "AWS_ROLE_ARN", "value": web_identity_role},
                {"name": "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "value": f"{STS_TOKEN_MOUNT}/{STS_TOKEN_FILE}"},
                {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"}]
    if config.uses_azure:
        env.append({"name": AZURE_API_BASE_ENV, "value": config.azure_api_base})
    resources = {"cpu": "1", "memory": "2Gi"}
    container = {
        "name": "litellm", "image": config.litellm_image,
        "args": ["--config", f"{CONFIG_MOUNT}/config.yaml", "--host", "0.0.0.0",
                 "--port", str(GATEWAY_PORT)],
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT}],
        "env": env,
        "resources": {"requests": resources, "limits": resources},
        "securityContext": container_security(),
        "readinessProbe": {"httpGet": {"path": "/health/readiness", "port": "http"},
                           "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"path": "/health/liveliness", "port": "http"},
                          "periodSeconds": 15, "failureThreshold": 4},
        "startupProbe": {"httpGet": {"path": "/health/liveliness", "port": "http"},
                         "periodSeconds": 5, "failureThreshold": 60},
        "lifecycle": settle_before_stop(),
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"},
                         *([{"name": "aws-token", "mountPath": STS_TOKEN_MOUNT,
                             "readOnly": True}] if web_identity_role is not None else [])]}
    files = {"config.yaml": yaml.safe_dump(router, sort_keys=False),
             f"{GUARD_MODULE}.py": guard_source()}
    sidecars: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = [{"name": "config", "configMap": {"name": name}},
                                     {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    if web_identity_role is not None:
        # the kubelet renews it before it expires; its audience is what the role trusts
        volumes.append({"name": "aws-token", "projected": {"sources": [{
            "serviceAccountToken": {"audience": STS_AUDIENCE, "expirationSeconds": 86400,
                                    "path": STS_TOKEN_FILE}}]}})
    if config.plan.local is not None:
        fleet = config.plan.local[1]
        files[BALANCER_CONFIG_KEY] = balancer_conf(config, fleet.router,
                                                   pods_service_name(config),
                                                   pod_connection_cap(config))
        sidecars.append(balancer_container(config))
        volumes += balancer_volumes(name)
    # a changed config rolls the pods (a ConfigMap change alone would not restart them)
    checksum = hashlib.sha256("".join(files.values()).encode()).hexdigest()[:16]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta,
         "automountServiceAccountToken": False},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
         "data": files},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
         "spec": {"replicas": config.gateway_replicas, "selector": {"matchLabels": pod_labels},
                  "strategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                  "template": {"metadata": {"labels": pod_labels, "annotations": {
                      CONFIG_SHA_ANNOTATION: checksum}}, "spec": {
                      "serviceAccountName": name, "automountServiceAccountToken": False,
                      "securityContext": pod_security(),
                      "terminationGracePeriodSeconds": (ENDPOINTS_SETTLE_S
                                                        + longest_request_s(config) + 30),
                      **({"initContainers": sidecars} if sidecars else {}),
                      "containers": [container],
                      "volumes": volumes}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": pod_labels,
                  "ports": [{"name": "http", "port": GATEWAY_PORT, "targetPort": "http"}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta,
         "spec": {"minAvailable": 1 if config.gateway_replicas > 1 else 0,
                  "selector": {"matchLabels": pod_labels}}},
        network_policy(config, name, pod_labels, GATEWAY_PORT, from_gateway=False),
    ]
