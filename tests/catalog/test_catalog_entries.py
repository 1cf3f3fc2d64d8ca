"""What the built-in catalog entries promise: GPU memory as the runtime reports it, dated
prices, consistent MoE / MLA / sliding-window architecture, weights as big as published
checkpoints, and cloud models whose default limits are their default tier's."""

from __future__ import annotations

import datetime

import pytest

from llmplan.catalog import builtin_catalog
from llmplan.sim.ratelimit import DEFAULT_ACCOUNTING

GIB = 2**30
KIB = 1024
MIB_PER_GIB = 1024

#: Issue 10 names these; the optional ones were added where the research had the data.
NEW_GPUS = ["H200", "B200", "MI300X", "RTX-PRO-6000", "GB200", "MI325X", "MI355X"]
NEW_MODELS = ["Llama-3.3-70B", "Llama-4-Scout", "Llama-4-Maverick", "Qwen3-0.6B", "Qwen3-8B",
              "Qwen3-32B", "Qwen3-30B-A3B", "Qwen3-235B-A22B", "gpt-oss-20b", "gpt-oss-120b",
              "DeepSeek-V3", "DeepSeek-R1", "Gemma-3-12B", "Gemma-3-27B",
              "Mistral-Small-3.2-24B", "Qwen3-Coder-480B-A35B"]
#: Flagship and small model of each API provider on 2026-12-01, the main Bedrock-hosted ones,
#: and the keys examples/*.yaml and the tests use.
CLOUD_MODELS = ["gpt-6-astra", "gpt-6.2-sol", "gpt-6-luna", "claude-opus-5.5",
                "claude-sonnet-5.5", "claude-haiku-5.5", "gemini-4-argon", "gemini-4-hydrogen",
                "gemini-3.5-flash-lite", "claude-sonnet-4.5-bedrock", "llama-3.3-70b-bedrock",
                "llama-4-maverick-bedrock", "nova-pro-bedrock", "deepseek-r1-bedrock",
                "gpt-oss-120b-bedrock", "gpt-4o", "gpt-4o-mini", "llama-3.1-70b-bedrock",
                "llama-3.1-8b-bedrock", "gpt-4o-azure", "claude-3.5-sonnet"]


@pytest.mark.parametrize("gpu", NEW_GPUS)
def test_new_gpu_exists_with_a_node_label(gpu: str) -> None:
    spec = builtin_catalog().gpus[gpu]
    assert spec.k8s_product_label and spec.sources["k8s_product_label"]


@pytest.mark.parametrize("model", NEW_MODELS)
def test_new_model_exists(model: str) -> None:
    spec = builtin_catalog().models[model]
    assert spec.hf_id.count("/") == 1
    assert spec.active_params_b <= spec.params_b


@pytest.mark.parametrize("key", CLOUD_MODELS)
def test_cloud_model_exists(key: str) -> None:
    spec = builtin_catalog().cloud_models[key]
    assert spec.input_usd_per_mtok > 0 and spec.output_usd_per_mtok >= spec.input_usd_per_mtok


def test_every_price_is_dated_and_not_in_the_future() -> None:
    catalog = builtin_catalog()
    priced = list(catalog.gpus.items()) + list(catalog.cloud_models.items())
    assert len(priced) >= 60
    for key, entry in priced:
        assert isinstance(entry.prices_as_of, datetime.date), key
        # the catalog was researched on 2026-12-01; a later date is a typo
        assert datetime.date(2024, 1, 1) <= entry.prices_as_of <= datetime.date(2026, 12, 1), key
        assert entry.sources.get("prices_as_of"), f"{key}: say which source the date is from"


@pytest.mark.parametrize("gpu", sorted(builtin_catalog().gpus))
def test_gpu_memory_is_what_the_runtime_reports(gpu: str) -> None:
    # Vendors' "GB" are rounded GiB; the driver keeps 0.35-0.9 GiB of them, so the runtime's
    # total lies below the label read as GiB and above 90% of it (L4: 91.5%).
    spec = builtin_catalog().gpus[gpu]
    label_mib = spec.marketed_memory_gb * MIB_PER_GIB
    assert 0.9 * label_mib < spec.memory_mib < label_mib
    assert spec.memory_bytes / GIB == pytest.approx(spec.memory_mib / MIB_PER_GIB)


