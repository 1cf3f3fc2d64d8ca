"""The generated LiteLLM config, run for real: a LiteLLM proxy on 127.0.0.1 in front of two
llama.cpp servers, one as the owned GPU fleet and one standing in for the cloud API.

Requests route by task, counted on the servers themselves (llama.cpp's
`llamacpp:tokens_predicted_total`: every request asks for exactly TOKENS tokens with
`ignore_eos`, so a server's count moves by TOKENS per request it served). Restricted requests
never reach the stand-in cloud, not even when the client asks for fall-backs or the fleet is
down; then the other tasks fall back to the API and restricted ones fail with a clear error.
Bounded: every request has a 60 s timeout and the whole module takes about half a minute.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import ROOT

from llmplan.loadtests.llamacpp_server import LlamaCppServer, free_port
from llmplan.pipeline import evaluate
from llmplan.provision.gateway_manifests import guard_source
from llmplan.provision.images import LITELLM_VERSION
from llmplan.provision.router_config import (
    CLOUD_SPILL,
    GUARD_MODULE,
    RESTRICTED_ENV,
    RouterEndpoints,
    restricted_groups,
    router_config,
    spill_cap_per_replica,
)
from llmplan.provision.stack import write_stack
from llmplan.scenario import load_scenario_text

TOKENS = 4
MASTER_KEY = "sk-live-test-master"
#: A hybrid like the support assistant's, plus a local task that may spill: one replica that
#: runs one sequence at a time, so the gateway's spill cap is tiny.
SCENARIO = """
name: live-router
seed: 1
duration: 60
traffic: {kind: poisson, rate_per_s: 0.5}
tasks:
  - {name: chat, weight: 0.5, prompt_tokens: {kind: fixed, tokens: 40},
     output_tokens: {kind: fixed, tokens: 8}}
  - {name: summarise, weight: 0.3, prompt_tokens: {kind: fixed, tokens: 40},
     output_tokens: {kind: fixed, tokens: 8}}
  - {name: classify, weight: 0.2, sensitivity: restricted,
     prompt_tokens: {kind: fixed, tokens: 40}, output_tokens: {kind: fixed, tokens: 8}}
slo: {ttft_ms: 5000}
deployments:
  fleet:
    gpu: L4
    model: SmolLM2-135M
    engine: {max_num_seqs: 1, max_num_batched_tokens: 512}
  api:
    kind: cloud
    model: gpt-4o-mini
    limits: {requests_per_min: 6000, tokens_per_min: 10000000}
    retry: {max_retries: 0, request_timeout_s: 60}
  hybrid:
    kind: hybrid
    local: fleet
    cloud: api
    routes: [{tasks: [chat], to: cloud}]
    spillover_wait_s: 0.1
