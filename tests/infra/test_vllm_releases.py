"""A deployment simulated as one vLLM release is provisioned as that release: vLLM's own image
of it, and only the flags that release takes; a setting the release does not take is refused
by the scenario, and an image naming another release by the stack."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
from helpers import chat_scenario
from infra_scenarios import Simulated, simulate_text, stack_of
from pydantic import ValidationError

from llmplan.errors import InputError
from llmplan.perf.engine import release_tuple
from llmplan.provision.images import VLLM_IMAGE, image_release, vllm_image
from llmplan.provision.serving_manifests import serving_manifests, vllm_args
from llmplan.provision.stack import write_stack
from llmplan.provision.stack_config import StackConfig
from llmplan.scenario import load_scenario_text

K8S = kubernetes_validate.latest_version()

SCENARIO = chat_scenario("vllm-releases", """
  current: {gpu: H100-SXM, model: Llama-3.1-8B}
  v0-11: {gpu: H100-SXM, model: Llama-3.1-8B, engine: {vllm_version: "0.11.0"}}
  v0-9-sync: {gpu: H100-SXM, model: Llama-3.1-8B,
              engine: {vllm_version: "0.9.2", async_scheduling: false}}
  v0-9-ranks: {gpu: H200, model: Qwen3-30B-A3B, tp: 2,
               engine: {vllm_version: "0.9.2", expert_parallel: true,
                        data_parallel_attention: true}}
  no-estimate: {gpu: H100-SXM, model: Llama-3.1-8B, engine: {cuda_graph_estimate: false,
                                                             model_runner: v1}}
  candidate: {gpu: H100-SXM, model: Llama-3.1-8B, engine: {vllm_version: "0.9.2rc1"}}
  amd-old: {gpu: MI300X, model: Llama-3.1-8B, engine: {vllm_version: "0.11.0"}}
  amd-new: {gpu: MI300X, model: Llama-3.1-8B, engine: {vllm_version: "0.14.0"}}
  blackwell-old: {gpu: B200, model: Llama-3.1-8B, engine: {vllm_version: "0.8.5"}}
  blackwell-new: {gpu: B200, model: Llama-3.1-8B, engine: {vllm_version: "0.9.0"}}
  sm120-old: {gpu: RTX-PRO-6000, model: Llama-3.1-8B, engine: {vllm_version: "0.9.1"}}
  sm120-first: {gpu: RTX-PRO-6000, model: Llama-3.1-8B, engine: {vllm_version: "0.9.2"}}
  grace-amd64-only: {gpu: GB200, model: Llama-3.1-8B, engine: {vllm_version: "0.10.1"}}
  grace-first: {gpu: GB200, model: Llama-3.1-8B, engine: {vllm_version: "0.10.2"}}
  grace: {gpu: GB200, model: Llama-3.1-8B}
