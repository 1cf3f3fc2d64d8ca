"""A pinned vLLM release older than the model's architecture or its weights' format cannot
serve it: the deployment is refused as written, with the release that loads it (boundaries
read in the published wheels' model registry and quantization methods)."""

from __future__ import annotations

import pytest

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import build_error
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.support import ARCHITECTURE_RELEASES, LISTED_IN_0_6_4, release_error
from llmplan.scenario import load_scenario_text

CATALOG = builtin_catalog()


def _setup(model: str, release: str, gpu: str = "H100-SXM", weights: str | None = None,
           tp: int = 1, **model_fields: object) -> ReplicaSetup:
    spec = CATALOG.models[model].model_copy(update=model_fields)
    return ReplicaSetup(gpu, model, CATALOG.gpus[gpu], spec,
                        EngineSpec(vllm_version=release, weights_dtype=weights),  # type: ignore[arg-type]
                        tp)


@pytest.mark.parametrize(("model", "before", "first"), [
    ("DeepSeek-V3", "0.6.5", "0.6.6"),
    ("Gemma-3-27B", "0.7.3", "0.8.0"),
    ("Llama-4-Scout", "0.8.2", "0.8.3"),
    ("Mistral-Small-3.2-24B", "0.8.2", "0.8.3"),
    ("Qwen3-8B", "0.8.3", "0.8.4"),
    ("Qwen3-30B-A3B", "0.8.3", "0.8.4"),
    ("gpt-oss-20b", "0.10.0", "0.10.1"),
])
def test_a_release_before_the_architecture_cannot_load_the_model(
        model: str, before: str, first: str) -> None:
    error = release_error(_setup(model, before))
    assert error is not None
    assert CATALOG.models[model].architecture in error
    assert error.endswith(f"expected vllm_version >= {first}")
    assert release_error(_setup(model, first)) is None


def test_every_catalog_architecture_has_a_boundary_or_predates_the_oldest_wheel_read() -> None:
    for name, model in CATALOG.models.items():
        assert model.architecture is not None, name
        assert model.architecture in ARCHITECTURE_RELEASES \
            or model.architecture in LISTED_IN_0_6_4, name
        assert model.sources.get("architecture"), name


def test_old_architectures_and_unknown_ones_are_not_refused() -> None:
    assert release_error(_setup("Llama-3.1-8B", "0.5.0")) is None
    # a scenario's own model: an architecture the table does not list, or none at all
    assert release_error(_setup("Qwen3-8B", "0.6.0", architecture="MyModelForCausalLM")) is None
    assert release_error(_setup("Qwen3-8B", "0.6.0", architecture=None)) is None


def test_nvfp4_needs_blackwell_before_marlin_and_experts_need_0_9() -> None:
    # dense NVFP4: ModelOpt's config came in 0.8.0, for compute capability 10.0 and up
    assert release_error(_setup("Llama-3.1-8B", "0.8.0", "B200", "nvfp4")) is None
    assert "0.8.0" in (release_error(_setup("Llama-3.1-8B", "0.7.3", "B200", "nvfp4")) or "")
    # below 10.0 it runs through Marlin's FP4 kernels, from 0.9.0
    old_card = release_error(_setup("Llama-3.1-8B", "0.8.5", "L40S", "nvfp4"))
    assert old_card is not None and "compute capability 8.9" in old_card
    assert old_card.endswith(">= 0.9.0")
    assert release_error(_setup("Llama-3.1-8B", "0.9.0", "L40S", "nvfp4")) is None
    # experts in NVFP4 came in 0.9.0, on any card
    experts = release_error(_setup("Qwen3-30B-A3B", "0.8.5", "B200", "nvfp4"))
    assert experts is not None and "ModelOptNvFp4FusedMoE" in experts
    assert release_error(_setup("Qwen3-30B-A3B", "0.9.0", "B200", "nvfp4")) is None


def test_fp8_block_scales_came_in_0_6_6() -> None:
    # Qwen3's FP8 repositories have 128 x 128 blocks; without the architecture's own
    # boundary, the format's is what refuses
    block = release_error(_setup("Qwen3-8B", "0.6.5", weights="fp8", architecture=None))
    assert block is not None and "block scales" in block and block.endswith(">= 0.6.6")
    assert release_error(_setup("Qwen3-8B", "0.6.6", weights="fp8", architecture=None)) is None
    # per-tensor FP8 (no blocks) is older than any wheel read
    assert release_error(_setup("Llama-3.1-8B", "0.6.4", weights="fp8")) is None


def test_every_cause_is_named_with_the_release_that_loads_them_all() -> None:
    error = release_error(_setup("gpt-oss-20b", "0.9.2"))
    assert error is not None
    assert "GptOssForCausalLM" in error and "MXFP4" in error
    assert error.startswith("vLLM 0.9.2 cannot serve gpt-oss-20b in mxfp4: ")
    # the Marlin rule and the architecture's: the later one is the advice
    both = release_error(_setup("Qwen3-8B", "0.8.3", "L40S", "nvfp4"))
    assert both is not None and "0.8.4" in both and both.endswith(">= 0.9.0")


def test_planning_and_the_loader_refuse_it_at_the_release_field() -> None:
    assert build_error(_setup("Qwen3-8B", "0.8.3")) == release_error(_setup("Qwen3-8B", "0.8.3"))
    loaded = load_scenario_text("""
name: s
duration: 10
traffic: {kind: poisson, rate_per_s: 1}
tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 100},
         output_tokens: {kind: fixed, tokens: 10}}]
deployments:
  old: {kind: local, gpu: H100-SXM, model: gpt-oss-20b, engine: {vllm_version: "0.10.0"}}
  new: {kind: local, gpu: H100-SXM, model: gpt-oss-20b, engine: {vllm_version: "0.10.1"}}
""")
    assert set(loaded.unbuildable) == {"old"}
    problem = loaded.unbuildable["old"]
    assert problem.startswith("deployments.old.engine.vllm_version: vLLM 0.10.0 cannot serve")
    assert problem.endswith("expected vllm_version >= 0.10.1")
