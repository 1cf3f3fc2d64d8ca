"""LlmGateway: the LiteLLM router of the plan, as one Pulumi component."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from llmplan.provision.gateway_manifests import (
    CLOUD_SECRET_KEY,
    MASTER_SECRET_KEY,
    gateway_manifests,
    needs_cloud_key,
)
from llmplan.provision.k8s_resources import child_options, create, resource_name
from llmplan.provision.manifests import GATEWAY_NAME, GATEWAY_PORT
from llmplan.provision.stack_config import StackConfig


class LlmGateway(pulumi.ComponentResource):
    """Secret (master key, provider key) + the manifests of gateway_manifests."""

    def __init__(self, name: str, settings: StackConfig, *, master_key: pulumi.Output[str],
                 cloud_api_key: pulumi.Output[str] | None,
                 web_identity_role: pulumi.Output[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmplan:infra:LlmGateway", name, None, opts)
        child = child_options(self, opts)
        data: dict[str, pulumi.Input[str]] = {MASTER_SECRET_KEY: master_key}
        if needs_cloud_key(settings):
            if cloud_api_key is None:
                raise ValueError("this stack calls a provider API: set its key with "
                                 "`pulumi config set --secret cloudApiKey <key>`")
            data[CLOUD_SECRET_KEY] = cloud_api_key
        self.secret = k8s.core.v1.Secret(
            f"{name}-secret", metadata={"name": GATEWAY_NAME, "namespace": settings.namespace},
            string_data=data, opts=child)
        self.resources: dict[str, pulumi.CustomResource] = {}
        for manifest in gateway_manifests(settings, web_identity_role):
            self.resources[manifest["kind"] + "/" + manifest["metadata"]["name"]] = create(
                resource_name(name, manifest), manifest,
                child_options(self, opts, depends_on=[self.secret]))
        self.endpoint = f"http://{GATEWAY_NAME}.{settings.namespace}.svc:{GATEWAY_PORT}/v1"
        self.register_outputs({"endpoint": self.endpoint})
