"""GpuServing: a vLLM fleet on Kubernetes GPU nodes, as one Pulumi component."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from llmplan.provision.config import ServingSettings
from llmplan.provision.manifests import serving_manifests


class GpuServing(pulumi.ComponentResource):
    """Deployment + Service + PodDisruptionBudget rendered by infra.manifests."""

    def __init__(self, name: str, settings: ServingSettings, namespace: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmplan:infra:GpuServing", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        deployment, service, budget = serving_manifests(settings, "NAMESPACE")
        for manifest in (deployment, service, budget):
            manifest["metadata"]["namespace"] = namespace
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=deployment["metadata"], spec=deployment["spec"],
            opts=child)
        self.service = k8s.core.v1.Service(
            f"{name}-service", metadata=service["metadata"], spec=service["spec"], opts=child)
        self.budget = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata=budget["metadata"], spec=budget["spec"], opts=child)
        self.endpoint = pulumi.Output.concat(
            "http://", self.service.metadata.name, ".", namespace, ".svc:8000/v1")
        self.register_outputs({"endpoint": self.endpoint, "replicas": settings.replicas,
                               "gpus": settings.replicas * settings.tp})
