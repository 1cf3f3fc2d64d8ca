"""Container images the stack runs, pinned to exact releases (never `latest`).

Each is the default of a stack setting (`vllmImage`, `litellmImage`, `balancerImage`). vLLM's
is the simulated release's own (`engine.vllm_version`, v0.33.0 unless the scenario pins
another), so rolling vLLM back is simulating the earlier release (`engine.vllm_version`) and
running `llmplan stack` again; a `vllmImage` whose tag names another release is refused, as
it would not be what was simulated. The others roll back with `pulumi config set <key>
<previous tag>` and `pulumi up`.

- vLLM v0.33.0 by default: the newest vLLM release on PyPI when this was written (the stack
  used to pin v0.8.5 of spring 2025); any release from 0.8.5 on (`vllm_build.
  OLDEST_STACK_RELEASE`) when the scenario pins it. On AMD GPUs the same release built for
  ROCm, `vllm/vllm-openai-rocm:v<release>`: vLLM's release pipeline pushes it with every
  `vllm/vllm-openai:v<release>` (.buildkite/scripts/publish-release-images.sh, the `rocm`
  target) from 0.14.0 on, and vLLM's ROCm install docs name that repository as the official
  image. On data-centre Blackwell GPUs (compute capability 10.x: B200, GB200) no image of
  vLLM's before 0.9.0, the first built with CUDA 12.8, runs (`image_floor`); on 12.x (RTX
  PRO 6000) none before 0.9.2, the first built for 12.0; an earlier release needs an image
  of one's own named. On arm64 hosts (GB200's Grace CPUs,
  catalog `host_arch`) no image of vLLM's before 0.10.2, the first published for arm64,
  runs; the pods select arm64 nodes (`kubernetes.io/arch`). The flags llmplan passes
  (--max-num-seqs, --max-num-batched-tokens, --gpu-memory-utilization, --block-size,
  --tensor-parallel-size, --data-parallel-size and --api-server-count,
  --enable-chunked-prefill, --enable-prefix-caching, --quantization, --max-model-len) are
  the scheduler and memory knobs the simulator models, each passed only to a release that
  takes it (`engine.SETTING_RELEASES`), and the autoscaler reads vLLM's
  `vllm:num_requests_waiting`.
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

import re
from typing import Literal, NamedTuple

from llmplan.catalog import GpuSpec
from llmplan.perf.engine import DEFAULT_VLLM_VERSION, dotted, release_tuple

VLLM_REPOSITORY = "vllm/vllm-openai"
VLLM_ROCM_REPOSITORY = "vllm/vllm-openai-rocm"
#: The first release vLLM's pipeline published as vllm/vllm-openai-rocm:v<release> (0.14.0,
#: January 2026: vLLM's ROCm install docs name the repository from then, vllm-project/vllm
#: #32580; no earlier tag of it was found). Earlier ROCm builds were AMD's own rocm/vllm.
FIRST_ROCM_IMAGE_RELEASE = (0, 14, 0)
#: The first release whose published image runs on Blackwell GPUs (compute capability 10.x,
#: 12.x): 0.9.0 moved vLLM's wheels and image from CUDA 12.4 (torch 2.6) to CUDA 12.8 (torch
#: 2.7: vllm-project/vllm#16859; the v0.9.0 release notes: "The default wheel has been
#: upgraded from CUDA 12.4 to CUDA 12.8"), the first CUDA that compiles for sm_100 and sm_120.
#: An earlier image has no kernels for them: torch stops at start-up with "no kernel image is
#: available for execution on the device" (vllm-project/vllm#13306, #17901).
FIRST_BLACKWELL_IMAGE_RELEASE = (0, 9, 0)
#: The first release whose image has kernels for compute capability 12.x (RTX PRO 6000, RTX
#: 50xx: sm_120). CUDA 12.8 alone did not bring them: 0.9.0's image built vLLM's kernels for
#: '7.0 7.5 8.0 8.9 9.0 10.0+PTX' (docker/Dockerfile's torch_cuda_arch_list, which the release
#: image build takes), and vllm/vllm-openai:latest, then 0.9.0, stopped on an RTX 5090 with
#: "no kernel image is available for execution on the device" (vllm-project/vllm#18995, May
#: 2025). vllm-project/vllm#19794 ("[CI] Add SM120 to the Dockerfile", June 2025, after
#: 0.9.1 of June 10; #19747 asked the same of the release pipeline "to enable Blackwell
#: SM120 support") added 12.0 to that list, so 0.9.2 of July 2025 is the first release
#: whose image runs there.
FIRST_SM120_IMAGE_RELEASE = (0, 9, 2)
#: The first release whose vllm/vllm-openai:v<release> runs on arm64 hosts (GB200's Grace
#: CPUs): until August 2025 vLLM pushed amd64 images only (vllm-project/vllm#22206, "linux/
#: amd64 is the only build offered"; #11728 asked for a GH200 image); vllm-project/vllm
#: #23210 (merged after 0.10.1.1) added an aarch64 build to the release pipeline and made the
#: release tag a multi-arch manifest of `v<release>-x86_64` and `v<release>-aarch64`
#: (.buildkite/scripts/publish-release-images.sh), so 0.10.2 of September 2025 is the first.
#: An earlier tag pulled on an arm64 node fails with "exec format error".
FIRST_ARM64_IMAGE_RELEASE = (0, 10, 2)


class ImageFloor(NamedTuple):
    """The first release vLLM publishes an image of that runs on a GPU's nodes."""

    release: tuple[int, int, int]
    why: str
    instead: str       # the image of one's own an earlier release needs


