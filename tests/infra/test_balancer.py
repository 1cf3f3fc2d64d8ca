"""The gateway's request balancer: nginx beside LiteLLM, built as the simulated router.

The config is parsed by crossplane (nginxinc's parser, with its table of every directive's
contexts and argument counts), so a directive nginx would reject in its place fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import crossplane
import pytest
from conftest import ExampleStack

from llmplan.provision.balancer import (
    BALANCER_CONFIG_KEY,
    BALANCER_MOUNT,
    BALANCER_PORT,
    BALANCING,
    balancer_conf,
    local_api_base,
)
from llmplan.provision.gateway_manifests import CONFIG_SHA_ANNOTATION, gateway_manifests
from llmplan.provision.manifests import SERVING_PORT
from llmplan.provision.router_config import LOCAL_TIMEOUT_S
from llmplan.provision.serving_manifests import (
    pods_service_name,
    serving_manifests,
    serving_name,
)
from llmplan.provision.stack_config import StackConfig
from llmplan.provision.vllm_build import buildable_with_vllm
from llmplan.scenario.models import RouterName

#: Directives that choose a peer some other way than the two BALANCING allows.
OTHER_METHODS = {"hash", "ip_hash", "random", "least_time", "sticky", "ntlm"}


def _parsed(text: str, tmp_path: Path) -> list[dict[str, Any]]:
    """nginx.conf as crossplane reads it (errors: a directive nginx would refuse there)."""
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    payload = crossplane.parse(str(path), single=True, strict=True, check_ctx=True,
                               check_args=True, comments=False)
    assert payload["status"] == "ok", payload["errors"]
    parsed: list[dict[str, Any]] = payload["config"][0]["parsed"]
    return parsed


def _block(directives: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    [found] = [d for d in directives if d["directive"] == name]
    block: list[dict[str, Any]] = found["block"]
    return block


def _names(directives: list[dict[str, Any]]) -> list[str]:
    return [d["directive"] for d in directives]


def _config(example_stacks: dict[str, ExampleStack], name: str,
            router: RouterName | None = None) -> StackConfig:
    config = example_stacks[name].written.config
    if router is None:
        return config
    local = config.plan.local
    assert local is not None
    plan = config.plan.model_copy(update={"deployments": {
        **config.plan.deployments, local[0]: local[1].model_copy(update={"router": router})}})
    return config.model_copy(update={"plan": plan})


def test_least_outstanding_is_least_conn_over_the_fleets_ready_pods(
        example_stacks: dict[str, ExampleStack], tmp_path: Path) -> None:
    config = _config(example_stacks, "bulk-extraction")
    local = config.plan.local
    assert local is not None and local[1].router == "least_outstanding"
    http = _block(_parsed(balancer_conf(config, "least_outstanding",
                                        pods_service_name(config)), tmp_path), "http")
    upstream = _block(http, "upstream")
    assert "least_conn" in _names(upstream) and not OTHER_METHODS & set(_names(upstream))
    # one upstream connection per request (no keepalive pool): nothing held to a pod
    # between requests; least_conn counts each pod's requests in flight
    assert "keepalive" not in _names(upstream)
    [server] = [d["args"] for d in upstream if d["directive"] == "server"]
    # the headless Service of the StatefulSet the stack deploys, re-resolved as pods come
    headless = [m for m in serving_manifests(config) if m["kind"] == "Service"
                and m["spec"].get("clusterIP") == "None"]
    assert [m["metadata"]["name"] for m in headless] == [pods_service_name(config)]
    assert server == [f"{pods_service_name(config)}.{config.namespace}.svc.cluster.local:"
                      f"{SERVING_PORT}", "resolve"]
    assert "zone" in _names(upstream) and "resolver" in _names(http)


@pytest.mark.parametrize(("settings", "resolver"), [
    ({}, "kube-dns.kube-system.svc.cluster.local"),
    ({"cluster_domain": "corp.example"}, "kube-dns.kube-system.svc.corp.example"),
    ({"dns_resolver": "dns-default.openshift-dns.svc.cluster.local"},   # OpenShift's
     "dns-default.openshift-dns.svc.cluster.local"),
    ({"dns_resolver": "10.96.0.10:53"}, "10.96.0.10:53"),
])
def test_the_balancer_asks_the_clusters_dns(example_stacks: dict[str, ExampleStack],
                                            tmp_path: Path, settings: dict[str, str],
                                            resolver: str) -> None:
    config = _config(example_stacks, "bulk-extraction").model_copy(update=settings)
    http = _block(_parsed(balancer_conf(config, "least_outstanding",
                                        pods_service_name(config)), tmp_path), "http")
    [args] = [d["args"] for d in http if d["directive"] == "resolver"]
    assert args[0] == resolver
    # the pods' name is under the cluster domain, whoever answers for it
    [server] = [d["args"] for d in _block(http, "upstream") if d["directive"] == "server"]
    assert server[0].endswith(f".svc.{config.cluster_domain}:{SERVING_PORT}")


@pytest.mark.parametrize("bad", ["http://10.96.0.10", "dns server", "-x.local", "a.b:port"])
def test_a_dns_resolver_that_nginx_cannot_use_is_refused(
        example_stacks: dict[str, ExampleStack], bad: str) -> None:
    values = example_stacks["bulk-extraction"].written.config.model_dump(by_alias=True)
    with pytest.raises(ValueError, match="dnsResolver"):
        StackConfig.model_validate({**values, "dnsResolver": bad})


def test_round_robin_is_nginx_default_per_request(example_stacks: dict[str, ExampleStack],
                                                  tmp_path: Path) -> None:
    config = _config(example_stacks, "bulk-extraction", "round_robin")
    text = gateway_manifests(config)[1]["data"][BALANCER_CONFIG_KEY]
    upstream = _block(_block(_parsed(text, tmp_path), "http"), "upstream")
    assert not ({"least_conn"} | OTHER_METHODS) & set(_names(upstream))
    assert "keepalive" not in _names(upstream)


def test_the_sidecar_streams_and_outlasts_the_gateways_timeout(
        example_stacks: dict[str, ExampleStack], tmp_path: Path) -> None:
    config = _config(example_stacks, "regulated-records")
    parsed = _parsed(balancer_conf(config, "least_outstanding", "x"), tmp_path)
    server = _block(_block(parsed, "http"), "server")
    [listen] = [d["args"] for d in server if d["directive"] == "listen"]
    assert listen == [f"127.0.0.1:{BALANCER_PORT}"]      # loopback: only LiteLLM beside it
    location = _block(server, "location")
    settings = {d["directive"]: d["args"] for d in location}
    assert settings["proxy_pass"] == ["http://vllm"]
    assert settings["proxy_buffering"] == ["off"]          # tokens stream as they come
    assert int(settings["proxy_read_timeout"][0].rstrip("s")) > LOCAL_TIMEOUT_S
    # every path nginx writes is in the pod's /tmp volume (it runs as the pods' user)
    written = [d["args"][0] for d in parsed + _block(parsed, "http")
               if d["directive"] == "pid" or d["directive"].endswith("_temp_path")]
    assert len(written) == 6 and all(p.startswith("/tmp/") for p in written)


def test_every_router_is_either_balanced_or_refused(
        example_stacks: dict[str, ExampleStack]) -> None:
    config = _config(example_stacks, "bulk-extraction")
    local = config.plan.local
    assert local is not None
    for router in get_args(RouterName):
        dep = local[1].model_copy(update={"router": router})
        model = config.plan.catalog.models[dep.model]
        if router in BALANCING:
            buildable_with_vllm(local[0], dep, model)
            assert balancer_conf(config, router, "x")
        else:
            with pytest.raises(ValueError, match=f"router: {router}"):
                buildable_with_vllm(local[0], dep, model)
            with pytest.raises(ValueError, match="no request balancer"):
                balancer_conf(config, router, "x")


def test_litellm_reaches_the_fleet_only_through_the_balancer(
        example_stacks: dict[str, ExampleStack]) -> None:
    for name in ("regulated-records", "support-assistant-hybrid", "agent-workflow"):
        config = _config(example_stacks, name)
        manifests = gateway_manifests(config)
        config_map = next(m for m in manifests if m["kind"] == "ConfigMap")
        pod = next(m for m in manifests if m["kind"] == "Deployment")["spec"]["template"]
        containers = {c["name"]: c for c in pod["spec"]["containers"]}
        sidecars = {c["name"]: c for c in pod["spec"].get("initContainers", [])}
        assert set(containers) == {"litellm"}
        if config.plan.local is None:      # a cloud stack has no fleet to balance
            assert not sidecars and BALANCER_CONFIG_KEY not in config_map["data"]
            continue
        # a native sidecar: up before LiteLLM, down after it (its requests finish)
        assert set(sidecars) == {"balancer"} and sidecars["balancer"]["restartPolicy"] == "Always"
        containers.update(sidecars)
        assert f"api_base: {local_api_base()}" in config_map["data"]["config.yaml"]
        assert f"{serving_name(config)}.{config.namespace}.svc" not in \
            config_map["data"]["config.yaml"]         # not the Service (per connection)
        balancer = containers["balancer"]
        assert balancer["command"][-1] == f"{BALANCER_MOUNT}/{BALANCER_CONFIG_KEY}"
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        mount = next(m for m in balancer["volumeMounts"] if m["mountPath"] == BALANCER_MOUNT)
        assert volumes[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
        # a changed balancer config rolls the gateway's pods like a changed router config
        other = _config(example_stacks, name, "round_robin")
        annotation = CONFIG_SHA_ANNOTATION
        assert (pod["metadata"]["annotations"][annotation]
                != next(m for m in gateway_manifests(other) if m["kind"] == "Deployment")
                ["spec"]["template"]["metadata"]["annotations"][annotation])
