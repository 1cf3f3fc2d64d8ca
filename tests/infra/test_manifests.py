"""Rendered Kubernetes manifests validate against the official schemas, and mean the plan."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from llmplan.provision.config import GatewaySettings, ServingSettings
from llmplan.provision.manifests import gateway_manifests, litellm_config, serving_manifests

K8S = kubernetes_validate.latest_version()
SERVING = ServingSettings(name="llama70b", model_id="meta-llama/Llama-3.1-70B-Instruct",
                          served_name="Llama-3.1-70B", gpu="H100-SXM", replicas=3, tp=4,
                          max_num_seqs=128, max_num_batched_tokens=4096, max_model_len=16384,
                          weights_dtype="fp8", hf_token_secret="hf")
HYBRID = GatewaySettings(local_service="llama70b", local_model="Llama-3.1-70B",
                         cloud_model="openai/gpt-4o", cloud_api_key_env="OPENAI_API_KEY",
                         cloud_rpm=500, cloud_tpm=30000)


@pytest.mark.parametrize("manifest", serving_manifests(SERVING, "llm")
                         + gateway_manifests(HYBRID, "llm")
                         + gateway_manifests(GatewaySettings(cloud_model="openai/gpt-4o-mini"),
                                             "llm"),
                         ids=lambda m: f"{m['kind']}-{m['metadata']['name']}")
def test_manifest_is_valid_kubernetes(manifest: dict[str, object]) -> None:
    kubernetes_validate.validate(manifest, K8S, strict=True)


def test_a_broken_manifest_is_caught_by_the_schema() -> None:
    deployment = serving_manifests(SERVING, "llm")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S, strict=True)


def test_serving_deployment_carries_the_simulated_engine() -> None:
    deployment = serving_manifests(SERVING, "llm")[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    flag = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    assert deployment["spec"]["replicas"] == 3
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert flag["--tensor-parallel-size"] == "4" and flag["--max-num-seqs"] == "128"
    assert flag["--max-num-batched-tokens"] == "4096" and flag["--max-model-len"] == "16384"
    assert flag["--quantization"] == "fp8"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "hf"


def test_gateway_routes_local_first_and_keeps_restricted_local() -> None:
    config = litellm_config(HYBRID, "llm")
    models = {m["model_name"]: m["litellm_params"] for m in config["model_list"]}
    assert models["local"]["api_base"] == "http://llama70b.llm.svc:8000/v1"
    assert "restricted" in models["local"]["tags"]
    assert "restricted" not in models["cloud"]["tags"]
    assert models["cloud"]["api_key"] == "os.environ/OPENAI_API_KEY"
    assert (models["cloud"]["rpm"], models["cloud"]["tpm"]) == (500, 30000)
    assert config["router_settings"]["fallbacks"] == [{"local": ["cloud"]}]
    assert config["router_settings"]["enable_tag_filtering"] is True
    rendered = gateway_manifests(HYBRID, "llm")[0]["data"]["config.yaml"]
    assert yaml.safe_load(rendered) == config
    assert "sk-" not in rendered   # a key is referenced by variable, never written
