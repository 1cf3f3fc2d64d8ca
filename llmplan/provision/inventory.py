"""`llmplan import-cluster`: an existing cluster's GPU nodes as deployments a scenario can use.

Reads every node: its GPU product label (`nvidia.com/gpu.product`, set by GPU Feature
Discovery), allocatable GPUs (`nvidia.com/gpu`, advertised by the device plugin), readiness
and schedulability, and its CPU architecture (`kubernetes.io/arch`, which the kubelet sets
on every node). GPUs are grouped by catalog id; each group becomes a `kind: local`
deployment of the chosen model with as many `tp`-GPU replicas as the ready, schedulable
nodes' allocatable GPUs hold (replicas never span nodes), owned hardware. A node whose
architecture is not its catalog GPU's `host_arch` is left out, and said why: the stack
provisions a GPU's pods for its `host_arch` (an arm64 GPU's pods select arm64 nodes and
need an image published for arm64; the EKS node group's AMI follows it), so an arm64 GB200
catalog entry never schedules on an amd64 node, and an amd64 entry's image and performance
are not those of an arm64 server. Products the catalog does not know are listed apart,
with their counts and their nodes' architectures, so they can be added under the
scenario's `catalog:` (with `host_arch: arm64` for Grace hosts such as GH200).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from llmplan.catalog import builtin_catalog
from llmplan.perf.memory import fits, kv_capacity
from llmplan.perf.parallel import tp_error
from llmplan.provision.gpu_nodes import ARCH_LABEL, GPU_RESOURCE, PRODUCT_LABEL, catalog_gpu
from llmplan.provision.kube import api_client, call, quantity, server_of
from llmplan.provision.manifests import k8s_name
from llmplan.scenario.models import LocalCosts, LocalDeployment


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuNode(_Model):
    name: str
    product: str
    gpu: str | None = Field(description="Catalog id (None: not in the catalog).")
    allocatable_gpus: int
    ready: bool
    schedulable: bool
    arch: str | None = Field(default=None,
                             description="The node's kubernetes.io/arch label (None: absent).")


class GpuPool(_Model):
    """Nodes of one GPU type."""

    gpu: str
    product: str
    nodes: list[str]
    usable_nodes: int
    allocatable_gpus: int
    usable_gpus_per_node: list[int]


class ClusterInventory(_Model):
    """What import-cluster found, and the deployments it proposes."""

    server: str
    gpu_nodes: list[GpuNode]
    pools: list[GpuPool]
    unknown_products: dict[str, int] = Field(description="Product label -> allocatable GPUs "
                                                         "(slices of GPUs, MIG or shared, "
                                                         "among them).")
    deployments: dict[str, LocalDeployment]
    too_small: dict[str, int] = Field(default_factory=dict,
                                      description="GPU pools no ready node of which holds a "
                                                  "replica's tp GPUs -> the most a node has.")
    cannot_serve: dict[str, str] = Field(
        default_factory=dict, description="GPU pools whose replicas of tp GPUs cannot serve "
                                          "the model as a scenario would check it -> why.")
    wrong_arch: dict[str, str] = Field(
        default_factory=dict, description="Nodes left out because their kubernetes.io/arch "
                                          "is not their catalog GPU's host_arch -> why.")
    unknown_product_arch: dict[str, list[str]] = Field(
        default_factory=dict, description="Product label not in the catalog -> its nodes' "
                                          "kubernetes.io/arch values (host_arch to give it).")


def read_nodes(client: Any) -> list[GpuNode]:
    """The cluster's GPU nodes (nodes with a product label or allocatable GPUs)."""
    from kubernetes import client as k8s

    nodes = call("list nodes", lambda: k8s.CoreV1Api(client).list_node()).items
    labels_by_gpu = {gpu: spec.k8s_product_label for gpu, spec in builtin_catalog().gpus.items()
                     if spec.k8s_product_label}
    found = []
    for node in nodes:
        labels = node.metadata.labels or {}
        allocatable = (node.status.allocatable or {}) if node.status else {}
        gpus = quantity(allocatable.get(GPU_RESOURCE))
        product = labels.get(PRODUCT_LABEL, "")
        if not product and not gpus:
            continue
        conditions = (node.status.conditions or []) if node.status else []
        ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
        schedulable = not (node.spec.unschedulable if node.spec else False)
        found.append(GpuNode(name=node.metadata.name, product=product or "unlabelled",
                             gpu=catalog_gpu(product, labels_by_gpu), allocatable_gpus=gpus,
                             ready=ready, schedulable=schedulable,
                             arch=labels.get(ARCH_LABEL)))
    return sorted(found, key=lambda n: n.name)


def arch_mismatch(node: GpuNode, host_arch: str) -> str | None:
    """Why pods of the node's catalog GPU, provisioned for `host_arch` hosts, would not run
    on it (None: its kubernetes.io/arch is that). The pods select the label whatever the
    architecture (`gpu_nodes.node_selector`), so a node without it (no kubelet's: every
    kubelet sets it) is no host either."""
    if node.arch == host_arch:
        return None
    label = f"is labelled {ARCH_LABEL}={node.arch}" if node.arch is not None \
        else f"has no {ARCH_LABEL} label"
    if host_arch != "amd64" or node.arch is None:
        return (f"node {node.name} {label}, but the catalog's {node.gpu} comes in {host_arch} "
                f"hosts (host_arch): its pods select {ARCH_LABEL}={host_arch} nodes and would "
                f"never be scheduled on it")
    return (f"node {node.name} is labelled {ARCH_LABEL}={node.arch}, but the catalog's "
            f"{node.gpu} comes in {host_arch} hosts (host_arch): the stack provisions its "
            f"pods for {host_arch} (they select {ARCH_LABEL}={host_arch}; an image not "
            f"published for {node.arch} stops there with 'exec format error'), and the "
            f"catalog's figures are an {host_arch} server's; a scenario for this node needs a "
            f"catalog GPU of its own with host_arch: {node.arch}")