"""


@dataclass
class Rig:
    local: LlamaCppServer
    cloud: LlamaCppServer
    gateway: str
    spill_cap: int


def generated(server: LlamaCppServer) -> int:
    """Tokens the server generated so far (from its own metrics)."""
    with urllib.request.urlopen(f"{server.base_url}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("llamacpp:tokens_predicted_total "):
                return int(float(line.split()[1]))
    raise AssertionError("llama.cpp reported no tokens_predicted_total")


def served(server: LlamaCppServer, tokens: int = TOKENS) -> int:
    """Requests of `tokens` tokens the server generated for."""
    total = generated(server)
    assert total % tokens == 0, f"{total} tokens is not a whole number of requests"
    return total // tokens


def ask(rig: Rig, task: str, tokens: int = TOKENS, **extra: Any) -> tuple[int, dict[str, Any]]:
    """One chat completion through the gateway, sent as the task's model group."""
    body = json.dumps({"model": task, "max_tokens": tokens, "ignore_eos": True,
                       "messages": [{"role": "user", "content": f"{task}: count to ten"}],
                       **extra}).encode()
    request = urllib.request.Request(
        f"{rig.gateway}/v1/chat/completions", data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, {"error": {"message": text}}


def counts_during(rig: Rig, action: Any, tokens: int = TOKENS) -> tuple[int, int, Any]:
    """(local, cloud) requests of `tokens` tokens served while `action` ran, and its result."""
    before = generated(rig.local), generated(rig.cloud)
    outcome = action()
    local, cloud = generated(rig.local) - before[0], generated(rig.cloud) - before[1]
    assert local % tokens == 0 and cloud % tokens == 0, (local, cloud)
    return local // tokens, cloud // tokens, outcome


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    folder = tmp_path_factory.mktemp("router")
    loaded = load_scenario_text(textwrap.dedent(SCENARIO), base_dir=ROOT)
    # one LiteLLM process: a gateway of one replica, which holds the whole cap and limits
    stack = write_stack(folder / "Pulumi.live.yaml", loaded, evaluate(loaded), "hybrid",
                        {}).config.model_copy(update={"gateway_replicas": 1})
    assert stack.plan.deployment == "hybrid"
    with LlamaCppServer(parallel=2, ctx_per_slot=256) as local, \
            LlamaCppServer(parallel=4, ctx_per_slot=256) as cloud:
        config = router_config(stack, RouterEndpoints(f"{local.base_url}/v1",
                                                      cloud_api_base=f"{cloud.base_url}/v1"))
        (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (folder / f"{GUARD_MODULE}.py").write_text(guard_source())
        port = free_port()
        env = {**os.environ, "LITELLM_MASTER_KEY": MASTER_KEY,
               "LITELLM_LOCAL_MODEL_COST_MAP": "True", "CLOUD_API_KEY": "sk-stand-in",
               RESTRICTED_ENV: ",".join(restricted_groups(stack.plan))}
        litellm = shutil.which("litellm", path=str(Path(sys.executable).parent))
        assert litellm is not None
        with (folder / "litellm.log").open("wb") as log:
            proxy = subprocess.Popen([litellm, "--config", str(folder / "config.yaml"),
                                      "--host", "127.0.0.1", "--port", str(port)],
                                     cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
            try:
                _wait_healthy(f"http://127.0.0.1:{port}", proxy, folder / "litellm.log")
                cap = spill_cap_per_replica(stack.plan)
                assert cap is not None
                yield Rig(local, cloud, f"http://127.0.0.1:{port}", cap)
            finally:
                proxy.terminate()
                try:
                    proxy.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proxy.kill()
                    proxy.wait(timeout=15)


def _wait_healthy(base: str, proxy: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proxy.poll() is not None:
            raise RuntimeError(f"litellm exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/health/liveliness", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise RuntimeError(f"litellm not healthy after 120 s: {log.read_text()[-2000:]}")


def test_the_router_test_runs_the_release_the_stack_deploys() -> None:
    assert importlib.metadata.version("litellm") == LITELLM_VERSION


def test_requests_route_by_task_and_restricted_never_reach_the_cloud(rig: Rig) -> None:
    for task, expected in (("chat", (0, 3)), ("summarise", (3, 0)), ("classify", (3, 0))):
        local, cloud, statuses = counts_during(rig, lambda t=task: [ask(rig, t)[0]
                                                                   for _ in range(3)])
        assert statuses == [200, 200, 200], task
        assert (local, cloud) == expected, task
    # a client asking for its own fall-back on a restricted task is refused by the guard, one
    # naming its own backend by LiteLLM itself (its status depends on LiteLLM's auth error
    # path); either way nothing is served
    for extra in ({"fallbacks": ["chat"]}, {"api_base": f"{rig.cloud.base_url}/v1"}):
        local, cloud, (status, body) = counts_during(rig, lambda e=extra: ask(rig, "classify",
                                                                              **e))
        assert status >= 400 and (local, cloud) == (0, 0), body
        if "fallbacks" in extra:
            assert status == 400 and "restricted task" in body["error"]["message"]


def test_local_work_past_the_cap_spills_to_the_api(rig: Rig) -> None:
    """Six summaries at once against a cap of `spill_cap` in flight: the rest go to the API.

    Each asks for 48 tokens, about a second on one llama.cpp thread, far longer than the
    proxy takes to receive all six, so the first `spill_cap` are still running when the
    others arrive, however busy the machine."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        local, cloud, statuses = counts_during(
            rig, lambda: list(pool.map(lambda _: ask(rig, "summarise", 48)[0], range(6))), 48)
    assert statuses == [200] * 6
    assert local + cloud == 6
    assert 1 <= local <= rig.spill_cap and cloud >= 6 - rig.spill_cap


def test_fleet_down_others_fall_back_restricted_fail_clearly(rig: Rig) -> None:
    rig.local.stop()
    before = served(rig.cloud)
    status, _ = ask(rig, "summarise")
    assert status == 200 and served(rig.cloud) == before + 1     # fell back to the API
    status, body = ask(rig, "classify")
    message = body["error"]["message"]
    assert status == 503 and "restricted task" in message and "not sent" in message
    status, body = ask(rig, "classify", fallbacks=[CLOUD_SPILL])
    assert status == 400
    assert served(rig.cloud) == before + 1                        # nothing restricted got out
    status, _ = ask(rig, "chat")
    assert status == 200 and served(rig.cloud) == before + 2
