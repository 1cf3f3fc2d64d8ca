"""What vLLM loads is what was simulated: the checkpoint in the simulated weight format, the
speculative drafter, and the hub token only for gated repositories; what cannot be built so
is refused with what is missing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import chat_scenario
from infra_scenarios import simulate_text, stack_of
from typer.testing import CliRunner

from llmplan.catalog import builtin_catalog
from llmplan.cli import app
from llmplan.errors import InputError
from llmplan.perf.engine import SpeculativeSpec
from llmplan.pipeline import evaluate, not_provisionable
from llmplan.provision.serving_manifests import (
    hub_repos,
    serving_manifests,
    serving_sizes,
    vllm_args,
)
from llmplan.provision.stack import WrittenStack, write_stack
from llmplan.provision.vllm_build import speculative_config
from llmplan.results.decision import Result
from llmplan.scenario import LoadedScenario, load_scenario

Formats = tuple[LoadedScenario, Result]
GIB = 2**30


def _stack(formats: Formats, name: str, folder: Path) -> WrittenStack:
    loaded, result = formats
    return write_stack(folder / f"Pulumi.{name}.yaml", loaded, result, name, {})


def _flags(args: list[str]) -> dict[str, str]:
    return {args[i]: args[i + 1] for i in range(len(args) - 1)
            if args[i].startswith("--") and not args[i + 1].startswith("--")}


@pytest.mark.parametrize(("name", "repo", "quantization"), [
    # a published checkpoint in the simulated format: vLLM reads the format from its config
    ("qwen-nvfp4", "nvidia/Qwen3-235B-A22B-FP4", None),
    ("qwen8-fp8", "Qwen/Qwen3-8B-FP8", None),
    ("llama-int4", "RedHatAI/Llama-3.3-70B-Instruct-quantized.w4a16", None),
    ("llama-int8", "RedHatAI/Llama-3.3-70B-Instruct-quantized.w8a8", None),
    # the model's own checkpoint: as shipped, or FP8 quantised by vLLM while loading
    ("qwen-bf16", "Qwen/Qwen3-235B-A22B", None),
    ("llama-fp8-eagle3", "meta-llama/Llama-3.3-70B-Instruct", "fp8"),
])
def test_each_format_is_served_from_a_checkpoint_in_that_format(
        formats: Formats, tmp_path: Path, name: str, repo: str, quantization: str | None) -> None:
    written = _stack(formats, name, tmp_path)
    flags = _flags(vllm_args(written.config))
    assert flags["--model"] == repo
    assert flags.get("--quantization") == quantization


def test_a_thinking_model_streams_its_reasoning_apart_as_simulated(formats: Formats,
                                                                   tmp_path: Path) -> None:
    """Qwen3 thinks in <think> tags: without vLLM's reasoning parser the thinking arrives
    in the answer's content, and the simulated time to the first answer token has no
    counterpart; Llama has none to parse."""
    qwen = _flags(vllm_args(_stack(formats, "qwen8-fp8", tmp_path).config))
    assert qwen["--reasoning-parser"] == "qwen3" and "--enable-reasoning" not in qwen
    llama = vllm_args(_stack(formats, "llama-int4", tmp_path).config)
    assert "--reasoning-parser" not in llama


def test_the_weights_volume_holds_the_files_of_the_served_format(formats: Formats,
                                                                  tmp_path: Path) -> None:
    """235 B parameters in NVFP4 (4.5 bits with scales) are about 123 GiB on disk; in BF16
    they would be 438 GiB, more than the volume of the NVFP4 fleet."""
    _, _, nvfp4_volume_gib = serving_sizes(_stack(formats, "qwen-nvfp4", tmp_path).config)
    _, _, bf16_volume_gib = serving_sizes(_stack(formats, "qwen-bf16", tmp_path).config)
    assert 235e9 * 4.5 / 8 / GIB < nvfp4_volume_gib < 235e9 * 2 / GIB
    assert bf16_volume_gib > 235e9 * 2 / GIB


def test_the_startup_probe_waits_for_the_first_download(formats: Formats,
                                                         tmp_path: Path) -> None:
    """A pod's first start downloads its checkpoint (438 GiB of BF16 Qwen3-235B, about 79
    minutes at the assumed 100 MB/s) before vLLM answers /health: a probe allowing 3 x the
    180 s spin-up alone would restart it every 10 minutes, for ever."""
    def allowed_s(name: str) -> float:
        config = _stack(formats, name, tmp_path).config
        [fleet] = [m for m in serving_manifests(config) if m["kind"] == "StatefulSet"]
        [vllm] = fleet["spec"]["template"]["spec"]["containers"]
        probe = vllm["startupProbe"]
        return float(probe["periodSeconds"] * probe["failureThreshold"])
    bf16 = allowed_s("qwen-bf16")
    assert bf16 >= 3 * 180 + 235e9 * 2 / 100e6
    assert allowed_s("qwen-nvfp4") < bf16 / 2          # a quarter of the bytes


def test_pulumi_waits_for_the_fleet_as_long_as_its_pods_may_take(formats: Formats,
                                                                 tmp_path: Path) -> None:
    """`pulumi up` gives a StatefulSet 10 minutes to be ready unless its
    pulumi.com/timeoutSeconds annotation says otherwise: the first start of BF16
    Qwen3-235B alone may take 80 minutes, and a rolling update starts the replicas one at
    a time, so the wait covers every replica's start-up allowance and its pod's start."""
    config = _stack(formats, "qwen-bf16", tmp_path).config
    [fleet] = [m for m in serving_manifests(config) if m["kind"] == "StatefulSet"]
    [vllm] = fleet["spec"]["template"]["spec"]["containers"]
    allowed_s = vllm["startupProbe"]["periodSeconds"] * vllm["startupProbe"]["failureThreshold"]
    waited_s = int(fleet["metadata"]["annotations"]["pulumi.com/timeoutSeconds"])
    replicas = fleet["spec"]["replicas"]
    assert waited_s > replicas * allowed_s > 10 * 60


def test_a_format_without_a_known_checkpoint_is_refused(formats: Formats,
                                                        tmp_path: Path) -> None:
    """gpt-oss ships its experts in MXFP4 only: serving openai/gpt-oss-20b for a BF16
    simulation would provision something else."""
    with pytest.raises(InputError, match=r"no published bf16 checkpoint of model "
                                         r"'gpt-oss-20b'.*one of: mxfp4") as caught:
        _stack(formats, "oss-bf16", tmp_path)
    assert not (tmp_path / "Pulumi.oss-bf16.yaml").exists()
    assert "oss-bf16" in caught.value.problems[0].message
    # and the simulation says so before anyone runs `llmplan stack`
    problems = " | ".join(not_provisionable(formats[0]))
    assert problems.count("cannot be provisioned as simulated") == 2
    assert "'oss-bf16'" in problems and "'qwen-fp8-eagle3'" in problems


def test_speculative_decoding_is_passed_to_vllm_as_simulated(formats: Formats,
                                                            tmp_path: Path) -> None:
    """vLLM's --speculative-config JSON (vllm/config/speculative.py): the method, the
    drafter checkpoint for EAGLE-3, and the simulated number of draft tokens."""
    eagle = _flags(vllm_args(_stack(formats, "llama-fp8-eagle3", tmp_path).config))
    assert json.loads(eagle["--speculative-config"]) == {
        "method": "eagle3", "model": "RedHatAI/Llama-3.3-70B-Instruct-speculator.eagle3",
        "num_speculative_tokens": 3}
    ngram = _flags(vllm_args(_stack(formats, "qwen8-ngram", tmp_path).config))
    assert json.loads(ngram["--speculative-config"]) == {"method": "ngram",
                                                         "num_speculative_tokens": 4}
    # no EAGLE-3 head of Qwen3-235B-A22B is known: refused rather than served without one
    with pytest.raises(InputError, match="no eagle3 drafter of model 'Qwen3-235B-A22B'"):
        _stack(formats, "qwen-fp8-eagle3", tmp_path)


def test_a_draft_model_named_from_the_catalog_is_downloaded_and_served(
        formats: Formats, tmp_path: Path) -> None:
    """drafter: Qwen3-0.6B is the catalog model's repository, Qwen/Qwen3-0.6B: vLLM's
    draft model, and its 1.19 GB of BF16 weights are on the weights volume too."""
    written = _stack(formats, "qwen32-draft", tmp_path)
    config = json.loads(_flags(vllm_args(written.config))["--speculative-config"])
    assert config == {"method": "draft_model", "model": "Qwen/Qwen3-0.6B",
                      "num_speculative_tokens": 3}
    assert ("Qwen/Qwen3-0.6B", False) in hub_repos(written.config)
    _, _, volume_gib = serving_sizes(written.config)
    plain = builtin_catalog().models["Qwen3-32B"].weight_bytes("fp8")
    assert volume_gib == max(50, math.ceil((plain + 1.192e9) / GIB * 1.25) + 20)


def test_experts_spread_by_expert_parallelism_are_spread_in_the_stack(
        formats: Formats, tmp_path: Path) -> None:
    """Qwen3-30B-A3B-FP8 at tp 4 loads only with whole experts on each GPU (its 768-wide
    experts in 192-wide slices are not whole 128x128 blocks): the simulation's expert
    parallelism is vLLM's --enable-expert-parallel, and the stack passes it."""
    args = vllm_args(_stack(formats, "moe-fp8-ep", tmp_path).config)
    flags = _flags(args)
    assert flags["--model"] == "Qwen/Qwen3-30B-A3B-FP8"
    assert flags["--tensor-parallel-size"] == "4" and "--enable-expert-parallel" in args
    assert "--enable-expert-parallel" not in vllm_args(_stack(formats, "qwen-bf16",
                                                              tmp_path).config)