def test_reported_memory_of_reference_gpus() -> None:
    # REFERENCE: deviceQuery / torch totals quoted in the sources; an "80 GB" card reports
    # 79.2 GiB (85.0e9 bytes), not 80e9 bytes.
    gpus = builtin_catalog().gpus
    assert gpus["H100-SXM"].memory_bytes == 85_045_477_376
    assert gpus["A100-80GB"].memory_bytes == 85_100_068_864
    assert gpus["L40S"].memory_bytes == 47_803_596_800
    assert gpus["L4"].memory_bytes == 23_570_219_008
    assert gpus["RTX-4090"].memory_bytes == 25_386_352_640
    assert gpus["MI300X"].memory_bytes == 206_141_652_992


def test_memory_estimates_say_so() -> None:
    for key, gpu in builtin_catalog().gpus.items():
        assert gpu.sources["memory_mib"].startswith(("CONFIRMED", "ESTIMATE")), key
    for key in ("GB200", "MI325X", "MI355X"):   # only the marketed size is known
        assert builtin_catalog().gpus[key].sources["memory_mib"].startswith("ESTIMATE")


def test_tensor_core_formats_follow_the_generation() -> None:
    gpus = builtin_catalog().gpus
    for ampere in ("A100-40GB", "A100-80GB", "A10G"):
        assert gpus[ampere].fp8_dense_tflops is None and not gpus[ampere].runs_natively("fp8")
    for key in ("H100-SXM", "H200", "L40S", "L4", "RTX-4090", "MI300X"):
        assert gpus[key].fp8_dense_tflops is not None and gpus[key].fp4_dense_tflops is None
    for blackwell in ("B200", "GB200", "RTX-PRO-6000", "MI355X"):
        spec = gpus[blackwell]
        assert spec.fp4_dense_tflops is not None and spec.fp8_dense_tflops is not None
        assert spec.fp4_dense_tflops == pytest.approx(2 * spec.fp8_dense_tflops, rel=0.01)
        assert spec.runs_natively("mxfp4") and spec.runs_natively("nvfp4")
    for key, spec in gpus.items():
        if spec.fp8_dense_tflops is not None:
            assert 1.9 < spec.fp8_dense_tflops / spec.bf16_dense_tflops < 2.1, key


def test_interconnect_is_per_direction() -> None:
    gpus = builtin_catalog().gpus
    assert gpus["H100-SXM"].interconnect_gb_per_s == 450       # NVLink 4: 900 both ways
    assert gpus["B200"].interconnect_gb_per_s == 900           # NVLink 5: 1800 both ways
    assert gpus["H100-PCIe"].interconnect_gb_per_s == 64       # PCIe Gen5 x16: 128
    assert gpus["L4"].interconnect_gb_per_s == 32              # PCIe Gen4 x16: 64
    assert gpus["MI300X"].interconnect == "infinity_fabric" and gpus["MI300X"].vendor == "amd"


# ---------------------------------------------------------------------------- models

def test_kv_bytes_per_token_reference_values() -> None:
    # REFERENCE: GQA 2 (K, V) x kv_heads x head_dim x 2 B per layer; MLA keeps one latent
    # (kv_lora_rank + qk_rope_head_dim) x 2 B per layer, whatever the head count.
    models = builtin_catalog().models
    assert models["Llama-3.1-8B"].kv_bytes_per_token("bf16") == 128 * KIB
    assert models["Llama-3.3-70B"].kv_bytes_per_token("bf16") == 320 * KIB
    deepseek = models["DeepSeek-V3"]
    assert deepseek.kv_bytes_per_token_per_layer("bf16") == (512 + 64) * 2
    assert deepseek.kv_bytes_per_token_per_layer("fp8") == 576
    assert deepseek.kv_bytes_per_token_per_layer("bf16", tp=8) == 1152   # replicated under TP
    assert deepseek.kv_bytes_per_token("bf16") == 61 * 1152
    # explicit head_dim, not hidden / heads: Qwen3-32B 8 x 128 (5120 / 64 would be 80)
    assert models["Qwen3-32B"].kv_bytes_per_token_per_layer("bf16") == 2 * 8 * 128 * 2
    assert models["gpt-oss-120b"].kv_bytes_per_token_per_layer("bf16") == 2 * 8 * 64 * 2