""")


@pytest.fixture(scope="module")
def simulated() -> Simulated:
    return simulate_text(SCENARIO)


def _dump(config: StackConfig, **changes: object) -> dict[str, object]:
    return {**config.model_dump(by_alias=True), **changes}


def test_each_release_runs_its_own_image(simulated: Simulated, tmp_path: Path) -> None:
    assert stack_of(simulated, "current", tmp_path).config.serving_image == VLLM_IMAGE
    written = stack_of(simulated, "v0-11", tmp_path)
    old = written.config
    assert old.serving_image == "vllm/vllm-openai:v0.11.0"
    # the stack file says which image runs, though vllmImage is left empty
    assert "# The fleet runs vllm/vllm-openai:v0.11.0 (vLLM 0.11.0, as simulated)." in \
        written.path.read_text()
    container = next(m for m in serving_manifests(old) if m["kind"] == "StatefulSet")[
        "spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "vllm/vllm-openai:v0.11.0"
    for manifest in serving_manifests(old):
        kubernetes_validate.validate(manifest, K8S, strict=True)
    # 0.11's defaults, as simulated: 0.9 of the memory, no async scheduling
    args = vllm_args(old)
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.9"
    assert "--no-async-scheduling" in args


def test_flags_a_release_does_not_take_are_left_to_its_default(simulated: Simulated,
                                                               tmp_path: Path) -> None:
    """0.9.2 had no async scheduling (--no-async-scheduling came with the flag in 0.10.0)
    and one API server per engine (--api-server-count: 0.9.1 takes it, so it is passed)."""
    sync = vllm_args(stack_of(simulated, "v0-9-sync", tmp_path).config)
    assert not any("async-scheduling" in a for a in sync)
    # from 0.10 the pod is told what was simulated, set or the release's default
    assert "--no-async-scheduling" in vllm_args(stack_of(simulated, "v0-11", tmp_path).config)
    assert "--async-scheduling" in vllm_args(stack_of(simulated, "current", tmp_path).config)
    ranks = vllm_args(stack_of(simulated, "v0-9-ranks", tmp_path).config)
    assert ranks[ranks.index("--data-parallel-size") + 1] == "2"
    assert ranks[ranks.index("--api-server-count") + 1] == "1"   # 0.9's default, as simulated


def test_an_image_of_another_release_is_refused(simulated: Simulated, tmp_path: Path) -> None:
    config = stack_of(simulated, "v0-11", tmp_path).config
    with pytest.raises(ValidationError, match=r"vllmImage vllm/vllm-openai:v0.33.0 runs vLLM "
                                              r"0.33.0, but 'v0-11' was simulated as vLLM "
                                              r"0.11.0"):
        StackConfig.model_validate(_dump(config, vllmImage="vllm/vllm-openai:v0.33.0"))
    with pytest.raises(ValidationError, match=r"runs vLLM 0.33.0"):
        StackConfig.model_validate(_dump(config, vllmImage="registry.local:5000/vllm/"
                                                           "vllm-openai:v0.33.0"))
    mirror = StackConfig.model_validate(_dump(
        config, vllmImage="registry.local:5000/vllm/vllm-openai:v0.11.0"))
    assert mirror.serving_image == "registry.local:5000/vllm/vllm-openai:v0.11.0"
    own = StackConfig.model_validate(_dump(config, vllmImage="registry.local/vllm:prod"))
    assert own.serving_image == "registry.local/vllm:prod"     # names no release: the user's
    # a version-like tag of another image is not read as a vLLM release
    acme = StackConfig.model_validate(_dump(config, vllmImage="registry.local/acme:1.4.0"))
    assert acme.serving_image == "registry.local/acme:1.4.0"
    with pytest.raises(ValidationError, match=r"vllmImage vllm/vllm-openai:latest is not "
                                              r"pinned"):
        StackConfig.model_validate(_dump(config, vllmImage="vllm/vllm-openai:latest"))


def test_rewriting_a_stack_for_another_release_replaces_the_image(simulated: Simulated,
                                                                  tmp_path: Path) -> None:
    """A stack file written at one release keeps its settings when the plan moves to
    another, but not vLLM's image of the old release."""
    loaded, result = simulated
    path = tmp_path / "Pulumi.prod.yaml"
    first = write_stack(path, loaded, result, "current", {})
    assert first.config.serving_image == VLLM_IMAGE
    # a file of an earlier llmplan, which wrote the image out
    path.write_text(path.read_text().replace("llm-deploy-planner:vllmImage: ''",
                                             f"llm-deploy-planner:vllmImage: {VLLM_IMAGE}"))
    assert f"vllmImage: {VLLM_IMAGE}" in path.read_text()
    again = write_stack(path, loaded, result, "v0-11", {"namespace": "llm-prod"})
    assert again.config.serving_image == "vllm/vllm-openai:v0.11.0"
    assert again.config.namespace == "llm-prod"
    assert any(f"vllmImage {VLLM_IMAGE} ran another vLLM release than the simulated 0.11.0"
               in note for note in again.notes)


def test_a_stale_rocm_image_is_replaced_too(simulated: Simulated, tmp_path: Path) -> None:
    loaded, result = simulated
    path = tmp_path / "Pulumi.amd.yaml"
    write_stack(path, loaded, result, "amd-new", {})
    stale = "vllm/vllm-openai-rocm:v0.33.0"
    path.write_text(path.read_text().replace("llm-deploy-planner:vllmRocmImage: ''",
                                             f"llm-deploy-planner:vllmRocmImage: {stale}"))
    again = write_stack(path, loaded, result, "amd-new", {})
    assert again.config.serving_image == "vllm/vllm-openai-rocm:v0.14.0"
    assert any(f"vllmRocmImage {stale} ran another vLLM release" in n for n in again.notes)


def test_amd_images_start_at_the_first_rocm_release(simulated: Simulated,
                                                    tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"vLLM publishes ROCm images \(vllm/vllm-openai-rocm"
                                         r"\) from 0.14.0 on"):
        stack_of(simulated, "amd-old", tmp_path)
    assert stack_of(simulated, "amd-new", tmp_path).config.serving_image == \
        "vllm/vllm-openai-rocm:v0.14.0"
    # an image of that release named on the command line goes to the ROCm setting
    loaded, result = simulated
    image = "rocm/vllm:rocm6.4.1_vllm_0.11.0_20250812"
    written = write_stack(tmp_path / "Pulumi.amd-old.yaml", loaded, result, "amd-old",
                          {"serving_image": image})
    assert written.config.vllm_rocm_image == image and written.config.serving_image == image
    assert written.config.vllm_image == ""


