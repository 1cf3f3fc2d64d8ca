"""The published record: public measurements the uncalibrated simulator is checked against.

Two tables, each case with its source (benchmarks/published_record.yaml,
benchmarks/kv_record.yaml):

* throughput: a serving benchmark's output tokens/s (offline: every request at once, the
  makespan measured; concurrency N: N clients back to back, each sending its next prompt
  when its last answer has ended, the whole run timed) for a GPU, model, weight format and
  tensor-parallel degree, simulated with the catalog's roofline defaults;
* KV cache: vLLM's start-up line "GPU KV cache size: N tokens" for a model, GPU, tensor
  and pipeline parallelism, memory utilisation and vLLM version, from llmplan.perf.memory.

Used by benchmarks/published.py (prints the tables) and tests/sim/test_published_record.py.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmplan.catalog import Catalog, builtin_catalog
from llmplan.catalog.catalog import DType, KvDType, ModelSpec
from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import kv_capacity
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.scenario.models import AdmissionSpec, LocalDeployment
from llmplan.sim.engine import simulate_deployment
from llmplan.sim.table import RequestTable, request_table
from llmplan.traffic import RequestStream
from llmplan.traffic.lengths import ExponentialLength

HERE = Path(__file__).parent


class _Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    source: str
    gpu: str
    model: str
    tp: int = 1
    pp: int = Field(default=1, description="--pipeline-parallel-size (one server).")
    weights: DType | None = None
    kv_dtype: KvDType | None = None
    notes: str = ""


class ThroughputCase(_Case):
    """One published throughput figure and the workload that produced it."""

    engine: str
    replicas: int = Field(default=1, description="Independent instances (data parallel).")
    expert_parallel: bool = False
    attention_dp: bool = Field(
        default=False, description="Attention data parallelism with expert parallelism "
        "(TensorRT-LLM enable_attention_dp, SGLang --enable-dp-attention): simulated as "
        "engine.data_parallel_attention, vLLM's layout of the same kind (a rank per GPU "
        "with whole attention weights and its own KV cache, the experts spread).")
    input_tokens: int
    output_tokens: int
    lengths: Literal["fixed", "sharegpt"] = Field(
        default="fixed", description="fixed: every request has the stated lengths; sharegpt: "
        "the stated lengths are the means of a ShareGPT sample (see sharegpt_lengths).")
    min_length_ratio: float = Field(
        default=1.0, gt=0, le=1, description="Random lengths (lengths: fixed): each prompt's "
        "and answer's length drawn uniformly from int(L x ratio) to L, as InferenceMAX's "
        "client (kimbochen/bench_serving, sample_random_requests) reads --random-range-ratio; "
        "1: every request has the stated lengths (vllm bench serve's default).")
    api: Literal["chat", "completions"] = Field(
        default="completions", description="chat: the benchmark client sent chat messages "
        "(vllm bench serve --backend openai-chat) and counted the prompt's own tokens, so "
        "the server also computed the model's chat template (catalog chat_template).")
    served: Literal["in_process", "http"] = Field(
        default="in_process", description="http: through a streaming API server (vllm bench "
        "serve, InferenceMAX's clients), whose per-token work is a pipeline stage of its own "
        "(RooflineStepTime.frontend_per_token_us); in_process: trtllm-bench, vLLM's offline "
        "throughput benchmark, Triton's C++ frontend.")
    scenario: Literal["offline", "concurrency"]
    concurrency: int | None = None
    requests: int = Field(default=1000, description="Prompts the benchmark sent (offline: all "
                                                    "at once).")
    output_tokens_per_s: float = Field(description="Measured, whole system.")
    median_tpot_ms: float | None = Field(
        default=None, gt=0, description="Measured median time per output token (the first "
        "token left out), where the source prints it: what `vllm bench serve` and "
        "InferenceMAX report as Median TPOT.")
    vllm_version: str | None = None
    max_num_seqs: int | None = Field(default=None, description="As the source ran it.")
    async_scheduling: bool | None = Field(
        default=None, description="--async-scheduling as the source ran it (None: the "
                                  "engine's default for its version).")
    marlin: bool = Field(
        default=True, description="False: the run's dequantising kernels are not the "
        "engine's Marlin ones (a pull request's own kernel), so the GPU's "
        "marlin_vs_bf16_gemm is left out and the roofline's dequant_efficiency stands in.")


#: When each vLLM release was published, as far as a record row's date needs it: the date
#: of the files in its PyPI wheel (vllm/envs.py), in release order
VLLM_WHEEL_DATES: tuple[tuple[str, dt.date], ...] = (
    ("0.9.2", dt.date(2025, 7, 7)),
    ("0.10.0", dt.date(2025, 7, 24)),
    ("0.10.1", dt.date(2025, 8, 18)),
    ("0.10.2", dt.date(2025, 9, 13)),
    ("0.11.0", dt.date(2025, 10, 3)),
)


def last_release_before(day: dt.date) -> str:
    """The last vLLM release published on or before `day`; a ValueError for a day before the
    first or from the last of VLLM_WHEEL_DATES on (a later release may not be listed)."""
    published = [version for version, on in VLLM_WHEEL_DATES if on <= day]
    if not published or day >= VLLM_WHEEL_DATES[-1][1]:
        raise ValueError(f"{day} is outside the releases benchmarks/record.py dates "
                         f"({VLLM_WHEEL_DATES[0][1]} to {VLLM_WHEEL_DATES[-1][1]})")
    return published[-1]


class KvCase(_Case):
    """One published vLLM start-up line and the settings it was printed under."""

    gpu_memory_utilization: float
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    block_size_tokens: int = 16
    expert_parallel: bool = False
    data_parallel_attention: bool = Field(
        default=False, description="--data-parallel-size = the GPUs, with expert "
        "parallelism: each rank logs its own line, for its own KV cache.")
    vllm_version: str
    kv_cache_tokens: int = Field(description="'GPU KV cache size: N tokens' as logged (or "
                                             "the tokens one request could use, where the "
                                             "log only has vLLM's refusal: see notes).")
    release_pinned_by: dt.date | None = Field(
        default=None, description="The source's date, where it does not state the release: "
        "vllm_version is then the last release published by that day.")

    @model_validator(mode="after")
    def _release_fits_the_date(self) -> KvCase:
        if self.release_pinned_by is not None and \
                self.vllm_version != (last := last_release_before(self.release_pinned_by)):
            raise ValueError(f"{self.id}: vllm_version {self.vllm_version} is not the last "
                             f"release published by {self.release_pinned_by} ({last})")
        return self


@dataclass(frozen=True)
class Outcome:
    case_id: str
    measured: float
    predicted: float
    #: median time per output token, ms: measured where the source prints it, and predicted
    measured_tpot_ms: float | None = None
    predicted_tpot_ms: float | None = None

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.predicted - self.measured) / self.measured

    @property
    def tpot_error_pct(self) -> float | None:
        """The predicted median TPOT's error, where the source prints one."""
        if self.measured_tpot_ms is None or self.predicted_tpot_ms is None:
            return None
        return 100.0 * (self.predicted_tpot_ms / self.measured_tpot_ms - 1.0)


