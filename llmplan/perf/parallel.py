"""Which tensor-parallel sizes a replica can run: what vLLM accepts for the model's heads,
within the GPUs the simulator links at the catalog's interconnect speed.

vLLM splits the attention heads over the tp GPUs and refuses a size that does not divide
them: "Total number of attention heads (N) must be divisible by tensor parallel size (T)"
(ModelConfig.verify_with_parallel_config, vllm/config/model.py at commit 0052a5b). Its QKV
projection then splits the KV heads too, or, with fewer KV heads than GPUs, replicates each
over tp / kv_heads of them (get_num_kv_heads: "We will replicate the KV heads in the case
where the number of KV heads is smaller than the tensor parallel size"); both divisions
must be exact (QKVParallelLinear, vllm/model_executor/layers/linear.py: `divide` asserts
it). MLA keeps one latent per token, replicated on every GPU, so only its query heads split.

A replica's all-reduces run at the GPU's interconnect_gb_per_s (steptime.py); the simulator
has no slower link between servers, so a tp larger than the catalog's
interconnect_domain_gpus (8 GPUs a server, 72 in a GB200 NVL72 rack) is refused rather than
simulated at NVLink speed. The stack runs a replica as one pod asking for tp GPUs, which
Kubernetes places on one node: a tp above the GPUs one server holds (the catalog's
node_gpus, 4 in a GB200 NVL72 compute tray; the deployment's costs.gpus_per_server) would
need vLLM's multi-node tensor parallelism (a Ray cluster over several pods), which is
neither simulated nor provisioned, so it is refused too.
"""

from __future__ import annotations

from llmplan.catalog import GpuSpec, ModelSpec
from llmplan.perf.setup import ReplicaSetup


def heads_allow(model: ModelSpec, tp: int) -> bool:
    """Whether vLLM splits (and replicates) `model`'s heads over `tp` GPUs."""
    if model.attention_heads % tp:
        return False
    if model.attention == "mla":
        return True
    kv = model.kv_heads
    return tp % kv == 0 if tp >= kv else kv % tp == 0


def allowed_tp(model: ModelSpec, gpu: GpuSpec, gpus_per_server: int | None = None) -> list[int]:
    """Every tensor-parallel size vLLM accepts for `model` within one interconnect domain
    and one server of `gpu` (`gpus_per_server`: the deployment's, when it has fewer),
    increasing."""
    largest = min(gpu.interconnect_domain_gpus, gpu.node_gpus,
                  gpus_per_server or gpu.node_gpus)
    return [tp for tp in range(1, largest + 1) if heads_allow(model, tp)]


def tp_error(setup: ReplicaSetup) -> str | None:
    """Why the replica's tp cannot run (None: it can), naming the sizes that can."""
    model, gpu, tp = setup.model, setup.gpu, setup.tp
    allowed = ", ".join(map(str, allowed_tp(model, gpu, setup.gpus_per_server)))
    expected = f"expected tp one of {allowed} for {setup.model_name} on {setup.gpu_name}"
    if not heads_allow(model, tp):
        kv = "" if model.attention == "mla" else f" and {model.kv_heads} KV heads"
        return (f"tp {tp} does not split {setup.model_name}'s {model.attention_heads} "
                f"attention heads{kv} evenly (vLLM refuses it: the heads must divide by tp, "
                f"the KV heads by tp or tp by them); {expected}")
    if tp > gpu.interconnect_domain_gpus:
        return (f"tp {tp} spans more GPUs than one {setup.gpu_name} {gpu.interconnect} domain "
                f"links ({gpu.interconnect_domain_gpus}, catalog interconnect_domain_gpus); "
                f"the simulator has no model of the slower link between servers, so it "
                f"refuses a larger tp; {expected} (more replicas for more GPUs)")
    if tp > setup.gpus_per_node:
        server = setup.gpus_per_server
        where = "deployment costs.gpus_per_server" if server is not None \
            and server < gpu.node_gpus else "catalog node_gpus"
        return (f"tp {tp} needs {tp} GPUs in the replica's one pod, and one {setup.gpu_name} "
                f"server holds {setup.gpus_per_node} ({where}): vLLM would have to span "
                f"servers (multi-node tensor parallelism), which is neither simulated nor "
                f"provisioned; {expected} (more replicas for more GPUs)")
    return None


__all__ = ["allowed_tp", "heads_allow", "tp_error"]
