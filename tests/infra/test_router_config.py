"""The gateway's LiteLLM config follows the scenario's routing rules (router_config.py)."""

from __future__ import annotations

import math
from pathlib import Path

import crossplane
import yaml
from conftest import HYBRID, ExampleStack
from helpers import ROOT, ExampleResult

from llmplan.provision.balancer import BALANCER_CONFIG_KEY
from llmplan.provision.gateway_manifests import gateway_endpoints, gateway_manifests
from llmplan.provision.router_config import (
    CLOUD_SPILL,
    LOCAL_FALLBACK,
    RouterEndpoints,
    admission_cap_per_replica,
    pod_connection_cap,
    restricted_groups,
    router_config,
    spill_cap_per_replica,
)
from llmplan.provision.stack import WrittenStack, write_stack
from llmplan.provision.stack_config import StackConfig, fixed_caps_note
from llmplan.scenario import load_scenario
from llmplan.scenario.cloud import HybridDeployment
from llmplan.scenario.models import AutoscaleSpec

LOCAL = "http://gpus.llm.svc:8000/v1"


def _groups(config: dict[str, object]) -> dict[str, dict[str, object]]:
    models = config["model_list"]
    assert isinstance(models, list)
    return {m["model_name"]: m["litellm_params"] for m in models}


def test_support_assistant_routes_chat_to_the_api_and_keeps_restricted_local(
        example_stacks: dict[str, ExampleStack]) -> None:
    stack = example_stacks[HYBRID].written.config
    config = router_config(stack, RouterEndpoints("http://gpu-small.llm.svc:8000/v1"))
    groups = _groups(config)
    assert set(groups) == {"chat", "classify", "redact", LOCAL_FALLBACK}
    assert groups["chat"]["model"] == "openai/gpt-6-luna"
    assert groups["chat"]["api_key"] == "os.environ/CLOUD_API_KEY"
    # tier 3 (5,000 rpm, 4,000,000 tpm), halved: each of the 2 gateway replicas counts its own
    assert stack.gateway_replicas == 2
    assert (groups["chat"]["rpm"], groups["chat"]["tpm"]) == (2500, 2_000_000)
    assert groups["chat"]["max_retries"] == 3 and groups["chat"]["timeout"] == 120
    # LiteLLM would hold an entry with an rpm to rpm calls in flight (its
    # calculate_max_parallel_requests): answers past a minute would queue at the gateway,
    # which the simulation does not; the most the rpm lets be in flight within the timeout
    assert groups["chat"]["max_parallel_requests"] == 2500 * 120 // 60
    for task in ("classify", "redact"):
        assert groups[task]["api_base"] == "http://gpu-small.llm.svc:8000/v1"
        assert "max_parallel_requests" not in groups[task]    # never spills
    # the API failing falls back to the GPUs (fallback_to_local); restricted never moves
    assert config["router_settings"]["fallbacks"] == [{"chat": [LOCAL_FALLBACK]}]
    assert restricted_groups(stack.plan) == ["classify", "redact"]
    assert config["litellm_settings"] == {"callbacks": ["llmplan_guard.guard"]}


def test_every_task_has_a_group_in_local_and_cloud_stacks(
        example_stacks: dict[str, ExampleStack]) -> None:
    local = example_stacks["regulated-records"].written.config
    config = router_config(local, gateway_endpoints(local))
    assert set(_groups(config)) == {"summarise"} and "fallbacks" not in config["router_settings"]
    assert _groups(config)["summarise"]["api_base"] == "http://127.0.0.1:8001/v1"  # balancer
    cloud = example_stacks["agent-workflow"].written.config
    groups = _groups(router_config(cloud, gateway_endpoints(cloud)))
    assert set(groups) == {"plan-and-call-tools"}
    assert groups["plan-and-call-tools"]["model"] == "openai/gpt-6-sol"


