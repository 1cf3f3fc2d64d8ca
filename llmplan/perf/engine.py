"""The serving engine's settings of one replica (vLLM's scheduler and memory knobs).

Settings left out take vLLM's own defaults for the GPU and the vLLM version, as
`vllm serve` picks them (vllm/engine/arg_utils.py, `_set_default_args`, v0.33.0; each
release boundary below read in the published wheels): on cards of 70 GiB or more other
than the A100, 8192 batched tokens and 1024 sequences (16384 tokens on cards of 160 GiB or
more from v0.28); elsewhere 2048 and 256 (`default_limits` has the older rules). GPU memory
utilisation defaults to 0.92 from v0.20 (0.9 before: vllm/config/cache.py), when vLLM
started to count CUDA-graph memory in its budget; async scheduling (the CPU prepares the
next step while the GPU runs this one) is on by default from v0.14 (vllm/config/vllm.py:
not with pipeline stages before 0.15, nor with n-gram drafts before 0.32, nor with a draft model
before 0.28).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    field_serializer,
    field_validator,
    model_validator,
)

from llmplan.catalog.catalog import DType, KvDType

#: A vLLM release number as PyPI writes it: 0.33, 0.33.0, 0.10.1.1, 0.9.2rc1, 0.8.5.post1.
VERSION_PATTERN = r"^\d+\.\d+(\.\d+){0,2}(rc\d+|\.post\d+|\.dev\d+)?$"
#: The vLLM release the simulator models by default and the provisioned image runs.
DEFAULT_VLLM_VERSION = "0.33.0"
#: vLLM's first release on PyPI, and the newest minor release whose code llmplan has read
#: (0.34.0: the V1 model runner removed); a number outside them is refused
FIRST_VLLM_RELEASE = (0, 1)
NEWEST_KNOWN_MINOR = (0, 34)
GIB = float(1 << 30)


@functools.lru_cache(maxsize=256)
def release_tuple(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a version such as '0.11.2' or '0.9.2rc1' (kept: a simulation
    asks dozens of times, planning's dozens of simulations each)."""
    parts = [*version.split("."), "0", "0"][:3]
    # the leading digits of each part: 0.9.2rc1 is 0.9.2 (not 0.9.21)
    digits = [re.match(r"\d*", part)[0] or "0" for part in parts]  # type: ignore[index]
    return int(digits[0]), int(digits[1]), int(digits[2])


def version_tuple(version: str) -> tuple[int, int]:
    """(major, minor) of a version."""
    major, minor, _ = release_tuple(version)
    return major, minor


#: --block-size values vLLM starts with on a GPU: its CLI's choices (vllm/config/cache.py,
#: BlockSize = Literal[1, 8, 16, 32, 64, 128, 256]) less 1 and 8, which every GPU attention
#: backend refuses, their kernels paging in multiples of 16 tokens (FlashAttention, FlashMLA,
#: Triton: get_supported_kernel_block_sizes -> MultipleOf(16); "vllm serve crashes at KV
#: cache initialization when using --block-size 1 or 8", vllm-project/vllm#42510).
BLOCK_SIZES = (16, 32, 64, 128, 256)

#: The first vLLM release whose `vllm serve` takes each setting (read in the published wheels:
#: vllm/engine/arg_utils.py `add_cli_args`, vllm/config/cache.py, vllm/entrypoints): before
#: it, vLLM refuses the flag, so a scenario setting it is refused too.
SETTING_RELEASES: dict[str, tuple[tuple[int, int, int], str]] = {
    # --data-parallel-size: 0.8.3 (arg_utils.py; earlier only the VLLM_DP_SIZE variable)
    "data_parallel_attention": ((0, 8, 3), "--data-parallel-size"),
    # --api-server-count: 0.9.1 (entrypoints/cli/serve.py)
    "api_server_count": ((0, 9, 1), "--api-server-count"),
    # --async-scheduling: 0.10.0 (SchedulerConfig.async_scheduling)
    "async_scheduling": ((0, 10, 0), "--async-scheduling"),
    # --kv-cache-memory-bytes: 0.10.2 (CacheConfig.kv_cache_memory_bytes)
    "kv_cache_memory_gib": ((0, 10, 2), "--kv-cache-memory-bytes"),
    # --block-size 256: 0.11.1 (BlockSize gained 256 in vllm/config/cache.py)
    "block_size_tokens": ((0, 11, 1), "--block-size 256"),
    # VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS: 0.18.0 (vllm/envs.py)
    "cuda_graph_estimate": ((0, 18, 0), "VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS"),
    # VLLM_USE_V2_MODEL_RUNNER: 0.12.0 (vllm/envs.py; gone in 0.34.0 with the V1 runner)
    "model_runner": ((0, 12, 0), "VLLM_USE_V2_MODEL_RUNNER"),
}
#: 0.34.0 has no V1 model runner left (vllm/v1/worker/gpu_model_runner.py is gone)
NO_V1_RUNNER_RELEASE = (0, 34, 0)
#: Model Runner V2 first served a model by default in 0.22.0 (llmplan/perf/runner.py)
V2_FIRST_DEFAULT_RELEASE = (0, 22, 0)

