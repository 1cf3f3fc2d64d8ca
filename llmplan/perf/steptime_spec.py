"""How a scenario names its step-time model (`step_time:` of a local deployment).

`roofline` derives the coefficients from the catalog, `linear` gives them, `calibrated`
reads them from a calibration file written by `llmplan calibrate`. The coefficient names are
the ones result.json and the calibrate table use: `fixed_ms` is the whole fixed time of a
step, `cpu_fixed_ms` (roofline) only its CPU part.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RooflineStepTime(_Strict):
    """Default step time from the catalog: datasheet peaks times achievable fractions.

    Each step is max(GEMM FLOPs, weights read) + max(attention FLOPs, KV read) plus what
    does not overlap (all-reduces, a fixed GPU gap), next to the CPU's part, which async
    scheduling hides (llmplan/sim/stepmodel.py). The fractions are physical efficiencies,
    fitted once to the published record (benchmarks/published.py, FIDELITY.md): calibrate
    against your own server (`llmplan calibrate`) before trusting absolute numbers.
    """

    kind: Literal["roofline"] = "roofline"
    compute_efficiency: float = Field(
        default=0.55, gt=0, le=1,
        description="Achieved fraction of peak tensor-core FLOP/s (GEMMs and attention) on "
                    "an H100; GPUs with a measured GEMM share scale it (catalog "
                    "gemm_efficiency_vs_h100).")
    memory_efficiency: float = Field(
        default=0.75, gt=0, le=1,
        description="Achieved fraction of peak memory bandwidth (weights and KV reads).")
    dequant_efficiency: float = Field(
        default=0.84, gt=0, le=1, description="Compute efficiency factor for weights the GPU "
                                              "has no tensor cores for (dequantised in the "
                                              "kernel: Marlin W8A16 / W4A16).")
    expert_slot_overhead_width: float = Field(
        default=1700.0, ge=0,
        description="Cost of one token's slot in a routed expert beyond the expert's GEMMs "
                    "(gathering its hidden vector, sorting, padding the expert's tile, "
                    "scattering and summing the output), as the extra expert-width columns "
                    "that would cost as much at the 16-bit rate (it moves 16-bit hidden "
                    "vectors: FP8 and FP4 tensor cores do not shorten it): a slot costs "
                    "6 x hidden x this FLOPs on every GPU holding a slice of the expert, on "
                    "top of its GEMMs, so narrow experts, or experts sliced by tensor "
                    "parallelism without expert parallelism, run well below the dense GEMM "
                    "rate. Median of twelve estimates (95-5,200) from published "
                    "large-batch MoE kernel benchmarks against the dense GEMM ceiling of the "
                    "same GPU (vLLM fused_moe, CUTLASS grouped GEMM, DeepGEMM; FIDELITY.md).")
    gpu_fixed_ms: float = Field(default=0.3, ge=0,
                                description="GPU time per step nothing overlaps (launch gaps).")
    eager_launch_us_per_layer: float = Field(
        default=230.0, ge=0,
        description="engine.enforce_eager (no CUDA graphs; vLLM also turns torch.compile "
                    "off, vllm/config/vllm.py): the CPU's time launching one decoder layer's "
                    "kernels, a floor under a step's GPU work (layers x this). Median of "
                    "four eager-versus-graphs decode gaps of tiny models, whose GPU work is "
                    "far below it (OPT-125M on vLLM V1 and V0, vllm#10058: 130 and 169 us a "
                    "layer; GPT-2 on vLLM and SGLang, H200, deepspeedai/DeepSpeed#8352: 293 "
                    "and 320).")
    eager_gap_us_per_layer: float = Field(
        default=47.0, ge=0,
        description="engine.enforce_eager: GPU time per decoder layer per step its short "
                    "kernels' launch gaps add whatever the batch (kernels shorter than their "
                    "launch leave the GPU idle between them). Median of five eager-versus-"
                    "graphs decode gaps of 7-8B models, whose GPU work is about the launch "
                    "floor (vllm#1440: 47; vllm#10058: 54, 27; sgl-project/sglang#1401: 69, "
                    "28 us a layer).")
    cpu_fixed_ms: float = Field(
        default=1.5, ge=0, description="CPU time per step (scheduling, input preparation); "
                                       "hidden behind the GPU with async scheduling.")
    cpu_per_seq_us: float = Field(
        default=25.0, ge=0, description="CPU time per running sequence per step (sampling "
                                        "bookkeeping, detokenising, streaming output).")
    frontend_per_token_us: float = Field(
        default=80.0, ge=0,
        description="Streaming path's CPU time per streamed token: the API server "
                    "detokenises, builds and sends an SSE chunk in its own process (and a "
                    "Python client parses it) while the engine runs the next step, a "
                    "pipeline stage async scheduling does not hide, so a decode step of D "
                    "sequences lasts at least D of these (divided by engine.api_server_count). "
                    "From the median TPOTs of four 1,000-stream ShareGPT runs whose GPUs sit "
                    "nearly idle (gpt-oss on 1-2 H100s and 8 B200s stream the same 6-9k "
                    "tokens/s; vllm#23696, vllm#23369, GPUStack; benchmarks/published.py). "
                    "0: served in-process (offline batch).")
    tp_sync_us_per_layer: float = Field(
        default=8.0, ge=0, description="All-reduce latency per layer per step when tp > 1.")
    nccl_allreduce_factor: float = Field(
        default=1.9, ge=1,
        description="tp_sync_us_per_layer with NCCL's all-reduce over vLLM's custom one, "
                    "which vLLM 0.11.1 to 0.26 turns off when a replica spans servers (vllm/"
                    "config/parallel.py, nnodes > 1; from 0.27.0 a tensor-parallel group "
                    "within one server keeps it). Mean of two same-run measurements on four "
                    "H100s at 0.5 MB in bf16 (benchmark_device_communicators.py with CUDA "
                    "graphs): NCCL 1.68x (vllm#24111) and 2.13x (vllm#24532) the custom "
                    "kernel's time; the ratio is higher for smaller messages.")
    pcie_custom_allreduce_us: float = Field(
        default=9.2, ge=0,
        description="One small all-reduce (a decode step's hidden vectors) by vLLM's custom "
                    "kernel over PCIe peer-to-peer, the path it takes for two PCIe cards. "
                    "Median of the one-shot kernels' times at 8-32 KB on PCIe cards with "
                    "peer-to-peer on (RTX PRO 6000: 10.1, 8.9, 11.6, 9.2 us in four "
                    "voipmonitor/rtx6kpro tables; V100 behind a PCIe switch: 5.0 us, "
                    "haohervchb/sglang-V100 PR #2); NVLink's is tp_sync_us_per_layer / 2.")
    pcie_nccl_allreduce_us: float = Field(
        default=21.9, ge=0,
        description="One small all-reduce by NCCL between PCIe cards: the path vLLM takes for "
                    "more than two PCIe-only GPUs (custom_all_reduce.py: 'not supported on "
                    "more than two PCIe-only GPUs'), for cards without peer-to-peer, and "
                    "across servers. Median of nccl-tests all_reduce_perf at 8-32 KB on "
                    "PCIe servers, ten tables (RTX PRO 6000 x4-x8: 15.4, 57.6, 18.6, 32.2, "
                    "24.2 us, voipmonitor/rtx6kpro; RTX 5090 x8: 37.0, aikitoria/open-gpu-kernel-"
                    "modules; V100 x4 on a PCIe switch: 20.3, haohervchb/sglang-V100; RTX "
                    "4090 x2 and x4 without peer-to-peer: 16.8, 13.5, 23.5, kalavai-net/"
                    "kalavai-client).")
    moe_layer_us: float = Field(
        default=71.0, ge=0,
        description="GPU time per MoE layer per step beyond its expert reads and FLOPs: the "
                    "kernels a routed layer adds to a dense one (router, top-k, token sort, "
                    "activation quantisation, two grouped GEMMs, their sum), each too short "
                    "to reach the roofline. From published low-concurrency decode times "
                    "(benchmarks/layer_overhead.py).")
    mla_layer_us: float = Field(
        default=52.0, ge=0,
        description="GPU time per MLA attention layer per step beyond its reads and FLOPs "
                    "(split latent projections, extra norms, absorbed BMMs, split-KV "
                    "combine). Same source as moe_layer_us.")
    allreduce_efficiency: float = Field(
        default=0.6, gt=0, le=1, description="Achieved fraction of the GPU's interconnect "
                                             "bandwidth in all-reduces (tp > 1).")


class LinearStepTime(_Strict):
    """Explicit step-time coefficients (what `llmplan calibrate` fits)."""

    kind: Literal["linear"] = "linear"
    fixed_ms: float = Field(ge=0, description="Whole fixed time per step (what no token adds).")
    per_prefill_token_us: float = Field(ge=0)
    per_decode_seq_us: float = Field(ge=0)
    per_kv_token_ns: float = Field(ge=0, description="Per KV-cache token read in a step.")
    per_prefill_pair_ns: float = Field(
        default=0.0, ge=0,
        description="Per (query, key) pair of prefill attention: n prompt tokens computed "
                    "after c cached ones (a prefix hit, earlier chunks) attend to n x c + "
                    "n (n + 1) / 2 keys. 0: the prompt's attention is in per_prefill_token.")

    @model_validator(mode="after")
    def _steps_take_time(self) -> LinearStepTime:
        if self.fixed_ms + self.per_decode_seq_us + self.per_kv_token_ns <= 0:
            raise ValueError("a decoding step would take no time (fixed_ms, "
                             "per_decode_seq_us and per_kv_token_ns are all 0); expected "
                             "at least one of them > 0")
        return self


class TabulatedStepTime(_Strict):
    """Step time measured against the number of tokens in the step (prompt tokens plus one
    per decoding sequence), where a straight line does not fit: a CPU server's kernels
    cost 22 ms for one decode token and 11 ms per token for a long prompt. What `llmplan
    calibrate` writes when this explains the steps better than the linear kind.

        step = h(P + D) + per_kv_token x K + per_prefill_pair x A

    h runs straight between the measured points, from 0 at no tokens; past the last point
    it grows at the last segment's rate."""

    kind: Literal["tabulated"] = "tabulated"
    tokens_ms: list[tuple[Annotated[int, Field(gt=0, le=1_048_576)],
                          Annotated[float, Field(ge=0)]]] = Field(
        min_length=2, max_length=256,
        description="[tokens in the step, milliseconds] points, tokens increasing.")
    per_kv_token_ns: float = Field(ge=0, description="Per KV-cache token read in a step.")
    per_prefill_pair_ns: float = Field(
        default=0.0, ge=0, description="Per (query, key) pair of prefill attention (see "
                                       "the linear kind).")

    @model_validator(mode="after")
    def _increasing(self) -> TabulatedStepTime:
        tokens = [t for t, _ in self.tokens_ms]
        if any(b <= a for a, b in itertools.pairwise(tokens)):
            raise ValueError(f"tokens_ms: the token counts must increase, got {tokens}")
        if self.tokens_ms[0][1] <= 0 and self.per_kv_token_ns <= 0:
            # h runs from 0 at no tokens: a one-token decode step would take no time
            raise ValueError("tokens_ms: a step of one decode token would take no time (the "
                             "first point is 0 ms and per_kv_token_ns is 0); expected the "
                             "first point's milliseconds > 0 or per_kv_token_ns > 0")
        return self