@pytest.mark.parametrize("model", [k for k, m in builtin_catalog().models.items() if m.is_moe])
def test_mixture_of_experts_is_consistent(model: str) -> None:
    spec = builtin_catalog().models[model]
    assert spec.experts is not None and spec.experts_per_token is not None
    assert spec.experts_per_token < spec.experts
    assert spec.moe_layers is not None and 0 < spec.moe_layers <= spec.layers
    assert spec.expert_params < spec.params_b * 1e9
    # what a token reads: all but the routed experts it does not use
    unused = spec.expert_params * (1 - spec.experts_per_token / spec.experts)
    assert spec.active_params_b * 1e9 == pytest.approx(spec.params_b * 1e9 - unused, rel=0.16)


def test_moe_layer_layouts() -> None:
    models = builtin_catalog().models
    assert models["DeepSeek-V3"].moe_layer_count == 61 - 3          # first 3 layers dense
    assert models["Llama-4-Maverick"].moe_layer_count == 48 // 2    # interleaved
    assert models["Llama-4-Scout"].moe_layer_count == 48
    assert models["Qwen3-235B-A22B"].shared_experts == 0
    assert models["DeepSeek-V3"].shared_experts == 1
    assert models["DeepSeek-V3"].mtp_layers == 1
    for key in ("DeepSeek-V3", "DeepSeek-R1"):
        assert models[key].attention == "mla" and models[key].default_dtype == "fp8"


def test_sliding_window_layers() -> None:
    models = builtin_catalog().models
    for key in ("gpt-oss-20b", "gpt-oss-120b"):     # 128-token windows on every other layer
        spec = models[key]
        assert spec.sliding_window_tokens == 128 and 2 * spec.sliding_layers == spec.layers
        assert spec.full_layers == spec.layers // 2
    for key in ("Gemma-3-12B", "Gemma-3-27B"):      # 5 local : 1 global, 1024-token windows
        spec = models[key]
        assert spec.sliding_window_tokens == 1024
        assert spec.full_layers == spec.layers // 6
    for key in ("Llama-4-Scout", "Llama-4-Maverick"):   # 3 of 4 layers chunked (8192)
        assert models[key].sliding_layers == 36 and models[key].sliding_window_tokens == 8192
    for key, spec in models.items():
        if spec.sliding_layers:
            assert spec.sliding_window_tokens is not None
            assert spec.sliding_window_tokens < spec.max_context_tokens, key
            assert 0 < spec.full_layers < spec.layers, key


def test_checkpoint_formats() -> None:
    models = builtin_catalog().models
    assert {models[k].default_dtype for k in ("gpt-oss-20b", "gpt-oss-120b")} == {"mxfp4"}
    assert models["Qwen3-32B"].default_dtype == "bf16"
    assert models["Gemma-3-27B"].tie_word_embeddings and models["Qwen3-0.6B"].tie_word_embeddings
    assert not models["Qwen3-8B"].tie_word_embeddings