def test_a_drafter_named_in_the_scenario_and_mtp_follow_the_model() -> None:
    models = builtin_catalog().models
    spec = SpeculativeSpec(method="eagle3", num_speculative_tokens=2, mean_acceptance_length=2,
                           drafter="someone/my-eagle3-head")
    assert speculative_config("Qwen3-235B-A22B", models["Qwen3-235B-A22B"], spec)["model"] == \
        "someone/my-eagle3-head"
    mtp = SpeculativeSpec(method="mtp", num_speculative_tokens=1, mean_acceptance_length=1.8)
    # DeepSeek-V3 ships an MTP layer, used as the drafter of the same checkpoint
    assert speculative_config("DeepSeek-V3", models["DeepSeek-V3"], mtp) == {
        "method": "mtp", "num_speculative_tokens": 1}
    with pytest.raises(ValueError, match="ships no MTP layers"):
        speculative_config("Llama-3.3-70B", models["Llama-3.3-70B"], mtp)
    with pytest.raises(ValueError, match="ngram downloads no drafter"):
        SpeculativeSpec(method="ngram", mean_acceptance_length=1.5, drafter="a/b")


def test_the_hub_token_is_asked_for_only_where_a_repository_may_be_gated(
        formats: Formats, tmp_path: Path) -> None:
    def token(name: str) -> str | None:
        secrets = _stack(formats, name, tmp_path).secrets
        return next((s.why for s in secrets if s.key == "hfToken"), None)

    assert token("qwen-bf16") is None                   # Qwen's repositories are open
    assert token("qwen8-fp8") is None
    gated = token("llama-fp8-eagle3")
    assert gated is not None and "meta-llama/Llama-3.3-70B-Instruct is gated" in gated
    unknown = token("qwen-nvfp4")
    assert unknown is not None and "if nvidia/Qwen3-235B-A22B-FP4 is gated" in unknown


