"""How a catalog GPU shows up on Kubernetes nodes and which EC2 instances carry it.

NVIDIA: GPU Feature Discovery (part of the GPU Operator, or deployed with the device plugin)
labels each GPU node `nvidia.com/gpu.product=<product name with spaces as dashes>`, which is
what the serving pods select on and what `llmplan import-cluster` maps back to catalog ids.
On an EKS cluster llmplan creates, the node group sets the same label itself. Allocatable
GPUs are the `nvidia.com/gpu` extended resource the device plugin advertises.

AMD: the AMD GPU device plugin advertises `amd.com/gpu`, and its node labeller (also part of
the AMD GPU Operator) labels each node `amd.com/gpu.product-name=<product>`, e.g.
`AMD_Instinct_MI300X_OAM` (ROCm/k8s-device-plugin docs/user-guide/installation.md, "Example
labels for an AMD MI300X GPU"; the legacy `beta.amd.com/gpu.*` keys are kept beside them).
Clusters that taint their GPU nodes use the resource name as the key (`amd.com/gpu`, as
in the AMD GPU Operator's tolerations examples), so the pods tolerate it whatever its value.

EC2 instances (AWS "Accelerated computing" instance types page): P5 = 8 x H100 80GB (p5.48xlarge);
P4de = 8 x A100 80GB (p4de.24xlarge); P4d = 8 x A100 40GB (p4d.24xlarge); G6e = L40S in
1/4/8-GPU sizes (g6e.xlarge, g6e.12xlarge, g6e.48xlarge); G6 = L4 (g6.xlarge, g6.12xlarge,
g6.48xlarge); G5 = A10G (g5.xlarge, g5.12xlarge, g5.48xlarge). Since 2025-2026: P5en = 8 x
H200 141GB (p5en.48xlarge: `dstack offer` lists "gpu=H200:141GB:8", dstackai/dstack#4110,
2026-08; the P5e size p5e.48xlarge carries the same GPUs with older networking); P6-B200 = 8 x
B200 (p6-b200.48xlarge, "NVIDIA B200 183GB x 8" per node in public EFA test notes; EKS's
accelerated AMI lists it); G7e = RTX PRO 6000 Blackwell Server Edition, 96 GB each, in 1, 2,
4 and 8-GPU sizes (g7e.2xlarge, g7e.12xlarge, g7e.24xlarge, g7e.48xlarge; the sizes' GPU
counts as public EKS blueprints tabulate them). H100 PCIe, RTX 4090 and the MI300X family
have no EC2 instance, and GB200 comes only as UltraServers (p6e-gb200): name an instance
with `eksGpuInstanceType` or use an existing cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

from llmplan.catalog import GpuSpec

GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"


@dataclass(frozen=True)
class GpuNodeKind:
    """How one vendor's GPUs appear to Kubernetes."""

    resource: str         # the extended resource its device plugin advertises
    product_label: str    # the node label naming the GPU product
    taint_key: str        # the key GPU nodes are tainted with (tolerated with Exists)


NODE_KINDS: dict[Literal["nvidia", "amd"], GpuNodeKind] = {
    "nvidia": GpuNodeKind(GPU_RESOURCE, PRODUCT_LABEL, GPU_RESOURCE),
    "amd": GpuNodeKind("amd.com/gpu", "amd.com/gpu.product-name", "amd.com/gpu"),
}


def node_kind(spec: GpuSpec) -> GpuNodeKind:
    """The resource, product label and taint of the catalog GPU's vendor."""
    return NODE_KINDS[spec.vendor]

#: GPU Feature Discovery's product label value per catalog GPU id.
GPU_PRODUCT_LABELS: dict[str, str] = {
    "H100-SXM": "NVIDIA-H100-80GB-HBM3",
    "H100-PCIe": "NVIDIA-H100-PCIe",
    "A100-40GB": "NVIDIA-A100-SXM4-40GB",
    "A100-80GB": "NVIDIA-A100-SXM4-80GB",
    "L40S": "NVIDIA-L40S",
    "L4": "NVIDIA-L4",
    "A10G": "NVIDIA-A10G",
    "RTX-4090": "NVIDIA-GeForce-RTX-4090",
}

class Ec2Gpu(NamedTuple):
    """An EC2 instance type carrying GPUs, and its size (AWS's instance-type tables)."""

    instance: str
    gpus: int
    vcpus: int
    memory_gib: int

    def pods(self, gpus_per_pod: int, cpu: float, memory_gib: float) -> int:
        """Pods of this size that fit on one node: by its GPUs, and by what EKS leaves
        allocatable of its vCPUs and memory (`NODE_RESERVED_CPU`, `node_memory_gib`)."""
        usable_cpu = self.vcpus - NODE_RESERVED_CPU
        return min(self.gpus // gpus_per_pod, math.floor(usable_cpu / cpu) if cpu else
                   self.gpus, math.floor(node_memory_gib(self.memory_gib) / memory_gib)
                   if memory_gib else self.gpus)


