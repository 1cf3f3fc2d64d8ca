"""Container images the stack runs, pinned to exact releases (never `latest`).

Each is the default of a stack setting (`vllmImage`, `litellmImage`, `balancerImage`), so a
rollback is `pulumi config set vllmImage <previous tag>` and `pulumi up`.

- vLLM v0.33.0: the newest vLLM release on PyPI when this was written (the stack used to
  pin v0.8.5 of spring 2025). On AMD GPUs the same release built for ROCm,
  `vllm/vllm-openai-rocm:v0.33.0`: vLLM's release pipeline pushes `vllm/vllm-openai-rocm:
  v<release>` with every `vllm/vllm-openai:v<release>` (.buildkite/scripts/
  publish-release-images.sh, the `rocm` target), and vLLM's ROCm install docs name that
  repository as the official image. The flags llmplan passes (--max-num-seqs,
  --max-num-batched-tokens, --gpu-memory-utilization, --block-size, --tensor-parallel-size,
  --data-parallel-size and --api-server-count, --enable-chunked-prefill,
  --enable-prefix-caching, --quantization, --max-model-len) are the scheduler and memory
  knobs the simulator models, and the autoscaler reads vLLM's `vllm:num_requests_waiting`.
- LiteLLM v1.108.7: the release the live router test runs (tests/infra/test_router_live.py
  starts `litellm[proxy]==1.108.7` from this project's dev dependencies), so the config the
  stack deploys is the config that test exercised. It is the newest release whose proxy
  extra installs from PyPI alone (1.108.8 and later pin companion packages that were not
  published). Since 1.84.0 LiteLLM tags stable images plainly `vX.Y.Z`.
- nginx 1.28.0: the gateway's request balancer (balancer.py). The first stable release line
  with `server ... resolve` in open-source nginx (added in mainline 1.27.3, November 2024;
  1.28.0 of April 2025 is the stable branch cut from it). The official image, run with its
  own configuration as the pods' non-root user (every path it writes under /tmp).
- NVIDIA device plugin v0.19.1: the current release line of NVIDIA/k8s-device-plugin (its
  static manifests were bumped to v0.19.1 in May 2026); it advertises `nvidia.com/gpu`.
"""

from __future__ import annotations

from llmplan.perf.engine import DEFAULT_VLLM_VERSION

# the release the simulator's memory accounting and engine defaults model by default
VLLM_IMAGE = f"vllm/vllm-openai:v{DEFAULT_VLLM_VERSION}"
VLLM_ROCM_IMAGE = f"vllm/vllm-openai-rocm:v{DEFAULT_VLLM_VERSION}"
LITELLM_VERSION = "1.108.7"
LITELLM_IMAGE = f"ghcr.io/berriai/litellm:v{LITELLM_VERSION}"
BALANCER_IMAGE = "nginx:1.28.0"
DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.19.1"


def is_pinned(image: str) -> bool:
    """A tag naming a release (or a digest): not `latest`, not a moving `main-*` branch tag."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag or not tag:
        return False
    moving = {"latest", "main", "main-latest", "main-stable", "stable", "nightly", "dev"}
    return tag not in moving and not tag.endswith(("-latest", "-nightly"))
