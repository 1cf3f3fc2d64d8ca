"""The gateway's LiteLLM configuration, from the scenario's routing rules: the one generator.

One model group per task, named after it; clients send the task name as `model`. A task's
group holds the side the simulation sent it to:

- a restricted task (when the scenario keeps restricted data local) gets only the local
  fleet and no fall-back; the guard beside the config (`litellm_guard.py`) refuses
  client-side routing fields on it, so nothing the client sends moves it off owned hardware;
- a task the routes send to the cloud gets the API, falling back to the local fleet when
  `fallback_to_local` (the group `llmplan-local-fallback`);
- any other task gets the local fleet with a concurrency cap that approximates the simulated
  spill-over: past it LiteLLM answers 429 at once and the request falls back to the API
  (the group `llmplan-cloud-spill`, or for a plain task on a model that cannot answer
  without reasoning, `spill_group`'s group of its lowest effort). Local errors and
  timeouts fall back the same way.

The simulation spills a request when the chosen replica's expected queue wait (waiting
requests x the time between admissions) passes `spillover_wait_s`. A replica admits about
its completion rate, so the cap is the running batch (max_num_seqs, or fewer when the KV
cache holds fewer sequences of the simulated mean length) plus `spillover_wait_s` x the
simulated completions per second per replica, times the replicas. It is a count, not a
wait, and it is fixed at the starting replica count: that is where the gateway differs.

A fleet that sets `admission.queue_limit` refuses a request its replica cannot queue. On its
own (not a hybrid's part) the balancer does that per pod (`pod_connection_cap`: nginx's
`max_conns`, balancer.py), so the cap grows and shrinks with the pods the autoscaler runs.
In a hybrid, a local task that does not spill gets the same kind of gateway cap as the
spilling ones, with the queue limit as the allowance, and LiteLLM answers 429 past it with
nothing to fall back to. One fleet serves every local group, and the simulation spills or
refuses on its queue as a whole, so the caps are shared by task weight over all the local
groups (each entry counts its own): the spilling groups' shares of the spill cap, the held
groups' of the admission cap (the spill cap no more than it), so that together they never
admit more than the fleet held. These counts are fixed at the starting replicas: a hybrid
whose fleet autoscales gets a note saying so (`stack_config.fixed_caps_note`).

Reasoning: a group whose tasks were all simulated without reasoning sends the model's
lowest reasoning_effort (the catalog's least_reasoning_effort: "none" turns reasoning off;
where the model takes nothing lower than "minimal" or "low", the simulation added the hidden
tokens that leaves, `unasked_reasoning`). A reasoning task's group sends none: its clients
send the effort they want. A spilled call gets the effort its task was simulated at too
(a plain task's spilled requests carry the lowest effort's hidden tokens, as its API calls
do: `hybrid_api_requests`), so spill-over has one group per effort (`spill_group`): the
plain tasks fall back to one that sends the lowest effort, the others to
`llmplan-cloud-spill`, which sends none. Gemini's thinking stays
withheld, as simulated, whatever effort is sent (`litellm_settings`).

Provider limits: every API entry carries `rpm`/`tpm`, enforced by `usage-based-routing-v2`;
`tpm` only where the provider's token limit counts what LiteLLM counts, a call's prompt and
answer together (its counter adds each response's `total_tokens`:
router_strategy/lowest_tpm_rpm_v2.py). Anthropic's and Gemini's limits count input tokens
alone (sim/ratelimit.py), which LiteLLM's counter would pass long before them on long
answers: there the provider's own limit and 429s do it, as simulated.
LiteLLM counts per entry, so when several groups reach the API the account's limits are
split between them in proportion to the requests each sent to the API in the simulation,
with a floor of `MIN_LIMIT_SHARE` for a group the simulation sent nothing (its path still
has to work), the shares scaled back to sum to one.

Gateway replicas: each LiteLLM process keeps its own counts (the rate limits in its
in-memory cache, shared only through a Redis the stack does not run; `max_parallel_requests`
as an in-process semaphore: litellm/router_strategy/lowest_tpm_rpm_v2.py,
router_utils/client_initalization_utils.py), and the gateway's Service spreads clients'
connections over them. So each replica gets 1/`gatewayReplicas` of every limit and cap:
rate limits rounded down (together they must not pass the provider's), caps rounded up
(together they hold at least what the simulation held). The even split assumes clients
spread their connections over the gateway's pods (the Service balances connections): a
client with one long-lived connection reaches one pod and 1/`gatewayReplicas` of the
limits. A limit below the replica count cannot be split and gives each replica 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from llmplan.provision.bedrock_routing import bedrock_route
from llmplan.provision.stack_config import Plan, StackConfig
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import LocalDeployment
from llmplan.sim.ratelimit import DEFAULT_ACCOUNTING

LOCAL_FALLBACK = "llmplan-local-fallback"
CLOUD_SPILL = "llmplan-cloud-spill"
GUARD_MODULE = "llmplan_guard"                 # file name of the guard beside config.yaml
GUARD_CALLBACK = f"{GUARD_MODULE}.guard"
RESTRICTED_ENV = "LLMPLAN_RESTRICTED_GROUPS"   # the guard reads the restricted groups here
CLOUD_KEY_ENV = "CLOUD_API_KEY"
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
#: A local request with no answer after this long counts as failed (and may fall back).
LOCAL_TIMEOUT_S = 600
AZURE_API_VERSION = "2024-10-21"   # Azure OpenAI GA data-plane version LiteLLM accepts
#: The least share of the account's limits an API group gets (one the simulation sent
#: nothing still has to work: the module doc)
MIN_LIMIT_SHARE = 0.05


def spill_group(effort: str | None) -> str:
    """The API group a local task's spilled calls fall back to: `CLOUD_SPILL` sends no
    reasoning_effort (a client's own passes on); a group that sends `effort` carries it in
    its name."""
    return CLOUD_SPILL if effort is None else f"{CLOUD_SPILL}-effort-{effort}"


@dataclass(frozen=True)
class RouterEndpoints:
    """Where the gateway finds its backends."""

    local_api_base: str | None            # the vLLM Service, e.g. http://svc.ns.svc:8000/v1
    cloud_api_base: str | None = None     # None: the provider's own; tests: a stand-in server
    aws_region: str = ""
    azure_deployment: str = ""            # Azure OpenAI: the resource's deployment name


#: LiteLLM's prefix for each catalog provider (its provider names: "google" is Gemini's API
#: through Google AI Studio, `gemini/`; LiteLLM refuses `google/...` with "LLM Provider NOT
#: provided", checked in LiteLLM 1.108.7)
LITELLM_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "google": "gemini",
                    "bedrock": "bedrock", "azure_openai": "azure"}
AZURE_API_BASE_ENV = "AZURE_API_BASE"


@dataclass(frozen=True)
class TaskRoute:
    """Where one task's group sends its requests."""

    task: str
    side: str               # "local" or "cloud"
    restricted: bool        # stays on owned hardware whatever happens
    spills: bool            # local, and may move to the API (cap, errors, timeouts)
    falls_back: bool        # cloud, and may move to the local fleet


def task_routes(plan: Plan) -> list[TaskRoute]:
    """Each task's side, by the simulator's rules (sim/hybrid.py): restricted first, then the
    first matching route, else the default."""
    chosen = plan.chosen
    routes = []
    for task in plan.tasks:
        restricted = plan.restricted_stays_local and task.sensitivity == "restricted"
        if isinstance(chosen, HybridDeployment):
            side = chosen.task_side(task.name, task.kind, task.sensitivity,
                                    restricted_stays_local=plan.restricted_stays_local)
            routes.append(TaskRoute(task.name, side, restricted,
                                    spills=side == "local" and not restricted,
                                    falls_back=side == "cloud" and chosen.fallback_to_local))
        else:
            routes.append(TaskRoute(task.name, chosen.kind, restricted, False, False))
    return routes


def cloud_output_tokens(plan: Plan) -> float | None:
    """Mean answer length of the requests the API answered in the simulation, weighted by
    how many each task sent it (a hybrid's spilled requests too); without those counts, of
    the tasks the routes send it, by task weight."""
    by_task = {t.name: t for t in plan.tasks}
    weights = {name: float(n) for name, n in plan.simulated.cloud_requests_by_task.items()
               if n > 0 and name in by_task}
    if not weights:
        weights = {r.task: by_task[r.task].weight for r in task_routes(plan)
                   if r.side == "cloud" and not r.restricted}
    total = sum(weights.values())
    return sum(w * by_task[name].mean_output_tokens for name, w in weights.items()) / total \
        if total else None


def restricted_groups(plan: Plan) -> list[str]:
    """Groups that must never leave owned hardware (what the guard enforces)."""
    return [r.task for r in task_routes(plan) if r.restricted]


def spill_cap_per_replica(plan: Plan) -> int | None:
    """In-flight requests per replica past which a spillable request goes to the API."""
    chosen, local = plan.chosen, plan.local
    if not isinstance(chosen, HybridDeployment) or local is None:
        return None
    dep, sim = local[1], plan.simulated
    if chosen.spillover_wait_s is not None:
        allowance = math.ceil(chosen.spillover_wait_s * (sim.local_requests_per_s_per_replica
                                                         or 0.0))
    elif chosen.spillover_when_full and dep.admission.queue_limit is not None:
        allowance = dep.admission.queue_limit
    else:
        return None     # the simulation never spills: neither does the gateway
    return _running_batch(plan, dep) + allowance


def admission_cap_per_replica(plan: Plan) -> int | None:
    """In-flight requests per replica past which the fleet's admission refuses a request
    (`admission.queue_limit` waiting beside the running batch); None: it never refuses."""
    local = plan.local
    if local is None or local[1].admission.queue_limit is None:
        return None
    return _running_batch(plan, local[1]) + local[1].admission.queue_limit


def pod_connection_cap(config: StackConfig) -> int | None:
    """Requests in flight each gateway pod's balancer sends one vLLM pod at most (nginx's
    `max_conns`): a fleet of its own with `admission.queue_limit` (a hybrid's caps are the
    gateway's). Each balancer counts its own, so the cap is shared by the gateway's
    replicas, rounded up (together they hold at least what the simulated replica held)."""
    if isinstance(config.plan.chosen, HybridDeployment):
        return None
    cap = admission_cap_per_replica(config.plan)
    return None if cap is None else -(-cap // config.gateway_replicas)


def _running_batch(plan: Plan, dep: LocalDeployment) -> int:
    """Sequences a replica runs at once: max_num_seqs, or fewer when the KV cache holds fewer
    of the simulated mean length."""
    sim = plan.simulated
    batch = dep.setup(plan.catalog).max_num_seqs
    if sim.kv_cache_tokens_per_replica and sim.mean_tokens_per_request:
        batch = min(batch, max(1, int(sim.kv_cache_tokens_per_replica
                                      // sim.mean_tokens_per_request)))
    return batch


def router_config(config: StackConfig, endpoints: RouterEndpoints) -> dict[str, Any]:
    """LiteLLM proxy config (config.yaml) of this stack's gateway."""
    plan = config.plan
    routes = task_routes(plan)
    local, cloud = plan.local, plan.cloud
    spill = [r for r in routes if r.spills and cloud is not None]
    back = [r for r in routes if r.falls_back and local is not None]
    models: list[dict[str, Any]] = []
    cap = spill_cap_per_replica(plan) if cloud is not None else None
    cap_total = cap * local[1].replicas if cap is not None and local is not None else None
    # a fleet of its own refuses at each pod's balancer (pod_connection_cap)
    admit = admission_cap_per_replica(plan) if cloud is not None else None
    admit_total = admit * local[1].replicas if admit is not None and local is not None else None
    weights = {t.name: t.weight for t in plan.tasks}
    plain = {t.name for t in plan.tasks if t.reasoning is False}
    spill_weight = sum(weights[r.task] for r in spill)
    held = [r for r in routes
            if r.side == "local" and not (r.spills and cloud is not None and cap_total)]
    held_weight = sum(weights[r.task] for r in held)
    if cap_total is not None and admit_total is not None:
        cap_total = min(cap_total, admit_total)
    # one fleet serves both kinds of groups: the spilling ones spill, and the held ones are
    # refused, when the fleet's queue as a whole is long, so each kind gets its weight's
    # share of the fleet's count and together they never admit more than it held
    local_weight = spill_weight + held_weight
    for route in routes:
        if route.side == "local" and local is not None:
            share = None
            if route.spills and cap_total is not None:
                share = max(1, math.floor(cap_total * weights[route.task] / local_weight))
            elif route in held and admit_total is not None:
                share = max(1, math.floor(admit_total * weights[route.task] / local_weight))
            models.append(_local_entry(route.task, local[1], endpoints, share))
        elif route.side == "cloud" and cloud is not None and not route.restricted:
            models.append(_cloud_entry(route.task, plan, cloud[1], endpoints,
                                       plain=route.task in plain))
    if back and local is not None:
        models.append(_local_entry(LOCAL_FALLBACK, local[1], endpoints, None))
    # each spilled call at the effort its task was simulated at: the plain tasks' group
    # sends the lowest effort (its hidden tokens were simulated), the others' sends none
    least = plan.cloud_model.least_reasoning_effort if plan.cloud_model is not None else None
    spilled: dict[str, list[str]] = {}
    for route in spill:
        spilled.setdefault(spill_group(least if route.task in plain else None),
                           []).append(route.task)
    if cloud is not None:
        for group, tasks in spilled.items():
            models.append(_cloud_entry(group, plan, cloud[1], endpoints,
                                       plain=all(task in plain for task in tasks)))
    _split_limits(models, plan, spilled)
    _per_instance(models, config.gateway_replicas)
    _uncapped_calls(models)
    fallbacks = [{task: [group]} for group, tasks in spilled.items() for task in tasks] + \
        [{r.task: [LOCAL_FALLBACK]} for r in back]
    router: dict[str, Any] = {"routing_strategy": "usage-based-routing-v2", "num_retries": 0}
    if fallbacks:
        router["fallbacks"] = fallbacks
    return {"model_list": models, "router_settings": router,
            "litellm_settings": litellm_settings(plan),
            "general_settings": {"master_key": f"os.environ/{MASTER_KEY_ENV}"}}


def litellm_settings(plan: Plan) -> dict[str, Any]:
    """The gateway's LiteLLM-wide settings: the guard, and, for a Gemini model whose API the
    catalog takes to withhold its thinking (`streams_reasoning` false: Google returns
    thought summaries only when asked, includeThoughts), no thought summaries asked for.
    The pinned LiteLLM (1.108.7) asks for them whenever it translates a reasoning_effort
    (a plain group's own, or a client's) into Gemini's thinkingConfig, unless
    `litellm.gemini_include_thoughts_default` is false (llms/vertex_ai/gemini/
    vertex_and_google_ai_studio_gemini.py `_include_thoughts`; the proxy sets each
    litellm_settings key on the module, proxy_server.py): clients would get the summaries
    streamed while the model thinks, their first token before the simulated one. A client
    that wants them asks with reasoning_effort {"effort": ..., "summary": ...}."""
    settings: dict[str, Any] = {"callbacks": [GUARD_CALLBACK]}
    spec = plan.cloud_model
    if spec is not None and spec.provider == "google" and not spec.streams_reasoning:
        settings["gemini_include_thoughts_default"] = False
    return settings


def _local_entry(group: str, dep: LocalDeployment, endpoints: RouterEndpoints,
                 max_parallel: int | None) -> dict[str, Any]:
    if endpoints.local_api_base is None:
        raise ValueError("a stack with a GPU fleet needs the fleet's endpoint")
    params: dict[str, Any] = {"model": f"openai/{dep.model}", "api_base": endpoints.local_api_base,
                              # vLLM runs without an API key; the NetworkPolicy guards it
                              "api_key": "no-key", "timeout": LOCAL_TIMEOUT_S,
                              "max_retries": 0}
    if max_parallel is not None:
        params["max_parallel_requests"] = max_parallel
    return {"model_name": group, "litellm_params": params,
            "model_info": {"id": f"{group}--local"}}


def _cloud_entry(group: str, plan: Plan, dep: CloudDeployment,
                 endpoints: RouterEndpoints, *, plain: bool) -> dict[str, Any]:
    """The API entry of `group`; `plain`: every task it serves was simulated without
    reasoning, so each call carries the model's lowest reasoning_effort, as simulated
    (llmplan.sim.engine.unasked_reasoning)."""
    spec = plan.cloud_model
    assert spec is not None   # plan.cloud exists, so its catalog entry does
    params: dict[str, Any]
    if endpoints.cloud_api_base is not None:
        params = {"model": f"openai/{spec.model_id}", "api_base": endpoints.cloud_api_base,
                  "api_key": f"os.environ/{CLOUD_KEY_ENV}"}
    elif spec.provider == "bedrock":
        # credentials: the gateway's service account role (EKS Pod Identity or IRSA); the id
        # is the route from the Region called that keeps the plan's region and data residency
        # (bedrock_routing.py), the one the role's IAM policy names (cloud_access.py)
        # (no Region yet: the catalog's id; `pulumi up` refuses such a stack before the
        # gateway, infra/__main__.py, and `llmplan stack` says to set one)
        model_id = bedrock_route(plan, endpoints.aws_region).model_id \
            if endpoints.aws_region else spec.model_id
        params = {"model": f"bedrock/{model_id}", "aws_region_name": endpoints.aws_region}
    elif spec.provider == "azure_openai":
        # Azure addresses the resource's own deployment of the model, under its own name
        deployment = endpoints.azure_deployment or spec.model_id
        params = {"model": f"azure/{deployment}", "api_key": f"os.environ/{CLOUD_KEY_ENV}",
                  "api_base": f"os.environ/{AZURE_API_BASE_ENV}",
                  "api_version": AZURE_API_VERSION}
    else:
        params = {"model": f"{LITELLM_PROVIDER[spec.provider]}/{spec.model_id}",
                  "api_key": f"os.environ/{CLOUD_KEY_ENV}"}
    params.update({"rpm": int(dep.limits.requests_per_min or spec.default_rpm),
                   "timeout": dep.retry.request_timeout_s, "max_retries": dep.retry.max_retries})
    if dep.limits.max_tokens is not None:
        # simulated as sent with every call (what the provider reserves against its limits,
        # and where it cuts an answer): a deployment's litellm_params go with each call
        # unless the request sets its own (litellm Router: the request's kwargs last)
        params["max_tokens"] = dep.limits.max_tokens
    if plain and spec.least_reasoning_effort is not None:
        # LiteLLM translates it for the provider (Gemini's thinking budget or level,
        # Bedrock's gpt-oss effort); a client's own reasoning_effort still wins
        params["reasoning_effort"] = spec.least_reasoning_effort
    accounting = dep.limits.accounting or DEFAULT_ACCOUNTING[spec.provider]
    if accounting not in INPUT_TOKEN_LIMITS:
        params["tpm"] = int(dep.limits.tokens_per_min or spec.default_tpm)
    return {"model_name": group, "litellm_params": params,
            "model_info": {"id": f"{group}--cloud"}}


def _uncapped_calls(models: list[dict[str, Any]]) -> None:
    """API entries' in-flight calls left to the provider's limits, as simulated: an entry
    with an rpm and no max_parallel_requests gets a semaphore of rpm calls in flight
    (litellm's utils.calculate_max_parallel_requests, which the router holds around each
    call), so answers longer than a minute would queue at the gateway; the most the rpm
    lets be in flight is rpm calls a minute each lasting the client's timeout."""
    for entry in models:
        params = entry["litellm_params"]
        if entry["model_info"]["id"].endswith("--cloud") and "rpm" in params:
            params["max_parallel_requests"] = max(
                params["rpm"], math.ceil(params["rpm"] * params["timeout"] / 60.0))


#: accountings whose token limit counts a call's input alone (sim/ratelimit.py)
INPUT_TOKEN_LIMITS = ("input_output", "input_only")


def _per_instance(models: list[dict[str, Any]], instances: int) -> None:
    """Each gateway replica's share of the limits and caps (see the module doc)."""
    for entry in models:
        params = entry["litellm_params"]
        for key in ("rpm", "tpm"):
            if key in params:
                params[key] = max(1, params[key] // instances)
        if "max_parallel_requests" in params:
            params["max_parallel_requests"] = math.ceil(params["max_parallel_requests"]
                                                        / instances)


def _split_limits(models: list[dict[str, Any]], plan: Plan,
                  spilled: dict[str, list[str]]) -> None:
    """Share the account's rpm/tpm between API entries by simulated API requests
    (`spilled`: each spill-over group's tasks)."""
    cloud = [m for m in models if m["model_info"]["id"].endswith("--cloud")]
    if len(cloud) < 2:
        return
    counts = plan.simulated.cloud_requests_by_task
    weights = {t.name: t.weight for t in plan.tasks}

    def share_of(group: str, table: dict[str, float]) -> float:
        tasks = spilled.get(group, [group])
        return sum(table.get(t, 0.0) for t in tasks)

    table: dict[str, float] = {k: float(v) for k, v in counts.items()}
    if sum(share_of(m["model_name"], table) for m in cloud) <= 0:
        table = weights
    total = sum(share_of(m["model_name"], table) for m in cloud)
    raw = [max(MIN_LIMIT_SHARE, share_of(m["model_name"], table) / total) for m in cloud]
    for entry, share in zip(cloud, raw, strict=True):
        fraction = share / sum(raw)
        params = entry["litellm_params"]
        for key in ("rpm", "tpm"):
            if key in params:
                params[key] = max(1, math.floor(params[key] * fraction))
