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
need vLLM's multi-node tensor parallelism, which is neither simulated nor provisioned, so
it is refused too. Pipeline stages may span servers (`pp_error`; setup.py `servers_for`):
a pod per server, each holding whole stages, handing over through the servers' network.

An FP8 block-quantised checkpoint (catalog weight_block_size: one scale per block_n x block_k
weights, [128, 128] in the official Qwen3 FP8 repositories and DeepSeek-V3/R1) loads only if
every slice tensor parallelism cuts is whole blocks: a merged column-parallel weight's slice
(gate and up, the QKV heads) a multiple of block_n, and with tp > 1 the row-parallel input
slice (down, o_proj) a multiple of block_k (vllm/model_executor/layers/quantization/
utils/fp8_utils.py validate_fp8_block_shape for linear layers; Fp8MoEMethod.create_weights
for the experts: "The output_size of gate's and up's weight = 192 is not divisible by
weight quantization block_n = 128", Qwen3-30B-A3B-FP8 at tp 4, vllm-project/vllm#17569; still
so in 2026, vllm-project/vllm#54178). With expert parallelism each GPU holds whole experts,
so only the layers outside the experts are cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

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


def cut_slices(model: ModelSpec, tp: int, expert_parallel: bool = False) -> list[tuple[str, int]]:
    """The weights tensor parallelism cuts, each with the slice one GPU holds (columns of
    the merged gate/up and QKV weights, the same rows of down and o_proj): the routed
    experts (whole with expert parallelism), the shared experts, the dense MLP of the
    layers without experts, the query and KV heads (GQA; MLA's latent projections are
    not checked)."""
    slices: list[tuple[str, int]] = []
    if model.is_moe and model.moe_intermediate_size is not None:
        width = model.moe_intermediate_size
        slices.append((f"experts (moe_intermediate_size {width})",
                       width if expert_parallel else width // tp))
        if model.shared_experts:
            shared = model.shared_experts * width
            slices.append((f"shared experts ({shared} wide)", shared // tp))
    if model.moe_layer_count < model.layers:
        slices.append((f"dense MLP (intermediate_size {model.intermediate_size})",
                       model.intermediate_size // tp))
    if model.attention == "gqa":
        slices.append((f"{model.attention_heads} query heads",
                       model.attention_heads // tp * model.head_dim))
        slices.append((f"{model.kv_heads} KV heads",
                       max(1, model.kv_heads // tp) * model.head_dim))
    return slices


def block_problem(model: ModelSpec, weights_dtype: str, tp: int,
                  expert_parallel: bool = False) -> tuple[str, int, str] | None:
    """(weight, slice, the block side it misses) of the first slice at `tp` that is not
    whole blocks of the checkpoint served as `weights_dtype` (None: every slice is, or the
    checkpoint has no blocks)."""
    block = model.weight_block(weights_dtype)
    if block is None:
        return None
    block_n, block_k = block
    for name, width in cut_slices(model, tp, expert_parallel and model.is_moe):
        if width % block_n:
            return name, width, f"block_n = {block_n}"
        if tp > 1 and width % block_k:
            return name, width, f"block_k = {block_k}"
    return None


def allowed_tp(model: ModelSpec, gpu: GpuSpec, gpus_per_server: int | None = None, *,
               weights_dtype: str | None = None, expert_parallel: bool = False,
               data_parallel_attention: bool = False) -> list[int]:
    """Every tensor-parallel size vLLM accepts for `model` within one interconnect domain
    and one server of `gpu` (`gpus_per_server`: the deployment's, when it has fewer), and
    that cuts the checkpoint of `weights_dtype` into whole quantisation blocks, increasing.
    With data-parallel attention no rank splits its heads or dense layers (each is cut as
    at tp 1) and the experts stay whole."""
    largest = min(gpu.interconnect_domain_gpus, gpu.node_gpus,
                  gpus_per_server or gpu.node_gpus)
    dtype = weights_dtype or model.default_dtype
    if data_parallel_attention and model.is_moe:
        whole = heads_allow(model, 1) and block_problem(model, dtype, 1, True) is None
        return list(range(1, largest + 1)) if whole else []
    return [tp for tp in range(1, largest + 1) if heads_allow(model, tp)
            and block_problem(model, dtype, tp, expert_parallel) is None]


def setup_allowed_tp(setup: ReplicaSetup) -> list[int]:
    """`allowed_tp` for the replica's GPU, servers, weight format and expert parallelism."""
    return allowed_tp(setup.model, setup.gpu, setup.gpus_per_server,
                      weights_dtype=setup.weights_dtype,
                      expert_parallel=setup.engine.expert_parallel,
                      data_parallel_attention=setup.engine.data_parallel_attention)


def data_parallel_error(setup: ReplicaSetup) -> str | None:
    """Why engine.data_parallel_attention cannot run as set (None: it can, or it is off)."""
    engine = setup.engine
    if not engine.data_parallel_attention:
        return None
    if not setup.model.is_moe:
        return (f"engine.data_parallel_attention is for mixtures of experts, and "
                f"{setup.model_name} is dense: its data-parallel ranks would share nothing; "
                f"expected data_parallel_attention: false (more replicas for more copies)")
    if not engine.expert_parallel:
        return ("engine.data_parallel_attention spreads the experts over the ranks, which "
                "needs engine.expert_parallel: true (vLLM's --enable-expert-parallel); the "
                "experts sliced over the ranks instead are not modelled; expected "
                "expert_parallel: true")
    if engine.speculative is not None:
        return ("engine.speculative with engine.data_parallel_attention is not modelled (each "
                "rank would run its own drafter); expected engine.speculative left out, or "
                "data_parallel_attention: false")
    if engine.prefix_caching == "per_slot":
        return ("engine.prefix_caching: per_slot is llama.cpp's cache and "
                "engine.data_parallel_attention vLLM's layout; expected prefix_caching: vllm "
                "or off")
    return None


#: vLLM's multiprocessing executor runs one engine over several servers (`vllm serve
#: --nnodes N --node-rank R --master-addr A`, the other nodes `--headless`) from 0.11.1
#: (vllm/engine/arg_utils.py, vllm/config/parallel.py `nnodes`); before it, only through a
#: Ray cluster, which the stack does not build
MULTI_NODE_RELEASE = (0, 11, 1)


def pp_error(setup: ReplicaSetup) -> str | None:
    """Why engine pipeline stages (the deployment's pp) cannot run as set (None: they can,
    or there is one stage). Stages that outgrow one server run on several, a pod per
    server, each with pp / servers whole stages (vLLM's multi-node serving, a
    LeaderWorkerSet in the stack); a tensor-parallel group stays in one server."""
    pp, engine, model = setup.pp, setup.engine, setup.model
    if pp == 1:
        return None
    if engine.prefix_caching == "per_slot":
        return ("pp is vLLM's --pipeline-parallel-size, and engine.prefix_caching: per_slot "
                "is llama.cpp's cache; expected pp: 1 or prefix_caching: vllm or off")
    if engine.data_parallel_attention:
        return ("pp with engine.data_parallel_attention is not modelled; expected pp: 1 or "
                "data_parallel_attention: false")
    if engine.speculative is not None:
        return ("pp with engine.speculative is not modelled (the drafter would run on the "
                "last stage between passes); expected pp: 1 or engine.speculative left out")
    if pp > model.layers:
        return (f"pp {pp} is more stages than {setup.model_name} has layers ({model.layers}); "
                f"expected pp <= {model.layers}")
    node = setup.gpus_per_node
    if setup.gpus > node and setup.tp <= node and engine.release < MULTI_NODE_RELEASE:
        return (f"tp {setup.tp} x pp {pp} spans {setup.servers} {setup.gpu_name} servers, "
                f"and vLLM {engine.vllm_version} runs one engine over several servers only "
                f"through a Ray cluster (its multiprocessing --nnodes came in 0.11.1); "
                f"expected vllm_version >= 0.11.1 or tp x pp <= {node}")
    if engine.async_scheduling and engine.version < (0, 15):
        return (f"engine.async_scheduling: true with pp {pp} on vLLM {engine.vllm_version}, "
                f"which refuses it ('Async scheduling is not supported with "
                f"pipeline-parallel-size > 1'; allowed from 0.15); expected async_scheduling "
                f"left out or false, or vllm_version >= 0.15")
    return None


#: does a replica's model fit its GPUs with room for a KV cache (memory.py's `fits`)
Fits = Callable[[ReplicaSetup], bool]


def _expected_tp(setup: ReplicaSetup, fits: Fits | None, more: str = "") -> str:
    """The sizes vLLM accepts that also hold the weights (a list that fits nothing would
    send the user to a size that fails next)."""
    node = setup.gpus_per_node
    spans = setup.engine.release >= MULTI_NODE_RELEASE   # stages over several servers
    allowed = [t for t in setup_allowed_tp(setup)
               if t <= node and (spans or t * setup.pp <= node)]
    fitting = [t for t in allowed if fits is None or fits(replace(setup, tp=t))]
    what = f"{setup.model_name} on {setup.gpu_name} in {setup.weights_dtype}"
    if fitting:
        return f"expected tp one of {', '.join(map(str, fitting))} for {what}{more}"
    if not allowed:
        return f"no tp runs {what} with pp {setup.pp}; expected another GPU or weights_dtype"
    # more stages: a server's GPUs tensor-parallel, a stage per server (vLLM's advice)
    widest = allowed[-1]
    staged = next((p for p in range(setup.pp + 1, 17) if fits is not None
                   and pp_error(replace(setup, tp=widest, pp=p)) is None
                   and fits(replace(setup, tp=widest, pp=p))), None)
    stages = "" if staged is None else \
        f"tp {widest} x pp {staged} ({replace(setup, tp=widest, pp=staged).servers} servers), "
    return (f"no tp holds {what} with pp {setup.pp} (tp {widest} at most, where the "
            f"weights and the activations leave no room for a KV cache); expected "
            f"{stages}a GPU with more memory or a smaller weights_dtype")


def tp_error(setup: ReplicaSetup, fits: Fits | None = None) -> str | None:
    """Why the replica's tp cannot run (None: it can), naming the sizes that can (of those
    `fits` holds, when given)."""
    model, gpu, tp = setup.model, setup.gpu, setup.tp
    if (refused := data_parallel_error(setup)) is not None:
        return refused
    expected = _expected_tp(setup, fits)
    across = _expected_tp(setup, fits, " (more replicas for more GPUs)")
    if not heads_allow(model, setup.attention_tp):
        kv = "" if model.attention == "mla" else f" and {model.kv_heads} KV heads"
        return (f"tp {tp} does not split {setup.model_name}'s {model.attention_heads} "
                f"attention heads{kv} evenly (vLLM refuses it: the heads must divide by tp, "
                f"the KV heads by tp or tp by them); {expected}")
    if tp > gpu.interconnect_domain_gpus:
        return (f"tp {tp} spans more GPUs than one {setup.gpu_name} {gpu.interconnect} domain "
                f"links ({gpu.interconnect_domain_gpus}, catalog interconnect_domain_gpus); "
                f"the simulator has no model of the slower link between servers, so it "
                f"refuses a larger tp; {across}")
    if tp > setup.gpus_per_node:
        server = setup.gpus_per_server
        where = "deployment costs.gpus_per_server" if server is not None \
            and server < gpu.node_gpus else "catalog node_gpus"
        return (f"tp {tp} needs {tp} GPUs in the replica's one pod, and one {setup.gpu_name} "
                f"server holds {setup.gpus_per_node} ({where}): vLLM would have to span "
                f"servers (multi-node tensor parallelism), which is neither simulated nor "
                f"provisioned; {across}")
    dtype = setup.weights_dtype
    if (problem := block_problem(model, dtype, setup.attention_tp,
                                 setup.engine.expert_parallel)) is not None:
        name, width, side = problem
        repo = model.weights_repo(dtype)
        block_n, block_k = model.weight_block(dtype) or (0, 0)
        experts = model.is_moe and not setup.engine.expert_parallel
        return (f"tp {tp} gives each GPU a {width}-wide slice of {setup.model_name}'s {name}, "
                f"which is not whole {block_n}x{block_k} weight blocks of its {dtype} "
                f"checkpoint ({repo.hf_id if repo else dtype}, catalog weight_block_size): "
                f"vLLM refuses to load it ('... = {width} is not divisible by weight "
                f"quantization {side}'); {expected}"
                + (", or engine.expert_parallel: true (each GPU holds whole experts)"
                   if experts else "") + ", or another engine.weights_dtype")
    return None


__all__ = ["MULTI_NODE_RELEASE", "Fits", "allowed_tp", "block_problem", "cut_slices",
           "data_parallel_error", "heads_allow", "pp_error", "setup_allowed_tp", "tp_error"]
