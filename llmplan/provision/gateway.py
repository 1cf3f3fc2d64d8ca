"""LlmGateway: a LiteLLM router (local first, cloud fall-back, restricted stays local)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from llmplan.provision.config import GatewaySettings
from llmplan.provision.manifests import gateway_manifests


class LlmGateway(pulumi.ComponentResource):
    """Secret (master key, cloud API key) + ConfigMap + Deployment + Service."""

    def __init__(self, name: str, settings: GatewaySettings, namespace: pulumi.Input[str], *,
                 master_key: pulumi.Input[str], cloud_api_key: pulumi.Input[str] | None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmplan:infra:LlmGateway", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        secret_data: dict[str, pulumi.Input[str]] = {"master-key": master_key}
        if cloud_api_key is not None:
            secret_data["cloud-api-key"] = cloud_api_key
        self.secret = k8s.core.v1.Secret(
            f"{name}-secret", metadata={"name": settings.secret_name, "namespace": namespace},
            string_data=secret_data, opts=child)
        config_map, deployment, service = gateway_manifests(settings, "NAMESPACE")
        for manifest in (config_map, deployment, service):
            manifest["metadata"]["namespace"] = namespace
        self.config = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=config_map["metadata"], data=config_map["data"],
            opts=child)
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=deployment["metadata"], spec=deployment["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.secret, self.config]))
        self.service = k8s.core.v1.Service(
            f"{name}-service", metadata=service["metadata"], spec=service["spec"], opts=child)
        self.endpoint = pulumi.Output.concat(
            "http://", self.service.metadata.name, ".", namespace, ".svc:4000/v1")
        self.register_outputs({"endpoint": self.endpoint})