@pytest.mark.parametrize(("engine", "why"), [
    ("{vllm_version: '0.9.2', async_scheduling: true}", r"--async-scheduling.* came in 0.10.0"),
    ("{vllm_version: '0.10.1', kv_cache_memory_gib: 20}",
     r"--kv-cache-memory-bytes.* came in 0.10.2"),
    ("{vllm_version: '0.11.0', block_size_tokens: 256}", r"--block-size 256.* came in 0.11.1"),
    ("{vllm_version: '0.9.0', api_server_count: 2}", r"--api-server-count.* came in 0.9.1"),
])
def test_a_setting_the_release_does_not_take_is_refused(engine: str, why: str) -> None:
    text = chat_scenario("one", f"  d: {{gpu: H100-SXM, model: Llama-3.1-8B, "
                                f"engine: {engine}}}")
    with pytest.raises(InputError, match=why):
        load_scenario_text(text)
    later = engine.replace(engine.split("'")[1], "0.33.0")
    load_scenario_text(text.replace(engine, later))       # the same setting, a later release


@pytest.mark.parametrize(("version", "image", "release"), [
    ("0.33", "vllm/vllm-openai:v0.33.0", (0, 33, 0)),
    ("0.10.1.1", "vllm/vllm-openai:v0.10.1.1", (0, 10, 1)),
    ("0.9.2rc1", "vllm/vllm-openai:v0.9.2", (0, 9, 2)),
])
def test_release_names(version: str, image: str, release: tuple[int, int, int]) -> None:
    assert vllm_image(version) == image
    assert release_tuple(version) == release == image_release(image)
    assert image_release("vllm/vllm-openai@sha256:" + "0" * 64) is None


def test_the_graph_estimate_and_model_runner_settings_reach_the_pod(simulated: Simulated,
                                                                    tmp_path: Path) -> None:
    def env(name: str) -> dict[str, str]:
        config = stack_of(simulated, name, tmp_path).config
        statefulset = next(m for m in serving_manifests(config) if m["kind"] == "StatefulSet")
        for manifest in serving_manifests(config):
            kubernetes_validate.validate(manifest, K8S, strict=True)
        return {e["name"]: e.get("value", "") for e in
                statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}

    assert env("no-estimate")["VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS"] == "0"
    assert env("no-estimate")["VLLM_USE_V2_MODEL_RUNNER"] == "0"
    assert "VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS" not in env("current")
    assert "VLLM_USE_V2_MODEL_RUNNER" not in env("current")


def test_blackwell_gpus_run_no_image_before_cuda_12_8(simulated: Simulated,
                                                     tmp_path: Path) -> None:
    """vLLM's images before 0.9.0 carry CUDA 12.4 kernels, none for Blackwell: a B200 fleet
    simulated as 0.8.5 is refused with vLLM's own image of it, named or by default, and
    built with an image of one's own; 0.9.0's image runs on a B200 (10.0)."""
    blackwell = (r"vLLM's images before 0.9.0 are built with CUDA 12.4, which has no kernels "
                 r"for Blackwell GPUs \(compute capability 10.0")
    with pytest.raises(InputError, match=blackwell):
        stack_of(simulated, "blackwell-old", tmp_path)
    loaded, result = simulated
    with pytest.raises(InputError, match=r"set vllmImage to a pinned image that runs vLLM "
                                         r"0.8.5 \(one built with CUDA 12.8"):
        write_stack(tmp_path / "Pulumi.b.yaml", loaded, result, "blackwell-old",
                    {"serving_image": "vllm/vllm-openai:v0.8.5"})
    own = write_stack(tmp_path / "Pulumi.b.yaml", loaded, result, "blackwell-old",
                      {"serving_image": "registry.local/team/vllm-cu128:v0.8.5"})
    assert own.config.serving_image == "registry.local/team/vllm-cu128:v0.8.5"
    assert stack_of(simulated, "blackwell-new", tmp_path).config.serving_image == \
        "vllm/vllm-openai:v0.9.0"
    # simulate says so beside the answer, for that deployment only
    from llmplan.pipeline import images_to_name
    notes = images_to_name(loaded)
    assert any(n.startswith("deployment 'blackwell-old': vLLM's images before 0.9.0 are "
                            "built with CUDA 12.4") and "and this is 0.8.5" in n for n in notes)
    assert not any("'blackwell-new'" in n or "'v0-9-sync'" in n for n in notes)


