"""ClusterAccess: where the stack runs, an existing cluster or a new EKS one, as configured.

`clusterMode: kubeconfig` talks to the cluster of the current kubeconfig (or `kubeContext`)
and creates nothing there but the stack's own objects: its GPU nodes must already carry the
NVIDIA device plugin and GPU Feature Discovery's product labels (the GPU Operator installs
both). `clusterMode: eks` creates the cluster with pulumi-eks: the control plane, a small
CPU node group for the gateway and add-ons, a GPU node group of the catalog GPU's EC2 type
sized for the plan's replicas (tainted and labelled like GPU Feature Discovery would), the
NVIDIA device plugin, the EBS CSI driver with an encrypted gp3 StorageClass for the weights
(provisioned at 1,000 MiB/s), and the EKS Pod Identity agent the gateway's Bedrock role is
bound through.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from llmplan.provision.cloud_access import STACK_TAG
from llmplan.provision.cluster_sizing import gpu_node_counts
from llmplan.provision.gpu_nodes import (
    EKS_GPU_AMI_TYPES,
    GPU_RESOURCE,
    PRODUCT_LABEL,
    product_label,
)
from llmplan.provision.k8s_resources import create
from llmplan.provision.manifests import device_plugin_manifest
from llmplan.provision.stack_config import StackConfig

EKS_STORAGE_CLASS = "llmplan-gp3"
SYSTEM_INSTANCE_TYPE = "m6i.large"
#: zones whose subnets make CreateCluster fail with UnsupportedAvailabilityZoneException:
#: us-east-1's use1-az3 (us-east-1e in many accounts; pulumi/pulumi-eks#1401,
#: eksctl-io/eksctl#817), which has no Nitro instances either, so no current GPU ones;
#: us-west-1's usw1-az2 and ca-central-1's cac1-az3, which eksctl leaves out as well
EKS_REFUSED_ZONE_IDS = ("use1-az3", "usw1-az2", "cac1-az3")
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy",
                 "AmazonEC2ContainerRegistryReadOnly")


def eks_cluster_name(stack: str) -> str:
    return f"llmplan-{stack}"[:100]


def system_node_counts(settings: StackConfig) -> dict[str, int]:
    """The system node group's size: one node per gateway pod (an m6i.large's 1.93
    allocatable vCPUs hold one 1.5-CPU pod, LiteLLM's and its balancer's, beside the
    daemonsets) and one more for a rolling update's surge pod (maxSurge 1, maxUnavailable 0:
    no cluster autoscaler runs, so a surge pod with no room would stall every gateway
    update); at least two, for the cluster's own add-ons."""
    nodes = max(2, settings.gateway_replicas + 1)
    return {"min_size": nodes, "desired_size": nodes, "max_size": nodes + 1}