def vllm_image(version: str, vendor: Literal["nvidia", "amd"] = "nvidia") -> str:
    """vLLM's official serving image of a release (`engine.vllm_version`): the release's
    tag, v<major>.<minor>.<patch> (a post release's fourth number kept: v0.10.1.1)."""
    repository = VLLM_ROCM_REPOSITORY if vendor == "amd" else VLLM_REPOSITORY
    if re.fullmatch(r"\d+\.\d+\.\d+(\.\d+|\.post\d+)", version):
        return f"{repository}:v{version}"
    major, minor, patch = release_tuple(version)
    return f"{repository}:v{major}.{minor}.{patch}"


def is_final(version: str) -> bool:
    """A release vLLM publishes an image of (not an rc or a dev build)."""
    return re.fullmatch(r"\d+\.\d+(\.\d+)?(\.\d+|\.post\d+)?", version) is not None


def image_floor(gpu: GpuSpec) -> ImageFloor | None:
    """The first release vLLM publishes an image of that runs on `gpu`'s nodes, and why (None:
    any release's image runs there): the latest of its GPU's floor and its hosts' (arm64)."""
    floors: list[ImageFloor] = []
    if gpu.vendor == "amd":
        first = dotted(FIRST_ROCM_IMAGE_RELEASE)
        floors.append(ImageFloor(FIRST_ROCM_IMAGE_RELEASE,
                                 f"vLLM publishes ROCm images (vllm/vllm-openai-rocm) from "
                                 f"{first} on", "AMD's rocm/vllm"))
    elif (gpu.capability_major or 0) >= 12:
        first = dotted(FIRST_SM120_IMAGE_RELEASE)
        floors.append(ImageFloor(FIRST_SM120_IMAGE_RELEASE, (
            f"vLLM's images before {first} carry no kernels for compute capability "
            f"{gpu.compute_capability} (their build lists 10.0 as its newest: 'no kernel "
            f"image is available for execution on the device'); {first} is the first built "
            f"for 12.0 (vllm-project/vllm#19794)"), "one built for compute capability 12.0"))
    elif (gpu.capability_major or 0) >= 10:
        first = dotted(FIRST_BLACKWELL_IMAGE_RELEASE)
        floors.append(ImageFloor(FIRST_BLACKWELL_IMAGE_RELEASE, (
            f"vLLM's images before {first} are built with CUDA 12.4, which has no kernels for "
            f"Blackwell GPUs (compute capability {gpu.compute_capability}: 'no kernel image "
            f"is available for execution on the device'); {first} is the first built with "
            f"CUDA 12.8"), "one built with CUDA 12.8"))
    if gpu.host_arch == "arm64":
        first = dotted(FIRST_ARM64_IMAGE_RELEASE)
        floors.append(ImageFloor(FIRST_ARM64_IMAGE_RELEASE, (
            f"its nodes are arm64 (Grace CPUs), and vLLM's images before {first} are built "
            f"for amd64 only ('exec format error'); {first} is the first published for arm64 "
            f"too (vllm-project/vllm#23210)"), "one built for arm64"))
    return max(floors, key=lambda floor: floor.release, default=None)


def no_published_image(version: str, gpu: GpuSpec) -> str | None:
    """Why vLLM publishes no image of release `version` that runs on `gpu` (None: it does),
    so that `llmplan stack` needs one named (--vllm-image)."""
    if not is_final(version):
        return f"vLLM {version} is a pre-release, of which vLLM publishes no image"
    floor = image_floor(gpu)
    if floor is not None and release_tuple(version) < floor.release:
        return f"{floor.why}, and this is {version}"
    return None


def split_image(image: str) -> tuple[str, str]:
    """An image reference's repository and tag ("" without one), a digest left out."""
    named = image.partition("@")[0]
    if ":" not in named.rpartition("/")[2]:
        return named, ""
    repository, _, tag = named.rpartition(":")
    return repository, tag


def image_vendor(image: str) -> str | None:
    """The GPU vendor vLLM's own image is built for, wherever it is copied to (None:
    another image)."""
    name = split_image(image)[0].rpartition("/")[2]
    return {VLLM_REPOSITORY.rpartition("/")[2]: "nvidia",
            VLLM_ROCM_REPOSITORY.rpartition("/")[2]: "amd"}.get(name)


def image_release(image: str) -> tuple[int, int, int] | None:
    """The vLLM release an image's tag names: vLLM's own image wherever it is copied to
    (…/vllm-openai or …/vllm-openai-rocm: v0.21.0, 0.21.0, v0.21.0-rocm, v0.9.2rc1, also
    with a digest after it), or AMD's rocm/vllm naming it in its tag (…_vllm_0.9.1_…); else
    None (a bare digest, or a tag of one's own that names no release)."""
    tag = split_image(image)[1]
    if image_vendor(image) is not None:
        found = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(?:\.\d+)?(?:[-.+]?[A-Za-z][\w.-]*)?", tag)
    else:
        # AMD's rocm/vllm names the vLLM it carries in its tags: rocm6.4.1_vllm_0.9.1_20250715
        found = re.search(r"vllm[_-]v?(\d+)\.(\d+)\.(\d+)", tag)
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


# the release the simulator's memory accounting and engine defaults model by default
VLLM_IMAGE = vllm_image(DEFAULT_VLLM_VERSION)
VLLM_ROCM_IMAGE = vllm_image(DEFAULT_VLLM_VERSION, "amd")
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
