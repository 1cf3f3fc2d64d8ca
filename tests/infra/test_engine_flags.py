"""The vLLM the stack starts is the engine that was simulated, or the stack refuses: a context
the KV cache cannot hold, a whole-prompt step without chunked prefill, a vLLM release
older than its flags, a KV cache set by hand, a node too small for one replica."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import chat_scenario
from infra_scenarios import Simulated, simulate_text, stack_of
from pydantic import ValidationError

from llmplan.errors import InputError
from llmplan.perf.memory import kv_capacity
from llmplan.pipeline import not_provisionable
from llmplan.provision.cluster_sizing import gpu_node_counts
from llmplan.provision.gpu_nodes import ec2_instance
from llmplan.provision.serving_manifests import vllm_args
from llmplan.provision.stack import write_stack
from llmplan.provision.stack_config import StackConfig, read_stack_file
from llmplan.scenario import LoadedScenario
from llmplan.scenario.models import LocalDeployment

SCENARIO = chat_scenario("engine-flags", """
  small-card: {gpu: L4, model: Llama-3.1-8B}
  big-card: {gpu: H100-SXM, model: Llama-3.1-8B}
  whole-prompts: {gpu: H100-SXM, model: Llama-3.1-8B, engine: {chunked_prefill: false}}
  ancient-vllm: {gpu: H100-SXM, model: Llama-3.1-8B, engine: {vllm_version: "0.8.4"}}
  cache-by-hand: {gpu: H100-SXM, model: Llama-3.1-8B, engine: {kv_cache_tokens: 50000}}
  two-gpus: {gpu: L40S, model: Llama-3.1-8B, tp: 2}
  e5m2-cache: {gpu: H100-SXM, model: Llama-3.1-8B, engine: {kv_dtype: fp8_e5m2}}
  fp8-cache: {gpu: H100-SXM, model: Llama-3.1-8B, engine: {kv_dtype: fp8}}
  pcie-card: {gpu: H100-PCIe, model: Llama-3.1-8B}
  stages: {gpu: L40S, model: Llama-3.1-8B, tp: 2, pp: 2}
  geforce-pair: {gpu: RTX-4090, model: Llama-3.1-8B, tp: 2}
