"""Rendered manifests as Pulumi Kubernetes resources (one typed resource per manifest).

Each manifest dict from serving_manifests / gateway_manifests / manifests becomes the typed
pulumi_kubernetes resource of its kind, so the engine, the policy pack and the mocks see
every object individually (a ConfigGroup would hide them inside one component).
"""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

KINDS: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apps/v1", "StatefulSet"): k8s.apps.v1.StatefulSet,
    ("apps/v1", "DaemonSet"): k8s.apps.v1.DaemonSet,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("storage.k8s.io/v1", "StorageClass"): k8s.storage.v1.StorageClass,
}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


#: Kinds of custom resource definitions the stack creates objects of (their controllers
#: must run in the cluster: see serving_manifests.py)
CUSTOM_KINDS = frozenset({("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")})


def create(resource_name: str, manifest: dict[str, Any],
           opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """The Pulumi resource for one manifest (its top-level fields as the resource's inputs)."""
    kind = (manifest["apiVersion"], manifest["kind"])
    if kind in CUSTOM_KINDS:
        custom: pulumi.CustomResource = k8s.apiextensions.CustomResource(
            resource_name, api_version=kind[0], kind=kind[1],
            metadata=manifest["metadata"], spec=manifest["spec"], opts=opts)
        return custom
    cls = KINDS[kind]
    fields = {_snake(k): v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    resource: pulumi.CustomResource = cls(resource_name, **fields, opts=opts)
    return resource


def child_options(parent: pulumi.Resource, opts: pulumi.ResourceOptions | None, *,
                  depends_on: list[pulumi.Resource] | None = None,
                  ignore_changes: list[str] | None = None) -> pulumi.ResourceOptions:
    """Options of a component's child: parented, and waiting for what the component waits
    for (a component's `depends_on` does not reach its children by itself)."""
    inherited = opts.depends_on if opts is not None and opts.depends_on else []
    waits: list[pulumi.Resource] = [r for r in (inherited if isinstance(inherited, list)
                                                else [inherited])
                                    if isinstance(r, pulumi.Resource)]
    return pulumi.ResourceOptions(parent=parent, depends_on=[*waits, *(depends_on or [])],
                                  ignore_changes=ignore_changes)


def resource_name(prefix: str, manifest: dict[str, Any]) -> str:
    """A stable Pulumi name: prefix, kind and object name."""
    kind = re.sub(r"(?<!^)(?=[A-Z])", "-", manifest["kind"]).lower()
    return f"{prefix}-{kind}-{manifest['metadata']['name']}"
