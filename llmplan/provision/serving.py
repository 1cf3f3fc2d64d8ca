"""GpuServing: the vLLM fleet on Kubernetes GPU nodes, as one Pulumi component."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from llmplan.provision.k8s_resources import child_options, create, resource_name
from llmplan.provision.manifests import SERVING_PORT
from llmplan.provision.serving_manifests import (
    HUB_SECRET_KEY,
    hub_secret_name,
    serving_manifests,
    serving_name,
)
from llmplan.provision.stack_config import StackConfig


class GpuServing(pulumi.ComponentResource):
    """StatefulSet (or LeaderWorkerSet), Services, budget, autoscaler and NetworkPolicy of
    serving_manifests, and the model hub token as a Secret when one is configured."""

    def __init__(self, name: str, settings: StackConfig, *,
                 hub_token: pulumi.Output[str] | None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmplan:infra:GpuServing", name, None, opts)
        child = child_options(self, opts)
        local = settings.plan.local
        assert local is not None, "GpuServing needs a plan with a GPU fleet"
        depends: list[pulumi.Resource] = []
        if hub_token is not None:
            depends.append(k8s.core.v1.Secret(
                f"{name}-hub-token",
                metadata={"name": hub_secret_name(settings), "namespace": settings.namespace},
                string_data={HUB_SECRET_KEY: hub_token}, opts=child))
        self.resources: dict[str, pulumi.CustomResource] = {}
        autoscaled = local[1].autoscaling is not None
        for manifest in serving_manifests(settings):
            scaled = manifest["kind"] in ("StatefulSet", "LeaderWorkerSet")
            ignore = ["spec.replicas"] if scaled and autoscaled \
                else None   # the HPA owns the replica count
            self.resources[manifest["kind"] + "/" + manifest["metadata"]["name"]] = create(
                resource_name(name, manifest), manifest,
                child_options(self, opts, depends_on=depends, ignore_changes=ignore))
        self.endpoint = (f"http://{serving_name(settings)}.{settings.namespace}.svc:"
                         f"{SERVING_PORT}/v1")
        self.register_outputs({"endpoint": self.endpoint, "replicas": local[1].replicas,
                               "gpus": local[1].replicas * local[1].gpus_per_replica})
