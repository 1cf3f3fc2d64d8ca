"""The Pulumi program under mocks: the right resources, wired to each other, no secrets leaked.

No Pulumi CLI or Kubernetes API server can run here; `pulumi.runtime.set_mocks` stands in
for the engine, and every resource the program registers is recorded and checked.
"""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType
from typing import Any

import pulumi
import pytest
from helpers import ROOT

PROJECT = "llm-deploy-planner"
SECRET_SIG = "4dabf18193072939515e22adb298388d"   # pulumi's marker of a secret value


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        outputs = dict(args.inputs)
        metadata = dict(outputs.get("metadata") or {})
        metadata.setdefault("name", args.name)
        outputs["metadata"] = metadata
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []

    def of_type(self, type_: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.resources if r.typ == type_]


SERVING = {"name": "llama8b", "model_id": "meta-llama/Llama-3.1-8B-Instruct",
           "served_name": "Llama-3.1-8B", "gpu": "L40S", "replicas": 2, "tp": 1}
GATEWAY = {"local_service": "llama8b", "local_model": "Llama-3.1-8B",
           "cloud_model": "openai/gpt-4o-mini", "cloud_api_key_env": "OPENAI_API_KEY"}
MASTER_KEY, CLOUD_KEY = "mk-planted-secret", "sk-planted-cloud-secret"


def _load_program() -> ModuleType:
    """infra/__main__.py as Pulumi runs it: a program folder, not an installed package."""
    spec = importlib.util.spec_from_file_location("infra_program", ROOT / "infra" / "__main__.py")
    assert spec is not None and spec.loader is not None
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    return program


def _run_program(config: dict[str, Any]) -> tuple[RecordingMocks, dict[str, Any]]:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="test", preview=False)
    pulumi.runtime.set_all_config({f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v)
                                   for k, v in config.items()},
                                  [f"{PROJECT}:gatewayMasterKey", f"{PROJECT}:cloudApiKey"])
    program = _load_program()
    exports: dict[str, Any] = {}

    @pulumi.runtime.test
    def collect() -> pulumi.Output[Any]:
        outs = {name: getattr(program, name).endpoint
                for name in ("serving", "gateway") if hasattr(program, name)}
        return pulumi.Output.all(**outs).apply(exports.update)

    collect()
    return mocks, exports


def test_hybrid_stack_creates_serving_and_gateway() -> None:
    mocks, exports = _run_program({
        "kind": "hybrid", "namespace": "llm-prod", "serving": SERVING, "gateway": GATEWAY,
        "gatewayMasterKey": MASTER_KEY, "cloudApiKey": CLOUD_KEY})
    types = sorted(r.typ for r in mocks.resources)
    assert types.count("kubernetes:apps/v1:Deployment") == 2
    assert types.count("kubernetes:core/v1:Service") == 2
    assert "kubernetes:policy/v1:PodDisruptionBudget" in types
    assert "llmplan:infra:GpuServing" in types and "llmplan:infra:LlmGateway" in types
    vllm = next(r for r in mocks.of_type("kubernetes:apps/v1:Deployment")
                if r.name == "serving-deployment")
    assert vllm.inputs["spec"]["replicas"] == 2
    assert vllm.inputs["metadata"]["namespace"] == "llm-prod"
    container = vllm.inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    secret = mocks.of_type("kubernetes:core/v1:Secret")[0]
    data = secret.inputs["stringData"]
    assert SECRET_SIG in data            # Pulumi keeps the whole map encrypted in state
    assert data["value"] == {"master-key": MASTER_KEY, "cloud-api-key": CLOUD_KEY}
    assert exports["serving"] == "http://llama8b.llm-prod.svc:8000/v1"
    assert exports["gateway"] == "http://llm-gateway.llm-prod.svc:4000/v1"
    # the keys reach only the Secret, never a ConfigMap or a Deployment
    for resource in mocks.resources:
        if resource.typ != "kubernetes:core/v1:Secret":
            text = json.dumps(resource.inputs, default=str)
            assert MASTER_KEY not in text and CLOUD_KEY not in text


def test_local_stack_has_no_gateway_and_a_hybrid_needs_a_cloud_model() -> None:
    mocks, exports = _run_program({"kind": "local", "serving": SERVING})
    assert not mocks.of_type("llmplan:infra:LlmGateway")
    assert set(exports) == {"serving"}
    with pytest.raises(ValueError, match="cloud_model"):
        _run_program({"kind": "hybrid", "serving": SERVING})
