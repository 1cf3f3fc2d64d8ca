"""Tensor-parallel all-reduces between PCIe cards take the path vLLM gives them.

vLLM's custom all-reduce kernel (vllm/distributed/device_communicators/custom_all_reduce.py,
read in 0.27.1) runs on NVLink and xGMI groups and on two PCIe cards that reach each other
peer-to-peer; more than two PCIe-only cards, cards without peer-to-peer (GeForce) and, in
vLLM 0.11.1 to 0.26, replicas over several servers go through NCCL, whose small
all-reduces take several times as long on PCIe (RooflineStepTime.pcie_nccl_allreduce_us
and pcie_custom_allreduce_us, from published nccl-tests and kernel tables).
"""

from __future__ import annotations

import dataclasses

import pytest
from helpers import chat_scenario

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.steptime import build_step_time, layer_sync_us, nccl_all_reduce
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.scenario import load_scenario_text

CATALOG = builtin_catalog()
SPEC = RooflineStepTime()


def _setup(gpu: str, tp: int, pp: int = 1, model: str = "Qwen3-32B") -> ReplicaSetup:
    return ReplicaSetup(gpu_name=gpu, model_name=model, gpu=CATALOG.gpus[gpu],
                        model=CATALOG.models[model], engine=EngineSpec(), tp=tp, pp=pp)


@pytest.mark.parametrize(("gpu", "tp", "nccl", "per_layer_us"), [
    ("H100-SXM", 2, False, SPEC.tp_sync_us_per_layer),
    ("H100-SXM", 8, False, SPEC.tp_sync_us_per_layer),
    ("MI300X", 4, False, SPEC.tp_sync_us_per_layer),
    ("RTX-PRO-6000", 2, False, 2 * SPEC.pcie_custom_allreduce_us),
    ("RTX-PRO-6000", 4, True, 2 * SPEC.pcie_nccl_allreduce_us),
    ("L40S", 8, True, 2 * SPEC.pcie_nccl_allreduce_us),
    ("H100-PCIe", 2, False, 2 * SPEC.pcie_custom_allreduce_us),
    # GeForce: no peer-to-peer, so no custom kernel even for two cards
    ("RTX-4090", 2, True, 2 * SPEC.pcie_nccl_allreduce_us),
])
def test_the_all_reduce_path_is_the_one_vllm_takes(gpu: str, tp: int, nccl: bool,
                                                    per_layer_us: float) -> None:
    setup = _setup(gpu, tp)
    assert nccl_all_reduce(setup) is nccl
    assert layer_sync_us(setup, SPEC) == pytest.approx(per_layer_us)


def test_more_than_two_pcie_cards_pay_nccls_latency_every_layer() -> None:
    """A decode step of one sequence on four PCIe cards: every layer's two all-reduces at
    NCCL's PCIe latency instead of the NVLink figure (Qwen3-235B: 94 layers, 188 of them,
    3.4 ms a step more); nothing else in the step changes."""
    pcie = _setup("RTX-PRO-6000", 4, model="Qwen3-235B-A22B")
    as_nvlink = SPEC.model_copy(update={"pcie_nccl_allreduce_us": SPEC.tp_sync_us_per_layer / 2})
    slow, fast = (build_step_time(pcie, spec) for spec in (SPEC, as_nvlink))
    extra_s = 94 * (2 * SPEC.pcie_nccl_allreduce_us - SPEC.tp_sync_us_per_layer) * 1e-6
    assert slow.serial_s - fast.serial_s == pytest.approx(extra_s)
    assert extra_s == pytest.approx(3.365e-3, rel=0.01)
    assert dataclasses.replace(slow, serial_s=fast.serial_s) == fast