#: Weights as published: vLLM's "Model loading took X GiB" (summed over TP ranks) or the
#: checkpoint size. (model, weights dtype, GiB, source)
PUBLISHED_WEIGHTS = [
    ("Llama-3.1-8B", "bf16", 14.99, "vLLM 0.11 on H100, llm-d-benchmark config_explorer/"
                                    "empirical-vllm-memory-results.md@b89b21c; vllm#10517"),
    ("Qwen3-0.6B", "bf16", 1.12, "vLLM 0.11 on H100, llm-d-benchmark memory results"),
    ("Qwen3-32B", "bf16", 61.03, "vLLM 0.11 on H100 TP1, llm-d-benchmark memory results"),
    ("Qwen3-32B", "bf16", 2 * 30.59, "vLLM 0.11 on H100 TP2, llm-d-benchmark memory results"),
    ("Mistral-Small-3.2-24B", "bf16", 44.76, "vLLM 0.11 on H100, llm-d-benchmark (with vision)"),
    ("Llama-3.3-70B", "fp8", 2 * 33.88, "RedHatAI Llama-3.3-70B-Instruct-FP8-dynamic, vLLM 0.11 "
                                        "TP2, llm-d-benchmark memory results"),
    ("Qwen3-8B", "fp8", 8.8, "Qwen3-8B-FP8, vLLM ~0.10.2 log in a public GitHub file"),
    ("Qwen3-30B-A3B", "fp8", 29.04, "Qwen3-30B-A3B-FP8, vLLM 0.13 (NVIDIA container) on GB10"),
    ("Qwen3-235B-A22B", "fp8", 4 * 55.19, "Qwen3-235B-A22B-Instruct-2507-FP8, recent vLLM TP4 "
                                          "on RTX PRO 6000 (public GitHub log)"),
    ("Qwen3-Coder-480B-A35B", "fp8", 450, "Qwen3-Coder-480B-A35B-Instruct-FP8 snapshot "
                                          "003f183a: 450G on disk (public benchmark doc)"),
    ("gpt-oss-20b", "mxfp4", 12.8, "GPT-OSS overview doc: ~12.8 GiB checkpoint"),
    ("gpt-oss-120b", "mxfp4", 60.8, "GPT-OSS overview doc: ~60.8 GiB checkpoint"),
]


@pytest.mark.parametrize(("model", "dtype", "gib", "source"), PUBLISHED_WEIGHTS,
                         ids=[f"{m}-{d}-{g:g}" for m, d, g, _ in PUBLISHED_WEIGHTS])
def test_weights_match_published_sizes(model: str, dtype: str, gib: float, source: str) -> None:
    weights_gib = builtin_catalog().models[model].weight_bytes(dtype) / GIB
    assert weights_gib == pytest.approx(gib, rel=0.02), source


def test_gpt_oss_in_vllm_on_hopper_holds_a_second_copy_of_its_scales() -> None:
    """vLLM 0.14.1 on one H100 loaded 64.38 GiB of gpt-oss-120b (vllm#33155, as llm-d's
    memory results: 13.47 GiB of gpt-oss-20b), 6% above the MXFP4 checkpoint: the Triton
    matmul's swizzled scales, padded to 256 rows, next to the checkpoint's until 0.25.0
    frees them. The float32 biases (2 MB a layer) are left out."""
    from llmplan.perf.engine import EngineSpec
    from llmplan.perf.memory import weights_bytes_per_gpu
    from llmplan.scenario.models import LocalDeployment
    catalog = builtin_catalog()
    for key, loaded_gib in (("gpt-oss-20b", 13.47), ("gpt-oss-120b", 64.38)):
        def weights_gib(version: str, key: str = key) -> float:
            setup = LocalDeployment(gpu="H100-SXM", model=key, engine=EngineSpec(
                vllm_version=version)).setup(catalog)
            return weights_bytes_per_gpu(setup) / GIB
        assert weights_gib("0.14.1") == pytest.approx(loaded_gib, rel=0.015), key
        checkpoint = catalog.models[key].weight_bytes("mxfp4") / GIB
        assert 1.0 < weights_gib("0.25.0") / checkpoint < 1.01, key     # one copy, padded


# ---------------------------------------------------------------------------- cloud models

