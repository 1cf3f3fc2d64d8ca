"""The serving pod's /dev/shm: sized for vLLM's rings and NCCL's SHM buffers, and carried by
the pod's memory request and limit, as tmpfs pages count against the container's limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from helpers import chat_scenario
from infra_scenarios import simulate_text, stack_of

from llmplan.provision import serving_manifests as sm
from llmplan.provision.stack_config import StackConfig

MIB, GIB = 2**20, 2**30

SHM = chat_scenario("shm", """
  # one GPU (vLLM runs it in-process), tp 4 over NVLink, tp 4 over PCIe without peer-to-peer
  one: {gpu: H100-SXM, model: Llama-3.1-8B, tp: 1}
  nvlink: {gpu: H100-SXM, model: Llama-3.1-70B, tp: 4}
  geforce: {gpu: RTX-4090, model: Llama-3.1-8B, tp: 4}
""")


def _pod(config: StackConfig) -> dict[str, Any]:
    fleet = next(m for m in sm.serving_manifests(config) if m["kind"] == "StatefulSet")
    for manifest in sm.serving_manifests(config):
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)
    spec: dict[str, Any] = fleet["spec"]["template"]["spec"]
    return spec


def test_the_shm_mount_holds_vllms_rings_and_nccls_buffers_and_the_pod_pays_for_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On paper, from vLLM's and NCCL's constructors: tp 4 runs four worker processes, so
    the executor's broadcast ring (10 x 16 MiB), a response ring per worker (10 x 24 MiB)
    and the tensor-parallel group's broadcaster (6 x 4 MiB): 1,144 MiB, a 2 GiB mount. Over
    PCIe without peer-to-peer NCCL adds, per GPU, 64 channels x 2 neighbours x (512 KiB +
    4,800 KiB + 4 MiB): 4,704 MiB for four, 5,848 MiB in all, 6 GiB. One GPU runs in-process
    and writes none: the least mount, 1 GiB. Each pod's memory request and limit is what it
    asked before plus its mount."""
    simulated = simulate_text(SHM)
    configs = {name: stack_of(simulated, name, tmp_path).config
               for name in ("one", "nvlink", "geforce")}
    rings = 10 * 16 * MIB + 4 * 10 * 24 * MIB + 6 * 4 * MIB
    assert rings == 1144 * MIB
    nccl = 4 * 64 * 2 * (8 * 512 * 8 * 16 + 120 * 640 * 8 * 8 + 4 * MIB)
    assert nccl == 4704 * MIB
    expected_gib = {"one": 1, "nvlink": 2, "geforce": 6}
    assert -(-(rings + nccl) // GIB) == expected_gib["geforce"]
    with_shm = {name: sm.serving_sizes(config)[1] for name, config in configs.items()}
    pods = {name: _pod(config) for name, config in configs.items()}
    for name, pod in pods.items():
        shm = next(v for v in pod["volumes"] if v["name"] == "shm")["emptyDir"]
        assert shm == {"medium": "Memory", "sizeLimit": f"{expected_gib[name]}Gi"}, name
    # the same pods with no mount to carry
    monkeypatch.setattr(sm, "shm_gib", lambda setup: 0)
    without = {name: sm.serving_sizes(config)[1] for name, config in configs.items()}
    for name, pod in pods.items():
        resources = pod["containers"][0]["resources"]
        assert resources["requests"]["memory"] == resources["limits"]["memory"] == \
            f"{without[name] + expected_gib[name]}Gi" == f"{with_shm[name]}Gi", name

