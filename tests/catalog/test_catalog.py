"""The built-in catalog: sourced numbers, required entries, reference KV sizes, overrides."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from llmplan.catalog import Checkpoint, GpuSpec, MeasuredLatency, ModelSpec, builtin_catalog
from llmplan.errors import ScenarioError
from llmplan.scenario import load_scenario

KIB = 1024

#: Ids the examples, tests and README use, plus what issue 10 asks for.
REQUIRED_GPUS = ["H100-SXM", "H100-PCIe", "A100-40GB", "A100-80GB", "L40S", "L4", "A10G",
                 "RTX-4090", "H200", "B200", "MI300X", "RTX-PRO-6000"]
REQUIRED_MODELS = ["Llama-3.1-8B", "Llama-3.1-70B", "Qwen2.5-7B", "Qwen2.5-72B", "Mistral-7B",
                   "Mixtral-8x7B", "SmolLM2-135M", "Llama-3.3-70B", "Llama-4-Scout", "Qwen3-8B",
                   "Qwen3-32B", "Qwen3-30B-A3B", "Qwen3-235B-A22B", "gpt-oss-20b",
                   "gpt-oss-120b", "DeepSeek-V3", "DeepSeek-R1", "Gemma-3-27B"]


def _entries() -> list[tuple[str, BaseModel]]:
    catalog = builtin_catalog()
    return [(f"{section}/{key}", entry)
            for section in ("gpus", "models", "cloud_models")
            for key, entry in getattr(catalog, section).items()]


def _numeric_fields(entry: BaseModel) -> list[str]:
    """Numbers the entry sets itself (a field left at its default needs no source)."""
    return [name for name, value in entry if isinstance(value, int | float)
            and not isinstance(value, bool) and name in entry.model_fields_set]


def test_catalog_has_entries_of_every_kind() -> None:
    catalog = builtin_catalog()
    assert catalog.gpus and catalog.models and catalog.cloud_models


def _set_numbers_and_structures(entry: BaseModel) -> list[str]:
    """Fields the entry sets itself that hold a number or a structure (defaults need none)."""
    return [name for name in entry.model_fields_set if name != "sources"
            and isinstance(getattr(entry, name), int | float | dict | list | BaseModel)
            and not isinstance(getattr(entry, name), bool)]


@pytest.mark.parametrize(("key", "entry"), _entries(), ids=[k for k, _ in _entries()])
def test_every_number_has_a_non_empty_source(key: str, entry: Any) -> None:
    sourced = _set_numbers_and_structures(entry)
    assert len(sourced) >= 5, f"{key} sets almost no numbers: {sourced}"
    for name in sourced:
        if isinstance(getattr(entry, name), MeasuredLatency):   # sourced in itself
            measured = getattr(entry, name)
            for figure in [*_set_numbers_and_structures(measured), "as_of"]:
                assert measured.sources.get(figure, "").strip(), f"{key}.{name}.{figure}"
            assert set(measured.sources) <= set(type(measured).model_fields), key
            continue
        if name in entry.self_sourced_fields:   # each item carries its own source
            assert all(item.source.strip() for item in getattr(entry, name).values()), name
            continue
        assert entry.sources.get(name, "").strip(), f"{key}.{name} has no source"
    if getattr(entry, "hub_gated", None) is not None:
        assert entry.sources.get("hub_gated", "").strip(), f"{key}.hub_gated has no source"
    # and no source describes a field the entry does not have (a typo would hide a gap)
    assert set(entry.sources) <= set(type(entry).model_fields), key


def test_a_number_without_a_source_is_rejected() -> None:
    fields = builtin_catalog().gpus["L4"].model_dump()
    del fields["sources"]["tdp_w"]
    with pytest.raises(ValidationError, match="no source given for: tdp_w"):
        GpuSpec.model_validate(fields)


@pytest.mark.parametrize("gpu", REQUIRED_GPUS)
def test_required_gpu_exists(gpu: str) -> None:
    spec = builtin_catalog().gpus[gpu]
    assert spec.memory_mib > 0 and spec.memory_bandwidth_gb_per_s > 0
    assert spec.memory_bytes == spec.memory_mib * 2**20


@pytest.mark.parametrize("model", REQUIRED_MODELS)
def test_required_model_exists(model: str) -> None:
    spec = builtin_catalog().models[model]
    assert spec.kv_heads <= spec.attention_heads
    assert spec.active_params_b <= spec.params_b


def test_kv_bytes_per_token_of_llama_3_1() -> None:
    # REFERENCE: K and V x layers x kv_heads x head_dim x 2 bytes (bf16)
    #   8B:  2 x 32 x 8 x 128 x 2 = 131072 B = 128 KiB
    #   70B: 2 x 80 x 8 x 128 x 2 = 327680 B = 320 KiB
    models = builtin_catalog().models
    assert models["Llama-3.1-8B"].kv_bytes_per_token("bf16") == 128 * KIB
    assert models["Llama-3.1-70B"].kv_bytes_per_token("bf16") == 320 * KIB
    assert models["Llama-3.1-8B"].kv_bytes_per_token("fp8") == 64 * KIB


SCENARIO = """\
name: catalog-check
duration: 10m
traffic: {{kind: poisson, rate_per_s: 1}}
tasks:
  - name: chat
    prompt_tokens: {{kind: fixed, tokens: 100}}
    output_tokens: {{kind: fixed, tokens: 10}}
