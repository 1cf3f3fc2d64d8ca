"""Provision the recommended stack: GPU serving, a cloud API gateway, or both."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from llmplan.provision.config import from_config
from llmplan.provision.gateway import LlmGateway
from llmplan.provision.serving import GpuServing

config = pulumi.Config()
settings = from_config({
    "kind": config.get("kind") or "local",
    "namespace": config.get("namespace") or "llm",
    "serving": config.get_object("serving"),
    "gateway": config.get_object("gateway"),
})

namespace = k8s.core.v1.Namespace("namespace", metadata={"name": settings.namespace})

if settings.serving is not None:
    serving = GpuServing("serving", settings.serving, namespace.metadata.name)
    pulumi.export("serving_endpoint", serving.endpoint)

if settings.gateway is not None:
    gateway = LlmGateway(
        "gateway", settings.gateway, namespace.metadata.name,
        master_key=config.require_secret("gatewayMasterKey"),
        cloud_api_key=config.get_secret("cloudApiKey") if settings.gateway.cloud_model else None)
    pulumi.export("gateway_endpoint", gateway.endpoint)