FittedStepTime = Annotated[LinearStepTime | TabulatedStepTime, Field(discriminator="kind")]


class CalibrationServer(_Strict):
    """What the server said about itself (llama.cpp /props), when it did."""

    slots: int = Field(gt=0)
    n_ctx_per_slot: int | None = None
    build: str | None = None
    model_file: str | None = Field(default=None, description="The model file the server "
                                   "loaded (the name of llama.cpp's /props model_path).")
    engine: str | None = Field(
        default=None, description="The engine the steps were measured on: llama.cpp (its "
                                  "/props), vllm (its /metrics), else the load test's target "
                                  "kind (ollama; openai: an OpenAI-compatible server of an "
                                  "engine not known); None: not recorded (older files).")


class CalibrationEngine(_Strict):
    """The engine limits the fit was made under (they become the deployment's engine)."""

    max_num_seqs: int = Field(gt=0)
    max_num_batched_tokens: int = Field(gt=0)
    kv_cache_tokens: int | None = Field(default=None, gt=0)
    prefix_caching: Literal["vllm", "per_slot", "off"] | None = Field(
        default=None, description="The server's prompt cache: per_slot for llama.cpp (its "
                                  "slots report a context each), else the engine default.")


class FitQuality(_Strict):
    steps: int = Field(ge=0, description="Reconstructed steps the fit used.")
    cold_starts: int = Field(ge=0)
    r2: float
    rmse_ms: float = Field(ge=0)
    median_abs_error_pct: float = Field(ge=0)
    requests: int = Field(ge=0)
    longest_prompt_tokens: int | None = Field(
        default=None, ge=0, description="The longest prompt the fitted runs' server computed "
                                        "(tokens, less those it had cached): how a prompt's "
                                        "cost splits between its tokens and its attention is "
                                        "measured up to it and extrapolated past it.")
    rejected: str | None = Field(
        default=None, description="Why the quality gate refused this fit, when `llmplan "
                                  "calibrate --accept-poor-fit` wrote it anyway: every "
                                  "simulation and validation using it repeats it.")