def load_cases(kind: type[ThroughputCase] | type[KvCase], name: str) -> list[Any]:
    data = yaml.safe_load((HERE / name).read_text(encoding="utf-8"))
    return [kind.model_validate(row) for row in data["cases"]]


def _deployment(case: ThroughputCase | KvCase, engine: EngineSpec,
                replicas: int = 1) -> LocalDeployment:
    step_time = RooflineStepTime()
    if isinstance(case, ThroughputCase) and case.served == "in_process":
        step_time = step_time.model_copy(update={"frontend_per_token_us": 0.0})
    # benchmark clients wait for every answer (vllm bench serve's timeout is 6 hours; a
    # scenario's clients give up after 60 s in the queue by default)
    return LocalDeployment(gpu=case.gpu, model=case.model, tp=case.tp, pp=case.pp,
                           replicas=replicas,
                           engine=engine, step_time=step_time,
                           admission=AdmissionSpec(queue_timeout_s=None))


def predicted_kv_tokens(case: KvCase, catalog: Catalog | None = None) -> int:
    catalog = catalog or builtin_catalog()
    engine = EngineSpec(vllm_version=case.vllm_version, weights_dtype=case.weights,
                        kv_dtype=case.kv_dtype,
                        gpu_memory_utilization=case.gpu_memory_utilization,
                        max_model_len=case.max_model_len, max_num_seqs=case.max_num_seqs,
                        max_num_batched_tokens=case.max_num_batched_tokens,
                        block_size_tokens=case.block_size_tokens,
                        expert_parallel=case.expert_parallel,
                        data_parallel_attention=case.data_parallel_attention)
    capacity = kv_capacity(_deployment(case, engine).setup(catalog))
    return capacity.logged_tokens