#: vCPUs an EKS GPU node does not offer pods: the EKS AMI's kube-reserved CPU (6% of the
#: first core, 1% of the second, 0.5% of two more, 0.25% of the rest; awslabs/amazon-eks-ami
#: bootstrap) and the node's daemon sets (VPC CNI, kube-proxy, EBS CSI node, device plugin)
NODE_RESERVED_CPU = 0.5


def node_memory_gib(memory_gib: float) -> float:
    """GiB an EKS node leaves pods of `memory_gib` nominal: the kernel keeps ~4% of it
    (MemTotal is the node's capacity), and the EKS AMI reserves 255 MiB + 11 MiB a pod plus
    100 MiB for eviction (about 1 GiB at the pod densities of GPU instances)."""
    return 0.96 * memory_gib - 1.0


#: EC2 instance types per catalog GPU, smallest first. vCPUs and memory: AWS's
#: accelerated-computing tables (the sizes as ROSA's supported-instance list and torchx's
#: named resources quote them: g6e.xlarge 4 vCPU / 32 GiB ... g6e.48xlarge 192 / 1,536;
#: p6-b200.48xlarge 192 / 2,048); G7e's 1-GPU sizes from aws/sagemaker-hyperpod-cli#390
#: (g7e.2xlarge 8 / 64, 4xlarge 16 / 128, 8xlarge 32 / 256), its larger sizes at the same
#: 8 GiB per vCPU (an estimate).
EC2_GPU_INSTANCES: dict[str, list[Ec2Gpu]] = {
    "H100-SXM": [Ec2Gpu("p5.48xlarge", 8, 192, 2048)],
    "A100-80GB": [Ec2Gpu("p4de.24xlarge", 8, 96, 1152)],
    "A100-40GB": [Ec2Gpu("p4d.24xlarge", 8, 96, 1152)],
    "L40S": [Ec2Gpu("g6e.xlarge", 1, 4, 32), Ec2Gpu("g6e.2xlarge", 1, 8, 64),
             Ec2Gpu("g6e.4xlarge", 1, 16, 128), Ec2Gpu("g6e.8xlarge", 1, 32, 256),
             Ec2Gpu("g6e.12xlarge", 4, 48, 384), Ec2Gpu("g6e.48xlarge", 8, 192, 1536)],
    "L4": [Ec2Gpu("g6.xlarge", 1, 4, 16), Ec2Gpu("g6.2xlarge", 1, 8, 32),
           Ec2Gpu("g6.4xlarge", 1, 16, 64), Ec2Gpu("g6.8xlarge", 1, 32, 128),
           Ec2Gpu("g6.12xlarge", 4, 48, 192), Ec2Gpu("g6.48xlarge", 8, 192, 768)],
    "A10G": [Ec2Gpu("g5.xlarge", 1, 4, 16), Ec2Gpu("g5.2xlarge", 1, 8, 32),
             Ec2Gpu("g5.4xlarge", 1, 16, 64), Ec2Gpu("g5.8xlarge", 1, 32, 128),
             Ec2Gpu("g5.12xlarge", 4, 48, 192), Ec2Gpu("g5.48xlarge", 8, 192, 768)],
    "H200": [Ec2Gpu("p5en.48xlarge", 8, 192, 2048)],
    "B200": [Ec2Gpu("p6-b200.48xlarge", 8, 192, 2048)],
    "RTX-PRO-6000": [Ec2Gpu("g7e.2xlarge", 1, 8, 64), Ec2Gpu("g7e.4xlarge", 1, 16, 128),
                     Ec2Gpu("g7e.8xlarge", 1, 32, 256), Ec2Gpu("g7e.12xlarge", 2, 48, 384),
                     Ec2Gpu("g7e.24xlarge", 4, 96, 768), Ec2Gpu("g7e.48xlarge", 8, 192, 1536)],
}


def known_instance(instance: str) -> tuple[str, Ec2Gpu] | None:
    """The catalog GPU and size of an instance type in llmplan's table (None: not in it)."""
    for gpu, rows in EC2_GPU_INSTANCES.items():
        for row in rows:
            if row.instance == instance:
                return gpu, row
    return None