def test_stack_command_refuses_an_unbuildable_deployment(tmp_path: Path) -> None:
    scenario = tmp_path / "oss.yaml"
    scenario.write_text(
        "name: oss\nduration: 10\ntraffic: {kind: poisson, rate_per_s: 0.5}\n"
        "tasks: [{name: chat, prompt_tokens: {kind: fixed, tokens: 100}, "
        "output_tokens: {kind: fixed, tokens: 10}}]\n"
        "deployments:\n  oss: {gpu: H100-SXM, model: gpt-oss-20b, engine: {weights_dtype: bf16}}\n")
    result = CliRunner().invoke(app, ["stack", str(scenario), "--deployment", "oss",
                                      "--out", str(tmp_path)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "no published bf16 checkpoint" in text, result.output
    assert not (tmp_path / "Pulumi.dev.yaml").exists()
    simulated = CliRunner().invoke(app, ["simulate", str(scenario), "--out",
                                         str(tmp_path / "out")])
    assert simulated.exit_code == 0, simulated.output
    assert "cannot be provisioned as simulated" in " ".join(simulated.output.split())


def test_a_checkpoint_added_in_the_scenario_catalog_is_served(tmp_path: Path) -> None:
    """What the refusal suggests works: a scenario names the int4 repository it has."""
    scenario = tmp_path / "scout.yaml"
    scenario.write_text(
        "name: scout\nduration: 10\ntraffic: {kind: poisson, rate_per_s: 0.5}\n"
        "tasks: [{name: chat, prompt_tokens: {kind: fixed, tokens: 100}, "
        "output_tokens: {kind: fixed, tokens: 10}}]\n"
        "deployments:\n  scout: {gpu: H100-SXM, model: Llama-4-Scout, "
        "engine: {weights_dtype: int4}}\n"
        "catalog:\n  models:\n    Llama-4-Scout:\n      checkpoints:\n        int4:\n"
        "          hf_id: example/Llama-4-Scout-W4A16\n"
        "          source: our own GPTQ export, group size 128\n")
    loaded = load_scenario(scenario)
    written = write_stack(tmp_path / "Pulumi.dev.yaml", loaded, evaluate(loaded), None, {})
    assert _flags(vllm_args(written.config))["--model"] == "example/Llama-4-Scout-W4A16"
    hub = next(s.why for s in written.secrets if s.key == "hfToken")
    assert "if example/Llama-4-Scout-W4A16 is gated" in hub     # its gating is not given


def test_a_repository_with_a_second_copy_is_downloaded_whole_before_vllm_0_14(
        tmp_path: Path) -> None:
    """gpt-oss's repository keeps its weights twice (the root, and original/); vLLM before
    0.14.0 downloads every *.safetensors, so the volume and the first start hold both."""
    from helpers import chat_scenario
    from infra_scenarios import simulate_text, stack_of

    from llmplan.provision.serving_manifests import checkpoint_gib
    simulated = simulate_text(chat_scenario("copies", """
  old: {gpu: H100-SXM, model: gpt-oss-20b, engine: {vllm_version: "0.13.0"}}
  new: {gpu: H100-SXM, model: gpt-oss-20b, engine: {vllm_version: "0.14.0"}}
  llama: {gpu: H100-SXM, model: Llama-3.1-8B, engine: {vllm_version: "0.13.0"}}
"""))
    old, new = (stack_of(simulated, name, tmp_path).config for name in ("old", "new"))
    assert checkpoint_gib(old) == pytest.approx(2 * checkpoint_gib(new))
    assert serving_sizes(old)[2] >= 2.5 * checkpoint_gib(new)      # 1.25 x both copies
    assert serving_sizes(old)[1] == serving_sizes(new)[1]            # one set is loaded
    llama = stack_of(simulated, "llama", tmp_path).config
    assert checkpoint_gib(llama) == pytest.approx(8.03e9 * 2 / GIB, rel=0.05)


def test_fp8_quantised_while_loading_must_fit_in_16_bits_before_vllm_0_16() -> None:
    """Llama-4-Maverick has no published FP8 checkpoint: vLLM quantises its BF16 one while
    loading. Before 0.16.0 every BF16 weight sits on the GPUs first, 94 GiB a GPU at tp 8,
    more than an H100 holds; 0.16.0 quantises each layer as its shards arrive."""
    from helpers import chat_scenario

    from llmplan.scenario import load_scenario_text
    loaded = load_scenario_text(chat_scenario("online-fp8", """
  old: {gpu: H100-SXM, model: Llama-4-Maverick, tp: 8,
        engine: {weights_dtype: fp8, vllm_version: "0.15.0", max_model_len: 8192}}
  new: {gpu: H100-SXM, model: Llama-4-Maverick, tp: 8,
        engine: {weights_dtype: fp8, vllm_version: "0.16.0", max_model_len: 8192}}
  h200: {gpu: H200, model: Llama-4-Maverick, tp: 8,
         engine: {weights_dtype: fp8, vllm_version: "0.15.0", max_model_len: 8192}}
"""))
    problems = not_provisionable(loaded)
    assert len(problems) == 1 and "'old'" in problems[0]
    assert "vllm_version >= 0.16.0" in problems[0] and "GiB a GPU" in problems[0]
    # and the stack refuses it, named or not
    result = evaluate(loaded)
    assert result.recommendation.deployment != "old"
    with pytest.raises(InputError, match=r"vllm_version >= 0\.16\.0"):
        write_stack(Path("/nonexistent/Pulumi.old.yaml"), loaded, result, "old", {})


TABLES = chat_scenario("tables", """
  # Llama 3.1 8B at tp 4: four worker processes, each with 2,048 request slots
  v1: {gpu: H100-SXM, model: Llama-3.1-8B, tp: 4,
       engine: {model_runner: v1, max_num_seqs: 2048, max_model_len: 131072}}
  v2: {gpu: H100-SXM, model: Llama-3.1-8B, tp: 4,
       engine: {model_runner: v2, max_num_seqs: 2048, max_model_len: 131072}}
  short: {gpu: H100-SXM, model: Llama-3.1-8B, tp: 4,
          engine: {model_runner: v2, max_num_seqs: 2048, max_model_len: 65536}}
""")


def test_a_pods_memory_holds_each_workers_token_table(tmp_path: Path) -> None:
    """Every worker process (one per GPU) allocates, zeroed at start-up, a table of token
    ids of max_num_seqs rows by max_model_len: int32 plus a bool a position in V1's
    runner (gpu_input_batch.py), int32 in pinned memory in V2's (gpu/states.py). The pod's
    memory grows by it with its workers, on paper: 4 x 2,048 x 131,072 positions."""
    from llmplan.provision.serving_manifests import token_table_gib
    simulated = simulate_text(TABLES)
    v1, v2, short = (stack_of(simulated, name, tmp_path).config
                     for name in ("v1", "v2", "short"))
    local = v2.plan.local
    assert local is not None
    assert token_table_gib(local[1].setup(v2.plan.catalog)) == 2048 * 131072 * 4 / GIB
    workers = 4
    # V1's bool a position more: 4 x 2,048 x 131,072 bytes = 1 GiB
    assert serving_sizes(v1)[1] - serving_sizes(v2)[1] == workers * 2048 * 131072 * 1 / GIB
    # half the context, half the table: 4 x 2,048 x 65,536 x 4 bytes = 2 GiB
    assert serving_sizes(v2)[1] - serving_sizes(short)[1] == \
        workers * 2048 * (131072 - 65536) * 4 / GIB
    statefulset = next(m for m in serving_manifests(v1) if m["kind"] == "StatefulSet")
    resources = statefulset["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"]["memory"] == f"{serving_sizes(v1)[1]}Gi"


SHARDED = chat_scenario("sharded", """
  # Llama 3.1 70B's BF16 checkpoint, quantised to FP8 as it loads: one server's pod at
  # tp 2 and at tp 4, and a replica of tp 2 x pp 2 over two servers of two L40S each
  tp2: {gpu: L40S, model: Llama-3.1-70B, tp: 2, engine: {weights_dtype: fp8}}
  tp4: {gpu: L40S, model: Llama-3.1-70B, tp: 4, engine: {weights_dtype: fp8}}
  stages: {gpu: L40S, model: Llama-3.1-70B, tp: 2, pp: 2, costs: {gpus_per_server: 2},
           engine: {weights_dtype: fp8}}
""")


def test_a_pods_memory_holds_what_its_workers_map_of_the_checkpoint(tmp_path: Path) -> None:
    """vLLM's workers map every safetensors file and each reads its shard of every tensor
    of its stages; a pod's workers share one page cache. A pod holding a whole replica maps
    the whole checkpoint at any tensor parallelism (its request once was the checkpoint
    over the pod's GPUs: a quarter of it at tp 4), and a pod of a replica over two servers
    maps its half of the stages, not the whole."""
    import kubernetes_validate
    from pulumi_harness import run_program, stack_values

    from llmplan.provision.serving_manifests import checkpoint_gib, token_table_gib
    from llmplan.provision.shared_memory import shm_gib
    simulated = simulate_text(SHARDED)
    tp2, tp4, stages = (stack_of(simulated, name, tmp_path) for name in ("tp2", "tp4",
                                                                        "stages"))
    mapped_gib = checkpoint_gib(tp4.config, copies=False)
    assert mapped_gib > 120                                 # 141 GB of BF16 files
    assert serving_sizes(tp2.config)[1] >= mapped_gib
    # tp 4 maps the same files; its pod asks more only by its two more workers' token
    # tables (test_a_pods_memory_holds_each_workers_token_table) and their rings in its
    # /dev/shm (tests/infra/test_shared_memory.py)
    setups = {pod.config.plan.local[1].tp: pod.config.plan.local[1].setup(
        pod.config.plan.catalog) for pod in (tp2, tp4)}
    tables = {tp: tp * token_table_gib(setup) for tp, setup in setups.items()}
    assert abs(serving_sizes(tp4.config)[1] - serving_sizes(tp2.config)[1]
               - (tables[4] - tables[2]) - (shm_gib(setups[4]) - shm_gib(setups[2]))) < 1
    pod_gib = serving_sizes(stages.config)[1]
    assert mapped_gib / 2 <= pod_gib < mapped_gib
    # the rendered pods ask it, and validate
    for manifest in serving_manifests(tp4.config):
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)
    run = run_program(stack_values(tp4.path), {"gatewayMasterKey": "mk-test-master-key"})
    statefulset = run.mocks.of_type("kubernetes:apps/v1:StatefulSet")[0].inputs
    resources = statefulset["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == \
        f"{serving_sizes(tp4.config)[1]}Gi"
    assert resources["requests"]["nvidia.com/gpu"] == "4"
