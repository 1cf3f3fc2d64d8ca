"""The request balancer: the simulated router, built as an nginx sidecar of the gateway.

The simulator sends each request to a replica chosen by the deployment's `router`
(sim/router.py). A Kubernetes Service cannot do that: kube-proxy picks a pod per TCP
connection, and LiteLLM reuses its pooled connections, so requests land on whichever pod a
free connection happens to lead to. Each gateway pod therefore runs nginx beside LiteLLM,
which sends its local requests to it over the loopback, and nginx picks a vLLM pod per
request:

- `least_outstanding` is `least_conn`: nginx counts each pod's requests in flight (a
  peer's count rises when a request is sent to it and falls when its answer ends) and
  sends the request to the pod with the fewest (ngx_http_upstream_module, `least_conn`;
  ties go in turn among the tied pods, as the simulator's LeastOutstanding breaks them).
  Each request opens its own upstream connection (nginx sends `Connection: close` and
  keeps no pool), so nothing is held to a pod between requests;
- `round_robin` is nginx's default weighted round robin with equal weights, per request;
- `prefix_affinity` has no nginx counterpart and is refused by `vllm_build.py`.

The pods come from the fleet's headless Service, whose DNS name lists every Ready pod (a
replica over several servers: its leader, which serves the API);
`server ... resolve` re-reads it every RESOLVE_VALID_S (open-source nginx since 1.27.3), so
pods the autoscaler adds join once their readiness probe passes, as the simulator adds a
replica after its spin-up. `zone` keeps the pods and their counts in memory the worker
processes share, so the counts are the whole sidecar's. nginx looks the name up at run
time only, so it starts before any pod is Ready (and answers 502 until one is, which the
gateway treats as any local error).

The balancer is a native sidecar (an init container with `restartPolicy: Always`,
Kubernetes 1.29 and later): it starts before LiteLLM and stops after it, so a gateway pod
that is rolled or scaled in finishes its local requests through it.

A fleet that refuses what its replica cannot queue (`admission.queue_limit`, not a hybrid's
part) gets `max_conns` on its pods (router_config.pod_connection_cap): least_conn passes over
a pod at its cap, and with every pod at it nginx fails the request at once ("no live
upstreams", ngx_http_upstream_module: `max_conns`, open-source since 1.11.5, counted across
workers in the `zone`). That 502 is answered as a 429 (`error_page`), which LiteLLM passes on
as a rate limit and the load test counts as refused, as the simulation does; a fleet whose
every pod fails reads as refusing too. The cap is per pod, so it follows the pods the
autoscaler runs. With `round_robin` nginx passes over a full pod to the next in turn, where
the simulated round robin refuses at it: that stack refuses less than simulated.

Where this still differs from the simulation: with several gateway replicas each sidecar
balances the requests of its own pod (each sees about 1/`gatewayReplicas` of them), so the
fleet's loads may differ by up to about one request per gateway replica more than under the
simulator's single router.
"""

from __future__ import annotations

from typing import Any

from llmplan.provision.manifests import SERVING_PORT, container_security
from llmplan.provision.router_config import LOCAL_TIMEOUT_S
from llmplan.provision.stack_config import StackConfig
from llmplan.scenario.models import RouterName

BALANCER_PORT = 8001                  # loopback only: LiteLLM in the same pod is its client
BALANCER_MOUNT = "/etc/llmplan-balancer"
BALANCER_CONFIG_KEY = "nginx.conf"   # its key in the gateway's ConfigMap
RESOLVE_VALID_S = 5                  # how long a DNS answer listing the pods is kept
#: The nginx directive that makes each router nginx can make (a router not here is refused).
BALANCING: dict[RouterName, str] = {"least_outstanding": "least_conn;", "round_robin": ""}


def pods_address(config: StackConfig, pods_service: str) -> str:
    """The headless Service's fully qualified name (nginx's resolver applies no search
    domains, so the cluster domain is spelled out)."""
    return f"{pods_service}.{config.namespace}.svc.{config.cluster_domain}"


