"""A replica whose pipeline stages span servers is built as it was simulated: a
LeaderWorkerSet whose groups are one pod per server, the leader serving the API with node
rank 0 and the workers running their stages headless, each pod with its server's GPUs.

The LeaderWorkerSet is checked against its CRD's schema (kubernetes-sigs/lws v0.10.0,
`schemas/leaderworkerset-v1.json`, with unknown fields refused as the API server's strict
field validation refuses them) and its pod templates against the Kubernetes schemas; the
other manifests as every manifest is."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from helpers import chat_scenario
from infra_scenarios import Simulated, simulate_text, stack_of
from pydantic import ValidationError

from llmplan.errors import InputError
from llmplan.provision.serving_manifests import serving_manifests, vllm_args
from llmplan.provision.stack import setting_notes
from llmplan.provision.stack_config import StackConfig

K8S = kubernetes_validate.latest_version()
CRD = json.loads((Path(__file__).parent / "schemas" / "leaderworkerset-v1.json").read_text())

SCENARIO = chat_scenario("multi-server", """
  # servers of two L40S each: tp 2 x pp 2 is two servers a replica
  groups: {gpu: L40S, model: Llama-3.1-8B, tp: 2, pp: 2, replicas: 2,
           costs: {gpus_per_server: 2}, engine: {api_server_count: 2},
           autoscaling: {min_replicas: 1, max_replicas: 3}}
  one-server: {gpu: L40S, model: Llama-3.1-8B, tp: 2, pp: 2}
""")

@pytest.fixture(scope="module")
def simulated() -> Simulated:
    return simulate_text(SCENARIO)


def _strict(schema: Any) -> Any:
    """The CRD's structural schema refusing unknown fields where it lists the known ones
    (the API server prunes them, or refuses them under strict field validation)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


#: what the LeaderWorkerSet webhook accepts as a name (validation.IsDNS1035Label)
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _validate_lws(lws: dict[str, Any]) -> None:
    name = lws["metadata"]["name"]
    # and what the controller derives from it: worker StatefulSet `<name>-<group>`, its
    # pods' controller-revision-hash `<statefulset>-<10 characters>` (group up to 9999)
    if not DNS_1035.match(name) or len(f"{name}-9999-0123456789") > 63:
        raise jsonschema.ValidationError(f"LeaderWorkerSet name {name!r}")
    schema = _strict(CRD["openAPIV3Schema"])
    # metadata is the API server's ObjectMeta, checked with the pod templates' below
    schema["properties"]["metadata"] = {"type": "object"}
    jsonschema.validate(lws, schema)
    template = lws["spec"]["leaderWorkerTemplate"]
    for role in ("leaderTemplate", "workerTemplate"):
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "PodTemplate",
             "metadata": {"name": f"{lws['metadata']['name']}-{role}"},
             "template": template[role]}, K8S, strict=True)
    for claim in template["volumeClaimTemplates"]:
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                      **claim}, K8S, strict=True)


def _flags(args: list[str]) -> dict[str, str]:
    return {args[i]: args[i + 1] for i in range(len(args) - 1)
            if args[i].startswith("--") and not args[i + 1].startswith("--")}


