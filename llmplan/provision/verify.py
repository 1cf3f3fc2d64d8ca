"""`llmplan verify --stack NAME`: after `pulumi up`, is the stack what was planned, and up?

Checks, each reported with what was found:
- the GPU fleet's StatefulSet rolled out: every replica updated to the current revision and
  ready (a fleet whose replicas span servers: its LeaderWorkerSet's groups ready and
  updated);
- each of its pods runs on a node, ready, with its GPUs allocated (the replica's tp x pp,
  or one server's share of them; the container's `nvidia.com/gpu` or `amd.com/gpu` limit,
  and the node's allocatable GPUs cover it), running the stack's image for those GPUs with
  the simulated engine flags (a group's leader and workers each their own);
- the gateway's Deployment rolled out and is available;
- the gateway routes as planned: its ConfigMap holds the router config, the guard and (with
  a fleet) the balancer's nginx.conf this plan renders, its pods were started from that
  config (the checksum annotation the stack sets), and with a fleet they run the
  request balancer (the stack's image) beside LiteLLM, so requests reach the replica the
  simulated router would pick;
- the gateway answers: its readiness endpoint through the API server's service proxy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from llmplan.errors import InputError
from llmplan.provision.gateway_manifests import CONFIG_SHA_ANNOTATION, gateway_manifests
from llmplan.provision.gpu_nodes import node_kind
from llmplan.provision.kube import api_client, call, quantity, server_of
from llmplan.provision.manifests import GATEWAY_NAME
from llmplan.provision.serving_manifests import (
    LEADER_LABEL,
    group_name,
    serving_name,
    vllm_args,
)
from llmplan.provision.stack_config import StackConfig, read_stack_file


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    ok: bool
    detail: str


class VerifyReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stack: str
    server: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def verify_stack(stack_file: Path, kubeconfig: Path | None, context: str | None) -> VerifyReport:
    """Verify the deployed stack of a stack file (the command's entry point)."""
    config, _ = read_stack_file(stack_file)
    client = api_client(kubeconfig, context or config.kube_context or None)
    checks = []
    if config.plan.local is not None:
        checks += _fleet(client, config)
    checks += _gateway(client, config)
    return VerifyReport(stack=stack_file.name, server=server_of(client),
                        checks=checks)


def _fleet(client: Any, config: StackConfig) -> list[Check]:
    from kubernetes import client as k8s

    name, ns = serving_name(config), config.namespace
    assert config.plan.local is not None
    setup = config.plan.local[1].setup(config.plan.catalog)
    group = setup.servers
    if group == 1:
        sts = call(f"read StatefulSet {ns}/{name}",
                   lambda: k8s.AppsV1Api(client).read_namespaced_stateful_set(name, ns))
        status, wanted = sts.status, sts.spec.replicas or 0
        ready, updated = status.ready_replicas or 0, status.updated_replicas or 0
        current = status.current_revision == status.update_revision
        checks = [Check(name=f"StatefulSet {name} rolled out",
                        ok=ready == wanted and updated == wanted and current and wanted > 0,
                        detail=f"{ready}/{wanted} ready, {updated} updated, revision "
                               f"{status.update_revision or '?'}"
                               + ("" if current else f" (still {status.current_revision})"))]
    else:
        lws_name = group_name(config)
        lws = call(f"read LeaderWorkerSet {ns}/{lws_name} (is the LeaderWorkerSet controller "
                   f"installed?)", lambda: k8s.CustomObjectsApi(
                       client).get_namespaced_custom_object(
                       "leaderworkerset.x-k8s.io", "v1", ns, "leaderworkersets", lws_name))
        wanted = int(lws.get("spec", {}).get("replicas") or 0)
        lws_status = lws.get("status") or {}
        ready = int(lws_status.get("readyReplicas") or 0)
        updated = int(lws_status.get("updatedReplicas") or 0)
        # the status may still describe the spec before the last change
        generation = (lws.get("metadata") or {}).get("generation")
        seen = lws_status.get("observedGeneration")
        stale = generation is not None and seen != generation
        updating = any(c.get("type") == "UpdateInProgress" and c.get("status") == "True"
                       for c in lws_status.get("conditions") or [])
        checks = [Check(name=f"LeaderWorkerSet {lws_name} rolled out",
                        ok=ready == wanted and updated == wanted and wanted > 0
                        and not stale and not updating,
                        detail=f"{ready}/{wanted} groups of {group} pods ready, {updated} "
                               f"updated"
                               + (f" (status of generation {seen}, spec {generation})"
                                  if stale else "")
                               + (", an update in progress" if updating else ""))]
    pods = call(f"list pods of {name}", lambda: k8s.CoreV1Api(client).list_namespaced_pod(
        ns, label_selector=f"app.kubernetes.io/name={name}")).items
    allocatable: dict[str, int] = {}
    planned_args = {"leader": vllm_args(config, "leader"), "worker": vllm_args(config, "worker")}
    resource = node_kind(config.plan.catalog.gpus[config.plan.local[1].gpu]).resource
    each = setup.server_gpus
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        node = pod.spec.node_name
        if node and node not in allocatable:
            allocatable[node] = _node_gpus(client, node, resource)
        container = next((c for c in pod.spec.containers if c.name == "vllm"), None)
        limits = (container.resources.limits or {}) if container and container.resources else {}
        gpus = quantity(limits.get(resource))
        is_ready = any(c.type == "Ready" and c.status == "True"
                       for c in (pod.status.conditions or []))
        role = "worker" if (pod.metadata.labels or {}).get(LEADER_LABEL, "0") != "0" \
            else "leader"
        problems = []
        if pod.status.phase != "Running" or not is_ready:
            problems.append(f"{pod.status.phase}, not ready")
        if gpus != each:
            problems.append(f"{gpus} GPUs allocated, the plan has {each}")
        if node is None:
            problems.append("not scheduled on a node")
        elif allocatable[node] < gpus:
            problems.append(f"node {node} has only {allocatable[node]} allocatable GPUs")
        if container is None or container.image != config.serving_image:
            problems.append(f"image {container.image if container else '?'} is not "
                            f"{config.serving_image}")
        elif list(container.args or []) != planned_args[role]:
            problems.append("engine flags differ from the plan")
        checks.append(Check(name=f"pod {pod.metadata.name}", ok=not problems,
                            detail="; ".join(problems) or f"running on {node} with {gpus} "
                                                          f"GPU(s) of {allocatable[node]}"))
    if len(pods) < wanted * group:
        checks.append(Check(name=f"pods of {name}", ok=False,
                            detail=f"{len(pods)} pods for {wanted} replicas"
                                   + (f" of {group} servers" if group > 1 else "")))
    return checks


def _node_gpus(client: Any, node: str, resource: str) -> int:
    from kubernetes import client as k8s

    read = call(f"read node {node}", lambda: k8s.CoreV1Api(client).read_node(node))
    return quantity((read.status.allocatable or {}).get(resource))


def _routing(client: Any, config: StackConfig, deployment: Any) -> Check:
    """The gateway's routing is this plan's: its config files, and the balancer beside it."""
    from kubernetes import client as k8s

    ns = config.namespace
    manifests = gateway_manifests(config)
    planned = next(m for m in manifests if m["kind"] == "ConfigMap")["data"]
    problems = []
    try:
        found = call(f"read ConfigMap {ns}/{GATEWAY_NAME}", lambda: k8s.CoreV1Api(
            client).read_namespaced_config_map(GATEWAY_NAME, ns)).data or {}
    except InputError as exc:   # reported here; the other checks still stand
        found, problems = None, [f"ConfigMap {ns}/{GATEWAY_NAME}: {exc.problems[0].message}"]
    if found is not None:
        differ = sorted(key for key in set(planned) | set(found)
                        if planned.get(key) != found.get(key))
        if differ:
            problems.append(f"{', '.join(differ)} differ from the plan's")
    template = deployment.spec.template
    planned_sha = next(m for m in manifests if m["kind"] == "Deployment")[
        "spec"]["template"]["metadata"]["annotations"][CONFIG_SHA_ANNOTATION]
    running_sha = (template.metadata.annotations or {}).get(CONFIG_SHA_ANNOTATION)
    if running_sha != planned_sha:
        problems.append(f"the pods were started from another config ({CONFIG_SHA_ANNOTATION} "
                        f"{running_sha or 'missing'}, the plan's {planned_sha})")
    if config.plan.local is not None:
        containers = {c.name: c for c in [*(template.spec.init_containers or []),
                                          *(template.spec.containers or [])]}
        balancer = containers.get("balancer")
        if balancer is None:
            problems.append("no request balancer beside LiteLLM (requests would be balanced "
                            "per connection, not as simulated)")
        elif balancer.image != config.balancer_image:
            problems.append(f"balancer image {balancer.image} is not {config.balancer_image}")
    if problems:
        detail = "; ".join(problems) + " (`pulumi up` applies the plan)"
    else:
        detail = ", ".join(sorted(planned)) + " as planned" + (
            f"; balancer {config.balancer_image} beside LiteLLM"
            if config.plan.local is not None else "")
    return Check(name="gateway routes as planned", ok=not problems, detail=detail)


def _gateway(client: Any, config: StackConfig) -> list[Check]:
    from kubernetes import client as k8s

    ns = config.namespace
    deployment = call(f"read Deployment {ns}/{GATEWAY_NAME}",
                      lambda: k8s.AppsV1Api(client).read_namespaced_deployment(GATEWAY_NAME, ns))
    status, wanted = deployment.status, deployment.spec.replicas or 0
    ready, updated = status.ready_replicas or 0, status.updated_replicas or 0
    available = status.available_replicas or 0
    checks = [Check(name=f"Deployment {GATEWAY_NAME} rolled out",
                    ok=ready == wanted == updated and available >= 1,
                    detail=f"{ready}/{wanted} ready, {updated} updated, {available} available"),
              _routing(client, config, deployment)]
    try:
        # the proxy's `path` option: the client library would escape the slash of a path
        # given in the URL itself
        raw = call("ask the gateway", lambda: k8s.CoreV1Api(
            client).connect_get_namespaced_service_proxy(
                f"{GATEWAY_NAME}:http", ns, path="health/readiness", _preload_content=False))
    except InputError as exc:   # the check reports it; the other checks still stand
        checks.append(Check(name="gateway answers", ok=False, detail=exc.problems[0].message))
        return checks
    body = raw.data.decode(errors="replace")   # the gateway's own JSON, unparsed by the client
    try:
        health = json.loads(body)
    except ValueError:
        health = {"status": body[:80]}
    state = str(health.get("status", "")) if isinstance(health, dict) else ""
    checks.append(Check(name="gateway answers", ok=state in {"healthy", "connected"},
                        detail=f"/health/readiness: {state or health}"))
    return checks
