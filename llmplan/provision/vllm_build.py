"""What vLLM builds of a simulated deployment: the checkpoint in the simulated weights format
and the speculative-decoding drafter, or a refusal that says what is missing (also for what
the stack's vLLM behind a Kubernetes Service cannot reproduce: llama.cpp's per-slot prompt
cache, a cache-aware router).

The simulation sizes memory and step time by `engine.weights_dtype`; serving another format
would provision something else than what was simulated (the BF16 checkpoint of a model
simulated in NVFP4 does not even fit). vLLM takes the format from the checkpoint itself (the
`quantization_config` of its config.json, or ModelOpt's hf_quant_config.json: vLLM docs,
features/quantization/modelopt.md), so the checkpoint is the choice and no flag goes with it.
Two formats need no published checkpoint: 16-bit weights in the other 16-bit type (vLLM casts
them, `--dtype`), and FP8 quantised while loading a 16-bit checkpoint (`--quantization fp8`,
vLLM docs features/quantization/fp8.md, "Online Dynamic Quantization"; since vLLM #31914,
January 2026, it quantises layer by layer, so the 16-bit weights never all sit in memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmplan.catalog import Catalog, GpuSpec, ModelSpec
from llmplan.perf.engine import SpeculativeSpec, dotted
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.steptime_spec import CalibratedStepTime
from llmplan.provision.gpu_nodes import unlabelled
from llmplan.scenario.models import LocalDeployment

SIXTEEN_BIT = ("bf16", "fp16")
#: The oldest vLLM release the stack renders flags for: from 0.8.5 every boolean engine
#: setting takes both --x and --no-x (vllm/engine/arg_utils.py `get_kwargs`,
#: BooleanOptionalAction; 0.8.4 still parsed --enable-chunked-prefill with a value). The
#: image is the release's own (`images.vllm_image`), and flags a release does not take are
#: refused by the scenario (`engine.SETTING_RELEASES`) or left to the release's default.
OLDEST_STACK_RELEASE = (0, 8, 5)
#: Speculative methods whose drafter is a checkpoint of its own.
DRAFTED = ("eagle", "eagle3", "draft_model")


@dataclass(frozen=True)
class ServedWeights:
    """The repository vLLM downloads and how it turns it into the simulated format."""

    hf_id: str
    hub_gated: bool | None
    stored_dtype: str            # the format of the downloaded files
    quantization: str | None     # vLLM's --quantization, only to quantise while loading


def activation_dtype(setup: ReplicaSetup) -> str:
    """vLLM's --dtype for the replica: float16 for FP16 weights, and for INT4 (AWQ/GPTQ)
    checkpoints on AMD GPUs, whose ROCm build runs them with the plain AWQ and GPTQ kernels
    (RocmPlatform.supported_quantization has no awq_marlin or gptq_marlin, read in 0.11.0)
    that take float16 activations only ("torch.bfloat16 is not supported for quantization
    method awq"); bfloat16 otherwise."""
    if setup.weights_dtype == "fp16" or (setup.gpu.vendor == "amd"
                                         and setup.weights_dtype == "int4"):
        return "float16"
    return "bfloat16"


def servable_formats(model: ModelSpec) -> list[str]:
    """Weight formats the stack can serve this model in, sorted."""
    formats: set[str] = {model.default_dtype, *model.checkpoints}
    if model.default_dtype in SIXTEEN_BIT:
        formats |= {*SIXTEEN_BIT, "fp8"}
    return sorted(formats)


def served_weights(name: str, model: ModelSpec, weights_dtype: str) -> ServedWeights:
    """The checkpoint holding `name`'s weights as `weights_dtype` (ValueError: none known)."""
    repo = model.weights_repo(weights_dtype)
    if repo is not None:
        return ServedWeights(repo.hf_id, repo.hub_gated, weights_dtype, None)
    if model.default_dtype in SIXTEEN_BIT and weights_dtype in (*SIXTEEN_BIT, "fp8"):
        return ServedWeights(model.hf_id, model.hub_gated, model.default_dtype,
                             "fp8" if weights_dtype == "fp8" else None)
    raise ValueError(
        f"no published {weights_dtype} checkpoint of model '{name}' is known: it was simulated "
        f"with {weights_dtype} weights, and {model.hf_id} holds {model.default_dtype}, so "
        f"serving it would not be what was simulated; add the repository under "
        f"catalog.models.{name}.checkpoints.{weights_dtype} (hf_id and source) or simulate "
        f"engine.weights_dtype as one of: {', '.join(servable_formats(model))}")


def speculative_config(name: str, model: ModelSpec, spec: SpeculativeSpec) -> dict[str, Any]:
    """vLLM's --speculative-config for the simulated method (ValueError: no drafter known).

    Keys as vllm/config/speculative.py (SpeculativeConfig) reads them: `method`, `model` (the
    EAGLE head or draft model; MTP uses the target's own MTP layers, n-gram looks up the
    prompt, with vLLM's default window of 5 tokens) and `num_speculative_tokens`."""
    config: dict[str, Any] = {"method": spec.method}
    if spec.method == "mtp" and model.mtp_layers == 0:
        raise ValueError(f"deployment simulated with multi-token prediction (speculative.method: "
                         f"mtp), but model '{name}' ships no MTP layers (catalog mtp_layers: 0); "
                         "simulate eagle3, eagle, draft_model or ngram instead")
    if spec.method in DRAFTED:
        drafter = drafter_repo(model, spec)
        if drafter is None:
            what = "draft model" if spec.method == "draft_model" else f"{spec.method} drafter"
            where = "" if spec.method == "draft_model" else \
                f" or under catalog.models.{name}.drafters.{spec.method}"
            raise ValueError(f"no {what} of model '{name}' is known, so vLLM could not "
                             f"speculate as simulated: name its Hugging Face repository in "
                             f"engine.speculative.drafter{where}")
        config["model"] = drafter[0]
    config["num_speculative_tokens"] = spec.num_speculative_tokens
    return config


def drafter_repo(model: ModelSpec, spec: SpeculativeSpec,
                 catalog: Catalog | None = None) -> tuple[str, bool | None] | None:
    """The drafter's repository and whether it is gated: the scenario's (a catalog model's
    repository gated as the catalog says), else the catalog's for the method (None: none is
    known, or the method downloads none)."""
    if spec.method not in DRAFTED:
        return None
    known = next((repo for method, repo in model.drafters.items() if method == spec.method),
                 None)
    found = catalog.model_of_repo(spec.drafter) \
        if catalog is not None and spec.drafter is not None else None
    if found is not None and catalog is not None:
        repo = catalog.models[found[0]].weights_repo(found[1])
        known = repo if repo is not None else known
    if spec.drafter is not None:
        same = known is not None and known.hf_id == spec.drafter
        return spec.drafter, known.hub_gated if same and known is not None else None
    return (known.hf_id, known.hub_gated) if known is not None else None


def buildable_with_vllm(name: str, dep: LocalDeployment, model: ModelSpec) -> None:
    """The stack serves vLLM behind a Kubernetes Service: refuse what it cannot build as
    simulated rather than provision something else."""
    try:
        served_weights(dep.model, model, dep.engine.weights_dtype or model.default_dtype)
        if dep.engine.speculative is not None:
            speculative_config(dep.model, model, dep.engine.speculative)
    except ValueError as exc:
        raise ValueError(f"deployment '{name}' cannot be provisioned as simulated: {exc}") \
            from None
    if dep.engine.release < OLDEST_STACK_RELEASE:
        oldest = dotted(OLDEST_STACK_RELEASE)
        raise ValueError(f"deployment '{name}' was simulated as vLLM {dep.engine.vllm_version} "
                         f"(engine.vllm_version), and the stack starts vLLM {oldest} or later "
                         f"(older releases parse its flags otherwise: "
                         f"--no-enable-chunked-prefill came in {oldest}): set vllm_version "
                         f">= {oldest} to provision it")
    if dep.engine.kv_cache_tokens is not None:
        raise ValueError(f"deployment '{name}' was simulated with a KV cache set by hand "
                         f"(engine.kv_cache_tokens: {dep.engine.kv_cache_tokens}), which no "
                         "vLLM flag sets; vLLM sizes its cache from the GPU's memory: set "
                         "engine.kv_cache_memory_gib (vLLM's --kv-cache-memory-bytes) or leave "
                         "both out to provision it")
    if dep.engine.prefix_caching == "per_slot":
        raise ValueError(f"deployment '{name}' was simulated with llama.cpp's per-slot prompt "
                         "cache (engine.prefix_caching: per_slot), but the stack serves vLLM: "
                         "simulate it with prefix_caching: vllm (or off) to provision it")
    step = dep.step_time
    calibrated = step.calibration if isinstance(step, CalibratedStepTime) else None
    if isinstance(step, CalibratedStepTime) and calibrated is not None and (
            calibrated.server.n_ctx_per_slot is not None
            or (calibrated.server.model_file or "").endswith(".gguf")):
        server = calibrated.server
        raise ValueError(f"deployment '{name}' was simulated with step times measured on a "
                         f"llama.cpp server (step_time file {step.file}: build "
                         f"{server.build or 'unknown'}, {server.model_file or 'its GGUF file'}"
                         f"), but the stack serves vLLM, whose steps are not those: calibrate "
                         f"against a vLLM server, or simulate the roofline step time, to "
                         f"provision it")
    if isinstance(step, CalibratedStepTime) and calibrated is not None \
            and calibrated.server.engine not in (None, "vllm", "llama.cpp"):
        raise ValueError(f"deployment '{name}' was simulated with step times measured on "
                         f"{_engine_words(calibrated.server.engine)} (step_time file "
                         f"{step.file}), but the stack serves vLLM, whose steps are not "
                         f"known to be those: calibrate against a vLLM server (a load test "
                         f"of kind vllm scrapes its /metrics), or simulate the roofline step "
                         f"time, to provision it")
    if dep.router == "prefix_affinity":
        raise ValueError(f"deployment '{name}' was simulated behind a cache-aware router "
                         "(router: prefix_affinity); the stack's balancer (nginx beside the "
                         "gateway) balances requests by load or in turn, without it: simulate "
                         "it with router: least_outstanding or round_robin to provision it")


#: from 0.16.0 vLLM's online FP8 creates a 16-bit layer's weights only as its checkpoint
#: shards arrive and quantises it at once (quantization/fp8.py Fp8OnlineLinearMethod: the
#: weights on the "meta" device, materialised just in time); 0.15.0 quantised each layer
#: once loaded, into 16-bit weights allocated for every layer up front
LAYERWISE_FP8_RELEASE = (0, 16, 0)


def online_fp8_problem(name: str, dep: LocalDeployment, model: ModelSpec,
                       gpu: GpuSpec) -> str | None:
    """Why vLLM could not load deployment `name`: FP8 quantised while loading a 16-bit
    checkpoint, by a release that holds every 16-bit weight first, more than the GPU has
    (None: it can)."""
    weights = served_weights(dep.model, model, dep.engine.weights_dtype or model.default_dtype)
    if weights.quantization != "fp8" or dep.engine.release >= LAYERWISE_FP8_RELEASE:
        return None
    per_gpu = model.weight_bytes(weights.stored_dtype) / (dep.tp * dep.pp)
    if per_gpu <= gpu.memory_bytes:
        return None
    return (f"deployment '{name}' cannot be provisioned as simulated: its FP8 weights are "
            f"quantised by vLLM while loading {weights.hf_id} ({weights.stored_dtype}), and "
            f"vLLM {dep.engine.vllm_version} holds every 16-bit weight before quantising, "
            f"{per_gpu / 2**30:,.0f} GiB a GPU against the {dep.gpu}'s "
            f"{gpu.memory_bytes / 2**30:,.0f} GiB; expected vllm_version >= "
            f"{dotted(LAYERWISE_FP8_RELEASE)} (which quantises each layer as it loads), a "
            f"published FP8 checkpoint (catalog.models.{dep.model}.checkpoints.fp8) or more "
            f"GPUs")


def _engine_words(engine: str) -> str:
    return "an OpenAI-compatible server of an engine not recorded" if engine == "openai" \
        else f"{engine}"


def provisioning_problem(name: str, dep: LocalDeployment, model: ModelSpec,
                         gpu: GpuSpec | None = None) -> str | None:
    """Why `llmplan stack` would refuse deployment `name` (None: it can build it); `gpu`:
    its GPU's catalog entry, for what loading needs of it."""
    try:
        buildable_with_vllm(name, dep, model)
    except ValueError as exc:
        return str(exc)
    if gpu is None:
        return None
    if (why := unlabelled(dep.gpu, gpu)) is not None:
        return f"deployment '{name}' cannot be provisioned as simulated: {why}"
    return online_fp8_problem(name, dep, model, gpu)