deployments:
  a: {{gpu: {gpu}, model: {model}}}
catalog:
{catalog}"""


def _load(tmp_path: Path, catalog: str, gpu: str = "L4", model: str = "Llama-3.1-8B") -> Any:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO.format(gpu=gpu, model=model, catalog=catalog))
    return path, load_scenario(path)


def test_override_one_field_of_a_builtin_gpu(tmp_path: Path) -> None:
    path, loaded = _load(tmp_path, "  gpus:\n    L4:\n      memory_mib: 23034\n")
    builtin = builtin_catalog().gpus["L4"]
    l4 = loaded.catalog.gpus["L4"]
    assert l4.memory_mib == 23034
    assert str(path) in l4.sources["memory_mib"]
    for name in _numeric_fields(builtin):
        if name != "memory_mib":
            assert getattr(l4, name) == getattr(builtin, name)
            assert l4.sources[name] == builtin.sources[name]
    assert l4.name == builtin.name and l4.prices_as_of == builtin.prices_as_of
    # the shared built-in catalog is untouched
    assert builtin_catalog().gpus["L4"].memory_mib == 22478.3125
    assert str(path) not in builtin_catalog().gpus["L4"].sources["memory_mib"]


def test_override_keeps_a_source_given_in_the_scenario(tmp_path: Path) -> None:
    _, loaded = _load(tmp_path, "  cloud_models:\n    gpt-4o:\n      input_usd_per_mtok: 2.0\n"
                                "      sources: {input_usd_per_mtok: negotiated contract 2025}\n")
    gpt = loaded.catalog.cloud_models["gpt-4o"]
    assert gpt.input_usd_per_mtok == 2.0
    assert gpt.sources["input_usd_per_mtok"] == "negotiated contract 2025"
    assert gpt.output_usd_per_mtok == builtin_catalog().cloud_models["gpt-4o"].output_usd_per_mtok


NEW_GPU = {"name": "Test accelerator 192GB", "memory_mib": 196608, "marketed_memory_gb": 192,
           "compute_capability": "8.9", "bf16_dense_tflops": 400,
           "memory_bandwidth_gb_per_s": 2000,
           "interconnect_gb_per_s": 64, "tdp_w": 500, "purchase_usd": 12000,
           "rental_usd_per_gpu_hour": 1.5, "reserved_usd_per_gpu_hour": 1.0,
           "prices_as_of": "2026-11-01"}


def _gpu_yaml(fields: dict[str, Any]) -> str:
    return "  gpus:\n    TEST-96:\n" + "".join(f"      {k}: {v}\n" for k, v in fields.items())


def test_add_a_new_gpu_used_by_a_deployment(tmp_path: Path) -> None:
    path, loaded = _load(tmp_path, _gpu_yaml(NEW_GPU), gpu="TEST-96", model="Llama-3.1-70B")
    gpu = loaded.catalog.gpus["TEST-96"]
    assert loaded.scenario.deployments["a"].gpu == "TEST-96"
    assert gpu.memory_mib == 196608 and gpu.tdp_w == 500 and gpu.interconnect == "pcie"
    assert gpu.fp8_dense_tflops is None and gpu.fp4_dense_tflops is None
    assert gpu.prices_as_of == datetime.date(2026, 11, 1)
    for name in _numeric_fields(gpu):
        assert str(path) in gpu.sources[name]
    assert set(builtin_catalog().gpus) < set(loaded.catalog.gpus)
    assert "TEST-96" not in builtin_catalog().gpus


def test_new_gpu_still_gets_the_memory_check(tmp_path: Path) -> None:
    # 70.55e9 params x 2 B = 131.4 GiB of weights > 96 GiB x 0.92 (vLLM's default from 0.21)
    # = 88.3 GiB usable; with tp=2 half the weights plus the profiling peak fit.
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, _gpu_yaml({**NEW_GPU, "memory_mib": 96 * 1024,
                                   "marketed_memory_gb": 103}), gpu="TEST-96",
              model="Llama-3.1-70B")
    (problem,) = info.value.problems
    # What the catalog guarantees: a GPU added in the scenario goes through the same check and
    # the problem names the deployment and the GPU.
    assert problem.path == "deployments.a"
    assert "TEST-96" in problem.message
    assert "does not fit on TEST-96" in problem.message
    assert "weights 131.4" in problem.message
    assert "88.3 GiB usable" in problem.message and "tp >= 2" in problem.message


@pytest.mark.parametrize("missing", ["tdp_w", "memory_bandwidth_gb_per_s", "name", "memory_mib",
                                     "prices_as_of"])
def test_new_gpu_lacking_a_field_names_it(tmp_path: Path, missing: str) -> None:
    fields = {k: v for k, v in NEW_GPU.items() if k != missing}
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, _gpu_yaml(fields), gpu="TEST-96")
    (problem,) = info.value.problems
    path = tmp_path / "scenario.yaml"
    assert problem.file == str(path)
    assert problem.path == f"catalog.gpus.TEST-96.{missing}"
    lines = path.read_text().splitlines()
    assert problem.line == lines.index("    TEST-96:") + 1
    assert "required field is missing" in problem.message


def test_new_model_lacking_fields_lists_every_one(tmp_path: Path) -> None:
    catalog = "  models:\n    tiny:\n      hf_id: me/tiny\n      layers: 2\n"
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, catalog, model="tiny")
    missing = {p.path.rsplit(".", 1)[-1] for p in info.value.problems}
    assert missing == {"hidden_size", "attention_heads", "kv_heads", "head_dim",
                       "intermediate_size", "vocab_size", "params_b", "active_params_b",
                       "max_context_tokens"}


def _repo(model: str, dtype: str) -> Checkpoint:
    repo = builtin_catalog().models[model].weights_repo(dtype)
    assert repo is not None, f"{model} has no {dtype} checkpoint"
    return repo


def test_each_weights_format_has_its_own_repository() -> None:
    """The official checkpoint holds the format the model ships in; other formats are
    separate published repositories, and a format nobody published has none."""
    models = builtin_catalog().models
    assert _repo("Qwen3-235B-A22B", "bf16").hf_id == "Qwen/Qwen3-235B-A22B"
    assert _repo("Qwen3-235B-A22B", "fp8").hf_id == "Qwen/Qwen3-235B-A22B-FP8"
    assert _repo("gpt-oss-20b", "mxfp4").hf_id == "openai/gpt-oss-20b"
    assert models["gpt-oss-20b"].weights_repo("bf16") is None      # ships only MXFP4 experts
    assert models["DeepSeek-V3"].weights_repo("nvfp4") is None
    # gating is a fact per repository: Meta's are gated, Qwen's are not
    assert _repo("Llama-3.3-70B", "bf16").hub_gated is True
    assert _repo("Qwen3-8B", "bf16").hub_gated is False


def test_a_checkpoint_for_the_default_format_or_a_gate_without_source_is_refused() -> None:
    fields = builtin_catalog().models["Qwen3-8B"].model_dump(exclude_unset=True)
    with pytest.raises(ValidationError, match="hf_id already holds the default_dtype"):
        ModelSpec.model_validate({**fields, "checkpoints": {"bf16": {
            "hf_id": "someone/Qwen3-8B-copy", "source": "a copy"}}})
    del fields["sources"]["hub_gated"]
    with pytest.raises(ValidationError, match="no source given for: hub_gated"):
        ModelSpec.model_validate(fields)


@pytest.mark.parametrize(("params_b", "active_b", "said"), [
    (1.477, 14.77, "active_params_b (14.77) exceeds params_b (1.477)"),   # a slipped digit
    (1.2, 1.2, "params_b (1.2) is not above what the embeddings"),        # below its shapes
    # 48 x (2 x 5120 x 128 x 48 + 2 x 5120 x 13824) + 2 x 152064 x 5120 = 11.4 billion at
    # least in the layers and embeddings (an MLP's up and down matrices, whether or not it
    # has a gate): a total of 4.77 reads a third of the weights
    (4.77, 4.77, "params_b (4.77) is below what these shapes hold (11.4 billion"),
    # a dense model's token goes through every layer: 1.77 of 14.77 would compute it 8x fast
    (14.77, 1.77, "active_params_b (1.77) is below what a token goes through"),
])
def test_a_new_models_parameter_counts_must_fit_its_shapes(
        tmp_path: Path, params_b: float, active_b: float, said: str) -> None:
    # 48 layers of hidden 5,120 and a 152,064-token vocabulary: the two embedding matrices
    # alone hold 1.56 billion parameters, so a total below that is a typo, which would
    # leave no weights to read and compute (negative per-token cost in the step model)
    catalog = ("  models:\n    typo:\n      hf_id: me/typo\n      layers: 48\n"
               "      hidden_size: 5120\n      attention_heads: 40\n      kv_heads: 8\n"
               "      head_dim: 128\n      intermediate_size: 13824\n"
               "      vocab_size: 152064\n"
               f"      params_b: {params_b}\n      active_params_b: {active_b}\n"
               "      max_context_tokens: 32768\n")
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, catalog, gpu="H100-SXM", model="typo")
    (problem,) = info.value.problems
    assert problem.path == "catalog.models.typo" and said in problem.message
    # the same shapes with the counts the model card gives load
    good = catalog.replace(f"params_b: {params_b}\n      active_params_b: {active_b}",
                           "params_b: 14.77\n      active_params_b: 14.77")
    assert _load(tmp_path, good, gpu="H100-SXM", model="typo")[1].catalog.models["typo"]


@pytest.mark.parametrize(("shape", "said"), [
    ("attention_heads: 40\n      kv_heads: 80", "must be a multiple of kv_heads (80)"),
    ("attention_heads: 40\n      kv_heads: 6", "must be a multiple of kv_heads (6)"),
    ("experts_per_token: 65", "experts_per_token (65) exceeds experts (64)"),
    ("moe_layers: 60", "moe_layers (60) exceeds layers (48)"),
    ("active_params_b: 0.5", "below what a token's 8 routed experts alone hold"),
    ("kv_heads: 4", None),                     # the shapes as a real MoE has them load
])
def test_a_new_models_shapes_must_agree_with_each_other(
        tmp_path: Path, shape: str, said: str | None) -> None:
    """Shapes no checkpoint can have are refused where they are written (each of these
    simulated before, one crashed after simulating: k > E made the expected count of
    experts a step touches the power of a negative number)."""
    base = {"attention_heads": "40", "kv_heads": "8", "experts_per_token": "8",
            "moe_layers": "48", "active_params_b": "3.3"}
    for line in shape.split("\n"):
        key, value = line.strip().split(": ")
        base[key] = value
    catalog = ("  models:\n    moe:\n      hf_id: me/moe\n      layers: 48\n"
               "      hidden_size: 2048\n      head_dim: 128\n      intermediate_size: 6144\n"
               "      vocab_size: 151936\n      params_b: 30.5\n"
               "      max_context_tokens: 32768\n      experts: 64\n"
               "      moe_intermediate_size: 768\n"
               + "".join(f"      {k}: {v}\n" for k, v in base.items()))
    if said is None:
        assert _load(tmp_path, catalog, gpu="H100-SXM", model="moe")[1].catalog.models["moe"]
        return
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, catalog, gpu="H100-SXM", model="moe")
    (problem,) = info.value.problems
    assert problem.path == "catalog.models.moe" and said in problem.message, problem.message


def test_a_price_dated_after_today_is_refused() -> None:
    """A date to come would keep the 180-day staleness warning quiet for ever."""
    gpu = builtin_catalog().gpus["L40S"].model_dump()
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    with pytest.raises(ValidationError, match="is after today"):
        GpuSpec.model_validate({**gpu, "prices_as_of": tomorrow})
    GpuSpec.model_validate({**gpu, "prices_as_of": datetime.date.today()})


def test_a_new_nvidia_gpu_without_its_compute_capability_is_refused(tmp_path: Path) -> None:
    """vLLM picks kernels (Marlin or the FP8 and FP4 paths) and defaults by the compute
    capability: left out, a B300 would run as a card before Hopper, without a word."""
    from llmplan.errors import InputError
    fields = {k: v for k, v in NEW_GPU.items() if k != "compute_capability"}
    with pytest.raises(InputError) as caught:
        _load(tmp_path, _gpu_yaml(fields), gpu="TEST-96")
    [problem] = caught.value.problems
    assert "TEST-96" in str(problem.path) and "compute_capability" in str(problem.path)
    assert "required for an NVIDIA GPU" in problem.message and "10.3 B300" in problem.message
    # an AMD one has none; an unquoted number reads as written
    _load(tmp_path, _gpu_yaml({**fields, "vendor": "amd"}), gpu="TEST-96")
    _, loaded = _load(tmp_path, _gpu_yaml({**fields, "compute_capability": 10.0}), gpu="TEST-96")
    assert loaded.catalog.gpus["TEST-96"].capability == (10, 0)


@pytest.mark.parametrize(("gpu", "change", "said"), [
    # GiB typed where nvidia-smi's MiB belong: a 96 GB card with 96 MiB
    ("RTX-PRO-6000", {"memory_mib": 96}, "memory_mib (96) is not what a card marketed with"),
    # FP4 tensor cores on a Hopper: NVFP4 would run at a rate the GPU does not have
    ("H100-SXM", {"fp4_dense_tflops": 2400}, "fp4_dense_tflops on compute capability 9.0"),
    ("A100-80GB", {"fp8_dense_tflops": 624}, "fp8_dense_tflops on compute capability 8.0"),
    # an FP8 rate below BF16's: FP8 weights would run four times slower than 16-bit ones
    ("L40S", {"fp8_dense_tflops": 120}, "fp8_dense_tflops (120) is below bf16_dense_tflops"),
    ("B200", {"fp4_dense_tflops": 900}, "fp4_dense_tflops (900) is below fp8_dense_tflops"),
    # figures in the unit a thousand times off: every step would be that far off
    ("H100-SXM", {"memory_bandwidth_gb_per_s": 3.35},
     "memory_bandwidth_gb_per_s (3.35) is not in GB/s"),
    ("H100-SXM", {"bf16_dense_tflops": 0.989, "fp8_dense_tflops": 1.979},
     "bf16_dense_tflops (0.989) is not in dense TFLOP/s"),
    ("B200", {"fp4_dense_tflops": 9_000_000}, "fp4_dense_tflops (9e+06) is not in dense"),
    ("L40S", {"interconnect_gb_per_s": 32_000}, "interconnect_gb_per_s (32000) is not in GB/s"),
])
def test_a_gpus_memory_and_rates_must_agree_with_what_it_is(
        gpu: str, change: dict[str, float], said: str) -> None:
    fields = builtin_catalog().gpus[gpu].model_dump(exclude_unset=True)
    assert GpuSpec.model_validate(fields)
    sources = {**fields["sources"], **{name: "a datasheet" for name in change}}
    with pytest.raises(ValidationError, match=re.escape(said)):
        GpuSpec.model_validate({**fields, **change, "sources": sources})


def test_a_whole_compute_capability_reads_as_major_dot_zero() -> None:
    fields = builtin_catalog().gpus["RTX-PRO-6000"].model_dump(exclude_unset=True)
    assert GpuSpec.model_validate({**fields, "compute_capability": 12}).capability == (12, 0)


def test_a_scenarios_measured_latency_takes_the_scenario_as_its_source(tmp_path: Path) -> None:
    path, loaded = _load(tmp_path, "  cloud_models:\n    gpt-6-luna:\n      latency: "
                                   "{measured_by: our load test, as_of: 2026-11-01, "
                                   "output_tokens_per_s: 80}\n")
    latency = loaded.catalog.cloud_models["gpt-6-luna"].latency
    assert latency is not None and latency.output_tokens_per_s == 80
    assert latency.ttft_ms is None      # the block replaces the built-in one whole
    assert str(path) in latency.sources["output_tokens_per_s"]
    assert str(path) in latency.sources["as_of"]
    assert builtin_catalog().cloud_models["gpt-6-luna"].latency.output_tokens_per_s == 130.6


def test_the_least_reasoning_effort_is_a_reasoning_model_s_with_its_source() -> None:
    """least_reasoning_effort is what the gateway sends a plain task and what the simulation
    adds hidden tokens for: only a model that reasons has one, it is one OpenAI's
    reasoning_effort takes at its lowest, and it says where it comes from."""
    from llmplan.catalog import CloudModelSpec

    gpt5 = builtin_catalog().cloud_models["gpt-5"].model_dump()
    assert gpt5["least_reasoning_effort"] == "minimal"
    CloudModelSpec.model_validate(gpt5)
    with pytest.raises(ValidationError, match="least_reasoning_effort"):
        CloudModelSpec.model_validate({**gpt5, "least_reasoning_effort": "medium"})
    unsourced = {k: v for k, v in gpt5["sources"].items() if k != "least_reasoning_effort"}
    with pytest.raises(ValidationError, match="no source given for: least_reasoning_effort"):
        CloudModelSpec.model_validate({**gpt5, "sources": unsourced})
    plain = builtin_catalog().cloud_models["gpt-4o"].model_dump()
    with pytest.raises(ValidationError, match="is for a reasoning model"):
        CloudModelSpec.model_validate({**plain, "least_reasoning_effort": "none",
                                       "sources": {**plain["sources"],
                                                   "least_reasoning_effort": "x"}})
    # every reasoning model of the bundled catalog says how low it goes, and where from
    for key, spec in builtin_catalog().cloud_models.items():
        if spec.reasons:
            assert spec.sources.get("least_reasoning_effort"), key