def dns_resolver(config: StackConfig) -> str:
    """The DNS server the balancer asks for the fleet's pods: the stack's `dnsResolver`, or
    the kube-dns Service most distributions run (CoreDNS behind that name)."""
    return config.dns_resolver or f"kube-dns.kube-system.svc.{config.cluster_domain}"


def balancer_conf(config: StackConfig, router: RouterName, pods_service: str,
                  max_conns: int | None = None) -> str:
    """nginx.conf of the sidecar: the simulated router over the fleet's Ready pods, sending
    each pod at most `max_conns` requests at once (None: no cap)."""
    if router not in BALANCING:
        raise ValueError(f"router '{router}' has no request balancer to provision; "
                         f"simulate it with one of: {', '.join(BALANCING)}")
    method = BALANCING[router]
    # a streamed answer may go quiet for a while (a long prefill); give up only after
    # the gateway has (LOCAL_TIMEOUT_S), so the gateway's fall-back decides
    timeout_s = LOCAL_TIMEOUT_S + 60
    lines = [
        "# rendered by llmplan (llmplan/provision/balancer.py): the simulated router",
        "worker_processes 2;",
        "worker_rlimit_nofile 16384;   # two descriptors a proxied request",
        "pid /tmp/nginx.pid;",
        "error_log stderr warn;",
        "daemon off;",
        "events { worker_connections 8192; }",
        "http {",
        "  access_log off;",
        "  client_body_temp_path /tmp/client_temp;",
        "  proxy_temp_path /tmp/proxy_temp;",
        "  fastcgi_temp_path /tmp/fastcgi_temp;",
        "  uwsgi_temp_path /tmp/uwsgi_temp;",
        "  scgi_temp_path /tmp/scgi_temp;",
        f"  resolver {dns_resolver(config)} valid={RESOLVE_VALID_S}s;",
        "  upstream vllm {",
        "    zone vllm 256k;",
        *([f"    {method}"] if method else []),
        f"    server {pods_address(config, pods_service)}:{SERVING_PORT} resolve"
        f"{f' max_conns={max_conns}' if max_conns is not None else ''};",
        "  }",
        "  server {",
        f"    listen 127.0.0.1:{BALANCER_PORT};",
        "    client_max_body_size 0;",
        "    location / {",
        "      proxy_pass http://vllm;",
        "      proxy_http_version 1.1;",
        "      proxy_buffering off;",
        "      proxy_request_buffering off;",
        f"      proxy_read_timeout {timeout_s}s;",
        f"      proxy_send_timeout {timeout_s}s;",
        *(["      error_page 502 = @refused;"] if max_conns is not None else []),
        "    }",
        *([
            "    location @refused {",
            "      default_type application/json;",
            "      return 429 '{\"error\": {\"message\": \"every replica is full (its "
            "batch and admission.queue_limit)\", \"type\": \"rate_limit_error\"}}';",
            "    }"] if max_conns is not None else []),
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def balancer_container(config: StackConfig) -> dict[str, Any]:
    """The sidecar container (its nginx.conf comes from the gateway's ConfigMap, mounted by
    balancer_volumes)."""
    resources = {"cpu": "500m", "memory": "256Mi"}
    return {
        "name": "balancer", "image": config.balancer_image, "restartPolicy": "Always",
        "command": ["nginx", "-e", "stderr", "-c", f"{BALANCER_MOUNT}/{BALANCER_CONFIG_KEY}"],
        "resources": {"requests": resources, "limits": resources},
        "securityContext": container_security(),
        "volumeMounts": [{"name": "balancer", "mountPath": BALANCER_MOUNT, "readOnly": True},
                         {"name": "balancer-tmp", "mountPath": "/tmp"}]}


def balancer_volumes(config_map: str) -> list[dict[str, Any]]:
    return [{"name": "balancer", "configMap": {"name": config_map, "items": [
                {"key": BALANCER_CONFIG_KEY, "path": BALANCER_CONFIG_KEY}]}},
            {"name": "balancer-tmp", "emptyDir": {"sizeLimit": "1Gi"}}]


def local_api_base() -> str:
    """Where LiteLLM sends local requests: the sidecar, over the pod's loopback."""
    return f"http://127.0.0.1:{BALANCER_PORT}/v1"