#: The first release whose --speculative-config takes each method as the stack passes it
#: (vllm/config/speculative.py and arg_utils.py, read in the published wheels): EAGLE-3 from
#: 0.9.1 (not in 0.9.0's method list), MTP named `mtp` from 0.11.0 (`deepseek_mtp` before),
#: a draft model from 0.15.0 (V1 refuses it at start-up in 0.10-0.14; 0.8.5-0.9 fall back
#: to the V0 engine for it).
SPECULATIVE_RELEASES: dict[str, tuple[int, int, int]] = {
    "eagle3": (0, 9, 1), "mtp": (0, 11, 0), "draft_model": (0, 15, 0)}
#: Speculative methods vLLM runs under async scheduling (vllm/config/vllm.py): EAGLE, EAGLE-3
#: and MTP from 0.11.1 (EagleModelTypes; before, no speculative decoding at all); a draft
#: model when set from 0.16.0 and by default from 0.28.0; n-gram drafts from 0.32.0, where
#: Model Runner V2 runs them on the GPU (the V1 runner's CPU proposer never does).
ASYNC_DRAFTS_RELEASE = (0, 11, 1)
ASYNC_DRAFT_MODEL_RELEASES = {"set": (0, 16, 0), "default": (0, 28, 0)}
ASYNC_NGRAM_RELEASE = (0, 32, 0)


def async_drafts_release(method: str, *, by_default: bool = False) -> tuple[int, int, int]:
    """The first release that runs async scheduling with these drafts: when set, or
    (`by_default`) turned on by vLLM itself."""
    if method == "draft_model":
        return ASYNC_DRAFT_MODEL_RELEASES["default" if by_default else "set"]
    return ASYNC_NGRAM_RELEASE if method == "ngram" else ASYNC_DRAFTS_RELEASE


def async_takes(speculative: SpeculativeSpec | None, release: tuple[int, int, int], *,
                by_default: bool = True) -> bool:
    """Whether vLLM of this release runs async scheduling with this speculative decoding
    (`by_default`: turns it on itself, else accepts it when set)."""
    return speculative is None or release >= async_drafts_release(
        speculative.method, by_default=by_default)


#: From this release vLLM admits a waiting or preempted request only when the KV cache's free
#: blocks hold its whole prompt (with what it generated before a preemption), less its cached
#: prefix, not just its first chunk: SchedulerConfig.scheduler_reserve_full_isl, on by default
#: ("Prevents over-admission and KV cache thrashing with chunked prefill"; read in 0.19.0
#: `KVCacheManager.can_fit_full_sequence` and 0.21.0-0.34.0 `allocate_slots(...,
#: full_sequence_must_fit=...)`; absent from 0.18.1).
WHOLE_PROMPT_ADMISSION_RELEASE = (0, 19, 0)

#: From this release the V1 engine honours --no-enable-chunked-prefill (0.8-0.11.0 force
#: chunked prefill on: "V1 always uses chunked prefills", vllm/engine/arg_utils.py).
CHUNKED_PREFILL_OFF_RELEASE = (0, 11, 1)

def dotted(release: tuple[int, int, int]) -> str:
    """A release tuple as vLLM writes it: (0, 11, 1) -> 0.11.1."""
    return ".".join(map(str, release))


#: kv_dtype spellings the loader reads as fp8 (vLLM's --kv-cache-dtype names)
FP8_KV_ALIASES = ("fp8_e4m3", "fp8_e5m2")
#: vLLM's default --kv-cache-dtype: the model's own dtype, as leaving kv_dtype out
KV_AUTO = "auto"