def build_inventory(server: str, nodes: list[GpuNode], model: str, tp: int) -> ClusterInventory:
    """Group nodes by catalog GPU; one deployment of `model` per group."""
    pools, deployments = [], {}
    short: dict[str, int] = {}
    cannot: dict[str, str] = {}
    wrong_arch: dict[str, str] = {}
    catalog = builtin_catalog()
    for node in nodes:
        why_not = arch_mismatch(node, catalog.gpus[node.gpu].host_arch) \
            if node.gpu is not None else None
        if why_not is not None:
            wrong_arch[node.name] = why_not
    for gpu in sorted({n.gpu for n in nodes if n.gpu is not None}):
        members = [n for n in nodes if n.gpu == gpu]
        usable = [n for n in members if n.ready and n.schedulable and n.name not in wrong_arch]
        per_node = [n.allocatable_gpus for n in usable]
        pools.append(GpuPool(gpu=gpu, product=members[0].product,
                             nodes=[n.name for n in members], usable_nodes=len(usable),
                             allocatable_gpus=sum(n.allocatable_gpus for n in members),
                             usable_gpus_per_node=per_node))
        replicas = sum(count // tp for count in per_node)
        if replicas == 0:
            short[gpu] = max(per_node, default=0)
        if replicas > 0:
            dep = LocalDeployment(gpu=gpu, model=model, replicas=replicas, tp=tp,
                                  costs=LocalCosts(ownership="owned"))
            # what a scenario's own checks would refuse is not proposed (the file says its
            # deployments validate as kind: local)
            setup = dep.setup(catalog)
            why = tp_error(setup, fits) or kv_capacity(setup).error
            if why is not None:
                cannot[gpu] = why
            else:
                deployments[f"cluster-{k8s_name(gpu)}"] = dep
    unknown: dict[str, int] = {}
    unknown_arch: dict[str, set[str]] = {}
    for node in nodes:
        if node.gpu is None:
            unknown[node.product] = unknown.get(node.product, 0) + node.allocatable_gpus
            unknown_arch.setdefault(node.product, set()).update(
                [node.arch] if node.arch is not None else [])
    return ClusterInventory(server=server, gpu_nodes=nodes, pools=pools,
                            unknown_products=unknown, deployments=deployments,
                            too_small=short, cannot_serve=cannot, wrong_arch=wrong_arch,
                            unknown_product_arch={product: sorted(arches) for product, arches
                                                  in unknown_arch.items() if arches})


def import_cluster(kubeconfig: Path | None, context: str | None, model: str,
                   tp: int) -> ClusterInventory:
    """Read the cluster of a kubeconfig into an inventory (the command's entry point)."""
    client = api_client(kubeconfig, context)
    return build_inventory(server_of(client), read_nodes(client), model, tp)


def host_arch_advice(arches: list[str]) -> str | None:
    """The host_arch a catalog entry for a product not in it needs, from its nodes'
    kubernetes.io/arch values (None: amd64 alone, the catalog's default). Nodes of two
    architectures: an entry serves one of them, as a catalog GPU has one host_arch."""
    if arches == ["amd64"]:
        return None
    where = f"its nodes are {' and '.join(arches)}"
    if len(arches) == 1:
        return f"{where}: a catalog entry for it needs host_arch: {arches[0]}"
    return (f"{where}: a catalog GPU has one host_arch, so an entry serves the nodes of one "
            f"of them ({' or '.join(f'host_arch: {arch}' for arch in arches)})")


def write_inventory(inventory: ClusterInventory, path: Path) -> Path:
    """inventory.yaml: the `deployments:` to paste into a scenario, then what was found."""
    header = [f"# llmplan import-cluster: GPU nodes of {inventory.server}.",
              "# Paste `deployments:` into a scenario (they validate as kind: local); the rest",
              "# is what the cluster reported."]
    notes = [f"Left out: {why}." for why in inventory.wrong_arch.values()]
    notes += [f"{product} (not in the catalog; add it under the scenario's catalog: gpus:): "
              f"{advice}." for product, arches in inventory.unknown_product_arch.items()
              if (advice := host_arch_advice(arches)) is not None]
    header += [line for note in notes
               for line in textwrap.wrap(note, 88, initial_indent="# ", subsequent_indent="#   ")]
    body = {"deployments": {name: {"kind": "local", "gpu": dep.gpu, "model": dep.model,
                                   "replicas": dep.replicas, "tp": dep.tp,
                                   "costs": {"ownership": dep.costs.ownership}}
                            for name, dep in inventory.deployments.items()},
            "cluster": inventory.model_dump(mode="json", exclude={"deployments"})}
    path.write_text("\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False),
                    encoding="utf-8")
    return path
