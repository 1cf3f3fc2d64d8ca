"""Kubernetes manifests as plain dicts: what Pulumi creates and what tests schema-validate.

This module holds what the fleet and the gateway share (names, labels, security contexts,
the namespace, NetworkPolicies) and the NVIDIA device plugin; serving_manifests.py renders
the GPU fleet and gateway_manifests.py the router.

The GPU fleet is a StatefulSet of vLLM pods, one per replica with `tp` GPUs each and the
simulated engine knobs as flags. A StatefulSet rather than a Deployment so each replica keeps
its own volume of weights across restarts and rollouts on any ReadWriteOnce storage class (a
Deployment sharing one such volume cannot span nodes; one per pod would be lost on every
rollout). Around it: a ClusterIP Service for clients of `allowedNamespaces`, a headless
Service naming each Ready pod (the pods' identities, and the list the gateway's balancer
picks a pod from per request: balancer.py), a PodDisruptionBudget, the autoscaler of the
scenario's `autoscaling` section (an HPA on vLLM's waiting requests), and a NetworkPolicy
letting in only the gateway and the named namespaces. A replica whose pipeline stages
span servers is instead a group of pods, one per server, of a LeaderWorkerSet
(serving_manifests.py). Every pod runs as a non-root user, drops all capabilities and has
CPU and memory limits.
"""

from __future__ import annotations

import re
from typing import Any

from llmplan.provision.gpu_nodes import GPU_RESOURCE
from llmplan.provision.images import DEVICE_PLUGIN_IMAGE
from llmplan.provision.stack_config import StackConfig

SERVING_PORT = 8000
GATEWAY_PORT = 4000
GATEWAY_NAME = "llm-gateway"
PART_OF = "llm-deploy-planner"
NON_ROOT_UID = 1000


def k8s_name(text: str, limit: int = 52) -> str:
    """A DNS-1123 label from a scenario name (lower case, dashes; StatefulSet-safe length)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return name or "llm"


def labels(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": PART_OF}


def pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": NON_ROOT_UID, "runAsGroup": NON_ROOT_UID,
            "fsGroup": NON_ROOT_UID, "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True}


#: how long a terminating pod keeps serving before SIGTERM, s: kube-proxy and the Service's
#: clients (the balancer's DNS look-ups) learn it has left the endpoints within seconds
#: (an assumption)
ENDPOINTS_SETTLE_S = 10


def settle_before_stop() -> dict[str, Any]:
    """A container's lifecycle: a pod rolled or scaled in leaves the Service's endpoints
    while it still serves, so it waits for that before SIGTERM, after which vLLM and uvicorn
    take no new request and finish those they have."""
    return {"preStop": {"sleep": {"seconds": ENDPOINTS_SETTLE_S}}}


def namespace_manifest(config: StackConfig) -> dict[str, Any]:
    """The stack's namespace, with the `restricted` Pod Security Standard enforced."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": config.namespace, "labels": {
                "app.kubernetes.io/part-of": PART_OF,
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest"}}}


def network_policy(config: StackConfig, name: str, pod_labels: dict[str, str], port: int, *,
                   from_gateway: bool) -> dict[str, Any]:
    """Ingress to these pods only from the gateway (if asked) and the named namespaces."""
    peers: list[dict[str, Any]] = []
    if from_gateway:
        peers.append({"podSelector": {"matchLabels": labels(GATEWAY_NAME, "llm-gateway")}})
    if config.allowed_namespaces:
        peers.append({"namespaceSelector": {"matchExpressions": [{
            "key": "kubernetes.io/metadata.name", "operator": "In",
            "values": list(config.allowed_namespaces)}]}})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"{name}-ingress", "namespace": config.namespace,
                         "labels": pod_labels},
            # no peers: no ingress rule at all (a rule with an empty `from` admits everyone)
            "spec": {"podSelector": {"matchLabels": pod_labels}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": port}]}]
                     if peers else []}}


def device_plugin_manifest() -> dict[str, Any]:
    """NVIDIA's device plugin DaemonSet (advertises `nvidia.com/gpu` on GPU nodes).

    It runs as root, as it must: it registers a socket in the kubelet's device-plugin
    directory on the host. It lives in kube-system, which the pod policies exempt as the
    cluster's own add-ons; everything else about it is locked down."""
    name = "nvidia-device-plugin"
    pod_labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "kube-system", "labels": pod_labels},
        "spec": {
            "selector": {"matchLabels": pod_labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": pod_labels}, "spec": {
                "priorityClassName": "system-node-critical",
                "automountServiceAccountToken": False,
                "nodeSelector": {"nvidia.com/gpu.present": "true"},
                "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists",
                                 "effect": "NoSchedule"}],
                "containers": [{
                    "name": name, "image": DEVICE_PLUGIN_IMAGE,
                    "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                    "securityContext": {"allowPrivilegeEscalation": False,
                                        "capabilities": {"drop": ["ALL"]},
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                  "limits": {"cpu": "200m", "memory": "256Mi"}},
                    "volumeMounts": [{"name": "device-plugin",
                                      "mountPath": "/var/lib/kubelet/device-plugins"}]}],
                "volumes": [{"name": "device-plugin", "hostPath": {
                    "path": "/var/lib/kubelet/device-plugins", "type": "Directory"}}]}}}}