def _version_schema(schema: dict[str, Any]) -> None:
    """vllm_version: text, or a bare YAML number (0.33), read as its text."""
    text = {key: schema.pop(key) for key in ("type", "pattern")}
    schema["anyOf"] = [text, {"type": "number", "minimum": 0}]


def _prefix_caching_schema(schema: dict[str, Any]) -> None:
    """prefix_caching: one of the names, or a YAML boolean (bare off / on)."""
    names = {key: schema.pop(key) for key in ("type", "enum")}
    schema["anyOf"] = [names, {"type": "boolean"}]


def _kv_dtype_schema(schema: dict[str, Any]) -> None:
    """kv_dtype: also vLLM's fp8 variants, read as fp8."""
    schema["anyOf"] = [{"enum": [*get_args(KvDType), *FP8_KV_ALIASES, KV_AUTO],
                        "type": "string"},
                       {"type": "null"}]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SpeculativeSpec(_Strict):
    """Speculative decoding: a drafter proposes tokens, the model verifies them in one step.

    vLLM chains `num_speculative_tokens` drafts per step and reports the mean acceptance
    length (accepted drafts + the bonus token) in its spec-decode metrics.
    """

    method: Literal["eagle3", "eagle", "mtp", "draft_model", "ngram"]
    num_speculative_tokens: int = Field(default=3, gt=0, le=16)
    mean_acceptance_length: float = Field(
        gt=1, description="Tokens emitted per verify step per sequence (1 + accepted drafts). "
                          "vLLM's own baselines at k=3 on MT-Bench: EAGLE-3 on Llama-3.1-8B "
                          "2.60, Qwen3-8B 2.26, gpt-oss-20b 2.56; DeepSeek-V3 MTP with k=1 "
                          "about 1.85 (85-90% acceptance).")
    draft_params_b: float | None = Field(
        default=None, ge=0, description="Parameters of the drafter, billions, held 16-bit "
                                        "(EAGLE heads ~0.2-1 B): needed for eagle and eagle3; "
                                        "a draft model that is a catalog model takes its size "
                                        "from the catalog (given: this count instead); MTP "
                                        "modules are the catalog's mtp_params_b; n-gram has "
                                        "none.")
    drafter: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$",
        description="Hugging Face repository of the EAGLE head or draft model the stack "
                    "serves (vLLM's speculative_config.model), or a catalog model's name for "
                    "a draft model (read as its hf_id); absent: the catalog's drafter of the "
                    "model for the method. Not for mtp or ngram, which use none.")

    @model_validator(mode="after")
    def _acceptance_fits(self) -> SpeculativeSpec:
        if self.mean_acceptance_length > self.num_speculative_tokens + 1:
            raise ValueError("mean_acceptance_length cannot exceed num_speculative_tokens + 1")
        if self.method in ("mtp", "ngram"):
            if self.drafter is not None:
                raise ValueError(f"drafter is for eagle, eagle3 and draft_model; "
                                 f"{self.method} downloads no drafter")
            if self.draft_params_b:
                raise ValueError(f"draft_params_b is for eagle, eagle3 and draft_model; "
                                 f"{self.method} loads no drafter (MTP modules: the "
                                 f"catalog's mtp_params_b)")
        return self