""")


@pytest.fixture(scope="module")
def simulated() -> Simulated:
    return simulate_text(SCENARIO)


def _local(loaded: LoadedScenario, name: str) -> LocalDeployment:
    dep = loaded.scenario.deployments[name]
    assert isinstance(dep, LocalDeployment)
    return dep


def _flags(args: list[str]) -> dict[str, str]:
    return {args[i]: args[i + 1] for i in range(len(args) - 1)
            if args[i].startswith("--") and not args[i + 1].startswith("--")}


def test_a_context_the_cache_cannot_hold_is_fitted_as_it_was_simulated(
        simulated: Simulated, tmp_path: Path) -> None:
    """Llama-3.1-8B's 131,072-token context needs 16 GiB of BF16 KV cache; an L4 (24 GB)
    has about 5 left after the weights. The simulation serves the longest request the cache
    holds; a vLLM given no --max-model-len would refuse to start, so the stack asks it to
    fit the context to the cache. An H100 holds the whole context: no flag."""
    loaded, _ = simulated
    catalog = loaded.catalog
    context = catalog.models["Llama-3.1-8B"].max_context_tokens
    assert kv_capacity(_local(loaded, "small-card").setup(catalog)).max_model_len < context
    assert kv_capacity(_local(loaded, "big-card").setup(catalog)).max_model_len == context
    assert _flags(vllm_args(stack_of(simulated, "small-card", tmp_path).config))[
        "--max-model-len"] == "auto"
    assert "--max-model-len" not in vllm_args(stack_of(simulated, "big-card", tmp_path).config)


def test_without_chunked_prefill_the_step_holds_a_whole_context(
        simulated: Simulated, tmp_path: Path) -> None:
    """vLLM refuses max_num_batched_tokens below max_model_len when prompts are not chunked
    (SchedulerConfig); with no max_model_len set that is the model's whole context, so the
    simulated step budget, and the flag the stack passes, are the context."""
    loaded, _ = simulated
    catalog = loaded.catalog
    context = catalog.models["Llama-3.1-8B"].max_context_tokens
    assert _local(loaded, "whole-prompts").setup(catalog).max_num_batched_tokens == context
    flags = _flags(vllm_args(stack_of(simulated, "whole-prompts", tmp_path).config))
    assert int(flags["--max-num-batched-tokens"]) == context
    assert "--no-enable-chunked-prefill" in vllm_args(
        stack_of(simulated, "whole-prompts", tmp_path).config)


@pytest.mark.parametrize(("name", "why"), [
    ("ancient-vllm", r"simulated as vLLM 0.8.4 .* the stack starts vLLM 0.8.5 or later"),
    ("cache-by-hand", r"KV cache set by hand \(engine.kv_cache_tokens: 50000\)"),
])
def test_what_the_stack_cannot_start_as_simulated_is_refused(
        simulated: Simulated, tmp_path: Path, name: str, why: str) -> None:
    loaded, _ = simulated
    with pytest.raises(InputError, match=why):
        stack_of(simulated, name, tmp_path)
    assert not (tmp_path / f"Pulumi.{name}.yaml").exists()
    # and the simulation lists it as not provisionable, with the same reason; only the two
    problems = not_provisionable(loaded)
    assert any(f"'{name}'" in problem and re.search(why, problem) for problem in problems)
    listed = {n for n in loaded.scenario.deployments if any(f"'{n}'" in p for p in problems)}
    assert listed == {"ancient-vllm", "cache-by-hand"}


def test_a_node_group_too_small_for_one_replica_is_refused(simulated: Simulated,
                                                           tmp_path: Path) -> None:
    """A tp 2 replica needs both GPUs on one node: an EKS node group of 1-GPU instances
    would leave every pod Pending."""
    config = stack_of(simulated, "two-gpus", tmp_path).config
    eks = {**config.model_dump(by_alias=True), "clusterMode": "eks", "awsRegion": "us-east-1",
           "eksGpuInstanceType": "g6e.xlarge", "eksGpusPerNode": 1}
    with pytest.raises(ValidationError, match=r"needs its 2 GPUs \(tp x pp\) on one node"):
        StackConfig.model_validate(eks)
    four = StackConfig.model_validate({**eks, "eksGpuInstanceType": "g6e.12xlarge",
                                       "eksGpusPerNode": 4})
    instance, _, desired, _ = gpu_node_counts(four)
    assert instance == "g6e.12xlarge" and desired == 1       # a 4-GPU node holds the replica


def test_a_node_group_of_other_gpus_than_simulated_is_refused(simulated: Simulated,
                                                              tmp_path: Path) -> None:
    """The two-gpus fleet was simulated on L40S: an instance type carrying A100s or H100s
    would serve it on other GPUs than the figures were made for; and the count of GPUs an
    instance carries is the instance's."""
    config = stack_of(simulated, "two-gpus", tmp_path).config
    eks = {**config.model_dump(by_alias=True), "clusterMode": "eks", "awsRegion": "us-east-1"}
    for other in ("p4d.24xlarge", "p5.48xlarge", "g6.12xlarge"):
        with pytest.raises(ValidationError, match=rf"{re.escape(other)} carries .* simulated "
                                                  r"on L40S.*g6e\.xlarge, g6e\.2xlarge, "
                                                  r".*g6e\.12xlarge"):
            StackConfig.model_validate({**eks, "eksGpuInstanceType": other})
    with pytest.raises(ValidationError, match=r"eksGpusPerNode is 8, but g6e\.12xlarge "
                                              r"carries 4 GPUs"):
        StackConfig.model_validate({**eks, "eksGpuInstanceType": "g6e.12xlarge",
                                    "eksGpusPerNode": 8})
    # an on-demand node group is not what an owned fleet was priced at: the stack says so
    written = write_stack(tmp_path / "Pulumi.eks.yaml", *simulated, "two-gpus",
                          {"cluster_mode": "eks", "aws_region": "us-east-1"})
    assert any("on-demand EC2 instances (g6e.12xlarge)" in note
               and "costs.ownership: rented_on_demand" in note for note in written.notes)


