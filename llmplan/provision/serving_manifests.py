"""The GPU fleet's manifests: vLLM as a StatefulSet with its Services, budget, autoscaler and
NetworkPolicy (see manifests.py for why a StatefulSet).

A replica whose pipeline stages span servers (setup.servers > 1) is a group of pods, one
per server, as a LeaderWorkerSet (leaderworkerset.x-k8s.io/v1, the Kubernetes SIG Apps
controller vLLM's docs deploy multi-node serving with): the leader runs `vllm serve` with
the API server and node rank 0, each worker the same engine `--headless` with its rank
(LWS_WORKER_INDEX), all reaching the leader's torch.distributed store at
LWS_LEADER_ADDRESS (vLLM's multiprocessing executor over nodes, 0.11.1 and later). Each pod
holds its server's GPUs and its own volume of weights; a pod that fails restarts the whole
group (RecreateGroupOnPodRestart), as one engine cannot lose a stage. The Services select
leaders only, the NetworkPolicy also lets a group's pods reach each other, and the HPA
scales groups (the LeaderWorkerSet's scale subresource counts them by their leaders).
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from llmplan.perf.drafter import drafter
from llmplan.perf.engine import SETTING_RELEASES
from llmplan.perf.memory import kv_capacity
from llmplan.perf.runner import Runner, model_runner
from llmplan.perf.setup import ReplicaSetup
from llmplan.provision.gpu_nodes import node_kind, node_selector
from llmplan.provision.manifests import (
    ENDPOINTS_SETTLE_S,
    SERVING_PORT,
    container_security,
    k8s_name,
    labels,
    network_policy,
    pod_security,
    settle_before_stop,
)
from llmplan.provision.router_config import LOCAL_TIMEOUT_S, task_routes
from llmplan.provision.shared_memory import shm_gib
from llmplan.provision.stack_config import StackConfig
from llmplan.provision.vllm_build import (
    DRAFTED,
    ServedWeights,
    activation_dtype,
    drafter_repo,
    served_weights,
    speculative_config,
)
from llmplan.scenario.models import AutoscaleSpec, LocalDeployment

ASYNC_FLAG_RELEASE = SETTING_RELEASES["async_scheduling"][0]
#: vLLM 0.9.0 deprecated --enable-reasoning: naming a --reasoning-parser turns it on
REASONING_WITHOUT_ENABLE_RELEASE = (0, 9, 0)
#: --default-chat-template-kwargs (merged under each request's chat_template_kwargs) came in
#: 0.14.0 (vllm/entrypoints/openai/cli_args.py: absent in 0.13.0's wheel, present in 0.14.0's)
CHAT_DEFAULTS_RELEASE = (0, 14, 0)
API_SERVER_FLAG_RELEASE = SETTING_RELEASES["api_server_count"][0]
#: --shutdown-timeout came in 0.18.0 with a default of 0: at SIGTERM vLLM aborts every
#: request in flight, or with N > 0 takes no new ones and drains for up to N s
#: (engine/arg_utils.py, v1/engine/core.py _handle_shutdown); before it, requests in flight
#: were dropped
SHUTDOWN_TIMEOUT_RELEASE = (0, 18, 0)
#: from 0.14.0 vLLM downloads only the safetensors its repository's index names
#: (model_loader/weight_utils.py download_weights_from_hf), not a subfolder's copy
INDEXED_DOWNLOAD_RELEASE = (0, 14, 0)
#: a replica scaled in or rolled finishes its requests, as the simulation's scale-down
#: drains it: as long as the gateway waits for a local answer
DRAIN_S = LOCAL_TIMEOUT_S

HUB_SECRET_KEY = "token"
#: The external metric the HPA reads, per fleet (`scale_metric`): the simulated scaler's own
#: decision from vLLM's gauges, which a prometheus-adapter external rule (`scale_rule`)
#: computes as a ratio to the current replicas: 2 to add one, 0.5 to remove one, 1 to hold
SCALE_METRIC = "llmplan_scale_ratio"
WEIGHTS_MOUNT = "/models"
#: the login name the pods' non-root user goes by (USER, LOGNAME)
RUN_AS_USER = "vllm"
#: /health's timeout: llm-d's benchmark harness raised it to 15 s after saturated vLLM
#: servers missed 1 s probes (llm-d/llm-d-benchmark#1734)
PROBE_TIMEOUT_S = 10


def serving_name(config: StackConfig) -> str:
    """The fleet's name in the cluster: its StatefulSet's, its Services' and the rest. Its
    Services take it, so a DNS-1035 label, a letter first: the API server refuses a Service
    named after a deployment such as `8b-fleet` ("a DNS-1035 label must ... start with an
    alphabetic character", ValidateServiceName), which then gets `vllm-` in front."""
    local = config.plan.local
    if local is None:
        raise ValueError(f"a {config.kind} stack has no GPU fleet")
    name = k8s_name(local[0])
    return name if name[0].isalpha() else k8s_name(f"vllm-{name}")


def pods_service_name(config: StackConfig) -> str:
    """The headless Service naming each Ready pod (the gateway's balancer reads it)."""
    return f"{serving_name(config)}-pods"


def hub_secret_name(config: StackConfig) -> str:
    return f"{serving_name(config)}-hub-token"


def served(config: StackConfig) -> ServedWeights:
    """The checkpoint the fleet serves (the plan was checked to have one)."""
    local = config.plan.local
    assert local is not None
    dep, model = local[1], config.plan.catalog.models[local[1].model]
    return served_weights(dep.model, model, dep.engine.weights_dtype or model.default_dtype)


def hub_repos(config: StackConfig) -> list[tuple[str, bool | None]]:
    """The Hugging Face repositories the fleet downloads, each with whether it is gated
    (None: not known): the checkpoint, and the speculative drafter if any."""
    local = config.plan.local
    assert local is not None
    dep, model = local[1], config.plan.catalog.models[local[1].model]
    weights = served(config)
    repos = [(weights.hf_id, weights.hub_gated)]
    if dep.engine.speculative is not None:
        drafter = drafter_repo(model, dep.engine.speculative, config.plan.catalog)
        repos += [drafter] if drafter is not None else []
    return repos


#: the port of the leader's torch.distributed store (vLLM's --master-port default)
MASTER_PORT = 29501
LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
LEADER_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
#: the longest LeaderWorkerSet name: 63 less a group index of up to 4 digits, two dashes
#: and a 10-character revision hash (`group_name`)
GROUP_NAME_LIMIT = 46


def group_name(config: StackConfig) -> str:
    """The LeaderWorkerSet of a fleet over several servers: not the fleet's name, which its
    ClusterIP Service holds, as the controller names the groups' own headless Service
    (the leaders' DNS names, LWS_LEADER_ADDRESS) after it. A DNS-1035 label, as its
    admission webhook requires (a letter first), short enough for what the controller
    derives from it: worker StatefulSets `<name>-<group>`, their pods `<name>-<group>-<i>`,
    each pod's controller-revision-hash label `<statefulset>-<10 characters>`, all within
    63 characters."""
    local = config.plan.local
    assert local is not None
    base = k8s_name(local[0], limit=GROUP_NAME_LIMIT - len("-group"))
    name = f"{base}-group"
    return name if name[0].isalpha() else f"g{name}"[:GROUP_NAME_LIMIT]


def servers(config: StackConfig) -> int:
    """Servers, so pods, one replica runs on."""
    local = config.plan.local
    assert local is not None
    return local[1].setup(config.plan.catalog).servers


def vllm_args(config: StackConfig, role: Literal["leader", "worker"] = "leader") -> list[str]:
    """The engine of the simulated deployment, as vLLM flags (a replica over several
    servers: its leader's, or its workers')."""
    args = _engine_args(config, serves_api=role == "leader")
    nodes = servers(config)
    if nodes == 1:
        return args
    group = ["--nnodes", str(nodes), "--master-addr", "$(LWS_LEADER_ADDRESS)",
             "--master-port", str(MASTER_PORT)]
    if role == "leader":
        return [*args, *group, "--node-rank", "0"]
    return [*args, *group, "--node-rank", "$(LWS_WORKER_INDEX)", "--headless"]


def _engine_args(config: StackConfig, *, serves_api: bool) -> list[str]:
    local = config.plan.local
    assert local is not None
    dep, model = local[1], config.plan.catalog.models[local[1].model]
    engine = dep.engine
    setup = dep.setup(config.plan.catalog)   # defaults resolved as the simulation resolved them
    weights = served(config)
    args = ["--model", weights.hf_id, "--served-model-name", dep.model,
            "--host", "0.0.0.0", "--port", str(SERVING_PORT),
            "--tensor-parallel-size", str(setup.attention_tp),
            *(["--pipeline-parallel-size", str(setup.pp)] if setup.pp > 1 else []),
            *(["--data-parallel-size", str(setup.attention_ranks)]
              if setup.attention_ranks > 1 else []),
            "--max-num-seqs", str(setup.rank_max_num_seqs),
            "--max-num-batched-tokens", str(setup.rank_max_num_batched_tokens),
            "--gpu-memory-utilization", str(setup.gpu_memory_utilization),
            "--block-size", str(setup.block_size_tokens),   # what vLLM runs with
            "--dtype", activation_dtype(setup),
            "--download-dir", f"{WEIGHTS_MOUNT}/hub"]
    if engine.max_model_len:
        args += ["--max-model-len", str(engine.max_model_len)]
    elif kv_capacity(setup).max_model_len < model.max_context_tokens:
        # the simulation served the longest request its KV cache holds; vLLM refuses to
        # start with a context its cache cannot hold unless told to fit it (`auto`, vLLM
        # 0.14 and later: memory.AUTO_MAX_MODEL_LEN_RELEASE)
        args += ["--max-model-len", "auto"]
    if weights.quantization is not None:
        args += ["--quantization", weights.quantization]
    if engine.kv_dtype == "fp8":
        args += ["--kv-cache-dtype", engine.kv_cache_dtype_flag or "fp8"]
    args.append("--enable-chunked-prefill" if engine.chunked_prefill
                else "--no-enable-chunked-prefill")
    if engine.release >= ASYNC_FLAG_RELEASE:
        # as simulated, set or resolved from the release's default, so the pod runs what
        # the plan assumed (before the flag vLLM had no async scheduling: off, as simulated)
        args.append("--async-scheduling" if setup.async_scheduling
                    else "--no-async-scheduling")
    args.append("--no-enable-prefix-caching" if engine.prefix_caching == "off"
                else "--enable-prefix-caching")
    if engine.release >= SHUTDOWN_TIMEOUT_RELEASE:
        args += ["--shutdown-timeout", str(DRAIN_S)]
    if engine.enforce_eager:
        args.append("--enforce-eager")
    if setup.tp > 1 and setup.gpu.interconnect == "pcie" and not setup.gpu.peer_to_peer:
        # simulated on NCCL (steptime.nccl_all_reduce): vLLM would find no peer access and
        # fall back itself, unless the driver offers one the box cannot carry, where its
        # custom kernel hangs at start-up (ai-dynamo/aiconfigurator#1346)
        args.append("--disable-custom-all-reduce")
    if engine.expert_parallel and setup.model.is_moe:
        args.append("--enable-expert-parallel")
    if engine.kv_cache_memory_gib is not None:
        args += ["--kv-cache-memory-bytes", str(int(engine.kv_cache_memory_gib * 2**30))]
    if serves_api and (setup.api_server_count > 1 or setup.attention_ranks > 1) \
            and engine.release >= API_SERVER_FLAG_RELEASE:   # before it: one server, as set
        # with data parallelism vLLM's own default is a server per rank: always say it (a
        # headless node runs no API server, and vLLM refuses the flag there)
        args += ["--api-server-count", str(setup.api_server_count)]
    if engine.speculative is not None:
        args += ["--speculative-config", json.dumps(
            speculative_config(dep.model, model, engine.speculative), separators=(",", ":"))]
    if serves_api and model.reasoning_parser is not None:
        # the thinking streamed apart from the answer (`reasoning_content`), as the
        # simulation's time to the first answer token has it; before 0.9.0 the parser
        # took --enable-reasoning as well
        args += ([] if engine.release >= REASONING_WITHOUT_ENABLE_RELEASE
                 else ["--enable-reasoning"]) + ["--reasoning-parser", model.reasoning_parser]
    if serves_api and thinks_unasked(config) and engine.release >= CHAT_DEFAULTS_RELEASE:
        # simulated without reasoning: the chat template's thinking off unless a request
        # asks for it (request-level chat_template_kwargs still take precedence)
        args += ["--default-chat-template-kwargs", json.dumps({"enable_thinking": False},
                                                              separators=(",", ":"))]
    return args


def thinks_unasked(config: StackConfig) -> bool:
    """The model's chat template thinks by default (Qwen3's hybrid models: their
    `enable_thinking` switch, vLLM's qwen3 reasoning parser), and no task the fleet serves
    was simulated with reasoning: served as is, every chat answer would start with thinking
    the plan neither timed nor priced. A hybrid's API tasks that fall back to the fleet only
    when the API fails do not decide its default (`thinking_notes` names them)."""
    local = config.plan.local
    if local is None:
        return False
    model = config.plan.catalog.models[local[1].model]
    routes = task_routes(config.plan)
    # a standby fleet serves only what falls back to it
    served = {r.task for r in routes if r.side == "local"} or \
        {r.task for r in routes if r.falls_back}
    tasks = [t for t in config.plan.tasks if t.name in served]
    # unknown (an older stack file): leave the model's default as it was
    return model.reasoning_parser == "qwen3" and bool(tasks) \
        and all(t.reasoning is False for t in tasks)


#: the pace of a pod's first download of its checkpoint from the model hub, bytes/s: an
#: assumption (a download through a cloud NAT; hf_transfer reaches several times it); the
#: startup probe allows for it
HUB_DOWNLOAD_BYTES_PER_S = 100e6
#: what a new GPU node and the serving image's pull take before the container starts, s: an
#: assumption (vLLM's CUDA image is about 10 GB compressed)
POD_START_S = 900
#: Pulumi's own wait for a StatefulSet to be ready is 10 minutes unless its
#: `pulumi.com/timeoutSeconds` annotation says otherwise (pulumi-kubernetes,
#: pkg/await: DefaultStatefulSetTimeoutMins, AnnotationTimeoutSeconds)
PULUMI_TIMEOUT_ANNOTATION = "pulumi.com/timeoutSeconds"


def startup_allowance_s(config: StackConfig) -> int:
    """How long the startup probe lets vLLM take to answer /health: 3x the simulated
    spin-up and the first start's download of the checkpoint, at least 10 minutes."""
    local = config.plan.local
    assert local is not None
    autoscaling = local[1].autoscaling
    spin_up_s = autoscaling.spin_up_s if autoscaling is not None else 180.0
    first_start_s = 3 * spin_up_s + checkpoint_gib(config) * 2**30 / HUB_DOWNLOAD_BYTES_PER_S
    return 10 * max(60, math.ceil(first_start_s / 10))


def ready_timeout_s(config: StackConfig) -> int:
    """How long `pulumi up` waits for the fleet to be ready: a rolling update replaces the
    replicas one at a time, each with its node, image pull and start-up to wait for."""
    local = config.plan.local
    assert local is not None
    return local[1].replicas * (POD_START_S + startup_allowance_s(config))


def checkpoint_gib(config: StackConfig, *, copies: bool = True) -> float:
    """GiB a pod downloads from the model hub: the checkpoint in the format it is stored
    in (16-bit when vLLM quantises it while loading), its MTP modules, and a drafter's
    16-bit weights; `copies`: with a second copy of the weights the release downloads too
    (False: what it loads)."""
    local = config.plan.local
    assert local is not None
    dep = local[1]
    model = config.plan.catalog.models[dep.model]
    stored = served(config).stored_dtype
    # the repository holds the MTP modules whether or not they draft (DeepSeek's 14B)
    mtp_bytes = model.mtp_params_b * 1e9 * model.weight_bytes(stored) / (model.params_b * 1e9)
    spec = dep.engine.speculative
    drafter_bytes = drafter(dep.setup(config.plan.catalog)).weights_bytes \
        if spec is not None and spec.method in DRAFTED else 0.0
    # before 0.14.0 vLLM downloads every *.safetensors of the repository, a second copy of
    # the weights in a subfolder too (gpt-oss's original/)
    sets = model.hub_weights_copies if copies and served(config).hf_id == model.hf_id \
        and dep.engine.release < INDEXED_DOWNLOAD_RELEASE else 1
    download_gib = (model.weight_bytes(stored) * sets + mtp_bytes + drafter_bytes) / 2**30
    return download_gib


#: Host bytes each worker process keeps per request slot (max_num_seqs) and position of
#: max_model_len: its table of every running request's token ids, allocated zeroed at
#: start-up whatever the traffic. V1's model runner: InputBatch.token_ids_cpu_tensor
#: (int32, pageable) and is_token_ids (bool, from vllm-project/vllm#24278, September 2025;
#: counted for every release, a byte in five too many before it), both
#: (max_num_reqs, max_model_len) in vllm/v1/worker/gpu_input_batch.py, "could be too large if
#: max_model_len is big". V2's: RequestState.all_token_ids in vllm/v1/worker/gpu/states.py,
#: int32 in a pinned UvaBuffer (buffer_utils.py, `torch.zeros(..., pin_memory=True)`),
#: "can be extremely large (e.g., several GBs)".
TOKEN_TABLE_BYTES: dict[Runner, int] = {"v1": 4 + 1, "v2": 4}


def token_table_gib(setup: ReplicaSetup) -> float:
    """GiB of host memory one worker process holds for its token-id table
    (`TOKEN_TABLE_BYTES`): its rank's max_num_seqs rows of the max_model_len it runs with
    (the scenario's, or what vLLM fits to the KV cache, or the model's context)."""
    slots = setup.rank_max_num_seqs * kv_capacity(setup).max_model_len
    return slots * TOKEN_TABLE_BYTES[model_runner(setup)] / 2**30


def serving_sizes(config: StackConfig) -> tuple[int, int, int]:
    """CPU cores, memory GiB and weights-volume GiB of one pod (a replica's, or one server's
    of a replica over several).

    Memory holds the pod's share of the weights once while loading, plus headroom: vLLM's
    default loader maps each safetensors file (safe_open, framework "pt": the file's pages
    come into the page cache as they are read, charged to the pod's cgroup) in every worker,
    and each worker reads its shard of every tensor of its stages (tensor parallel ranks
    slice the same tensors, so the pod's ranks between them read all of them; a pipeline
    stage on another server skips the layers it does not hold). One pod's workers share its
    page cache: a pod holding a whole replica maps the whole checkpoint whatever its tensor
    parallelism, a pod of a replica over several servers its servers' share of the stages.
    Each of the pod's worker processes (one per GPU) adds its token-id table
    (`token_table_gib`); the rest of the headroom (the API server and engine core, CUDA's
    and NCCL's host buffers, torch.compile) is a fixed 16 GiB, for want of a measured figure
    per process. The pod's /dev/shm (`shared_memory.shm_gib`) is memory too, counted
    against the container's limit: its size comes on top.
    The volume holds the downloaded files (`download_gib`) plus a quarter and the compile
    caches."""
    local = config.plan.local
    assert local is not None
    dep = local[1]
    download_gib = checkpoint_gib(config)
    setup = dep.setup(config.plan.catalog)
    api_servers = setup.api_server_count
    gpus = setup.server_gpus         # one pod's (a replica over servers: a pod per server)
    cpu = 4 * gpus + 2 + (api_servers - 1)   # a core per extra API server
    loaded_gib = checkpoint_gib(config, copies=False)
    pod_share = setup.server_gpus / setup.gpus     # 1 unless the replica spans servers
    tables_gib = gpus * token_table_gib(setup)          # one worker process per GPU
    memory_gib = max(32, math.ceil(loaded_gib * pod_share * 1.2 + tables_gib) + 16) \
        + shm_gib(setup)
    volume_gib = max(50, math.ceil(download_gib * 1.25) + 20)
    return cpu, memory_gib, volume_gib


def _pod_template(config: StackConfig, pod_labels: dict[str, str],
                  role: Literal["leader", "worker"] = "leader") -> dict[str, Any]:
    """One pod of the fleet: a replica's, or one server's of a replica over several (the
    leader serves the API; a worker runs its stages headless, with no HTTP to probe)."""
    local = config.plan.local
    assert local is not None
    dep = local[1]
    name = serving_name(config)
    cpu, memory_gib, _ = serving_sizes(config)
    setup = dep.setup(config.plan.catalog)
    if role == "worker":             # no API server on a headless node
        cpu -= setup.api_server_count - 1
    gpu = config.plan.catalog.gpus[dep.gpu]
    nodes = node_kind(gpu)   # NVIDIA's or AMD's device plugin, labels and taint
    resources = {"cpu": str(cpu), "memory": f"{memory_gib}Gi",
                 nodes.resource: str(setup.server_gpus)}
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    # the image has no passwd entry for NON_ROOT_UID and torch asks getpass.getuser(),
    # which reads LOGNAME and USER before the passwd database (Python's getpass)
    env = [{"name": "HOME", "value": "/tmp"},
           {"name": "USER", "value": RUN_AS_USER}, {"name": "LOGNAME", "value": RUN_AS_USER},
           {"name": "HF_HOME", "value": f"{WEIGHTS_MOUNT}/hf"},
           {"name": "VLLM_CACHE_ROOT", "value": f"{WEIGHTS_MOUNT}/vllm"},
           {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
           {"name": "DO_NOT_TRACK", "value": "1"},
           *([{"name": "VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS",
               "value": "1" if dep.engine.cuda_graph_estimate else "0"}]
             if dep.engine.cuda_graph_estimate is not None else []),
           *([{"name": "VLLM_USE_V2_MODEL_RUNNER",
               "value": "1" if dep.engine.model_runner == "v2" else "0"}]
             if dep.engine.model_runner is not None else []),
           {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
               "name": hub_secret_name(config), "key": HUB_SECRET_KEY, "optional": True}}}]
    container: dict[str, Any] = {
        "name": "vllm", "image": config.serving_image, "args": vllm_args(config, role),
        "env": env,
        "resources": {"requests": resources, "limits": resources},
        "securityContext": container_security(),
        "volumeMounts": [{"name": "weights", "mountPath": WEIGHTS_MOUNT},
                         {"name": "shm", "mountPath": "/dev/shm"},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    if role == "leader":
        # the API, and a group's torch.distributed store, which its workers reach at
        # --master-addr
        container["ports"] = [{"name": "http", "containerPort": SERVING_PORT}] + (
            [{"name": "dist", "containerPort": MASTER_PORT}] if setup.servers > 1 else [])
        # vLLM answers /health once the weights are loaded: allow 3x the simulated spin-up
        # and the first start's download
        container |= {"startupProbe": {**probe, "periodSeconds": 10,
                                       "failureThreshold": startup_allowance_s(config) // 10},
                      # a saturated server answers /health late: Kubernetes' 1 s default
                      # timeout would take it out of service, or restart it, under load
                      "readinessProbe": {**probe, "periodSeconds": 10,
                                         "timeoutSeconds": PROBE_TIMEOUT_S},
                      "livenessProbe": {**probe, "periodSeconds": 15,
                                        "timeoutSeconds": PROBE_TIMEOUT_S,
                                        "failureThreshold": 4},
                      "lifecycle": settle_before_stop()}
    return {
        "metadata": {"labels": pod_labels, "annotations": {
            "prometheus.io/scrape": "true", "prometheus.io/port": str(SERVING_PORT),
            "prometheus.io/path": "/metrics"} if role == "leader" else {}},
        "spec": {
            "serviceAccountName": name, "automountServiceAccountToken": False,
            "securityContext": pod_security(),
            "containers": [container],
            "nodeSelector": node_selector(dep.gpu, gpu),
            "tolerations": [{"key": nodes.taint_key, "operator": "Exists",
                             "effect": "NoSchedule"}],
            # tmpfs: what is written there counts against the memory limit, which holds it
            "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory",
                                                     "sizeLimit": f"{shm_gib(setup)}Gi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "20Gi"}}],
            # the drain, and the engine processes' clean-up after it (15 s on ROCm, from
            # 0.30: v1/utils.py get_engine_process_shutdown_timeout)
            "terminationGracePeriodSeconds": ENDPOINTS_SETTLE_S + (
                DRAIN_S + 30 if dep.engine.release >= SHUTDOWN_TIMEOUT_RELEASE else 120),
        },
    }


def serving_manifests(config: StackConfig) -> list[dict[str, Any]]:
    """ServiceAccount, StatefulSet (or LeaderWorkerSet), Services, PodDisruptionBudget,
    autoscaler, NetworkPolicy."""
    local = config.plan.local
    assert local is not None, f"a {config.kind} stack has no GPU fleet"
    dep = local[1]
    name, ns = serving_name(config), config.namespace
    pod_labels = labels(name, "gpu-serving")
    meta = {"name": name, "namespace": ns, "labels": pod_labels}
    _, _, volume_gib = serving_sizes(config)
    claim = {"metadata": {"name": "weights", "labels": pod_labels},
             "spec": {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": f"{volume_gib}Gi"}}}}
    if config.storage_class:
        claim["spec"]["storageClassName"] = config.storage_class
    retain = {"whenDeleted": "Retain", "whenScaled": "Retain"}
    group = servers(config)
    # the Services pick the pods serving the API: a group's leader
    serving = {**pod_labels, LEADER_LABEL: "0"} if group > 1 else pod_labels
    fleet: dict[str, Any]
    if group == 1:
        fleet = {
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {**meta, "annotations": {
                PULUMI_TIMEOUT_ANNOTATION: str(ready_timeout_s(config))}},
            "spec": {"replicas": dep.replicas, "serviceName": pods_service_name(config),
                     "selector": {"matchLabels": pod_labels},
                     "podManagementPolicy": "Parallel",
                     "updateStrategy": {"type": "RollingUpdate"},
                     "persistentVolumeClaimRetentionPolicy": retain,
                     "template": _pod_template(config, pod_labels),
                     "volumeClaimTemplates": [claim]}}
    else:
        fleet = {
            "apiVersion": LWS_API_VERSION, "kind": "LeaderWorkerSet",
            "metadata": {**meta, "name": group_name(config)},
            "spec": {"replicas": dep.replicas, "startupPolicy": "LeaderCreated",
                     "networkConfig": {"subdomainPolicy": "Shared"},
                     "rolloutStrategy": {"type": "RollingUpdate",
                                         "rollingUpdateConfiguration": {
                                             "maxUnavailable": 1, "maxSurge": 0}},
                     "leaderWorkerTemplate": {
                         "size": group, "restartPolicy": "RecreateGroupOnPodRestart",
                         "leaderTemplate": _pod_template(config, pod_labels),
                         "workerTemplate": _pod_template(config, pod_labels, "worker"),
                         "volumeClaimTemplates": [claim],
                         "persistentVolumeClaimRetentionPolicy": retain}}}
    port = {"name": "http", "port": SERVING_PORT, "targetPort": "http"}
    policy = network_policy(config, name, pod_labels, SERVING_PORT, from_gateway=True)
    if group > 1:
        # a group's pods reach each other on any port: torch.distributed's store, NCCL's
        # sockets and the engine's ZMQ channels pick theirs at start-up
        policy["spec"]["ingress"].append({"from": [{"podSelector": {
            "matchLabels": pod_labels}}]})
    manifests: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta,
         "automountServiceAccountToken": False},
        fleet,
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": serving, "ports": [port]}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {**meta, "name": pods_service_name(config)},
         "spec": {"clusterIP": "None", "selector": serving, "ports": [port]}},
        # every pod counts: a group loses its leader, so its replica, with any of its pods
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta,
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": pod_labels}}},
        policy,
    ]
    if dep.autoscaling is not None:
        target = ("apps/v1", "StatefulSet", name) if group == 1 else \
            (LWS_API_VERSION, "LeaderWorkerSet", group_name(config))
        manifests.append(autoscaler(name, ns, pod_labels, dep, target=target))
    return manifests


def scale_metric(name: str) -> str:
    """The external metric of fleet `name`'s scaler (a metric name takes no '-')."""
    return f"{SCALE_METRIC}_{name.replace('-', '_')}"


def scale_query(namespace: str, pods: str, scale: AutoscaleSpec) -> str:
    """PromQL of the simulated scaler's decision (sim/fleet_control.py `_tick`) over the
    fleet's serving pods (`pods`: their names' prefix): add a replica when more than
    `scale_up_waiting_per_replica` requests wait per pod, else remove one when fewer than
    `scale_down_outstanding_per_replica` are in flight (running or waiting) per pod, as a
    ratio to the current replicas (2, 0.5, else 1)."""
    match = f'{{namespace="{namespace}",pod=~"{pods}-[0-9]+"}}'
    waiting = f"sum by (pod) (vllm:num_requests_waiting{match})"
    running = f"sum by (pod) (vllm:num_requests_running{match})"
    up = f"(avg({waiting}) > bool {scale.scale_up_waiting_per_replica!r})"
    down = f"(avg({running} + {waiting}) < bool {scale.scale_down_outstanding_per_replica!r})"
    return f"1 + {up} - 0.5 * (1 - {up}) * {down}"


def scale_rule(config: StackConfig) -> dict[str, Any] | None:
    """The prometheus-adapter external rule the fleet's HPA reads (None: no autoscaling),
    to add to the adapter's `externalRules`: its metric is the simulated scaler's decision
    (`scale_query`)."""
    local = config.plan.local
    if local is None or local[1].autoscaling is None:
        return None
    name, namespace = serving_name(config), config.namespace
    # the serving pods: the StatefulSet's `<name>-<i>`, a LeaderWorkerSet's leaders
    # `<group>-<i>` (its workers `<group>-<i>-<j>` serve no API and export no metrics)
    pods = name if servers(config) == 1 else group_name(config)
    return {"seriesQuery": f'vllm:num_requests_waiting{{namespace="{namespace}"}}',
            "resources": {"namespaced": False},
            "name": {"matches": "^vllm:num_requests_waiting$", "as": scale_metric(name)},
            "metricsQuery": scale_query(namespace, pods, local[1].autoscaling)}


def autoscaler(name: str, namespace: str, pod_labels: dict[str, str],
               dep: LocalDeployment, *,
               target: tuple[str, str, str] | None = None) -> dict[str, Any]:
    """The simulated autoscaler as an HPA on its own decision.

    The simulation looks every `interval_s`: it adds a replica when more than
    `scale_up_waiting_per_replica` requests wait per replica, and removes one when fewer
    than `scale_down_outstanding_per_replica` are in flight per replica, `cooldown_s` after
    its last change. The HPA reads that decision as a ratio to the current replicas (the
    external metric of `scale_rule`: 2, 0.5 or 1; desired = ceil(replicas x ratio)), adds
    at most one pod per `interval_s` and removes one per `cooldown_s`, after the decision
    to remove held for a `cooldown_s` window (the HPA's scale-down stabilisation)."""
    scale = dep.autoscaling
    assert scale is not None
    api, kind, scaled = target or ("apps/v1", "StatefulSet", name)
    period = round(scale.interval_s)        # whole seconds in 1-1800 (the scenario's check)
    cooldown = round(scale.cooldown_s)
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace, "labels": pod_labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": api, "kind": kind, "name": scaled},
            "minReplicas": scale.min_replicas, "maxReplicas": scale.max_replicas,
            "metrics": [{"type": "External", "external": {
                "metric": {"name": scale_metric(name)},
                "target": {"type": "Value", "value": "1"}}}],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                            "policies": [{"type": "Pods", "value": 1,
                                          "periodSeconds": period}]},
                "scaleDown": {"stabilizationWindowSeconds": cooldown,
                              "selectPolicy": "Min",
                              "policies": [{"type": "Pods", "value": 1,
                                            "periodSeconds": cooldown}]}}}}