class SpeedPoint(_Strict):
    """The calibration runs' decode-only steps of one batch size, measured: what a later
    run's same steps are compared with to read how fast its server ran (`llmplan
    validate`), whatever the fitted coefficients say."""

    decode_seqs: int = Field(gt=0)
    median_ms: float = Field(gt=0)
    median_kv_tokens: float = Field(ge=0)
    steps: int = Field(gt=0)
    #: their mean time and context: a later run's total time over the same steps is read
    #: against these (None in files written before they were kept: the medians are)
    mean_ms: float | None = Field(default=None, gt=0)
    mean_kv_tokens: float | None = Field(default=None, ge=0)


class Calibration(_Strict):
    """calibration.yaml: what `llmplan calibrate` writes and `kind: calibrated` reads."""

    source: str
    server: CalibrationServer
    step_time: FittedStepTime
    engine: CalibrationEngine
    client_overhead_ms: float = Field(ge=0, description="HTTP, tokenisation and queueing "
                                                        "outside the engine, per request.")
    fit: FitQuality
    speed_reference: list[SpeedPoint] | None = Field(
        default=None, description="The fitted runs' decode-only steps per batch size, "
                                  "measured (none from vLLM's metrics).")

    def write(self, path: Path) -> Path:
        path.write_text("# Written by `llmplan calibrate`; reference it from a scenario as\n"
                        "#   step_time: {kind: calibrated, file: " + path.name + "}\n"
                        + yaml.safe_dump(self.model_dump(mode="json", exclude_none=True),
                                         sort_keys=False), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> Calibration:
        """The calibration at `path`, or a ValueError saying what is wrong with it."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read calibration file {path}: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("step_time"), dict):
            raise ValueError(f"{path} is not a calibration file (no step_time section); "
                             f"expected the output of `llmplan calibrate`")
        if "overhead_ms" in data["step_time"]:
            raise ValueError(f"{path}: step_time.overhead_ms was renamed fixed_ms; rename the "
                             f"key or run `llmplan calibrate` again")
        data["step_time"].setdefault("kind", "linear")    # files written before the table
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                              for e in exc.errors())
            raise ValueError(f"{path}: not a valid calibration file: {where}") from None


class CalibratedStepTime(_Strict):
    """Coefficients and client overhead fitted by `llmplan calibrate` (a calibration.yaml)."""

    kind: Literal["calibrated"] = "calibrated"
    file: str
    calibration: Calibration | None = Field(
        default=None, description="The file's content: read from `file`, and written out "
                                  "with the deployment (a stack file carries it, so `pulumi "
                                  "up` needs no file beside it).")

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> CalibratedStepTime:
        if self.calibration is not None:
            return self
        path = Path((info.context or {}).get("base_dir", ".")) / self.file
        object.__setattr__(self, "calibration", Calibration.read(path))
        return self


StepTimeSpec = Annotated[RooflineStepTime | LinearStepTime | TabulatedStepTime
                         | CalibratedStepTime,
                         Field(discriminator="kind")]