class ClusterAccess(pulumi.ComponentResource):
    """A Kubernetes provider for the stack, and what AWS resources need to know about it."""

    def __init__(self, name: str, settings: StackConfig, *,
                 aws_provider: aws.Provider | None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmplan:infra:ClusterAccess", name, None, opts)
        self.eks_cluster_name: str | None = settings.eks_cluster_name or None
        self.vpc_id: pulumi.Input[str] | None = settings.vpc_id or None
        self.subnet_ids: pulumi.Input[list[str]] | None = list(settings.subnet_ids) or None
        self.storage_class = settings.storage_class
        if settings.cluster_mode == "kubeconfig":
            self.provider = k8s.Provider(
                f"{name}-kubeconfig", context=settings.kube_context or None,
                opts=pulumi.ResourceOptions(parent=self))
        else:
            if aws_provider is None:
                raise ValueError("clusterMode eks needs awsRegion")
            self._create_eks(name, settings, aws_provider)
        self.register_outputs({"eks_cluster_name": self.eks_cluster_name or ""})

    def _tagged_nodes(self, name: str, disk_gib: int,
                      opts: pulumi.ResourceOptions) -> dict[str, pulumi.Input[str]]:
        """A node group's launch template: its instances and their root volumes carry the
        stack's tag, which the budget filters on (a managed node group's own tags reach
        neither: aws/containers-roadmap#608); the root volume's size moves here with it
        (EKS refuses disk_size beside a launch template). The image stays the node
        group's (ami_type)."""
        tags = {STACK_TAG: pulumi.get_stack()}
        template = aws.ec2.LaunchTemplate(
            f"{name}-template",
            block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {
                "volume_size": disk_gib, "volume_type": "gp3", "encrypted": "true"}}],
            tag_specifications=[{"resource_type": kind, "tags": tags}
                                for kind in ("instance", "volume", "network-interface")],
            opts=opts)
        return {"id": template.id, "version": template.latest_version.apply(str)}

    def _create_eks(self, name: str, settings: StackConfig, provider: aws.Provider) -> None:
        on_aws = pulumi.ResourceOptions(parent=self, provider=provider)
        if self.vpc_id is None:
            invoke = pulumi.InvokeOptions(provider=provider)
            vpc = aws.ec2.get_vpc(default=True, opts=invoke)
            # the region's own zones (no Local or Wavelength Zones) that EKS takes
            zones = aws.get_availability_zones(
                state="available", exclude_zone_ids=list(EKS_REFUSED_ZONE_IDS),
                filters=[aws.GetAvailabilityZonesFilterArgs(
                    name="opt-in-status", values=["opt-in-not-required"])], opts=invoke)
            subnets = aws.ec2.get_subnets(
                filters=[aws.ec2.GetSubnetsFilterArgs(name="vpc-id", values=[vpc.id]),
                         aws.ec2.GetSubnetsFilterArgs(name="availability-zone-id",
                                                      values=list(zones.zone_ids))],
                opts=invoke)
            self.vpc_id, self.subnet_ids = vpc.id, list(subnets.ids)
        cluster_name = eks_cluster_name(pulumi.get_stack())
        self.eks_cluster_name = cluster_name
        cluster = eks.Cluster(
            f"{name}-eks", name=cluster_name, version=settings.eks_kubernetes_version,
            vpc_id=self.vpc_id, subnet_ids=self.subnet_ids, skip_default_node_group=True,
            authentication_mode=eks.AuthenticationMode.API, opts=on_aws)
        node_role = aws.iam.Role(f"{name}-node-role", assume_role_policy=(
            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
            '{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}'), opts=on_aws)
        attachments = [aws.iam.RolePolicyAttachment(
            f"{name}-node-{policy}", role=node_role.name,
            policy_arn=f"arn:aws:iam::aws:policy/{policy}", opts=on_aws)
            for policy in NODE_POLICIES]
        after_cluster = pulumi.ResourceOptions(parent=self, provider=provider,
                                               depends_on=[cluster, *attachments])
        aws.eks.NodeGroup(
            f"{name}-system", cluster_name=cluster_name, node_role_arn=node_role.arn,
            subnet_ids=self.subnet_ids, instance_types=[SYSTEM_INSTANCE_TYPE],
            ami_type="AL2023_x86_64_STANDARD",
            launch_template=self._tagged_nodes(f"{name}-system", 20, on_aws),
            scaling_config=system_node_counts(settings),
            opts=after_cluster)
        if settings.plan.local is not None:
            instance, low, desired, high = gpu_node_counts(settings)
            gpu = settings.plan.local[1].gpu
            spec = settings.plan.catalog.gpus[gpu]
            aws.eks.NodeGroup(
                f"{name}-gpu", cluster_name=cluster_name, node_role_arn=node_role.arn,
                subnet_ids=self.subnet_ids, instance_types=[instance],
                ami_type=EKS_GPU_AMI_TYPES[spec.host_arch],
                launch_template=self._tagged_nodes(f"{name}-gpu", 200, on_aws),
                labels={PRODUCT_LABEL: product_label(gpu, spec),
                        "nvidia.com/gpu.present": "true"},
                taints=[{"key": GPU_RESOURCE, "value": "true", "effect": "NO_SCHEDULE"}],
                scaling_config={"min_size": low, "desired_size": desired, "max_size": high},
                opts=after_cluster)
        agent = aws.eks.Addon(f"{name}-pod-identity", cluster_name=cluster_name,
                              addon_name="eks-pod-identity-agent", opts=after_cluster)
        ebs_role = aws.iam.Role(f"{name}-ebs-csi-role", assume_role_policy=(
            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
            '{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole",'
            '"sts:TagSession"]}]}'), opts=on_aws)
        ebs_policy = aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi-policy", role=ebs_role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
            opts=on_aws)
        aws.eks.Addon(f"{name}-ebs-csi", cluster_name=cluster_name,
                      addon_name="aws-ebs-csi-driver",
                      pod_identity_associations=[{"role_arn": ebs_role.arn,
                                                  "service_account": "ebs-csi-controller-sa"}],
                      opts=pulumi.ResourceOptions(parent=self, provider=provider,
                                                  depends_on=[agent, ebs_policy]))
        self.provider = k8s.Provider(f"{name}-eks-k8s", kubeconfig=cluster.kubeconfig_json,
                                     opts=pulumi.ResourceOptions(parent=self))
        on_k8s = pulumi.ResourceOptions(parent=self, provider=self.provider)
        create(f"{name}-device-plugin", device_plugin_manifest(), on_k8s)
        create(f"{name}-storage-class", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": EKS_STORAGE_CLASS},
            "provisioner": "ebs.csi.aws.com", "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": True,
            # gp3's baseline 125 MiB/s would take 18 minutes to read a 70B checkpoint at
            # every start: 1,000 MiB/s (its maximum at 4,000 IOPS: 0.25 MiB/s per IOPS)
            # the budget's tag on every volume the driver makes (its tagSpecification_N
            # parameters: aws-ebs-csi-driver docs/tagging.md)
            "parameters": {"type": "gp3", "encrypted": "true", "throughput": "1000",
                           "iops": "4000",
                           "tagSpecification_1": f"{STACK_TAG}={pulumi.get_stack()}"}}, on_k8s)
        self.storage_class = settings.storage_class or EKS_STORAGE_CLASS