class EngineSpec(_Strict):
    """vLLM-style scheduler and memory knobs of one serving replica (None: vLLM's default)."""

    vllm_version: str = Field(
        default=DEFAULT_VLLM_VERSION, pattern=VERSION_PATTERN,
        description="Decides the memory accounting and defaults (see llmplan/perf). Quote "
                    "it: a bare 0.10 is the number 0.1.",
        json_schema_extra=_version_schema)
    max_num_seqs: int | None = Field(default=None, gt=0, le=1_000_000,
                                     description="Running sequences per step.")
    max_num_batched_tokens: int | None = Field(default=None, gt=0, le=100_000_000,
                                               description="Tokens per step.")
    chunked_prefill: bool = True
    block_size_tokens: int = Field(
        default=16, description="Tokens per KV-cache block (vLLM's --block-size): 16, 32, 64, "
                                "128 or 256.", json_schema_extra={"enum": list(BLOCK_SIZES)})
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    async_scheduling: bool | None = Field(
        default=None, description="Overlap CPU scheduling with the GPU step (default: on "
                                  "from vLLM 0.14, as vLLM turns it on).")
    api_server_count: int | None = Field(
        default=None, gt=0, le=64,
        description="API-server processes streaming the replies (vLLM's --api-server-count); "
                    "they share the per-token output work. Default: 1, or one per rank with "
                    "data_parallel_attention, as `vllm serve` defaults it for its internal "
                    "load balancer.")
    cuda_graph_estimate: bool | None = Field(
        default=None, description="vLLM's VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS: take the "
                                  "CUDA graphs' estimated memory out of the KV budget "
                                  "(default: on from vLLM 0.20, ROCm 0.26; the variable "
                                  "came in 0.18). Off: vLLM captures them after sizing the "
                                  "cache, outside the budget.")
    model_runner: Literal["v1", "v2"] | None = Field(
        default=None, description="vLLM's GPU model runner (VLLM_USE_V2_MODEL_RUNNER, 0.12 to "
                                  "0.33; the stack sets it in the pods). Default: as the "
                                  "release picks it (llmplan/perf/runner.py): V2 for Qwen3 "
                                  "from 0.22, Llama and Mistral from 0.23, every dense model "
                                  "from 0.25 and every model from 0.29.")
    enforce_eager: bool = Field(default=False, description="No CUDA graphs: no graph memory, "
                                                           "more CPU time per step.")
    max_model_len: int | None = Field(default=None, gt=0, le=100_000_000,
                                      description="Longest prompt + output accepted.")
    kv_cache_tokens: int | None = Field(
        default=None, gt=0, le=10**12, description="Override the KV capacity computed from memory "
                                           "(per rank with data_parallel_attention).")
    kv_cache_memory_gib: float | None = Field(
        default=None, gt=0, description="Per GPU, like vLLM's --kv-cache-memory-bytes: "
                                        "replaces the budget computed from utilisation.")
    weights_dtype: DType | None = None
    kv_dtype: KvDType | None = Field(
        default=None, description="KV-cache precision (fp8_e4m3 and fp8_e5m2 count as fp8; "
                                  "auto, vLLM's default, is the model's own dtype, as left out).",
        json_schema_extra=_kv_dtype_schema)
    #: vLLM's --kv-cache-dtype as the scenario named it (fp8_e4m3 or fp8_e5m2 are simulated
    #: as fp8, one byte a value either way, and provisioned as named): not an input of its own
    _kv_named: str | None = PrivateAttr(default=None)
    expert_parallel: bool = Field(
        default=False, description="Spread MoE experts over the replica's GPUs (EP = tp; "
                                   "vLLM's --enable-expert-parallel). With one data-parallel "
                                   "rank every token still visits every GPU, which sorts "
                                   "all the routed slots: the step costs what tensor "
                                   "parallelism's does.")
    data_parallel_attention: bool = Field(
        default=False, description="MoE models with expert_parallel: each of the replica's "
                                   "GPUs is a data-parallel rank with its own scheduler, KV "
                                   "cache and whole copy of the attention and dense weights, "
                                   "and the experts are spread over all of them (vLLM's "
                                   "--data-parallel-size = the replica's GPUs, "
                                   "--tensor-parallel-size 1, --enable-expert-parallel; "
                                   "the layout vLLM documents for DeepSeek). max_num_seqs and "
                                   "max_num_batched_tokens are then per rank, as vLLM reads "
                                   "them. The simulator pools the ranks' batches: a "
                                   "request runs on one rank, its chunk at most that rank's "
                                   "budget; with the roofline step time the costliest chunk "
                                   "and the busiest rank's decodes are charged to one GPU "
                                   "while the others wait; and a request finds cached only "
                                   "the prefixes its rank's own requests computed (vLLM "
                                   "sends it to the least-loaded rank, whatever that rank "
                                   "holds).")
    speculative: SpeculativeSpec | None = None
    prefix_caching: Literal["vllm", "per_slot", "off"] = Field(
        default="vllm", description="Reuse of cached prompt prefixes: vllm (automatic prefix "
                                    "caching over KV blocks, vLLM's default), per_slot "
                                    "(llama.cpp: each slot keeps its last prompt) or off "
                                    "(a bare YAML off / on: off / vllm).",
        json_schema_extra=_prefix_caching_schema)
    host_prompt_cache_gib: float = Field(
        default=8.0, ge=0, description="per_slot: host memory keeping the prompts slots give "
                                       "up (llama.cpp's --cache-ram, 8192 MiB by default; 0: "
                                       "none).")
    slot_prompt_similarity: float = Field(
        default=0.1, ge=0, le=1, description="per_slot: share of a prompt a slot's cache must "
                                             "cover to be chosen (llama.cpp's "
                                             "--slot-prompt-similarity).")

    @field_validator("kv_dtype", mode="before")
    @classmethod
    def _kv_dtype_known(cls, value: object) -> object:
        # the wrap validator below reads vLLM's spellings; anything else is named with all
        # of them, not only the three the simulation keeps
        accepted = [*get_args(KvDType), *FP8_KV_ALIASES, KV_AUTO]
        if value is not None and value not in accepted:
            raise ValueError(f"expected one of {', '.join(accepted)}")
        return value

    @field_validator("vllm_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        whole, _, tenth = repr(value).partition(".")
        if isinstance(value, float) and len(tenth) == 1 and tenth != "0" \
                and version_tuple(f"{whole}.{tenth}0") <= version_tuple(DEFAULT_VLLM_VERSION):
            # YAML reads a bare 0.10, 0.20 or 0.30 as the number 0.1, 0.2 or 0.3: both
            # readings are vLLM releases
            raise ValueError(f"a bare {value} is a YAML number: {whole}.{tenth} or "
                             f"{whole}.{tenth}0? expected the version quoted, such as "
                             f"'{whole}.{tenth}0.0' or '{whole}.{tenth}.0'")
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not re.fullmatch(VERSION_PATTERN, value):
            raise ValueError(f"'{value}' is not a vLLM release number; expected one such as "
                             f"'{DEFAULT_VLLM_VERSION}' (major.minor[.patch], quoted, no 'v'; "
                             f"rc, post and dev suffixes as PyPI writes them)")
        if isinstance(value, str) and not \
                FIRST_VLLM_RELEASE <= version_tuple(value) <= NEWEST_KNOWN_MINOR:
            raise ValueError(
                f"vLLM {value} is outside the releases llmplan knows (0.1 to "
                f"{NEWEST_KNOWN_MINOR[0]}.{NEWEST_KNOWN_MINOR[1]}): its memory accounting, "
                f"defaults and image are not known; expected a release in that range")
        return value

    @field_validator("prefix_caching", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `off` / `on` as a boolean
        return {False: "off", True: "vllm"}.get(value, value) \
            if isinstance(value, bool) else value

    @field_validator("block_size_tokens")
    @classmethod
    def _vllm_block_size(cls, value: int) -> int:
        if value not in BLOCK_SIZES:
            raise ValueError(f"block size {value} is not one vLLM starts with on a GPU (its "
                             f"--block-size choices, of which its attention kernels take "
                             f"multiples of 16); expected one of "
                             f"{', '.join(map(str, BLOCK_SIZES))}")
        return value

    @field_serializer("kv_dtype")
    def _kv_dtype_as_named(self, value: str | None) -> str | None:
        return self._kv_named or value

    @model_validator(mode="wrap")
    @classmethod
    def _kv_dtype_names(cls, data: object, handler: ModelWrapValidatorHandler[EngineSpec]
                        ) -> EngineSpec:
        named = data.get("kv_dtype") if isinstance(data, dict) else None
        if named == KV_AUTO:
            data = {**data, "kv_dtype": None}     # type: ignore[dict-item]
        if named in FP8_KV_ALIASES:
            data = {**data, "kv_dtype": "fp8"}     # type: ignore[dict-item]
        spec = handler(data)
        if named in FP8_KV_ALIASES:
            spec._kv_named = named
        return spec

    @property
    def kv_cache_dtype_flag(self) -> str | None:
        """vLLM's --kv-cache-dtype for an fp8 cache: the variant the scenario named, if any."""
        return self._kv_named

    @model_validator(mode="after")
    def _batch_fits(self) -> EngineSpec:
        if self.max_num_seqs is not None and self.max_num_batched_tokens is not None \
                and self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError("max_num_batched_tokens must be >= max_num_seqs (every running "
                             "sequence needs one token of budget per step)")
        return self

    @model_validator(mode="after")
    def _release_takes_the_settings(self) -> EngineSpec:
        """Refuse what this vLLM release does not run, naming every such setting and the
        release that runs them all (so the advice is not refused in turn)."""
        used = {"data_parallel_attention": self.data_parallel_attention,
                "api_server_count": (self.api_server_count or 1) > 1,
                "async_scheduling": bool(self.async_scheduling),
                "kv_cache_memory_gib": self.kv_cache_memory_gib is not None,
                "block_size_tokens": self.block_size_tokens == 256,
                "cuda_graph_estimate": self.cuda_graph_estimate is not None,
                "model_runner": self.model_runner is not None}
        found: list[tuple[tuple[int, int, int], str]] = []
        for name, (since, flag) in SETTING_RELEASES.items():
            if used[name] and self.release < since:
                found.append((since, f"{name} is vLLM's {flag}, which came in "
                                     f"{dotted(since)}"))
        speculative = self.speculative
        if speculative is not None and self.release < (
                since := SPECULATIVE_RELEASES.get(speculative.method, (0, 0, 0))):
            found.append((since, f"speculative.method {speculative.method} came in "
                                 f"{dotted(since)}"))
        if self.async_scheduling and speculative is not None \
                and not async_takes(speculative, self.release, by_default=False):
            since = async_drafts_release(speculative.method)
            said = ("'speculative decoding is not supported with async scheduling'"
                    if self.release < ASYNC_DRAFTS_RELEASE else
                    "'async scheduling is only supported with EAGLE/MTP kind of "
                    "speculative decoding'")
            found.append((since, f"async_scheduling: true with speculative.method "
                                 f"{speculative.method} is refused ({said}) before "
                                 f"{dotted(since)}"))
        if self.model_runner == "v2" and self.release < V2_FIRST_DEFAULT_RELEASE:
            found.append((V2_FIRST_DEFAULT_RELEASE,
                          "model_runner v2 before 0.22, where vLLM first served a model "
                          "with it by default, is not modelled (its early releases took "
                          "only FlashAttention layers and no pipeline stages)"))
        if self.model_runner == "v1" and self.release >= NO_V1_RUNNER_RELEASE:
            raise ValueError(f"model_runner v1: vLLM {self.vllm_version} has no V1 model "
                             f"runner (0.34.0 removed it); expected model_runner v2 or left "
                             f"out, or vllm_version < 0.34")
        if not self.chunked_prefill and (0, 8) <= self.release < CHUNKED_PREFILL_OFF_RELEASE:
            found.append((CHUNKED_PREFILL_OFF_RELEASE,
                          "chunked_prefill: false is ignored (the V1 engine always chunks "
                          "prompts) before 0.11.1"))
        if found:
            first = dotted(max(since for since, _ in found))
            raise ValueError(f"vLLM {self.vllm_version} does not run these settings: "
                             f"{'; '.join(text for _, text in found)}; expected vllm_version "
                             f">= {first}, or those settings left out")
        return self

    @property
    def version(self) -> tuple[int, int]:
        return version_tuple(self.vllm_version)

    @property
    def release(self) -> tuple[int, int, int]:
        return release_tuple(self.vllm_version)


def default_limits(engine: EngineSpec, gpu_memory_bytes: float, gpu_name: str,
                   context_tokens: int = 0) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) `vllm serve` picks for this GPU
    (`context_tokens`: the model's context, vLLM's max_model_len when none is set).

    By release (vllm/engine/arg_utils.py `_set_default_args`, read in the published wheels):
    0.8.0-0.8.4 pick by the device's name (8192 tokens on an H100 or H200, else 2048; 1024
    sequences on any GPU until 0.8.3, 256 off H100/H200 in 0.8.4); 0.8.5 by memory (70 GiB
    or more: 8192 and 1024, else 2048 and 256); 0.9.0 leaves the A100 out of the larger
    tier; 0.28.0 adds 16384 tokens on cards of 160 GiB or more."""
    gib = gpu_memory_bytes / GIB
    name = gpu_name.upper()
    release = engine.release
    if release < (0, 8, 5):
        big = "H100" in name or "H200" in name
    else:
        big = gib >= 70 and (release < (0, 9) or "A100" not in name)
    if not big:
        tokens, seqs = 2048, 256
    elif gib >= 160 and release >= (0, 28):
        tokens, seqs = 16384, 1024
    else:
        tokens, seqs = 8192, 1024
    if release < (0, 8):
        # the V0 engine's EngineArgs: 256 sequences on any GPU (the per-GPU defaults above
        # came with V1's usage-context defaults in 0.8); its token budget is left as above
        seqs = 256
    elif release < (0, 8, 4):
        seqs = 1024
    if not engine.chunked_prefill:
        # without chunks a whole prompt runs in one step: vLLM's SchedulerConfig refuses a
        # token budget below max_model_len, which is the model's context unless set
        tokens = max(tokens, engine.max_model_len or context_tokens)
    return tokens, seqs