def test_images_of_the_wrong_vendor_or_release_or_no_image_at_all_are_refused(
        simulated: Simulated, tmp_path: Path) -> None:
    nvidia = stack_of(simulated, "v0-11", tmp_path).config
    amd = stack_of(simulated, "amd-new", tmp_path).config
    with pytest.raises(ValidationError, match=r"vLLM's image for AMD GPUs, and the fleet's "
                                              r"H100-SXM is an NVIDIA GPU"):
        StackConfig.model_validate(_dump(nvidia, vllmImage="vllm/vllm-openai-rocm:v0.11.0"))
    with pytest.raises(ValidationError, match=r"vLLM's image for NVIDIA GPUs, and the fleet's "
                                              r"MI300X is an AMD GPU"):
        StackConfig.model_validate(_dump(amd, vllmRocmImage="vllm/vllm-openai:v0.14.0"))
    with pytest.raises(ValidationError, match=r"is not an image reference"):
        StackConfig.model_validate(_dump(nvidia, vllmImage="vllm/vllm-openai:v0.11.0 --foo"))
    # AMD's own builds name the vLLM they carry; a digest after a tag keeps the tag's word
    with pytest.raises(ValidationError, match=r"runs vLLM 0.9.1"):
        StackConfig.model_validate(_dump(amd, vllmRocmImage="rocm/vllm:rocm6.4.1_vllm_0.9.1_"
                                                            "20250715"))
    with pytest.raises(ValidationError, match=r"runs vLLM 0.33.0"):
        StackConfig.model_validate(_dump(nvidia, vllmImage="vllm/vllm-openai:v0.33.0@sha256:"
                                                           + "0" * 64))


def test_a_release_candidate_needs_an_image_named(simulated: Simulated, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"a pre-release vLLM publishes no image of"):
        stack_of(simulated, "candidate", tmp_path)
    # simulate says so first, beside the answer (the stack needs an image named)
    from llmplan.pipeline import images_to_name
    notes = images_to_name(simulated[0])
    assert any(n.startswith("deployment 'candidate': vLLM ") and "is a pre-release" in n
               and "--vllm-image" in n for n in notes)
    assert any(n.startswith("deployment 'amd-old': vLLM publishes ROCm images") for n in notes)
    assert not any("'amd-new'" in n for n in notes)
    loaded, result = simulated
    written = write_stack(tmp_path / "Pulumi.rc.yaml", loaded, result, "candidate",
                          {"serving_image": "registry.local/vllm/vllm-openai:v0.9.2rc1"})
    assert written.config.serving_image == "registry.local/vllm/vllm-openai:v0.9.2rc1"


def test_an_own_image_kept_across_a_release_change_gets_a_note(simulated: Simulated,
                                                               tmp_path: Path) -> None:
    """An image of one's own names no release to check: when the plan's release moves
    under it, the rewrite says so."""
    loaded, result = simulated
    path = tmp_path / "Pulumi.own.yaml"
    first = write_stack(path, loaded, result, "v0-11",
                        {"serving_image": "registry.local/team/vllm:prod-2025"})
    assert first.config.serving_image == "registry.local/team/vllm:prod-2025"
    assert not any("is kept from the stack file" in n for n in first.notes)
    again = write_stack(path, loaded, result, "current", {})
    assert again.config.serving_image == "registry.local/team/vllm:prod-2025"
    assert any("vllmImage registry.local/team/vllm:prod-2025 is kept from the stack file, "
               "and the plan now simulates vLLM 0.33.0 (was 0.11.0)" in n for n in again.notes)
    # the same release again: nothing to say
    assert not any("is kept" in n for n in write_stack(path, loaded, result, "current",
                                                       {}).notes)