def kv_outcomes(cases: list[KvCase]) -> list[Outcome]:
    return [Outcome(c.id, c.kv_cache_tokens, predicted_kv_tokens(c)) for c in cases]


# vLLM's ShareGPT sampler keeps a conversation only if both lengths are >= 4, the prompt
# <= 1024 and prompt + output <= 2048 tokens (vllm/benchmarks/datasets.py, is_valid_sequence)
SHAREGPT_MIN_TOKENS, SHAREGPT_MAX_PROMPT, SHAREGPT_MAX_TOTAL = 4, 1024, 2048


def sharegpt_lengths(mean_prompt: float, mean_output: float, n: int,
                     seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """`n` (prompt, output) lengths of a ShareGPT sample whose means were reported.

    Only the means are published; the spread is what decides an offline run's makespan
    (the longest answers run on after the batch has drained). Assumed: both lengths
    geometric (a constant chance of stopping at every token, the memoryless model of
    conversational lengths), independent, kept by vLLM's sampler rules above; each scale is
    set so that the kept sample has the reported mean.
    Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)

    def kept(scale_p: float, scale_o: float, draw: int) -> tuple[np.ndarray, np.ndarray]:
        prompt = ExponentialLength(mean=scale_p).sample(rng, draw)
        output = ExponentialLength(mean=scale_o).sample(rng, draw)
        keep = ((prompt >= SHAREGPT_MIN_TOKENS) & (output >= SHAREGPT_MIN_TOKENS)
                & (prompt <= SHAREGPT_MAX_PROMPT) & (prompt + output <= SHAREGPT_MAX_TOTAL))
        return prompt[keep], output[keep]

    scale_p, scale_o = float(mean_prompt), float(mean_output)
    for _ in range(20):   # fixed point on a large sample: the kept means hit the reported
        prompt, output = kept(scale_p, scale_o, 200_000)
        scale_p *= mean_prompt / prompt.mean()
        scale_o *= mean_output / output.mean()
    # n pairs spread evenly over the answer lengths (systematic sampling of a large kept
    # sample: the spread without the noise of n random draws), in random order
    prompt, output = kept(scale_p, scale_o, 200_000)
    order = np.argsort(output, kind="stable")
    pick = order[((np.arange(n) + 0.5) * len(order) / n).astype(np.int64)]
    pick = rng.permutation(pick)
    prompt, output = prompt[pick], output[pick]
    return prompt, output


def _stream(arrivals: np.ndarray, case: ThroughputCase) -> RequestStream:
    n = len(arrivals)
    if case.lengths == "sharegpt":
        prompt, output = sharegpt_lengths(case.input_tokens, case.output_tokens, n)
    elif case.min_length_ratio < 1.0:
        rng = np.random.default_rng(13)
        prompt = rng.integers(int(case.input_tokens * case.min_length_ratio),
                              case.input_tokens + 1, size=n)
        output = rng.integers(int(case.output_tokens * case.min_length_ratio),
                              case.output_tokens + 1, size=n)
    else:
        prompt = np.full(n, case.input_tokens, dtype=np.int64)
        output = np.full(n, case.output_tokens, dtype=np.int64)
    return RequestStream(arrival_s=arrivals, task_index=np.zeros(n, dtype=np.int64),
                         prompt_tokens=prompt, output_tokens=output, task_names=("bench",),
                         chat_tasks=(case.api == "chat",))


# trtllm-bench's bytes per element by the checkpoint's quant_algo, for the weights and the KV
# cache alike (BYTES_PER_ELEM in tensorrt_llm/bench/build/tuning.py; anything else counts 2)
TRTLLM_BENCH_BYTES = {"fp8": 1.0, "nvfp4": 0.5}
# safetensors elements a ModelOpt NVFP4 checkpoint stores per weight of a quantised linear:
# the weight packed two to a byte (U8, in / 2 a row) and its block scales (F8_E4M3, one per 16)
NVFP4_STORED_ELEMENTS_PER_WEIGHT = 1 / 2 + 1 / 16
# the quant_algos trtllm-bench sizes itself (TUNED_QUANTS in tensorrt_llm/bench/build/build.py:
# NVFP4, FP8, FP8_BLOCK_SCALES, NO_QUANT, None); any other, as an MXFP4 checkpoint's
# (_torch/model_config.py load_hf_quant_config: quant_method mxfp4 -> W4A16_MXFP4 on Hopper,
# W4A8_MXFP4_* on Blackwell), runs at DEFAULT_MAX_BATCH_SIZE and DEFAULT_MAX_NUM_TOKENS,
# BuildConfig's max_batch_size and max_num_tokens (tensorrt_llm/builder.py)
TRTLLM_BENCH_TUNED = frozenset({"bf16", "fp16", "fp8", "nvfp4"})
TRTLLM_BENCH_DEFAULT_LIMITS = (2048, 8192)


def trtllm_bench_param_count(model: ModelSpec, weights: str | None) -> float:
    """The parameter count trtllm-bench sizes the weights from: `ModelConfig.get_param_count`
    (tensorrt_llm/bench/build/dataclasses.py) sums `parameter_count` of the checkpoint's
    safetensors metadata, the elements of every stored tensor whatever its dtype.

    A ModelOpt NVFP4 checkpoint quantises the linear layers of the transformer blocks
    (attention, dense MLPs, shared and routed experts: "only the weights and activations of
    the linear operators within transformers blocks are quantized", its model cards) and
    stores each as half as many U8 elements plus a sixteenth of F8 scales; what it leaves
    out (exclude_modules: lm_head, the routers, and the embeddings and vision tower, which
    are no linear of a block) stays 16-bit, one element a weight (the norms, a few thousand
    weights a layer, are counted with the linears). FP8 and 16-bit
    checkpoints, and the 16-bit ones `trtllm-bench build --quantization` quantised, store one
    element a weight; the per-tensor scales (a few per linear) are left out.
    """
    params = model.params_b * 1e9
    if weights != "nvfp4":
        return params
    unquantised = model.embedding_params + model.vision_params + model.router_params
    return unquantised + (params - unquantised) * NVFP4_STORED_ELEMENTS_PER_WEIGHT


# the v0.17 perf overview (its source commit), whose runs built engines with `trtllm-bench
# build` and ran them at the tuned limits; every later page ran the PyTorch flow
TRTLLM_ENGINE_FLOW_SOURCES = ("258c7540c03517def55d9a5aadfa9288af474e1b",)


def trtllm_bench_limits(case: ThroughputCase, catalog: Catalog) -> tuple[int, int]:
    """(max_batch_size, max_num_tokens) `trtllm-bench throughput` runs a case with, as the
    simulator reads them (max_num_seqs over the whole replica, tokens per batch).

    The tool sizes them itself from the model, the GPUs and the dataset's lengths
    (calc_engine_setting / finetune_setting in tensorrt_llm/bench/build/tuning.py): the
    requests of ISL + OSL tokens that 95% of the memory of all tp x pp GPUs left after the
    weights holds, at most 4,096, divided among the pp pipeline stages' micro-batches
    (`n_gpus = tp_size * pp_size`; `raw_bs = min(kv_cache_max_requests, 4096) / pp_size`),
    rounded up; tokens per step that batch x (1 + ISL / OSL), at most 32,768, rounded up,
    at least 2,048. The weights are the checkpoint's stored elements
    (trtllm_bench_param_count) x BYTES_PER_ELEM of its quant_algo; a quant_algo the tool does
    not tune (MXFP4) gets BuildConfig's defaults, 2,048 and 8,192. The PyTorch flow
    (get_settings in tensorrt_llm/bench/benchmark/utils/general.py) then, with chunked
    prefill off (the tool's default; the record's runs set none), raises the tokens to at
    least the longest prompt + max_batch_size, so that a whole prompt fits one step; engines
    built by `trtllm-bench build` (the v0.17 page) keep the tuned tokens. TensorRT-LLM's
    max_batch_size bounds each micro-batch, the simulator's max_num_seqs (vLLM's) all batches
    in flight: pp x the batch.
    """
    bs, tokens = _trtllm_bench_tuned(case, catalog)
    if not any(commit in case.source for commit in TRTLLM_ENGINE_FLOW_SOURCES):
        tokens = max(tokens, case.input_tokens + bs)
    # the simulator's budget bounds a batch's tokens and takes every running sequence's
    # one (EngineSpec: max_num_batched_tokens >= max_num_seqs)
    return bs * case.pp, max(tokens, bs * case.pp)


def _trtllm_bench_tuned(case: ThroughputCase, catalog: Catalog) -> tuple[int, int]:
    """get_benchmark_engine_settings: (max_batch_size of one micro-batch, max_num_tokens)."""
    gpu, model = catalog.gpus[case.gpu], catalog.models[case.model]
    if (case.weights or model.default_dtype) not in TRTLLM_BENCH_TUNED:
        return TRTLLM_BENCH_DEFAULT_LIMITS
    gib = float(1 << 30)
    weight_bytes = TRTLLM_BENCH_BYTES.get(case.weights or "", 2.0)
    kv_bytes = TRTLLM_BENCH_BYTES.get(case.kv_dtype or "", 2.0)
    per_token_gib = (2 * model.layers * max(case.tp, model.kv_heads) * model.head_dim
                     * kv_bytes / gib)
    gpus = case.tp * case.pp
    weights_gib = trtllm_bench_param_count(model, case.weights) * weight_bytes / gib
    free_gib = gpu.memory_bytes / gib * gpus - weights_gib
    requests = free_gib * 0.95 / (per_token_gib * (case.input_tokens + case.output_tokens))
    raw_bs = min(requests, 4096) / case.pp
    raw_tokens = min(raw_bs * (1 + case.input_tokens / case.output_tokens), 32768)
    if raw_bs < 256:
        bs = max(64, 32 * math.ceil(raw_bs / 32))
    else:
        step = 128 if raw_bs < 1024 else 256
        bs = step * math.ceil(raw_bs / step)
    if raw_tokens < 4096:
        tokens = max(2048, 256 * math.ceil(raw_tokens / 256))
    else:
        step = 512 if raw_tokens < 8192 else 1024
        tokens = step * math.ceil(raw_tokens / step)
    return bs, tokens


def case_table(case: ThroughputCase, catalog: Catalog) -> RequestTable:
    """The case's requests as its benchmark ran them: offline, every prompt due at once;
    concurrency N, N clients back to back (closed_loop_table)."""
    if case.scenario == "offline":
        return _run_table(case, np.zeros(case.requests * case.replicas), catalog)
    return closed_loop_table(case, catalog)


def _output_tokens_per_s(table: RequestTable) -> float:
    """Output tokens over the whole run, as the benchmarks report it (first send to last
    answer)."""
    done = ~np.isnan(table.finish_s)
    return float(table.output_tokens[done].sum() / table.finish_s[done].max())


def predicted_median_tpot_s(case: ThroughputCase, catalog: Catalog | None = None) -> float:
    """Predicted median time per output token (what `vllm bench serve` prints as Median
    TPOT)."""
    return float(np.nanmedian(case_table(case, catalog or builtin_catalog()).tpot_s))


def _run_table(case: ThroughputCase, arrivals: np.ndarray, catalog: Catalog) -> RequestTable:
    return _table(case, _stream(arrivals, case), catalog)


def _table(case: ThroughputCase, stream: RequestStream, catalog: Catalog) -> RequestTable:
    limits: dict[str, int | None] = {"max_num_seqs": case.max_num_seqs}
    if case.engine == "trtllm" and case.scenario == "offline" and case.max_num_seqs is None:
        limits["max_num_seqs"], limits["max_num_batched_tokens"] = \
            trtllm_bench_limits(case, catalog)
    # TensorRT-LLM and SGLang runs are sized with vLLM's accounting as a stand-in, on the V1
    # model runner's terms as they always were: Model Runner V2's sampler buffers and
    # warm-up are vLLM's own, not those engines'
    runner = {} if case.engine == "vllm" else {"model_runner": "v1"}
    engine = EngineSpec(weights_dtype=case.weights, kv_dtype=case.kv_dtype,
                        expert_parallel=case.expert_parallel,
                        data_parallel_attention=case.attention_dp,
                        async_scheduling=case.async_scheduling, **limits, **runner,
                        **({"vllm_version": case.vllm_version} if case.vllm_version else {}))
    if not case.marlin:
        gpu = catalog.gpus[case.gpu].model_copy(update={"marlin_vs_bf16_gemm": None})
        catalog = catalog.model_copy(update={"gpus": {**catalog.gpus, case.gpu: gpu}})
    dep = _deployment(case, engine, case.replicas)
    span = float(stream.arrival_s[-1]) + 1e-9
    run = simulate_deployment(case.id, dep, catalog, stream, span, drain_s=86400.0)
    return request_table(run, stream)


def predicted_output_tokens_per_s(case: ThroughputCase, catalog: Catalog | None = None) -> float:
    return _output_tokens_per_s(case_table(case, catalog or builtin_catalog()))


def closed_loop_table(case: ThroughputCase, catalog: Catalog) -> RequestTable:
    """N clients back to back, as `vllm bench serve --max-concurrency N` and InferenceMAX's
    client run them: the case's prompts all due at once, N in flight, each client sending
    its next prompt as soon as its last answer has ended (prompt i is client i mod N's
    turn i // N: sessions of turns with no pause, llmplan.sim.sessions). The benchmarks
    hand a freed slot the next prompt in line, the sessions the client's own next one: the
    same with equal lengths, and with random ones the same in distribution but for the
    last prompts."""
    assert case.concurrency is not None
    clients = case.concurrency * case.replicas
    n = case.requests * case.replicas
    row = np.arange(n, dtype=np.int64)
    stream = replace(_stream(np.zeros(n), case), session=row % clients, turn=row // clients,
                     think_s=np.zeros(n))
    return _table(case, stream, catalog)


def throughput_outcomes(cases: list[ThroughputCase]) -> list[Outcome]:
    catalog = builtin_catalog()
    outcomes = []
    for case in cases:
        table = case_table(case, catalog)
        outcomes.append(Outcome(case.id, case.output_tokens_per_s, _output_tokens_per_s(table),
                                case.median_tpot_ms,
                                float(np.nanmedian(table.tpot_s)) * 1e3))
    return outcomes


def summary(outcomes: list[Outcome]) -> tuple[float, float]:
    """(median, max) absolute error in %."""
    errors = [abs(o.error_pct) for o in outcomes]
    return float(np.median(errors)), float(max(errors))


__all__ = ["KvCase", "Outcome", "ThroughputCase", "kv_outcomes", "load_cases", "math",
           "summary", "throughput_outcomes"]