@pytest.mark.parametrize("key", sorted(builtin_catalog().cloud_models))
def test_default_limits_are_the_default_tier(key: str) -> None:
    spec = builtin_catalog().cloud_models[key]
    assert spec.default_tier is not None and spec.default_tier in spec.rate_limit_tiers
    tier = spec.rate_limit_tiers[spec.default_tier]
    assert spec.default_rpm == tier.requests_per_min
    tokens = tier.input_tokens_per_min if tier.tokens_per_min is None else tier.tokens_per_min
    assert spec.default_tpm == tokens
    for name, limits in spec.rate_limit_tiers.items():   # an empty tier would read "no limit"
        assert limits.model_dump(exclude_none=True), f"{key}.{name} has no numbers"


@pytest.mark.parametrize("key", sorted(builtin_catalog().cloud_models))
def test_cache_prices_are_plausible(key: str) -> None:
    spec = builtin_catalog().cloud_models[key]
    if spec.cached_input_usd_per_mtok is not None:
        assert spec.cached_input_usd_per_mtok < spec.input_usd_per_mtok
    if spec.cache_write_usd_per_mtok is not None:
        assert spec.cache_write_usd_per_mtok >= spec.input_usd_per_mtok
        assert spec.cached_input_usd_per_mtok is not None
    if spec.max_output_tokens is not None:
        assert spec.max_output_tokens <= spec.context_tokens
    assert "STATUS:" in spec.sources.get("model_id", ""), "say whether it is current or retired"


def test_every_provider_has_a_rate_limit_accounting() -> None:
    providers = {spec.provider for spec in builtin_catalog().cloud_models.values()}
    assert providers == {"openai", "anthropic", "google", "bedrock", "azure_openai"}
    assert providers <= set(DEFAULT_ACCOUNTING)


def test_retired_models_are_marked() -> None:
    cloud = builtin_catalog().cloud_models
    # claude-sonnet-4.5's Claude API shutdown date (2026-11-30) passed
    for key in ("claude-3.5-sonnet", "claude-3.5-haiku", "gemini-2.5-pro", "o4-mini",
                "claude-sonnet-4.5"):
        assert "RETIRED" in cloud[key].sources["model_id"], key
    for key in ("gpt-4o", "gpt-4o-mini"):
        assert "DEPRECATED" in cloud[key].sources["model_id"], key
    assert "CURRENT" in cloud["claude-opus-5.5"].sources["model_id"]


# ---------------------------------------------------------------- measured latency

#: The cloud models examples/*.yaml use, and whether a public measurement of their latency
#: was found (the Bedrock-hosted Llama 3.3 70B and DeepSeek-R1 had none).
EXAMPLE_LATENCY = {"gpt-6-luna": True, "gpt-6-sol": True, "claude-sonnet-4.6": True,
                   "llama-3.3-70b-bedrock": False, "deepseek-r1-bedrock": False}


def _measured() -> list[str]:
    return [key for key, spec in builtin_catalog().cloud_models.items()
            if spec.latency is not None]


def test_the_examples_models_have_the_measured_latency_the_sources_allowed() -> None:
    cloud = builtin_catalog().cloud_models
    for key, measured in EXAMPLE_LATENCY.items():
        assert (cloud[key].latency is not None) is measured, key
    # the small and the flagship GPT-6 differ, as measured
    luna, sol = cloud["gpt-6-luna"].latency, cloud["gpt-6-sol"].latency
    assert luna is not None and sol is not None
    assert (luna.output_tokens_per_s, luna.ttft_ms) == (130.6, 740)
    assert (sol.output_tokens_per_s, sol.ttft_ms) == (103.3, 890)


