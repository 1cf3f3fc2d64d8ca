"""Kubernetes manifests as plain dicts: what Pulumi creates and what tests schema-validate.

vLLM's OpenAI server on GPU nodes (one pod per replica, `tp` GPUs each, the engine knobs of
the simulated deployment as flags) and a LiteLLM proxy routing between the local model and a
cloud API, with fall-back and a tag that keeps restricted requests local.
"""

from __future__ import annotations

from typing import Any

import yaml

from llmplan.provision.config import GatewaySettings, ServingSettings

VLLM_IMAGE = "vllm/vllm-openai:v0.8.5"
LITELLM_IMAGE = "ghcr.io/berriai/litellm:main-v1.67.0-stable"
VLLM_PORT = 8000
LITELLM_PORT = 4000

# NVIDIA GPU feature discovery labels (nvidia.com/gpu.product) per catalog GPU id.
GPU_PRODUCT_LABELS = {
    "H100-SXM": "NVIDIA-H100-80GB-HBM3",
    "H100-PCIe": "NVIDIA-H100-PCIe",
    "A100-40GB": "NVIDIA-A100-SXM4-40GB",
    "A100-80GB": "NVIDIA-A100-SXM4-80GB",
    "L40S": "NVIDIA-L40S",
    "L4": "NVIDIA-L4",
    "A10G": "NVIDIA-A10G",
    "RTX-4090": "NVIDIA-GeForce-RTX-4090",
}


def _labels(app: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "llm-deploy-planner"}


def vllm_args(s: ServingSettings) -> list[str]:
    args = ["--model", s.model_id, "--served-model-name", s.served_name,
            "--port", str(VLLM_PORT),
            "--tensor-parallel-size", str(s.tp),
            "--max-num-seqs", str(s.max_num_seqs),
            "--max-num-batched-tokens", str(s.max_num_batched_tokens),
            "--gpu-memory-utilization", str(s.gpu_memory_utilization),
            "--block-size", str(s.block_size_tokens),
            "--dtype", "float16" if s.weights_dtype == "fp16" else "bfloat16"]
    if s.max_model_len:
        args += ["--max-model-len", str(s.max_model_len)]
    if s.weights_dtype == "fp8":
        args += ["--quantization", "fp8"]
    args.append("--enable-chunked-prefill" if s.chunked_prefill else "--no-enable-chunked-prefill")
    return args


def serving_manifests(s: ServingSettings, namespace: str) -> list[dict[str, Any]]:
    """Deployment, Service and PodDisruptionBudget of the GPU serving fleet."""
    labels = _labels(s.name, "gpu-serving")
    probe = {"httpGet": {"path": "/health", "port": VLLM_PORT}, "periodSeconds": 10}
    container = {
        "name": "vllm", "image": VLLM_IMAGE, "args": vllm_args(s),
        "ports": [{"name": "http", "containerPort": VLLM_PORT}],
        "resources": {"limits": {"nvidia.com/gpu": str(s.tp), "memory": f"{s.memory_gib}Gi"},
                      "requests": {"nvidia.com/gpu": str(s.tp), "cpu": str(s.cpu),
                                   "memory": f"{s.memory_gib}Gi"}},
        "readinessProbe": probe,
        "livenessProbe": {**probe, "initialDelaySeconds": 600},
        "startupProbe": {**probe, "failureThreshold": 90},
        "volumeMounts": [{"name": "model-cache", "mountPath": "/root/.cache/huggingface"},
                         {"name": "shm", "mountPath": "/dev/shm"}],
    }
    if s.hf_token_secret:
        container["env"] = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": s.hf_token_secret, "key": "token"}}}]
    pod = {
        "metadata": {"labels": labels},
        "spec": {
            "containers": [container],
            "nodeSelector": {"nvidia.com/gpu.product": GPU_PRODUCT_LABELS.get(s.gpu, s.gpu)},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                             "effect": "NoSchedule"}],
            "volumes": [{"name": "model-cache", "emptyDir": {"sizeLimit": f"{s.cache_gib}Gi"}},
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}],
            "terminationGracePeriodSeconds": 60,
        },
    }
    meta = {"name": s.name, "namespace": namespace, "labels": labels}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
         "spec": {"replicas": s.replicas, "selector": {"matchLabels": labels},
                  "strategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                  "template": pod}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": labels,
                  "ports": [{"name": "http", "port": VLLM_PORT, "targetPort": "http"}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta,
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}},
    ]


def litellm_config(g: GatewaySettings, namespace: str) -> dict[str, Any]:
    """LiteLLM proxy config: local first, cloud as fall-back; restricted stays local."""
    models: list[dict[str, Any]] = []
    if g.local_service:
        models.append({"model_name": "local", "litellm_params": {
            "model": f"openai/{g.local_model}",
            "api_base": f"http://{g.local_service}.{namespace}.svc:{VLLM_PORT}/v1",
            "api_key": "none", "tags": ["restricted", "default"]}})
    if g.cloud_model:
        params: dict[str, Any] = {"model": g.cloud_model, "tags": ["default"]}
        if g.cloud_api_key_env:
            params["api_key"] = f"os.environ/{g.cloud_api_key_env}"
        if g.cloud_rpm:
            params["rpm"] = g.cloud_rpm
        if g.cloud_tpm:
            params["tpm"] = g.cloud_tpm
        models.append({"model_name": "cloud", "litellm_params": params})
    router: dict[str, Any] = {"routing_strategy": "usage-based-routing-v2",
                              "enable_tag_filtering": True, "num_retries": g.num_retries}
    if g.local_service and g.cloud_model:
        router["fallbacks"] = [{"local": ["cloud"]}]
    return {"model_list": models, "router_settings": router,
            "litellm_settings": {"request_timeout": g.request_timeout_s}}


def gateway_manifests(g: GatewaySettings, namespace: str) -> list[dict[str, Any]]:
    """ConfigMap, Deployment and Service of the LiteLLM router."""
    labels = _labels(g.name, "llm-gateway")
    meta = {"name": g.name, "namespace": namespace, "labels": labels}
    env = [{"name": "LITELLM_MASTER_KEY", "valueFrom": {"secretKeyRef": {
        "name": g.secret_name, "key": "master-key"}}},
        {"name": "LITELLM_LOCAL_MODEL_COST_MAP", "value": "True"}]
    if g.cloud_api_key_env:
        env.append({"name": g.cloud_api_key_env, "valueFrom": {"secretKeyRef": {
            "name": g.secret_name, "key": "cloud-api-key"}}})
    probe = {"httpGet": {"path": "/health/liveliness", "port": LITELLM_PORT},
             "periodSeconds": 10}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
         "data": {"config.yaml": yaml.safe_dump(litellm_config(g, namespace), sort_keys=True)}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
         "spec": {"replicas": g.replicas, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "containers": [{
                          "name": "litellm", "image": LITELLM_IMAGE,
                          "args": ["--config", "/etc/litellm/config.yaml",
                                   "--port", str(LITELLM_PORT)],
                          "ports": [{"name": "http", "containerPort": LITELLM_PORT}],
                          "env": env,
                          "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                        "limits": {"memory": "2Gi"}},
                          "readinessProbe": probe, "livenessProbe": probe,
                          "volumeMounts": [{"name": "config", "mountPath": "/etc/litellm"}]}],
                      "volumes": [{"name": "config", "configMap": {"name": g.name}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": labels,
                  "ports": [{"name": "http", "port": LITELLM_PORT, "targetPort": "http"}]}},
    ]