def test_grace_hosts_select_arm64_nodes_and_an_image_published_for_arm64(
        simulated: Simulated, tmp_path: Path) -> None:
    """GB200's hosts are Grace (arm64) CPUs. vLLM's vllm/vllm-openai:v<release> is a
    multi-arch manifest (x86_64 and aarch64) from 0.10.2 on (vllm-project/vllm#23210,
    publish-release-images.sh); an earlier tag is amd64 only and would not start there, though
    it has Blackwell kernels from 0.9.0. So 0.10.1 is refused, 0.10.2 and the default run, on
    nodes selected by their architecture as well as their GPU, on EKS with NVIDIA's arm64 AMI."""
    with pytest.raises(InputError, match=r"its nodes are arm64 \(Grace CPUs\), and vLLM's "
                                         r"images before 0.10.2 are built for amd64 only.*"
                                         r"\(one built for arm64; .*engine.vllm_version >= "
                                         r"0.10.2"):
        stack_of(simulated, "grace-amd64-only", tmp_path)
    from llmplan.pipeline import images_to_name
    notes = images_to_name(simulated[0])
    assert any(n.startswith("deployment 'grace-amd64-only': its nodes are arm64") for n in notes)
    assert not any("'grace-first'" in n or "'grace'" in n for n in notes)
    assert stack_of(simulated, "grace-first", tmp_path).config.serving_image == \
        "vllm/vllm-openai:v0.10.2"
    written = stack_of(simulated, "grace", tmp_path)
    assert written.config.serving_image == VLLM_IMAGE
    manifests = serving_manifests(written.config)
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S, strict=True)
    pod = next(m for m in manifests if m["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-GB200",
                                   "kubernetes.io/arch": "arm64"}
    # x86 hosts are selected by their architecture too: a GFD product label does not name
    # the host (an Ampere Altra server's PCIe cards carry the x86 servers' label), and
    # images before 0.10.2, or one built for amd64 alone, stop on arm64. The recorded
    # Altra node (kubelet: arm64) given the H100 fleet's product label is no host for it,
    # the same node reporting amd64 is
    from k8s_replay import recorded
    h100 = stack_of(simulated, "current", tmp_path).config
    pod = next(m for m in serving_manifests(h100) if m["kind"] == "StatefulSet")[
        "spec"]["template"]["spec"]
    assert pod["nodeSelector"]["kubernetes.io/arch"] == "amd64"
    altra = next(n for n in recorded("nodes-arm64.json")["items"]
                 if n["metadata"]["name"] == "altra-a100-01")["metadata"]["labels"]
    altra = {**altra, "nvidia.com/gpu.product": pod["nodeSelector"]["nvidia.com/gpu.product"]}
    assert not all(altra.get(k) == v for k, v in pod["nodeSelector"].items())
    assert all({**altra, "kubernetes.io/arch": "amd64"}.get(k) == v
               for k, v in pod["nodeSelector"].items())

    from pulumi_harness import run_program, stack_values
    run = run_program({**stack_values(written.path), "clusterMode": "eks", "awsRegion": "us-east-1",
                       "eksGpuInstanceType": "p6e-gb200.36xlarge", "eksGpusPerNode": 4},
                      {"gatewayMasterKey": "mk-test-master-key"})
    nodes = run.mocks.named("cluster-gpu").inputs
    assert nodes["amiType"] == "AL2023_ARM_64_NVIDIA"
    statefulset = run.mocks.of_type("kubernetes:apps/v1:StatefulSet")[0].inputs
    assert statefulset["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/arch"] == \
        "arm64"


def test_an_rtx_pro_6000_runs_no_image_before_the_first_built_for_sm_120(
        simulated: Simulated, tmp_path: Path) -> None:
    """CUDA 12.8 (0.9.0) brought kernels for 10.0, not 12.0: vLLM's image build listed
    '... 9.0 10.0+PTX' until vllm-project/vllm#19794 added 12.0 after 0.9.1, and 0.9.0's
    image stopped on an RTX 5090 (#18995). An RTX PRO 6000 (12.0) fleet simulated as 0.9.1 is
    refused, as 0.9.2 and the default are not; a B200 (10.0) keeps 0.9.0 as its floor."""
    with pytest.raises(InputError, match=r"vLLM's images before 0.9.2 carry no kernels for "
                                         r"compute capability 12.0.*\(one built for compute "
                                         r"capability 12.0;.*engine.vllm_version >= 0.9.2"):
        stack_of(simulated, "sm120-old", tmp_path)
    from llmplan.pipeline import images_to_name
    notes = images_to_name(simulated[0])
    assert any(n.startswith("deployment 'sm120-old': vLLM's images before 0.9.2") for n in notes)
    assert not any("'sm120-first'" in n for n in notes)
    written = stack_of(simulated, "sm120-first", tmp_path)
    assert written.config.serving_image == "vllm/vllm-openai:v0.9.2"
    for manifest in serving_manifests(written.config):
        kubernetes_validate.validate(manifest, K8S, strict=True)
    assert stack_of(simulated, "blackwell-new", tmp_path).config.serving_image == \
        "vllm/vllm-openai:v0.9.0"
    from pulumi_harness import run_program, stack_values
    run = run_program(stack_values(written.path), {"gatewayMasterKey": "mk-test-master-key"})
    statefulset = run.mocks.of_type("kubernetes:apps/v1:StatefulSet")[0].inputs
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "vllm/vllm-openai:v0.9.2"
