"""Which EC2 instance an EKS GPU node group uses, sized for the serving pods it must hold.

A node group's instance carries a replica's GPUs and its pod's cores and memory
(`serving_sizes`); an instance chosen by GPU count alone can leave the pod Pending for good
(a g6e.xlarge's 4 vCPUs under a one-L40S pod of 6 cores).
"""

from __future__ import annotations

import math

from llmplan.provision.gpu_nodes import ec2_instance, known_instance
from llmplan.provision.serving_manifests import serving_sizes
from llmplan.provision.stack_config import StackConfig


def eks_instance(config: StackConfig) -> str:
    """The smallest EC2 instance in llmplan's table that holds one of the fleet's pods."""
    local = config.plan.local
    assert local is not None
    cpu, memory_gib, _ = serving_sizes(config)
    return ec2_instance(local[1].gpu, local[1].gpus_per_replica, cpu, memory_gib)[0]


def pods_per_node(config: StackConfig) -> tuple[str, int]:
    """The node group's instance type and how many of the fleet's pods each node holds
    (its GPUs, cores and memory; an instance outside llmplan's table: by the GPUs
    eksGpusPerNode gives, one replica's when unset)."""
    local = config.plan.local
    assert local is not None
    dep = local[1]
    cpu, memory_gib, _ = serving_sizes(config)
    instance = config.eks_gpu_instance_type or eks_instance(config)
    known = known_instance(instance)
    if known is None:
        per_node = config.eks_gpus_per_node or dep.gpus_per_replica
        return instance, max(1, per_node // dep.gpus_per_replica)
    return instance, known[1].pods(dep.gpus_per_replica, cpu, memory_gib)


def check_eks_pods(config: StackConfig) -> None:
    """Refuse (ValueError) an EKS node group whose instance cannot hold one serving pod."""
    local = config.plan.local
    if config.cluster_mode != "eks" or local is None:
        return
    instance, pods = pods_per_node(config)
    if pods >= 1:
        return
    known = known_instance(instance)
    assert known is not None
    cpu, memory_gib, _ = serving_sizes(config)
    row = known[1]
    try:
        fits = f"the smallest that does is {eks_instance(config)}"
    except ValueError:
        fits = "none in llmplan's table does"
    raise ValueError(f"{instance} ({row.vcpus} vCPUs, {row.memory_gib} GiB) cannot hold a "
                     f"serving pod of '{local[0]}' ({cpu} cores, {memory_gib} GiB): {fits}")


def gpu_node_counts(settings: StackConfig) -> tuple[str, int, int, int]:
    """GPU instance type and the node group's min, desired and max size for the plan."""
    local = settings.plan.local
    assert local is not None
    dep = local[1]
    # an instance set after `llmplan stack` (pulumi config set eksGpuInstanceType) is checked
    # here, before any node exists: pods that fit no node would stay Pending for good
    check_eks_pods(settings)
    instance, replicas_per_node = pods_per_node(settings)
    replicas_per_node = max(1, replicas_per_node)
    low = dep.autoscaling.min_replicas if dep.autoscaling is not None else dep.replicas
    return (instance, math.ceil(low / replicas_per_node),
            math.ceil(dep.replicas / replicas_per_node),
            math.ceil(dep.max_replicas / replicas_per_node))