def test_stages_on_several_pcie_servers_count_nccl_once() -> None:
    """vLLM 0.11.1 to 0.26 turns the custom kernel off when a replica spans servers: on
    NVLink groups a layer pays tp_sync_us_per_layer x nccl_allreduce_factor; between PCIe
    cards NCCL's own PCIe latency, and nothing more. From 0.27.0 a tensor-parallel group
    inside one server keeps the custom kernel."""
    for version, nccl in (("0.26.0", True), ("0.27.0", False), ("0.33.0", False)):
        one = _setup("L40S", 2, pp=2)
        one = dataclasses.replace(one, engine=one.engine.model_copy(
            update={"vllm_version": version}))
        two = dataclasses.replace(one, gpus_per_server=2)
        assert (one.servers, two.servers) == (1, 2)
        assert not nccl_all_reduce(one) and nccl_all_reduce(two) is nccl
        near, far = (build_step_time(s, SPEC) for s in (one, two))
        layers = one.model.layers
        expected = layers * 2 * (SPEC.pcie_nccl_allreduce_us - SPEC.pcie_custom_allreduce_us) \
            * 1e-6 if nccl else 0.0
        assert far.serial_s - near.serial_s == pytest.approx(expected, abs=1e-12)


def test_a_box_without_peer_to_peer_is_said_in_the_scenario() -> None:
    """Peer-to-peer depends on the platform as much as the card (IOMMU, virtual machines):
    a scenario that says its L40S box has none gets NCCL for two cards, and the step pays
    for it."""
    text = chat_scenario("no-p2p", "  box: {gpu: L40S, model: Qwen3-32B, tp: 2}") + """
catalog:
  gpus:
    L40S:
      peer_to_peer: false
      sources: {peer_to_peer: "our cloud's VMs: cudaDeviceCanAccessPeer is 0"}
"""
    loaded = load_scenario_text(text)
    setup = loaded.scenario.deployments["box"].setup(loaded.catalog)
    assert not setup.gpu.peer_to_peer and nccl_all_reduce(setup)
    builtin = _setup("L40S", 2)
    assert not nccl_all_reduce(builtin)
    extra_s = 64 * 2 * (SPEC.pcie_nccl_allreduce_us - SPEC.pcie_custom_allreduce_us) * 1e-6
    assert build_step_time(setup, SPEC).serial_s - build_step_time(builtin, SPEC).serial_s \
        == pytest.approx(extra_s)


def test_cards_without_peer_to_peer_all_reduce_at_host_memory_speed() -> None:
    """Without peer-to-peer NCCL stages all-reduces through host memory: published
    nccl-tests plateaus of stock-driver GeForce boxes are 2-4 GB/s of bus bandwidth (median
    3.9 over eight, the catalog's host_allreduce_bus_gb_per_s), where the PCIe 4.0 link at
    allreduce_efficiency would give 19. A prompt token of Qwen3-8B on two RTX 4090s moves
    its hidden vector (4,096 x 2 bytes) through two all-reduces in each of 36 layers, on
    paper 2 x 36 x 8,192 x 2 (tp - 1) / tp bytes at 3.9 GB/s: 151 us, five times the
    link's figure; a box that says its own figure gets it; cards with peer-to-peer keep
    the link."""
    pair = _setup("RTX-4090", 2, model="Qwen3-8B")
    per_token_bytes = 2 * 36 * 4096 * 2.0
    assert pair.model.layers == 36 and pair.model.hidden_size == 4096
    step = build_step_time(pair, SPEC)
    assert step.serial_per_token_s == pytest.approx(per_token_bytes / 3.9e9)
    assert step.serial_per_token_s == pytest.approx(151e-6, rel=0.01)
    link_s = per_token_bytes / (32e9 * SPEC.allreduce_efficiency)
    assert step.serial_per_token_s > 4.9 * link_s
    # a box with many memory channels (8 x RTX 4090 on two EPYC 7542: 14.45 GB/s)
    server = dataclasses.replace(pair, gpu=pair.gpu.model_copy(
        update={"host_allreduce_bus_gb_per_s": 14.45}))
    assert build_step_time(server, SPEC).serial_per_token_s == pytest.approx(
        per_token_bytes / 14.45e9)
    # the same cards with peer-to-peer (a patched driver) all-reduce over the link
    patched = dataclasses.replace(pair, gpu=pair.gpu.model_copy(update={"peer_to_peer": True}))
    assert build_step_time(patched, SPEC).serial_per_token_s == pytest.approx(link_s)
    # four cards: (tp - 1) / tp of a ring twice, 1.5 times two cards' bytes
    four = build_step_time(_setup("RTX-4090", 4, model="Qwen3-8B"), SPEC)
    assert four.serial_per_token_s == pytest.approx(1.5 * per_token_bytes / 3.9e9)