def product_label(gpu: str, spec: GpuSpec | None = None) -> str:
    """The node label value pods of a `gpu` deployment select on: the catalog's
    `k8s_product_label` when it has one, else llmplan's table, else the id itself."""
    if spec is not None and spec.k8s_product_label:
        return spec.k8s_product_label
    return GPU_PRODUCT_LABELS.get(gpu, gpu)


#: the label the kubelet puts on every node: its CPU architecture, as Go names it
ARCH_LABEL = "kubernetes.io/arch"


def node_selector(gpu: str, spec: GpuSpec) -> dict[str, str]:
    """The labels a `gpu` deployment's pods select nodes by: the GPU product and the hosts'
    architecture (`host_arch`), which the image must be published for and the catalog's
    figures were taken on.

    The architecture is selected on amd64 too: a product label does not name the host, and
    PCIe cards come in arm64 servers under the same GFD label as in x86 ones (an Ampere
    Altra server's A100 or L40S), where vLLM's images before 0.10.2 (amd64 only,
    images.FIRST_ARM64_IMAGE_RELEASE) or a serving image built for one architecture stop
    with 'exec format error'. It costs no node: the kubelet labels every node with its
    architecture (kubernetes.io docs, "Node Labels Populated By The Kubelet")."""
    return {node_kind(spec).product_label: product_label(gpu, spec), ARCH_LABEL: spec.host_arch}


#: the EKS node group's AMI per host architecture: Amazon Linux 2023 with NVIDIA's drivers
#: (the AL2023_ARM_64_NVIDIA AMI type for Grace hosts)
EKS_GPU_AMI_TYPES = {"amd64": "AL2023_x86_64_NVIDIA", "arm64": "AL2023_ARM_64_NVIDIA"}


def unlabelled(gpu: str, spec: GpuSpec | None) -> str | None:
    """Why pods of a `gpu` deployment would select no node (None: they select its label):
    a GPU neither the catalog nor llmplan's table gives a node label, whose id no GPU
    Feature Discovery or AMD node labeller writes."""
    if (spec is not None and spec.k8s_product_label) or gpu in GPU_PRODUCT_LABELS:
        return None
    return (f"GPU {gpu} has no node label in the catalog (k8s_product_label), so its pods "
            f"would select nodes labelled '{gpu}', which no GPU node carries, and stay "
            f"Pending; set catalog.gpus.{gpu}.k8s_product_label to the nodes' "
            f"nvidia.com/gpu.product (or amd.com/gpu.product-name) value: kubectl get nodes "
            f"-L nvidia.com/gpu.product")


def sliced(product: str) -> bool:
    """Whether a node's product label is of GPU slices, not whole GPUs: MIG instances
    (`...-MIG-1g.5gb`, GFD's mixed strategy) or time-shared GPUs (`...-SHARED`), each
    advertised as one `nvidia.com/gpu` though it is a fraction of a card."""
    return "-MIG-" in product or product.endswith("-SHARED")


def catalog_gpu(product: str, labels: dict[str, str] | None = None) -> str | None:
    """The catalog id of a node's `nvidia.com/gpu.product` label (None: not in the
    catalog, or GPU slices: `sliced`). `labels`: the catalog's own labels by GPU id
    (`k8s_product_label`), read before llmplan's table.

    Accepts the variants GFD writes for the same card (SXM5 vs HBM3 naming)."""
    if sliced(product):
        return None
    for gpu, label in [*(labels or {}).items(), *GPU_PRODUCT_LABELS.items()]:
        if product == label or product.startswith(f"{label}-"):
            return gpu
    aliases = {"NVIDIA-H100-SXM5-80GB": "H100-SXM", "NVIDIA-H100-80GB-HBM3": "H100-SXM",
               "NVIDIA-A100-80GB-PCIe": "A100-80GB", "NVIDIA-A100-PCIE-40GB": "A100-40GB"}
    for prefix, gpu in aliases.items():
        if product.startswith(prefix):
            return gpu
    return None


def ec2_instance(gpu: str, gpus_per_replica: int, cpu: float = 0.0,
                 memory_gib: float = 0.0) -> tuple[str, int]:
    """The smallest EC2 instance type (and its GPUs) holding one replica of
    `gpus_per_replica` whose pod asks `cpu` cores and `memory_gib` GiB."""
    for row in EC2_GPU_INSTANCES.get(gpu, []):
        if row.gpus >= gpus_per_replica and row.pods(gpus_per_replica, cpu, memory_gib) >= 1:
            return row.instance, row.gpus
    pod = f" with {cpu:g} cores and {memory_gib:g} GiB" if cpu or memory_gib else ""
    raise ValueError(f"no EC2 instance type carries {gpus_per_replica} x {gpu}{pod} in "
                     f"llmplan's table; set eksGpuInstanceType (and check its GPU count)")
