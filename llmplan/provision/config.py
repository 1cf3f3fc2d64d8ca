"""Stack configuration: every setting and its default, declared once.

`llmplan stack` writes Pulumi.<stack>.yaml from a scenario's deployment; `pulumi up` reads
it here. Keys live under the project namespace `llm-deploy-planner:`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

StackKind = Literal["local", "cloud", "hybrid"]


@dataclass(frozen=True)
class ServingSettings:
    """One vLLM fleet on Kubernetes GPU nodes (from a `kind: local` deployment)."""

    name: str
    model_id: str                       # Hugging Face id vLLM downloads
    served_name: str
    gpu: str                            # catalog id, mapped to a node label
    replicas: int = 1
    tp: int = 1
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    gpu_memory_utilization: float = 0.9
    block_size_tokens: int = 16
    chunked_prefill: bool = True
    max_model_len: int | None = None
    weights_dtype: str = "bf16"
    cpu: int = 8
    memory_gib: int = 64
    cache_gib: int = 200
    hf_token_secret: str | None = None


@dataclass(frozen=True)
class GatewaySettings:
    """A LiteLLM router in front of the local fleet and/or a cloud API."""

    name: str = "llm-gateway"
    secret_name: str = "llm-gateway"
    local_service: str | None = None    # Service of the vLLM fleet
    local_model: str | None = None
    cloud_model: str | None = None      # LiteLLM model string, e.g. openai/gpt-4o-mini
    cloud_api_key_env: str | None = None
    cloud_rpm: int | None = None
    cloud_tpm: int | None = None
    replicas: int = 2
    num_retries: int = 2
    request_timeout_s: int = 120


@dataclass(frozen=True)
class StackSettings:
    kind: StackKind
    namespace: str = "llm"
    serving: ServingSettings | None = None
    gateway: GatewaySettings | None = None
    labels: dict[str, str] = field(default_factory=dict)


def from_config(values: dict[str, Any]) -> StackSettings:
    """StackSettings from the plain values of a stack's configuration."""
    serving = ServingSettings(**values["serving"]) if values.get("serving") else None
    gateway = GatewaySettings(**values["gateway"]) if values.get("gateway") else None
    kind = values.get("kind", "local")
    if kind in {"local", "hybrid"} and serving is None:
        raise ValueError(f"a {kind} stack needs a `serving` section")
    if kind in {"cloud", "hybrid"} and (gateway is None or not gateway.cloud_model):
        raise ValueError(f"a {kind} stack needs a `gateway` section with cloud_model")
    return StackSettings(kind=kind, namespace=values.get("namespace", "llm"),
                         serving=serving, gateway=gateway)