def test_bedrock_hybrid_spills_local_work_and_splits_the_account_limits(
        bedrock_stack: WrittenStack) -> None:
    stack = bedrock_stack.config
    config = router_config(stack, RouterEndpoints(LOCAL, aws_region="us-east-1"))
    groups = _groups(config)
    assert set(groups) == {"chat", "summarise", "classify", LOCAL_FALLBACK, CLOUD_SPILL}
    assert groups["chat"]["model"] == "bedrock/us.meta.llama3-1-8b-instruct-v1:0"
    assert groups["chat"]["aws_region_name"] == "us-east-1" and "api_key" not in groups["chat"]
    assert config["router_settings"]["fallbacks"] == [{"summarise": [CLOUD_SPILL]},
                                                      {"chat": [LOCAL_FALLBACK]}]
    assert "max_parallel_requests" not in groups["classify"]
    # the only spillable group: its weight's share (0.3 of the fleet's 0.5: classify, kept
    # local, fills the same queues) of 2 fleet replicas' caps, shared by 2 gateway replicas
    cap = spill_cap_per_replica(stack.plan)
    assert cap is not None
    assert groups["summarise"]["max_parallel_requests"] == -(-math.floor(cap * 2 * 0.6) // 2)
    # the catalog's default account limits, shared by simulated API requests per group
    # (1,600 rpm, 600,000 tpm); this load never spilled in the simulation, so the spill
    # group gets the 5% floor: shares 1/1.05 and 0.05/1.05 (1,523 and 76 rpm, 571,428 and
    # 28,571 tpm), each halved for the 2 gateway replicas, rounded down
    counts = stack.plan.simulated.cloud_requests_by_task
    assert counts["chat"] > 0 and "classify" not in counts and "summarise" not in counts
    assert (groups["chat"]["rpm"], groups[CLOUD_SPILL]["rpm"]) == (761, 38)
    assert (groups["chat"]["tpm"], groups[CLOUD_SPILL]["tpm"]) == (285_714, 14_285)


def test_the_spill_cap_is_the_batch_plus_the_wait_the_simulation_tolerated(
        bedrock_stack: WrittenStack) -> None:
    """Hand-computed: KV 40,000 tokens / 500 per request = 80 sequences, but max_num_seqs
    is 64; 3.2 completions/s x 1.5 s spill-over wait = 4.8 -> 5 queued; 64 + 5 = 69."""
    plan = bedrock_stack.config.plan
    figures = plan.simulated.model_copy(update={
        "kv_cache_tokens_per_replica": 40_000, "mean_tokens_per_request": 500.0,
        "local_requests_per_s_per_replica": 3.2})
    assert spill_cap_per_replica(plan.model_copy(update={"simulated": figures})) == 69
    small_kv = figures.model_copy(update={"kv_cache_tokens_per_replica": 20_000})
    assert spill_cap_per_replica(plan.model_copy(update={"simulated": small_kv})) == 40 + 5


def test_the_gateway_deploys_exactly_the_generated_config(bedrock_stack: WrittenStack) -> None:
    stack = bedrock_stack.config
    config_map = next(m for m in gateway_manifests(stack) if m["kind"] == "ConfigMap")
    assert yaml.safe_load(config_map["data"]["config.yaml"]) == \
        router_config(stack, gateway_endpoints(stack))
    assert "class RestrictedStaysLocal" in config_map["data"]["llmplan_guard.py"]
    deployment = next(m for m in gateway_manifests(stack) if m["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LLMPLAN_RESTRICTED_GROUPS"]["value"] == "classify"
    assert "CLOUD_API_KEY" not in env       # Bedrock: the pod's role, no key
    assert env["AWS_REGION"]["value"] == "us-east-1"


def test_a_local_fleet_with_a_queue_limit_refuses_at_each_pod(
        example_stacks: dict[str, ExampleStack], tmp_path: Path) -> None:
    """The simulation refuses a request its replica cannot queue (`admission.queue_limit`);
    without a cap the stack would queue it in vLLM instead. Each balancer caps each pod at
    the replica's running batch plus its queue, shared by the gateway's replicas (rounded
    up): hand-computed, min(max_num_seqs, KV 40,000 / 500 tokens = 80) + 7 over 2 gateway
    pods. The cap is per pod, so an autoscaled fleet's grows with its pods; LiteLLM, whose
    counts are fixed, caps nothing."""
    config = example_stacks["regulated-records"].written.config
    plan = config.plan
    name, dep = plan.local  # type: ignore[misc]
    assert dep.admission.queue_limit is None
    assert pod_connection_cap(config) is None   # nothing refuses in the simulation: no cap
    assert "max_conns" not in _server(config, tmp_path)
    limited = dep.model_copy(update={
        "admission": dep.admission.model_copy(update={"queue_limit": 7}), "replicas": 2,
        "autoscaling": AutoscaleSpec(min_replicas=1, max_replicas=6)})
    figures = plan.simulated.model_copy(update={"kv_cache_tokens_per_replica": 40_000,
                                                "mean_tokens_per_request": 500.0})
    plan = plan.model_copy(update={"deployments": {**plan.deployments, name: limited},
                                   "simulated": figures})
    capped = config.model_copy(update={"plan": plan, "gateway_replicas": 2})
    batch = min(80, limited.setup(plan.catalog).max_num_seqs)
    assert admission_cap_per_replica(plan) == batch + 7
    assert pod_connection_cap(capped) == -(-(batch + 7) // 2)
    assert f"max_conns={-(-(batch + 7) // 2)}" in _server(capped, tmp_path)
    # every pod full: nginx's 502 goes out as the 429 the simulation's refusal is
    [cm] = [m for m in gateway_manifests(capped) if m["kind"] == "ConfigMap"]
    conf = cm["data"][BALANCER_CONFIG_KEY]
    assert "error_page 502 = @refused;" in conf and "location @refused" in conf
    assert "return 429 " in conf.split("location @refused")[1]
    [plain] = [m for m in gateway_manifests(config) if m["kind"] == "ConfigMap"]
    assert "@refused" not in plain["data"][BALANCER_CONFIG_KEY]
    groups = _groups(router_config(capped, gateway_endpoints(capped)))
    assert not any("max_parallel_requests" in g for g in groups.values())


def _server(config: StackConfig, tmp_path: Path) -> list[str]:
    """The balancer's `server` line, as the gateway's ConfigMap carries it (parsed by
    crossplane with nginx's argument rules)."""
    [cm] = [m for m in gateway_manifests(config) if m["kind"] == "ConfigMap"]
    path = tmp_path / "nginx.conf"
    path.write_text(cm["data"][BALANCER_CONFIG_KEY])
    payload = crossplane.parse(str(path), single=True, strict=True, check_ctx=True,
                               check_args=True, comments=False)
    assert payload["status"] == "ok", payload["errors"]
    [http] = [d for d in payload["config"][0]["parsed"] if d["directive"] == "http"]
    [upstream] = [d for d in http["block"] if d["directive"] == "upstream"]
    [server] = [d["args"] for d in upstream["block"] if d["directive"] == "server"]
    return [arg.split("=")[0] for arg in server] + server


def test_a_hybrid_whose_fleet_autoscales_is_told_its_caps_are_fixed(
        bedrock_stack: WrittenStack) -> None:
    """The gateway spills at a fixed count of requests in flight, set for the fleet's
    starting replicas; the simulation's threshold is per replica. With an autoscaled fleet
    the stack says so, and `simulate` does too; a fixed fleet or a hybrid that spills only
    on errors gets no note."""
    config = bedrock_stack.config
    plan = config.plan
    hybrid = plan.chosen
    assert isinstance(hybrid, HybridDeployment) and hybrid.spillover_wait_s is not None
    _, dep = plan.local  # type: ignore[misc]
    assert dep.autoscaling is not None
    note = fixed_caps_note(config.plan.deployment, hybrid, dep)
    assert note is not None and note in bedrock_stack.notes
    assert "spills past spillover_wait_s (1.5 s)" in note and "autoscales (1 to 4)" in note
    assert "the 2 replicas 'gpus' starts with" in note
    fixed = dep.model_copy(update={"autoscaling": None})
    assert fixed_caps_note(config.plan.deployment, hybrid, fixed) is None
    unspilled = hybrid.model_copy(update={"spillover_wait_s": None})
    assert fixed_caps_note(config.plan.deployment, unspilled, dep) is None
    limited = dep.model_copy(update={"admission": dep.admission.model_copy(
        update={"queue_limit": 5})})
    assert "spills or refuses past admission.queue_limit (5 waiting)" in str(
        fixed_caps_note(config.plan.deployment, unspilled, limited))


def test_each_gateway_replica_gets_its_share_of_every_limit_and_cap(
        bedrock_stack: WrittenStack) -> None:
    """Each LiteLLM process counts rate limits and requests in flight by itself: the
    replicas' rate limits add up to at most the account's, their caps to at least the
    simulated cap (hand-computed from one replica's figures)."""
    stack = bedrock_stack.config
    endpoints = RouterEndpoints(LOCAL, aws_region="us-east-1")
    whole = _groups(router_config(stack.model_copy(update={"gateway_replicas": 1}), endpoints))
    assert whole["chat"]["rpm"] == 1523 and whole[CLOUD_SPILL]["tpm"] == 28_571
    cap = spill_cap_per_replica(stack.plan)
    assert cap is not None
    held = math.floor(2 * cap * 0.3 / 0.5)     # summarise's share of the fleet's queues
    assert whole["summarise"]["max_parallel_requests"] == held
    three = _groups(router_config(stack.model_copy(update={"gateway_replicas": 3}), endpoints))
    assert (three["chat"]["rpm"], three[CLOUD_SPILL]["rpm"]) == (1523 // 3, 76 // 3)
    assert (three["chat"]["tpm"], three[CLOUD_SPILL]["tpm"]) == (571_428 // 3, 28_571 // 3)
    assert three["summarise"]["max_parallel_requests"] == -(-held // 3)   # rounded up
    for group in ("chat", CLOUD_SPILL):
        assert 3 * three[group]["rpm"] <= whole[group]["rpm"]
    assert 3 * three["summarise"]["max_parallel_requests"] >= held


def test_spilling_and_held_groups_together_admit_no_more_than_the_fleet(
        bedrock_stack: WrittenStack) -> None:
    """With a queue limit the simulated fleet holds at most (batch + queue_limit) x
    replicas, whichever task sent them; the spilling group (summarise) and the held one
    (classify, restricted) share that count by weight rather than each taking it whole."""
    config = bedrock_stack.config.model_copy(update={"gateway_replicas": 1})
    plan = config.plan
    name, dep = plan.local  # type: ignore[misc]
    limited = dep.model_copy(update={"admission": dep.admission.model_copy(
        update={"queue_limit": 20})})
    plan = plan.model_copy(update={"deployments": {**plan.deployments, name: limited}})
    admit = admission_cap_per_replica(plan)
    assert admit is not None
    groups = _groups(router_config(config.model_copy(update={"plan": plan}),
                                   RouterEndpoints(LOCAL, aws_region="us-east-1")))
    caps = {task: groups[task]["max_parallel_requests"] for task in ("summarise", "classify")}
    assert sum(caps.values()) <= admit * limited.replicas
    assert caps["classify"] == math.floor(admit * limited.replicas * 0.2 / 0.5)


def test_a_limit_on_input_tokens_alone_is_left_to_the_provider(
        example_result: ExampleResult, tmp_path: Path) -> None:
    """Anthropic's tokens/min counts input alone (claude-sonnet-4.6 in coding-agent);
    LiteLLM's tpm counter adds every response's total tokens, so it would refuse calls the
    provider takes: the entry keeps its rpm and leaves the token limit to the provider."""
    loaded = load_scenario(ROOT / "examples" / "coding-agent.yaml")
    written = write_stack(tmp_path / "Pulumi.agent.yaml", loaded,
                          example_result("coding-agent", False), "api", {})
    [entry] = _groups(router_config(written.config, gateway_endpoints(written.config))).values()
    assert entry["model"] == "anthropic/claude-sonnet-4-6"
    assert entry["rpm"] > 0 and "tpm" not in entry


def test_the_max_tokens_simulated_with_every_call_goes_with_every_call(tmp_path: Path) -> None:
    """limits.max_tokens is simulated as sent with each call (the provider reserves it and
    cuts answers there): the gateway's entry sends it unless a request sets its own."""
    from infra_scenarios import simulate_text, stack_of

    text = """
        seed: 1
        duration: 60
        traffic: {kind: poisson, rate_per_s: 1}
        tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 500},
                 output_tokens: {kind: fixed, tokens: 100}}]
        deployments:
          capped: {kind: cloud, model: gpt-4o-mini, limits: {max_tokens: 4096}}
          free: {kind: cloud, model: gpt-4o-mini}
    """
    simulated = simulate_text(text)
    for name, expected in (("capped", 4096), ("free", None)):
        written = stack_of(simulated, name, tmp_path)
        [entry] = _groups(router_config(written.config,
                                        gateway_endpoints(written.config))).values()
        assert entry.get("max_tokens") == expected, name