def test_a_replica_over_two_servers_is_a_group_of_two_pods(simulated: Simulated,
                                                            tmp_path: Path) -> None:
    config = stack_of(simulated, "groups", tmp_path).config
    manifests = serving_manifests(config)
    kinds = [m["kind"] for m in manifests]
    assert "StatefulSet" not in kinds and kinds.count("LeaderWorkerSet") == 1
    lws = next(m for m in manifests if m["kind"] == "LeaderWorkerSet")
    _validate_lws(lws)
    for manifest in manifests:
        if manifest["kind"] != "LeaderWorkerSet":
            kubernetes_validate.validate(manifest, K8S, strict=True)
    # not the fleet's name: the controller names its headless Service after the set
    assert lws["metadata"]["name"] == "groups-group"
    assert any(m["kind"] == "Service" and m["metadata"]["name"] == "groups"
               for m in manifests)
    template = lws["spec"]["leaderWorkerTemplate"]
    assert (lws["spec"]["replicas"], template["size"]) == (2, 2)
    assert template["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader = template["leaderTemplate"]["spec"]["containers"][0]
    worker = template["workerTemplate"]["spec"]["containers"][0]
    for pod in (leader, worker):       # each pod holds one server's two GPUs
        assert pod["resources"]["limits"]["nvidia.com/gpu"] == "2"
    lead, work = _flags(leader["args"]), _flags(worker["args"])
    for flags in (lead, work):
        assert (flags["--tensor-parallel-size"], flags["--pipeline-parallel-size"],
                flags["--nnodes"], flags["--master-addr"]) == \
            ("2", "2", "2", "$(LWS_LEADER_ADDRESS)")
    assert lead["--node-rank"] == "0" and "--headless" not in leader["args"]
    assert lead["--api-server-count"] == "2" and "startupProbe" in leader
    # vLLM refuses --api-server-count on a headless node; a worker serves no HTTP
    assert work["--node-rank"] == "$(LWS_WORKER_INDEX)" and "--headless" in worker["args"]
    assert "--api-server-count" not in worker["args"] and "readinessProbe" not in worker
    assert leader["args"] == vllm_args(config, "leader")
    # the Services pick leaders; the budget every pod (a group falls with any of them);
    # a group's pods reach each other
    leaders = {"leaderworkerset.sigs.k8s.io/worker-index": "0"}
    for manifest in manifests:
        if manifest["kind"] == "Service":
            assert leaders.items() <= manifest["spec"]["selector"].items()
    budget = next(m for m in manifests if m["kind"] == "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == \
        template["workerTemplate"]["metadata"]["labels"]
    # the leader hosts the group's torch.distributed store; a worker runs no API server
    assert {"name": "dist", "containerPort": 29501} in leader["ports"]
    assert "ports" not in worker
    assert int(worker["resources"]["limits"]["cpu"]) == \
        int(leader["resources"]["limits"]["cpu"]) - 1
    policy = next(m for m in manifests if m["kind"] == "NetworkPolicy")
    assert {"from": [{"podSelector": {"matchLabels": policy["spec"]["podSelector"][
        "matchLabels"]}}]} in policy["spec"]["ingress"]
    hpa = next(m for m in manifests if m["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "leaderworkerset.x-k8s.io/v1",
                                             "kind": "LeaderWorkerSet", "name": "groups-group"}
    assert any("LeaderWorkerSet controller" in note for note in setting_notes(config))


def test_the_summary_and_result_say_how_many_servers_a_replica_spans(
        simulated: Simulated) -> None:
    _, result = simulated
    groups = result.deployments["groups"]
    assert groups.serves_with() == "8-12 x L40S (2-3 x tp 2 x pp 2 on 2 servers)"
    assert groups.local is not None and groups.local.servers_per_replica == 2
    assert result.deployments["one-server"].serves_with() == "4 x L40S (tp 2 x pp 2)"
    owned = {i.item: i for i in groups.cost.items}
    assert "+ 6 servers at" in owned["hardware"].basis   # the most replicas are bought


@pytest.mark.parametrize("deployment", ["8b-groups", "a" * 52, "9" * 60])
def test_any_deployment_name_gives_a_set_name_the_controller_takes(
        simulated: Simulated, tmp_path: Path, deployment: str) -> None:
    config = stack_of(simulated, "groups", tmp_path).config
    plan = config.plan.model_copy(update={"local": (deployment, config.plan.local[1])})
    renamed = config.model_copy(update={"plan": plan})
    lws = next(m for m in serving_manifests(renamed) if m["kind"] == "LeaderWorkerSet")
    _validate_lws(lws)
    assert lws["metadata"]["name"].endswith("-group")


def test_the_schema_check_catches_a_broken_group(simulated: Simulated,
                                                 tmp_path: Path) -> None:
    config = stack_of(simulated, "groups", tmp_path).config
    lws = next(m for m in serving_manifests(config) if m["kind"] == "LeaderWorkerSet")
    for breaks in ({"spec": {"leaderWorkerTemplate": {"size": "2"}}},
                   {"spec": {"leaderWorkerTemplate": {"restartPolicy": "Always"}}},
                   {"spec": {"leaderWorkerTemplate": {"groupSize": 2}}}):
        broken = copy.deepcopy(lws)
        broken["spec"]["leaderWorkerTemplate"].update(breaks["spec"]["leaderWorkerTemplate"])
        with pytest.raises(jsonschema.ValidationError):
            _validate_lws(broken)
    broken = copy.deepcopy(lws)
    broken["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0][
        "resources"]["limits"]["cpu"] = [4]
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        _validate_lws(broken)


def test_a_replica_within_one_server_stays_a_statefulset(simulated: Simulated,
                                                          tmp_path: Path) -> None:
    config = stack_of(simulated, "one-server", tmp_path).config
    manifests = serving_manifests(config)
    assert [m["kind"] for m in manifests].count("StatefulSet") == 1
    assert "--nnodes" not in vllm_args(config)
    assert not any("LeaderWorkerSet" in note for note in setting_notes(config))


def test_eks_clusters_without_rdma_are_refused_for_groups(simulated: Simulated,
                                                          tmp_path: Path) -> None:
    config = stack_of(simulated, "groups", tmp_path).config
    eks = {**config.model_dump(by_alias=True), "clusterMode": "eks", "awsRegion": "us-east-1"}
    with pytest.raises(ValidationError, match=r"runs its pipeline stages on 2 servers.*"
                                              r"clusterMode kubeconfig"):
        StackConfig.model_validate(eks)


def test_the_program_creates_the_group_and_the_policies_hold(simulated: Simulated,
                                                             tmp_path: Path) -> None:
    from pulumi_harness import run_program, stack_values
    from test_policies import _args, _violations

    from llmplan.provision.policies import images_pinned, pods_non_root_with_limits

    written = stack_of(simulated, "groups", tmp_path)
    run = run_program(stack_values(written.path), {"gatewayMasterKey": "mk-test-master-key"})
    kind = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
    (lws,) = run.mocks.of_type(kind)
    assert lws.inputs["spec"]["leaderWorkerTemplate"]["size"] == 2
    assert not run.mocks.of_type("kubernetes:apps/v1:StatefulSet")
    props = dict(lws.inputs)
    for rule in (pods_non_root_with_limits, images_pinned):
        assert _violations(rule, _args(kind, lws.name, props)) == []
    # the rules read both pod templates: a worker without limits is caught
    worker = props["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]
    worker["resources"]["limits"].pop("memory")
    assert _violations(pods_non_root_with_limits, _args(kind, lws.name, props))


def _pods(config: StackConfig, *, ready: bool = True) -> dict[str, Any]:
    """One group's pods as the API server lists them once the LeaderWorkerSet controller
    made them from the templates (its labels, LWS_* variables injected)."""
    lws = next(m for m in serving_manifests(config) if m["kind"] == "LeaderWorkerSet")
    template = lws["spec"]["leaderWorkerTemplate"]
    items = []
    for index, role in ((0, "leaderTemplate"), (1, "workerTemplate")):
        pod = copy.deepcopy(template[role])
        name = "groups-group-0" if index == 0 else "groups-group-0-1"
        pod["metadata"] = {**pod["metadata"], "name": name, "namespace": config.namespace,
                           "labels": {**pod["metadata"]["labels"],
                                      "leaderworkerset.sigs.k8s.io/name": "groups-group",
                                      "leaderworkerset.sigs.k8s.io/group-index": "0",
                                      "leaderworkerset.sigs.k8s.io/worker-index": str(index)}}
        pod["spec"]["nodeName"] = "gpu-l40s-a"
        pod["status"] = {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True" if ready or index == 0 else "False"}]}
        items.append(pod)
    return {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}


def test_verify_reads_the_groups_and_each_pods_role(simulated: Simulated,
                                                    tmp_path: Path) -> None:
    from k8s_replay import recorded, replaying
    from test_cluster_replay import NS, _routes

    from llmplan.provision.verify import verify_stack

    written = stack_of(simulated, "groups", tmp_path)
    config = written.config
    lws_path = "/apis/leaderworkerset.x-k8s.io/v1/namespaces/llm/leaderworkersets/groups-group"
    lws = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
           "metadata": {"name": "groups-group", "namespace": "llm"},
           "spec": {"replicas": 1}, "status": {"readyReplicas": 1, "updatedReplicas": 1,
                                               "replicas": 1}}
    routes = {**_routes(written.path), lws_path: (200, lws), f"{NS}/pods": (200, _pods(config)),
              "/api/v1/nodes/gpu-l40s-a": (200, recorded("node-gpu-l40s-a.json"))}
    with replaying(routes) as replay:
        report = verify_stack(written.path, replay.kubeconfig(tmp_path), None)
    fleet = [c for c in report.checks if "groups" in c.name]
    assert [c.name for c in fleet] == ["LeaderWorkerSet groups-group rolled out",
                                       "pod groups-group-0", "pod groups-group-0-1"]
    assert all(c.ok for c in fleet), fleet
    assert "with 2 GPU(s)" in fleet[2].detail
    # a worker started as a leader (no --headless), and a group not ready
    pods = _pods(config, ready=False)
    pods["items"][1]["spec"]["containers"][0]["args"] = vllm_args(config, "leader")
    with replaying({**routes, f"{NS}/pods": (200, pods),
                    lws_path: (200, {**lws, "status": {"readyReplicas": 0}})}) as replay:
        report = verify_stack(written.path, replay.kubeconfig(tmp_path), None)
    failed = {c.name: c.detail for c in report.checks if not c.ok}
    assert "0/1 groups of 2 pods ready" in failed["LeaderWorkerSet groups-group rolled out"]
    assert "engine flags differ from the plan" in failed["pod groups-group-0-1"]
    assert "not ready" in failed["pod groups-group-0-1"]
    # a status from before the last change, and an update under way
    stale = {**lws, "metadata": {**lws["metadata"], "generation": 3},
             "status": {**lws["status"], "observedGeneration": 2}}
    updating = {**lws, "status": {**lws["status"], "conditions": [
        {"type": "UpdateInProgress", "status": "True", "reason": "GroupsUpdating",
         "message": "", "lastTransitionTime": "2026-12-05T10:00:00Z"}]}}
    for served, why in ((stale, "status of generation 2, spec 3"),
                        (updating, "an update in progress")):
        with replaying({**routes, lws_path: (200, served)}) as replay:
            report = verify_stack(written.path, replay.kubeconfig(tmp_path), None)
        failed = {c.name: c.detail for c in report.checks if not c.ok}
        assert why in failed["LeaderWorkerSet groups-group rolled out"]
    # no controller: the set is not found, and verify says what to look at
    del routes[lws_path]
    with replaying(routes) as replay, pytest.raises(
            InputError, match=r"LeaderWorkerSet controller installed.*404"):
        verify_stack(written.path, replay.kubeconfig(tmp_path), None)
