"""`llmplan import-cluster` and `llmplan verify` against a loopback server replaying recorded
Kubernetes API responses (shapes as the API publishes them, checked against its schemas)."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from conftest import HYBRID, ExampleStack
from helpers import ROOT
from k8s_replay import RECORDED, recorded, replaying
from typer.testing import CliRunner

from llmplan.catalog import builtin_catalog
from llmplan.cli import app
from llmplan.errors import InputError
from llmplan.provision.gateway_manifests import CONFIG_SHA_ANNOTATION, gateway_manifests
from llmplan.provision.gpu_nodes import catalog_gpu
from llmplan.provision.inventory import import_cluster, write_inventory
from llmplan.provision.stack_config import read_stack_file
from llmplan.provision.verify import verify_stack
from llmplan.scenario import load_scenario_text

NS = "/api/v1/namespaces/llm"
APPS = "/apis/apps/v1/namespaces/llm"
PROXY = f"{NS}/services/llm-gateway:http/proxy"


def test_recordings_follow_the_published_kubernetes_schemas() -> None:
    version = kubernetes_validate.latest_version()
    for path in sorted(RECORDED.glob("*.json")):
        data = recorded(path.name)
        if "kind" not in data:
            continue      # the gateway's own answer, not a Kubernetes object
        items = data["items"] if data["kind"].endswith("List") else [data]
        kind = data["kind"].removesuffix("List")
        for item in items:
            kubernetes_validate.validate({"apiVersion": data["apiVersion"], "kind": kind, **item},
                                         version, strict=True)


def test_import_cluster_reads_gpu_nodes_into_deployments(tmp_path: Path) -> None:
    with replaying({"/api/v1/nodes": (200, recorded("nodes.json"))}) as replay:
        inventory = import_cluster(replay.kubeconfig(tmp_path), None, "Llama-3.1-70B", 2)
    assert replay.requests[0]["authorization"] == "Bearer replay-token"
    pools = {p.gpu: p for p in inventory.pools}
    # the B200's label is the catalog's own (k8s_product_label), not in llmplan's table
    assert set(pools) == {"L40S", "H100-SXM", "B200"}
    # two L40S nodes of 4 GPUs, one cordoned; two H100 nodes of 8, one not ready
    assert (pools["L40S"].allocatable_gpus, pools["L40S"].usable_gpus_per_node) == (8, [4])
    assert (pools["H100-SXM"].allocatable_gpus, pools["H100-SXM"].usable_nodes) == (16, 1)
    # an unknown card, and 56 MIG slices of an A100 that are no whole GPUs
    assert inventory.unknown_products == {"NVIDIA-RTX-A6000": 2,
                                          "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb": 56}
    deployments = inventory.deployments
    assert {n: (d.gpu, d.replicas, d.tp) for n, d in deployments.items()} == {
        "cluster-b200": ("B200", 4, 2), "cluster-h100-sxm": ("H100-SXM", 4, 2)}
    # 141 GB of BF16 weights on two 48 GB L40S: no deployment a scenario would refuse
    assert set(inventory.cannot_serve) == {"L40S"}
    assert "does not fit" in inventory.cannot_serve["L40S"]
    assert all(d.costs.ownership == "owned" for d in deployments.values())


def test_import_cluster_command_writes_deployments_a_scenario_loads(tmp_path: Path) -> None:
    with replaying({"/api/v1/nodes": (200, recorded("nodes.json"))}) as replay:
        result = CliRunner().invoke(app, ["import-cluster", "--kubeconfig",
                                          str(replay.kubeconfig(tmp_path)), "--out",
                                          str(tmp_path / "inventory.yaml")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "NVIDIA-RTX-A6000: 2 GPUs, not in the catalog" in said
    assert "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb: 56 GPU slices (MIG or time-shared)" in said
    deployments = yaml.safe_load((tmp_path / "inventory.yaml").read_text())["deployments"]
    scenario = textwrap.dedent("""
        duration: 60
        traffic: {kind: poisson, rate_per_s: 1}
        tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 100},
                 output_tokens: {kind: fixed, tokens: 10}}]
        """) + yaml.safe_dump({"deployments": deployments})
    loaded = load_scenario_text(scenario, base_dir=ROOT)
    assert loaded.scenario.deployments["cluster-l40s"].replicas == 4    # tp 1: 4 GPUs
    assert loaded.scenario.deployments["cluster-h100-sxm"].replicas == 8


def test_import_cluster_reads_each_nodes_architecture(tmp_path: Path) -> None:
    # Grace hosts: two GB200 trays of 4, a GH200 (not in the catalog) and an Ampere Altra
    # server with two A100 PCIe cards, which the catalog's A100-40GB (amd64) does not
    # describe; every node labelled kubernetes.io/arch=arm64 by its kubelet
    nodes = recorded("nodes-arm64.json")
    with replaying({"/api/v1/nodes": (200, nodes)}) as replay:
        inventory = import_cluster(replay.kubeconfig(tmp_path), None, "Llama-3.1-70B", 4)
    arches = {n.name: n.arch for n in inventory.gpu_nodes}
    assert set(arches.values()) == {"arm64"}
    catalog = builtin_catalog()
    assert catalog.gpus["GB200"].host_arch == "arm64"
    assert catalog.gpus["A100-40GB"].host_arch == "amd64"
    assert {n: (d.gpu, d.replicas) for n, d in inventory.deployments.items()} == {
        "cluster-gb200": ("GB200", 2)}
    # the Altra's A100s are left out, and said why, with the label's value
    assert set(inventory.wrong_arch) == {"altra-a100-01"}
    assert "kubernetes.io/arch=arm64" in inventory.wrong_arch["altra-a100-01"]
    assert "host_arch: arm64" in inventory.wrong_arch["altra-a100-01"]
    assert inventory.too_small == {"A100-40GB": 0}
    assert inventory.unknown_product_arch == {"NVIDIA-GH200-480GB": ["arm64"]}
    written = write_inventory(inventory, tmp_path / "inventory.yaml").read_text()
    said = " ".join(" ".join(line.removeprefix("#") for line in written.splitlines()
                             if line.startswith("#")).split())
    assert "altra-a100-01 is labelled kubernetes.io/arch=arm64" in said
    assert "NVIDIA-GH200-480GB" in said and "host_arch: arm64" in said
    # the same tray reporting amd64 is no host for a GB200 the stack provisions for arm64
    # (its pods select kubernetes.io/arch=arm64); one without the label neither
    amd64, unlabelled = copy.deepcopy(nodes["items"][0]), copy.deepcopy(nodes["items"][1])
    amd64["metadata"]["labels"]["kubernetes.io/arch"] = "amd64"
    del unlabelled["metadata"]["labels"]["kubernetes.io/arch"]
    with replaying({"/api/v1/nodes": (200, {**nodes, "items": [amd64, unlabelled]})}) as replay:
        contradicted = import_cluster(replay.kubeconfig(tmp_path), None, "Llama-3.1-70B", 4)
    assert contradicted.deployments == {}
    assert "kubernetes.io/arch=amd64" in contradicted.wrong_arch["gb200-tray-01"]
    assert "no kubernetes.io/arch label" in contradicted.wrong_arch["gb200-tray-02"]
    # amd64 nodes of amd64 GPUs are kept (nodes.json: every node's kubelet says amd64)
    with replaying({"/api/v1/nodes": (200, recorded("nodes.json"))}) as replay:
        x86 = import_cluster(replay.kubeconfig(tmp_path), None, "Llama-3.1-70B", 2)
    assert x86.wrong_arch == {} and x86.unknown_product_arch == {
        "NVIDIA-RTX-A6000": ["amd64"], "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb": ["amd64"]}
    # an amd64 GPU's node without the label the kubelet sets (no kubelet's) is no host
    # either: the pods select kubernetes.io/arch=amd64 as well
    x86_nodes = recorded("nodes.json")
    bare = next(n for n in x86_nodes["items"]
                if catalog_gpu(n["metadata"]["labels"].get("nvidia.com/gpu.product", "")))
    bare = copy.deepcopy(bare)
    del bare["metadata"]["labels"]["kubernetes.io/arch"]
    with replaying({"/api/v1/nodes": (200, {**x86_nodes, "items": [bare]})}) as replay:
        unlabelled_x86 = import_cluster(replay.kubeconfig(tmp_path), None, "Llama-3.1-70B", 2)
    name = bare["metadata"]["name"]
    assert unlabelled_x86.deployments == {}
    assert "no kubernetes.io/arch label" in unlabelled_x86.wrong_arch[name]
    assert "select kubernetes.io/arch=amd64" in unlabelled_x86.wrong_arch[name]


def test_import_cluster_errors_are_clear(tmp_path: Path) -> None:
    with replaying({}) as replay:
        with pytest.raises(InputError, match="404"):
            import_cluster(replay.kubeconfig(tmp_path), None, "Llama-3.1-8B", 1)
        missing = CliRunner().invoke(app, ["import-cluster", "--kubeconfig",
                                           str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
        assert missing.exit_code == 2 and "cannot use this kubeconfig" in missing.output
        garbled = tmp_path / "garbled"          # the kubernetes client parses it with PyYAML
        garbled.write_text("garbage: [\n")
        for args in (["import-cluster", "--kubeconfig", str(garbled), "--out",
                      str(tmp_path / "y")],
                     ["verify", "--stack", "dev", "--kubeconfig", str(garbled)]):
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 2 and "Traceback" not in result.output, args
        bad = CliRunner().invoke(app, ["import-cluster", "--model", "Llama-9"])
        assert bad.exit_code == 2 and "unknown model 'Llama-9'" in bad.output


def _applied(stack: Path, kind: str) -> dict[str, Any]:
    """The gateway's `kind` manifest as the stack's program created it."""
    config, _ = read_stack_file(stack)
    return next(m for m in gateway_manifests(config) if m["kind"] == kind)


def _config_map(stack: Path) -> dict[str, Any]:
    """The gateway's ConfigMap as the API server returns it once `pulumi up` applied the
    stack."""
    made = _applied(stack, "ConfigMap")
    return {"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {**made["metadata"], "uid": "7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                         "resourceVersion": "1842871",
                         "creationTimestamp": "2026-11-20T09:12:39Z"},
            "data": made["data"]}


def _gateway_deployment(stack: Path) -> dict[str, Any]:
    """The gateway's Deployment as recorded, its pod template carrying the checksum of the
    config `pulumi up` applied for this stack (the annotation that rolls the pods)."""
    deployment = recorded("deployment-llm-gateway.json")
    deployment["spec"]["template"]["metadata"]["annotations"] = \
        _applied(stack, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    return deployment


def _routes(stack: Path, **override: tuple[int, Any]) -> dict[str, tuple[int, Any]]:
    routes = {f"{APPS}/statefulsets/gpu-small": (200, recorded("statefulset-gpu-small.json")),
              f"{NS}/pods": (200, recorded("pods-gpu-small.json")),
              "/api/v1/nodes/gpu-l40s-a": (200, recorded("node-gpu-l40s-a.json")),
              f"{APPS}/deployments/llm-gateway": (200, _gateway_deployment(stack)),
              f"{NS}/configmaps/llm-gateway": (200, _config_map(stack)),
              PROXY: (200, recorded("gateway-readiness.json"))}
    return {**routes, **override}


def test_verify_passes_on_a_rolled_out_stack(example_stacks: dict[str, ExampleStack],
                                             tmp_path: Path) -> None:
    stack = example_stacks[HYBRID].written.path
    with replaying(_routes(stack)) as replay:
        report = verify_stack(stack, replay.kubeconfig(tmp_path), None)
        result = CliRunner().invoke(app, ["verify", "--stack", HYBRID, "--dir",
                                          str(stack.parent), "--kubeconfig",
                                          str(tmp_path / "kubeconfig")])
    assert report.ok, report.checks
    assert [c.name for c in report.checks] == [
        "StatefulSet gpu-small rolled out", "pod gpu-small-0",
        "Deployment llm-gateway rolled out", "gateway routes as planned", "gateway answers"]
    assert "running on gpu-l40s-a with 1 GPU(s) of 4" in report.checks[1].detail
    pods = next(r for r in replay.requests if r["path"] == f"{NS}/pods")
    assert pods["query"]["labelSelector"] == ["app.kubernetes.io/name=gpu-small"]
    proxied = next(r for r in replay.requests if r["path"] == PROXY)
    assert proxied["query"]["path"] == ["health/readiness"]
    assert result.exit_code == 0, result.output
    assert result.output.count("ok") >= 5
    assert "balancer nginx:1.28.0 beside LiteLLM" in report.checks[3].detail


def test_verify_fails_mid_rollout_unscheduled_and_silent(
        example_stacks: dict[str, ExampleStack], tmp_path: Path) -> None:
    stack = example_stacks[HYBRID].written.path
    routes = _routes(stack, **{
        f"{APPS}/statefulsets/gpu-small": (200, recorded("statefulset-gpu-small-rolling.json")),
        f"{NS}/pods": (200, recorded("pods-gpu-small-pending.json")),
        PROXY: (503, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                      "status": "Failure", "message": "no endpoints available for service "
                                                      "\"llm-gateway:http\"",
                      "reason": "ServiceUnavailable", "code": 503})})
    with replaying(routes) as replay:
        report = verify_stack(stack, replay.kubeconfig(tmp_path), None)
        result = CliRunner().invoke(app, ["verify", "--stack", HYBRID, "--dir",
                                          str(stack.parent), "--kubeconfig",
                                          str(tmp_path / "kubeconfig")])
    failed = {c.name: c.detail for c in report.checks if not c.ok}
    assert "0/1 ready" in failed["StatefulSet gpu-small rolled out"]
    assert "still gpu-small-6c9f7d8b54" in failed["StatefulSet gpu-small rolled out"]
    assert "Pending, not ready" in failed["pod gpu-small-0"]
    assert "not scheduled on a node" in failed["pod gpu-small-0"]
    assert "503" in failed["gateway answers"]
    assert "Deployment llm-gateway rolled out" not in failed
    assert result.exit_code == 1 and "FAIL" in result.output


def test_verify_catches_a_fleet_that_is_not_the_plan(example_stacks: dict[str, ExampleStack],
                                                     tmp_path: Path) -> None:
    """Someone ran an older image with other engine settings by hand."""
    stack = example_stacks[HYBRID].written.path
    pods = recorded("pods-gpu-small.json")
    container = pods["items"][0]["spec"]["containers"][0]
    container["args"] = [a if a != "256" else "512" for a in container["args"]]
    with replaying(_routes(stack, **{f"{NS}/pods": (200, pods)})) as replay:
        report = verify_stack(stack, replay.kubeconfig(tmp_path), None)
    assert [c.detail for c in report.checks if not c.ok] == ["engine flags differ from the plan"]
    container["image"] = "vllm/vllm-openai:v0.8.5"
    with replaying(_routes(stack, **{f"{NS}/pods": (200, pods)})) as replay:
        report = verify_stack(stack, replay.kubeconfig(tmp_path), None)
    [detail] = [c.detail for c in report.checks if not c.ok]
    assert "image vllm/vllm-openai:v0.8.5 is not vllm/vllm-openai:v0.33.0" in detail


def test_verify_catches_a_gateway_that_does_not_route_as_planned(
        example_stacks: dict[str, ExampleStack], tmp_path: Path) -> None:
    """A gateway deployed by an older llmplan (no balancer: the Service balanced
    connections), and one whose config was changed by hand, both fail the routing check
    and name what differs; the rest of the stack still passes."""
    stack = example_stacks[HYBRID].written.path
    old = _gateway_deployment(stack)
    del old["spec"]["template"]["spec"]["initContainers"]
    edited = _config_map(stack)
    edited["data"]["nginx.conf"] = edited["data"]["nginx.conf"].replace("least_conn;", "")
    with replaying(_routes(stack, **{f"{APPS}/deployments/llm-gateway": (200, old),
                                     f"{NS}/configmaps/llm-gateway": (200, edited)})) as replay:
        report = verify_stack(stack, replay.kubeconfig(tmp_path), None)
    [failed] = [c for c in report.checks if not c.ok]
    assert failed.name == "gateway routes as planned"
    assert "nginx.conf differ from the plan's" in failed.detail
    assert "no request balancer beside LiteLLM" in failed.detail
    # the config applied, but the pods still run the one before it (not rolled)
    stale = _gateway_deployment(stack)
    stale["spec"]["template"]["metadata"]["annotations"][CONFIG_SHA_ANNOTATION] = "0" * 16
    with replaying(_routes(stack, **{f"{APPS}/deployments/llm-gateway": (200, stale)})) \
            as replay:
        report = verify_stack(stack, replay.kubeconfig(tmp_path), None)
    [failed] = [c for c in report.checks if not c.ok]
    assert "the pods were started from another config" in failed.detail, failed.detail
    missing = _routes(stack)
    del missing[f"{NS}/configmaps/llm-gateway"]
    with replaying(missing) as replay:
        report = verify_stack(stack, replay.kubeconfig(tmp_path), None)
    [failed] = [c for c in report.checks if not c.ok]
    assert failed.name == "gateway routes as planned", failed
    assert "ConfigMap llm/llm-gateway" in failed.detail, failed.detail


def test_import_cluster_command_says_which_nodes_it_left_out_for_their_arch(
        tmp_path: Path) -> None:
    # the terminal says what inventory.yaml's header says: the node left out and its label,
    # the unknown arm64 product's host_arch; before, only "0 nodes ready and schedulable"
    with replaying({"/api/v1/nodes": (200, recorded("nodes-arm64.json"))}) as replay:
        result = CliRunner().invoke(app, ["import-cluster", "--kubeconfig",
                                          str(replay.kubeconfig(tmp_path)), "--model",
                                          "Llama-3.1-70B", "--tp", "4", "--out",
                                          str(tmp_path / "inventory.yaml")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "altra-a100-01: left out: " in said and "kubernetes.io/arch=arm64" in said
    assert "NVIDIA-GH200-480GB: its nodes are arm64: a catalog entry for it needs " \
        "host_arch: arm64" in said


def test_an_unknown_product_on_two_architectures_is_not_told_one_host_arch(
        tmp_path: Path) -> None:
    """The GH200 node and a copy of it labelled amd64: the terminal had said "its nodes are
    amd64 and arm64: a catalog entry for it needs host_arch: amd64", half of it false (the
    arm64 node is no host for such an entry); it says, as inventory.yaml's header does,
    that an entry serves one of them."""
    nodes = recorded("nodes-arm64.json")
    gh200 = next(n for n in nodes["items"] if n["metadata"]["labels"].get(
        "nvidia.com/gpu.product") == "NVIDIA-GH200-480GB")
    x86 = copy.deepcopy(gh200)
    x86["metadata"]["name"] += "-x86"
    x86["metadata"]["labels"]["kubernetes.io/arch"] = "amd64"
    with replaying({"/api/v1/nodes": (200, {**nodes, "items": [gh200, x86]})}) as replay:
        out = tmp_path / "inventory.yaml"
        result = CliRunner().invoke(app, ["import-cluster", "--kubeconfig",
                                          str(replay.kubeconfig(tmp_path)), "--model",
                                          "Llama-3.1-70B", "--tp", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "needs host_arch" not in said, said
    advice = ("its nodes are amd64 and arm64: a catalog GPU has one host_arch, so an entry "
              "serves the nodes of one of them (host_arch: amd64 or host_arch: arm64)")
    assert f"NVIDIA-GH200-480GB: {advice}" in said, said
    written = " ".join(" ".join(line.removeprefix("#") for line in out.read_text().splitlines()
                                if line.startswith("#")).split())
    assert advice in written, written


def test_import_cluster_says_which_pools_hold_no_replica(tmp_path: Path) -> None:
    with replaying({"/api/v1/nodes": (200, recorded("nodes.json"))}) as replay:
        result = CliRunner().invoke(app, ["import-cluster", "--kubeconfig",
                                          str(replay.kubeconfig(tmp_path)), "--tp", "16",
                                          "--out", str(tmp_path / "inventory.yaml")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    for gpu, most in (("L40S", 4), ("H100-SXM", 8), ("B200", 8)):
        assert f"{gpu}: no ready node has 16 of them (--tp); the most on one node is {most}" \
            in said


def test_a_kubeconfig_servers_credentials_reach_no_output(
        example_stacks: dict[str, ExampleStack], tmp_path: Path) -> None:
    """A user:password@ in the server URL went into inventory.yaml's header and verify's
    "stack ... on <server>" line; a query (?token=...) into every error of the client."""
    stack = example_stacks[HYBRID].written.path
    with replaying({**_routes(stack), "/api/v1/nodes": (200, recorded("nodes.json"))}) \
            as replay:
        kubeconfig = replay.kubeconfig(tmp_path)
        text = kubeconfig.read_text()
        kubeconfig.write_text(text.replace("http://", "http://ci:kube-pass-4e1d@"))
        port = replay.url.rsplit(":", 1)[1]
        imported = CliRunner().invoke(app, ["import-cluster", "--kubeconfig", str(kubeconfig),
                                            "--out", str(tmp_path / "inventory.yaml")])
        assert imported.exit_code == 0, imported.output
        written = (tmp_path / "inventory.yaml").read_text()
        assert f"GPU nodes of http://***@127.0.0.1:{port}" in written
        verified = CliRunner().invoke(app, ["verify", "--stack", HYBRID, "--dir",
                                            str(stack.parent), "--kubeconfig", str(kubeconfig)])
        assert verified.exit_code == 0, verified.output
        assert f"on http://***@127.0.0.1:{port}" in verified.output
        assert "kube-pass-4e1d" not in written + imported.output + verified.output
        kubeconfig.write_text(text.replace('"}}]', '/?token=kube-query-9b7c"}}]', 1))
        assert "kube-query-9b7c" in kubeconfig.read_text()
        for args in (["import-cluster", "--kubeconfig", str(kubeconfig), "--out",
                      str(tmp_path / "again.yaml")],
                     ["verify", "--stack", HYBRID, "--dir", str(stack.parent),
                      "--kubeconfig", str(kubeconfig)]):
            refused = CliRunner().invoke(app, args)
            assert refused.exit_code == 2, refused.output
            assert "kube-query-9b7c" not in refused.output
            said = " ".join(refused.output.split())
            assert "clusters.cluster.server: the server URL carries a query" in said


@pytest.mark.parametrize("from_env", [True, False])
def test_without_kubeconfig_the_error_names_the_file_the_client_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_env: bool) -> None:
    """With no --kubeconfig the error said "the default kubeconfig" even with $KUBECONFIG
    set: it names $KUBECONFIG's path, or ~/.kube/config."""
    from llmplan.provision.kube import api_client

    empty = tmp_path / "empty-kubeconfig"
    empty.write_text("")
    if from_env:
        monkeypatch.setenv("KUBECONFIG", str(empty))
    else:
        monkeypatch.delenv("KUBECONFIG", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path))      # no ~/.kube/config there
    with pytest.raises(InputError) as raised:
        api_client(None, None)
    expected = f"$KUBECONFIG ({empty})" if from_env else str(tmp_path / ".kube" / "config")
    assert str(raised.value.problems[0]).startswith(f"{expected}: --kubeconfig: "), (
        str(raised.value))