def test_pipeline_stages_are_started_as_simulated_on_one_node(simulated: Simulated,
                                                              tmp_path: Path) -> None:
    """tp 2 x pp 2: vLLM gets both sizes, the pod the four GPUs of its replica, on one node
    (an EKS instance with four L40S), and the manifests still validate."""
    import kubernetes_validate

    from llmplan.provision.serving_manifests import serving_manifests

    written = stack_of(simulated, "stages", tmp_path)
    flags = _flags(vllm_args(written.config))
    assert (flags["--tensor-parallel-size"], flags["--pipeline-parallel-size"]) == ("2", "2")
    assert "--pipeline-parallel-size" not in vllm_args(stack_of(simulated, "two-gpus",
                                                              tmp_path).config)
    manifests = serving_manifests(written.config)
    version = kubernetes_validate.latest_version()
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)
    pod = next(m for m in manifests if m["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    limits = next(c for c in pod["containers"] if c["name"] == "vllm")["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "4"
    eks = {**written.config.model_dump(by_alias=True), "clusterMode": "eks",
           "awsRegion": "us-east-1"}
    instance, _, desired, _ = gpu_node_counts(StackConfig.model_validate(eks))
    assert instance == ec2_instance("L40S", 4)[0] and desired == 1
    with pytest.raises(ValidationError, match=r"needs its 4 GPUs \(tp x pp\) on one node"):
        StackConfig.model_validate({**eks, "eksGpuInstanceType": "g6e.2xlarge",
                                    "eksGpusPerNode": 2})


@pytest.mark.parametrize(("name", "flag"), [("e5m2-cache", "fp8_e5m2"), ("fp8-cache", "fp8"),
                                            ("big-card", None)])
def test_the_kv_cache_format_is_the_one_the_scenario_named(
        simulated: Simulated, tmp_path: Path, name: str, flag: str | None) -> None:
    """fp8_e4m3 and fp8_e5m2 are simulated alike (a byte a value), but vLLM's CUDA build
    reads a bare fp8 as e4m3: the variant named is the one started."""
    written = stack_of(simulated, name, tmp_path)
    assert _flags(vllm_args(written.config)).get("--kv-cache-dtype") == flag
    # as the Pulumi program reads it back from the stack file
    config, _ = read_stack_file(written.path)
    assert _flags(vllm_args(config)).get("--kv-cache-dtype") == flag


@pytest.mark.parametrize(("gpu", "tp", "instance", "per_node"), [
    ("H200", 8, "p5en.48xlarge", 8), ("B200", 4, "p6-b200.48xlarge", 8),
    ("RTX-PRO-6000", 2, "g7e.12xlarge", 2), ("RTX-PRO-6000", 1, "g7e.2xlarge", 1),
    ("L40S", 2, "g6e.12xlarge", 4)])
def test_an_eks_node_group_carries_todays_gpus(gpu: str, tp: int, instance: str,
                                               per_node: int) -> None:
    assert ec2_instance(gpu, tp) == (instance, per_node)


def test_a_gpu_no_ec2_instance_carries_is_refused_when_the_stack_is_written(
        simulated: Simulated, tmp_path: Path) -> None:
    """Not first at `pulumi up`: the stack names the options that fix it."""
    config = stack_of(simulated, "big-card", tmp_path).config
    eks = {"clusterMode": "eks", "awsRegion": "us-east-1"}
    StackConfig.model_validate({**config.model_dump(by_alias=True), **eks})   # p5.48xlarge
    pcie = stack_of(simulated, "pcie-card", tmp_path).config
    with pytest.raises(ValidationError, match=r"no EC2 instance type carries 1 x H100-PCIe.*"
                                              r"--eks-gpu-instance-type"):
        StackConfig.model_validate({**pcie.model_dump(by_alias=True), **eks})
    named = {**eks, "eksGpuInstanceType": "g9.xlarge", "eksGpusPerNode": 1}
    assert StackConfig.model_validate({**pcie.model_dump(by_alias=True), **named})


def test_a_stack_file_a_newer_check_refuses_is_rewritten_with_the_options_that_fix_it(
        simulated: Simulated, tmp_path: Path) -> None:
    """`pulumi config set clusterMode eks` on an H100 PCIe fleet gives a file the EC2 check
    refuses; `llmplan stack --eks-gpu-instance-type ...` must still rewrite it (it keeps the
    file's settings without validating its old plan), not fail on the same file."""
    loaded, result = simulated
    path = tmp_path / "Pulumi.pcie-card.yaml"
    write_stack(path, loaded, result, "pcie-card", {})
    text = path.read_text(encoding="utf-8")
    assert "llm-deploy-planner:clusterMode: kubeconfig" in text
    path.write_text(text.replace("llm-deploy-planner:clusterMode: kubeconfig",
                                 "llm-deploy-planner:clusterMode: eks")
                    .replace("llm-deploy-planner:awsRegion: ''",
                             "llm-deploy-planner:awsRegion: us-east-1"), encoding="utf-8")
    with pytest.raises(InputError, match="--eks-gpu-instance-type"):
        write_stack(path, loaded, result, "pcie-card", {})
    written = write_stack(path, loaded, result, "pcie-card",
                          {"eks_gpu_instance_type": "g9.xlarge", "eks_gpus_per_node": 1})
    config, _ = read_stack_file(written.path)
    assert config.cluster_mode == "eks" and config.aws_region == "us-east-1"
    assert config.eks_gpu_instance_type == "g9.xlarge"


def test_cards_without_peer_to_peer_start_without_the_custom_all_reduce(
        simulated: Simulated, tmp_path: Path) -> None:
    """Two RTX 4090s have no peer-to-peer (the catalog's peer_to_peer): simulated on NCCL,
    started with --disable-custom-all-reduce. Two L40S reach each other: vLLM's own kernel,
    no flag; one card all-reduces nothing."""
    assert "--disable-custom-all-reduce" in vllm_args(
        stack_of(simulated, "geforce-pair", tmp_path).config)
    for name in ("two-gpus", "big-card"):
        assert "--disable-custom-all-reduce" not in vllm_args(
            stack_of(simulated, name, tmp_path).config)


def test_an_eks_node_holds_the_serving_pod_not_just_its_gpus(
        simulated: Simulated, tmp_path: Path) -> None:
    """A one-GPU pod of an 8B model asks 6 cores and 34 GiB: a g6e.xlarge (4 vCPUs, 32 GiB)
    or a g6.xlarge carries its GPU and could never schedule it. The node group takes the
    smallest instance that holds the pod, a named instance too small for it is refused with
    the one that would do, and so is one with fewer GPUs than a replica."""
    from llmplan.provision.cluster_sizing import eks_instance
    from llmplan.provision.gpu_nodes import known_instance
    from llmplan.provision.serving_manifests import serving_sizes
    loaded, result = simulated
    eks = {"cluster_mode": "eks", "aws_region": "us-east-1"}
    written = write_stack(tmp_path / "Pulumi.one.yaml", loaded, result, "two-gpus", eks)
    config = StackConfig.model_validate({**stack_of(simulated, "small-card", tmp_path).config
                                         .model_dump(by_alias=True), "clusterMode": "eks",
                                         "awsRegion": "us-east-1"})
    cpu, memory_gib, _ = serving_sizes(config)
    instance, _, desired, _ = gpu_node_counts(config)
    # an 8B model's pod asks 34 GiB: neither g6.xlarge (16 GiB) nor g6.2xlarge (32) holds it
    assert instance == eks_instance(config) == "g6.4xlarge"
    known = known_instance(instance)
    assert known is not None and known[1].vcpus > cpu and known[1].memory_gib > memory_gib
    assert desired == 1
    with pytest.raises(InputError, match=r"g6\.xlarge \(4 vCPUs, 16 GiB\) cannot hold a "
                                         r"serving pod.*the smallest that does is g6\.4xlarge"):
        write_stack(tmp_path / "Pulumi.small.yaml", loaded, result, "small-card",
                    {**eks, "eks_gpu_instance_type": "g6.xlarge"})
    # set after the stack was written (pulumi config set): refused before any node exists
    later = StackConfig.model_validate({**config.model_dump(by_alias=True),
                                        "eksGpuInstanceType": "g6.xlarge"})
    with pytest.raises(ValueError, match=r"g6\.xlarge .* cannot hold a serving pod"):
        gpu_node_counts(later)
    # a tp-2 replica on a one-GPU instance the table knows
    assert written.config.plan.local is not None
    with pytest.raises(InputError, match=r"g6e\.2xlarge carries 1 GPU\(s\).*needs its 2 GPUs"):
        write_stack(tmp_path / "Pulumi.two.yaml", loaded, result, "two-gpus",
                    {**eks, "eks_gpu_instance_type": "g6e.2xlarge"})


THINKING = chat_scenario("thinking", """
  qwen: {gpu: H100-SXM, model: Qwen3-8B}
  qwen-old: {gpu: H100-SXM, model: Qwen3-8B, engine: {vllm_version: "0.11.0"}}
  llama: {gpu: H100-SXM, model: Llama-3.1-8B}
""")


def test_a_thinking_model_simulated_without_reasoning_is_served_without_it(
        tmp_path: Path) -> None:
    """Qwen3's chat template thinks unless told not to (enable_thinking): a plan simulated
    without reasoning tokens starts vLLM with thinking off by default (a request may still
    ask for it), or says clients must turn it off where the release has no such flag; a
    plan whose tasks reason keeps the model's default."""
    simulated = simulate_text(THINKING)
    flags = _flags(vllm_args(stack_of(simulated, "qwen", tmp_path).config))
    assert flags["--default-chat-template-kwargs"] == '{"enable_thinking":false}'
    assert flags["--reasoning-parser"] == "qwen3"
    assert "--default-chat-template-kwargs" not in vllm_args(
        stack_of(simulated, "llama", tmp_path).config)
    old = stack_of(simulated, "qwen-old", tmp_path)
    assert "--default-chat-template-kwargs" not in vllm_args(old.config)
    assert any("chat_template_kwargs" in note and "0.14.0" in note for note in old.notes)
    reasoning = simulate_text(THINKING.replace(
        "output_tokens:", "reasoning_tokens: {kind: fixed, tokens: 200},\n     output_tokens:"))
    assert "--default-chat-template-kwargs" not in vllm_args(
        stack_of(reasoning, "qwen", tmp_path).config)
    # a stack file written before the tasks recorded it: the model's default stays
    config = stack_of(simulated, "qwen", tmp_path).config
    unknown = config.plan.model_copy(update={"tasks": [
        t.model_copy(update={"reasoning": None}) for t in config.plan.tasks]})
    assert "--default-chat-template-kwargs" not in vllm_args(
        config.model_copy(update={"plan": unknown}))


ALWAYS_THINKING = chat_scenario("always-thinking", """
  oss: {gpu: H100-SXM, model: gpt-oss-20b}
  llama: {gpu: H100-SXM, model: Llama-3.1-8B}
""")


def test_a_model_that_always_thinks_is_not_built_silently_for_tasks_without_reasoning(
        tmp_path: Path) -> None:
    """gpt-oss reasons before every answer (no switch): a plan simulated without
    reasoning tokens is noted when simulated and when its stack is written, and a plan
    that gives them is not; Qwen3 thinking on some tasks only tells the others' clients to
    turn it off."""
    from llmplan.pipeline import thinking_not_simulated
    from llmplan.scenario import load_scenario_text
    simulated = simulate_text(ALWAYS_THINKING)
    [note] = thinking_not_simulated(load_scenario_text(ALWAYS_THINKING))
    assert "'oss'" in note and "chat" in note and "reasoning_tokens" in note
    # what the stack would build thinks where the simulation did not: passed over while
    # llama, which it builds as simulated, meets the SLO too
    result = simulated[1]
    assert result.deployments["oss"].feasible and result.deployments["llama"].feasible
    assert result.recommendation.deployment == "llama"
    assert "gpt-oss-20b reasons before every answer, and chat was simulated without " \
        "reasoning_tokens" in result.recommendation.reason
    assert any("reasons before every answer" in n
               for n in stack_of(simulated, "oss", tmp_path).notes)
    assert not any("reasons before every answer" in n
                   for n in stack_of(simulated, "llama", tmp_path).notes)
    reasoning = ALWAYS_THINKING.replace(
        "output_tokens:", "reasoning_tokens: {kind: fixed, tokens: 200},\n     output_tokens:")
    assert thinking_not_simulated(load_scenario_text(reasoning)) == []
    assert not any("reasons before every answer" in n
                   for n in stack_of(simulate_text(reasoning), "oss", tmp_path).notes)
    mixed = THINKING.replace("  - {name: chat,", "  - {name: think, reasoning_tokens: {kind: "
                             "fixed, tokens: 200}, prompt_tokens: {kind: fixed, tokens: 300},"
                             " output_tokens: {kind: fixed, tokens: 20}}\n  - {name: chat,")
    assert mixed != THINKING
    notes = stack_of(simulate_text(mixed), "qwen", tmp_path).notes
    assert any("enable_thinking" in n and "chat" in n and "think," not in n for n in notes)


def test_a_stopping_pod_drains_its_requests_as_the_simulated_scale_down_does(
        tmp_path: Path) -> None:
    """vLLM 0.18.0 and later abort every request in flight at SIGTERM unless
    --shutdown-timeout says to drain (its default is 0); the pod's grace period covers the
    drain. An older release has no such flag: the stack says its requests are dropped."""
    from llmplan.provision.router_config import LOCAL_TIMEOUT_S
    from llmplan.provision.serving_manifests import serving_manifests
    simulated = simulate_text(THINKING)
    config = stack_of(simulated, "llama", tmp_path).config
    drain_s = int(_flags(vllm_args(config))["--shutdown-timeout"])
    assert drain_s >= LOCAL_TIMEOUT_S            # as long as the gateway waits for an answer
    [fleet] = [m for m in serving_manifests(config) if m["kind"] == "StatefulSet"]
    assert fleet["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain_s
    old = stack_of(simulated, "qwen-old", tmp_path)
    assert "--shutdown-timeout" not in vllm_args(old.config)
    assert any("drops the requests in flight" in note for note in old.notes)


UNLABELLED_GPU = chat_scenario("unlabelled", """
  h20: {gpu: H20, model: Llama-3.1-8B}
  h100: {gpu: H100-SXM, model: Llama-3.1-8B}
""").replace("deployments:", """catalog:
  gpus:
    H20: {name: NVIDIA H20, memory_mib: 97871, marketed_memory_gb: 96, bf16_dense_tflops: 148,
          fp8_dense_tflops: 296, memory_bandwidth_gb_per_s: 4000, interconnect: nvlink,
          interconnect_gb_per_s: 450, network_gb_per_s: 50, board_gpus: 8, tdp_w: 400,
          purchase_usd: 12000, rental_usd_per_gpu_hour: 1.2, reserved_usd_per_gpu_hour: 0.9,
          prices_as_of: 2026-11-01, compute_capability: "9.0", sources: {}}
deployments:""")


def test_a_gpu_without_a_node_label_is_refused_rather_than_left_pending(
        tmp_path: Path) -> None:
    """A GPU the scenario adds without k8s_product_label: its pods would select nodes
    labelled with the catalog id, which GPU Feature Discovery never writes."""
    simulated = simulate_text(UNLABELLED_GPU)
    with pytest.raises(InputError, match=r"catalog\.gpus\.H20\.k8s_product_label"):
        stack_of(simulated, "h20", tmp_path)
    stack_of(simulated, "h100", tmp_path)
    labelled = UNLABELLED_GPU.replace("sources: {}}", "sources: {},\n"
                                      "          k8s_product_label: NVIDIA-H20}")
    assert labelled != UNLABELLED_GPU
    stack_of(simulate_text(labelled), "h20", tmp_path)


HYBRID_THINKING = """
name: hybrid-thinking
seed: 5
duration: 60
traffic: {kind: poisson, rate_per_s: 1}
tasks:
  - {name: qa, weight: 0.7, prompt_tokens: {kind: fixed, tokens: 600},
     output_tokens: {kind: fixed, tokens: 150}}
  - {name: code, weight: 0.3, prompt_tokens: {kind: fixed, tokens: 1500},
     output_tokens: {kind: fixed, tokens: 400}, reasoning_tokens: {kind: fixed, tokens: 800}}
deployments:
  qwen: {gpu: L40S, model: Qwen3-8B}
  api: {kind: cloud, model: gpt-4o-mini}
  both: {kind: hybrid, local: qwen, cloud: api, routes: [{tasks: [code], to: cloud}]}
"""


def test_a_hybrids_fall_back_task_does_not_turn_thinking_on_for_the_fleets_own(
        tmp_path: Path) -> None:
    """The fleet serves qa, simulated without reasoning; code reasons on the API and reaches
    the fleet only when the API fails: the fleet starts with thinking off, as for qa alone,
    and the stack says what code's fall-back answers need."""
    simulated = simulate_text(HYBRID_THINKING)
    written = stack_of(simulated, "both", tmp_path)
    flags = _flags(vllm_args(written.config))
    assert flags["--default-chat-template-kwargs"] == '{"enable_thinking":false}'
    assert any("code" in n and '"enable_thinking": true' in n for n in written.notes)
    assert not any("qa" in n and "enable_thinking" in n for n in written.notes)
    # a standby fleet, every task on the API: what falls back to it decides its default
    standby = simulate_text(HYBRID_THINKING.replace("routes: [{tasks: [code], to: cloud}]",
                                                    "routes: [{tasks: [code, qa], to: cloud}]")
                            .replace("reasoning_tokens: {kind: fixed, tokens: 800}", ""))
    flags = _flags(vllm_args(stack_of(standby, "both", tmp_path).config))
    assert flags["--default-chat-template-kwargs"] == '{"enable_thinking":false}'


def test_the_api_is_asked_for_the_reasoning_the_plan_simulated(tmp_path: Path) -> None:
    """code reasons on the API in the plan (800 thinking tokens a call, billed as output);
    the scenario says how long the thinking is, not which provider setting gives it, so the
    gateway sends none, and whether the API thinks unasked depends on the model: the stack
    says code's clients must ask (reasoning_effort, which the gateway passes on), and says
    nothing of qa, simulated without it, nor of a plan with no reasoning task."""
    text = HYBRID_THINKING.replace("model: gpt-4o-mini", "model: claude-sonnet-4.6")
    simulated = simulate_text(text)
    [note] = [n for n in stack_of(simulated, "api", tmp_path).notes if "reasoning_effort" in n]
    assert "simulated code with hidden reasoning on claude-sonnet-4.6" in note
    assert "qa" not in note
    # the hybrid sends code to the API too (qa stays on the fleet)
    assert any("simulated code with hidden reasoning" in n
               for n in stack_of(simulated, "both", tmp_path).notes)
    plain = simulate_text(text.replace(", reasoning_tokens: {kind: fixed, tokens: 800}", ""))
    assert not any("reasoning_effort" in n for n in stack_of(plain, "api", tmp_path).notes)