@pytest.mark.parametrize("key", _measured())
def test_every_latency_figure_has_a_source_quoting_it_and_a_past_date(key: str) -> None:
    latency = builtin_catalog().cloud_models[key].latency
    assert latency is not None and latency.measured_by.strip()
    assert latency.as_of <= datetime.date.today()
    assert latency.sources.get("as_of", "").strip(), "say where the date comes from"
    for field in ("output_tokens_per_s", "output_tokens_per_s_p5", "ttft_ms", "ttft_ms_p95"):
        figure = getattr(latency, field)
        if figure is None:
            continue
        source = latency.sources.get(field, "")
        assert source.strip(), f"{key}.latency.{field} has no source"
        # the source says where (a page) and what it says (the verbatim figure)
        assert "." in source.split()[0] or "/" in source, source
        quoted = [f"{figure:g}", f"{figure / 1000:g}s", f"{figure / 1000:g} s"]
        assert any(q in source for q in quoted), (key, field, source)
    # plausible for a hosted API: 10-2,000 tokens/s, 50 ms-60 s to the first token
    if latency.output_tokens_per_s is not None:
        assert 10 <= latency.output_tokens_per_s <= 2000
    if latency.ttft_ms is not None:
        assert 50 <= latency.ttft_ms <= 60_000


def _latency(**fields: object) -> dict[str, object]:
    figures = {"measured_by": "a benchmark", "as_of": "2026-11-01",
               "output_tokens_per_s": 120.0, "ttft_ms": 500.0, **fields}
    sources = {name: "example.org: quoted" for name in figures
               if name not in ("measured_by",) and figures[name] is not None}
    return {**figures, "sources": {**sources, **(fields.get("sources") or {})}}


def test_a_latency_figure_without_a_source_or_date_is_rejected() -> None:
    from pydantic import ValidationError

    from llmplan.catalog import MeasuredLatency

    assert MeasuredLatency.model_validate(_latency()).basis == "a benchmark, 2026-11-01"
    unsourced = _latency()
    del unsourced["sources"]["ttft_ms"]  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="no source given for: ttft_ms"):
        MeasuredLatency.model_validate(unsourced)
    undated = _latency()
    del undated["sources"]["as_of"]  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="as_of"):
        MeasuredLatency.model_validate(undated)
    with pytest.raises(ValidationError, match="after today"):
        MeasuredLatency.model_validate(_latency(as_of=datetime.date.today()
                                                + datetime.timedelta(days=1)))
    with pytest.raises(ValidationError, match="p5 must be <="):
        MeasuredLatency.model_validate(_latency(output_tokens_per_s_p5=200.0))
    with pytest.raises(ValidationError, match="p95 must be >="):
        MeasuredLatency.model_validate(_latency(ttft_ms_p95=100.0))
    with pytest.raises(ValidationError, match="give output_tokens_per_s or ttft_ms"):
        MeasuredLatency.model_validate(_latency(output_tokens_per_s=None, ttft_ms=None))


def test_a_median_alone_gets_the_default_latencys_spread() -> None:
    from llmplan.catalog import MeasuredLatency
    from llmplan.scenario.cloud import CloudLatency

    measured = MeasuredLatency.model_validate(_latency(output_tokens_per_s=180.0,
                                                       ttft_ms=700.0))
    default = CloudLatency()
    spread = default.ttft_ms.p95 / default.ttft_ms.median
    # what the benchmark's client saw, less its round trip (the deployment's, 40 ms)
    assert measured.provider_ttft_ms(50_000, 40) == pytest.approx((660.0, 660.0 * spread))
    assert measured.output_tokens_per_s_p5_used == pytest.approx(
        180.0 * default.output_tokens_per_s.p5 / default.output_tokens_per_s.median)
    tails = MeasuredLatency.model_validate(_latency(output_tokens_per_s_p5=60.0,
                                                    ttft_ms_p95=900.0))
    assert tails.output_tokens_per_s_p5_used == 60.0
    assert tails.provider_ttft_ms(50_000, 0) == (500.0, 900.0)
    # measured with 10,000-token prompts: their reading (0.2 s at 50,000 tokens/s) comes
    # out too, as the simulation adds each request's own; never over half the median
    long_prompts = MeasuredLatency.model_validate(_latency(ttft_prompt_tokens=10_000,
                                                           ttft_ms=740.0))
    assert long_prompts.provider_ttft_ms(50_000, 40) == pytest.approx((500.0, 500 * spread))
    assert long_prompts.provider_ttft_ms(1_000, 40) == pytest.approx((370.0, 370 * spread))
