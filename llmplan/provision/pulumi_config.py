"""Read a stack's configuration inside `pulumi up`: plain keys typed, secrets as secrets.

Every plain key is read by the type its StackConfig field has (strings, integers, lists,
the `plan` object), then validated once into StackConfig; defaults live there only.
Secrets come back as Pulumi secret Outputs, never as plain strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pydantic.alias_generators import to_camel

from llmplan.provision.stack_config import (
    CLOUD_KEY,
    HUB_TOKEN,
    MASTER_KEY,
    StackConfig,
    stack_from_values,
)


@dataclass(frozen=True)
class StackSecrets:
    master_key: pulumi.Output[str]
    cloud_api_key: pulumi.Output[str] | None
    hub_token: pulumi.Output[str] | None


def read_stack_config(config: pulumi.Config | None = None) -> StackConfig:
    """The stack's typed settings from Pulumi config (raises with the field on a bad value)."""
    config = config or pulumi.Config()
    values: dict[str, Any] = {}
    for name, field in StackConfig.model_fields.items():
        key = to_camel(name)
        text = str(field.annotation)
        if field.annotation is int:
            value: Any = config.get_int(key)
        elif text.startswith("list[") or name == "plan":
            value = config.get_object(key)
        else:
            value = config.get(key)
        if value is not None:
            values[key] = value
    return stack_from_values(values)


def read_stack_secrets(settings: StackConfig, config: pulumi.Config | None = None,
                       ) -> StackSecrets:
    """The secrets this stack needs: the master key always, the others when configured."""
    config = config or pulumi.Config()
    model = settings.plan.cloud_model
    cloud = None
    if model is not None and model.provider != "bedrock":
        cloud = config.require_secret(CLOUD_KEY)
    hub = config.get_secret(HUB_TOKEN) if settings.plan.local is not None else None
    return StackSecrets(config.require_secret(MASTER_KEY), cloud, hub)
