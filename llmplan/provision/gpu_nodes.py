"""How a catalog GPU shows up on Kubernetes nodes and which EC2 instances carry it.

Node labels: NVIDIA GPU Feature Discovery (part of the GPU Operator, or deployed with the
device plugin) labels each GPU node `nvidia.com/gpu.product=<product name with spaces as
dashes>`, which is what the serving pods select on and what `llmplan import-cluster` maps
back to catalog ids. On an EKS cluster llmplan creates, the node group sets the same label
itself. Allocatable GPUs are the `nvidia.com/gpu` extended resource the device plugin
advertises.

EC2 instances (AWS "Accelerated computing" instance types page): P5 = 8 x H100 80GB (p5.48xlarge);
P4de = 8 x A100 80GB (p4de.24xlarge); P4d = 8 x A100 40GB (p4d.24xlarge); G6e = L40S in
1/4/8-GPU sizes (g6e.xlarge, g6e.12xlarge, g6e.48xlarge); G6 = L4 (g6.xlarge, g6.12xlarge,
g6.48xlarge); G5 = A10G (g5.xlarge, g5.12xlarge, g5.48xlarge). H100 PCIe and RTX 4090 have
no EC2 instance: name one with `eksGpuInstanceType` or use an existing cluster.
"""

from __future__ import annotations

GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"

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

#: EC2 instance types per catalog GPU: (instance type, GPUs on it), smallest first.
EC2_GPU_INSTANCES: dict[str, list[tuple[str, int]]] = {
    "H100-SXM": [("p5.48xlarge", 8)],
    "A100-80GB": [("p4de.24xlarge", 8)],
    "A100-40GB": [("p4d.24xlarge", 8)],
    "L40S": [("g6e.xlarge", 1), ("g6e.12xlarge", 4), ("g6e.48xlarge", 8)],
    "L4": [("g6.xlarge", 1), ("g6.12xlarge", 4), ("g6.48xlarge", 8)],
    "A10G": [("g5.xlarge", 1), ("g5.12xlarge", 4), ("g5.48xlarge", 8)],
}


def product_label(gpu: str) -> str:
    """The node label value pods of a `gpu` deployment select on."""
    return GPU_PRODUCT_LABELS.get(gpu, gpu)


def catalog_gpu(product: str) -> str | None:
    """The catalog id of a node's `nvidia.com/gpu.product` label (None: not in the catalog).

    Accepts the variants GFD writes for the same card (e.g. `-SHARED` suffixes when
    time-slicing, SXM5 vs HBM3 naming)."""
    for gpu, label in GPU_PRODUCT_LABELS.items():
        if product == label or product.startswith(f"{label}-"):
            return gpu
    aliases = {"NVIDIA-H100-SXM5-80GB": "H100-SXM", "NVIDIA-H100-80GB-HBM3": "H100-SXM",
               "NVIDIA-A100-80GB-PCIe": "A100-80GB", "NVIDIA-A100-PCIE-40GB": "A100-40GB"}
    for prefix, gpu in aliases.items():
        if product.startswith(prefix):
            return gpu
    return None


def ec2_instance(gpu: str, gpus_per_replica: int) -> tuple[str, int]:
    """The smallest EC2 instance type carrying at least one replica of `gpus_per_replica`."""
    for instance, count in EC2_GPU_INSTANCES.get(gpu, []):
        if count >= gpus_per_replica:
            return instance, count
    raise ValueError(f"no EC2 instance type carries {gpus_per_replica} x {gpu} in llmplan's "
                     f"table; set eksGpuInstanceType (and check its GPU count)")
