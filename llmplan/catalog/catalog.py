"""Typed catalog entries and the merge of scenario overrides over the built-in files.

Every number keeps its source (`sources:` of the entry, keyed by field); every price its
`prices_as_of` date. Numbers are stored in the unit their source uses: GPU memory as the
MiB the runtime reports (what vLLM budgets), datasheet TFLOP/s and GB/s, provider prices per
million tokens.
"""

from __future__ import annotations

import datetime
import itertools
from functools import cache
from importlib import resources
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

#: How a model's weights are stored. int4 is AWQ/GPTQ (W4A16, group 128), mxfp4 the OCP
#: microscaling format (gpt-oss ships its experts in it), nvfp4 NVIDIA's 4-bit format.
DType = Literal["bf16", "fp16", "fp8", "int8", "int4", "mxfp4", "nvfp4"]
KvDType = Literal["bf16", "fp16", "fp8"]

#: Bits per stored weight, scales included: int4 groups of 128 with a 16-bit scale and a
#: 4-bit zero (4.16, rounded to 4.25 for packing); mxfp4 blocks of 32 with an 8-bit shared
#: exponent (4 + 8/32); nvfp4 blocks of 16 with an fp8 scale (4 + 8/16).
WEIGHT_BITS: dict[str, float] = {"bf16": 16.0, "fp16": 16.0, "fp8": 8.0, "int8": 8.0,
                                 "int4": 4.25, "mxfp4": 4.25, "nvfp4": 4.5}
#: Bytes per stored element of the KV cache (and of any 8/16-bit tensor).
DTYPE_BYTES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0,
                                 "int4": 0.5, "mxfp4": 0.53125, "nvfp4": 0.5625}

MIB = float(1 << 20)

#: Largest magnitude accepted for any catalog number: far above any real GPU or model, and
#: small enough that the memory arithmetic (products of a few fields) stays finite.
MAX_CATALOG_NUMBER = 1e12


def _needs_source(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    return isinstance(value, int | float | dict | list | tuple | BaseModel)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: Fields whose entries carry their own `source` (a mapping of sourced items).
    self_sourced_fields: ClassVar[frozenset[str]] = frozenset()

    sources: dict[str, str] = Field(
        default_factory=dict, description="Where each number comes from, keyed by field.")

    @field_validator("*")
    @classmethod
    def _not_absurdly_large(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and abs(value) > MAX_CATALOG_NUMBER:
            raise ValueError(f"must be at most {MAX_CATALOG_NUMBER:g}")
        return value

    @field_validator("prices_as_of", check_fields=False)
    @classmethod
    def _not_in_the_future(cls, value: datetime.date) -> datetime.date:
        # a date to come would keep the 180-day staleness check quiet for ever
        if value > datetime.date.today():
            raise ValueError(f"{value} is after today; expected the date the prices were "
                             f"read")
        return value

    @model_validator(mode="after")
    def _every_number_has_a_source(self) -> _Entry:
        # a field left at its default (written out again by a round trip) needs none
        fields = type(self).model_fields
        missing = [name for name in self.model_fields_set
                   if name != "sources" and name not in self.self_sourced_fields
                   and _needs_source(getattr(self, name))
                   and getattr(self, name) != fields[name].get_default(call_default_factory=True)
                   and not self.sources.get(name)]
        if missing:
            raise ValueError(f"no source given for: {', '.join(sorted(missing))} "
                             f"(add them under sources)")
        return self


#: Where a GPU's figures lie in the units their fields name, far enough apart to pass any
#: accelerator and to catch one typed in the unit a thousand times larger or smaller (TB/s
#: in a GB/s field, PFLOP/s in a TFLOP/s one): (field, lowest, highest, unit, example).
_GPU_SCALES: tuple[tuple[str, float, float, str, str], ...] = (
    ("memory_bandwidth_gb_per_s", 50.0, 50_000.0, "GB/s", "an H100 SXM's is 3,350"),
    ("bf16_dense_tflops", 2.0, 50_000.0, "dense TFLOP/s", "an H100 SXM's is 989"),
    ("fp8_dense_tflops", 2.0, 100_000.0, "dense TFLOP/s", "an H100 SXM's is 1,979"),
    ("fp4_dense_tflops", 2.0, 200_000.0, "dense TFLOP/s", "a B200's is 9,000"),
    ("int8_dense_tops", 2.0, 100_000.0, "dense TOP/s", "an A100's is 624"),
    ("interconnect_gb_per_s", 1.0, 20_000.0, "GB/s, one direction",
     "NVLink 4's is 450, PCIe 4 x16's 32"),
    ("network_gb_per_s", 0.1, 20_000.0, "GB/s", "a 400 Gb/s NIC's is 50"),
    ("tdp_w", 10.0, 20_000.0, "W", "an H100 SXM's is 700"),
)


class GpuSpec(_Entry):
    """One accelerator model. Dense (no sparsity) peaks; prices per GPU."""

    name: str
    vendor: Literal["nvidia", "amd"] = "nvidia"
    memory_mib: float = Field(
        gt=0, description="Total memory the runtime reports (torch.cuda.mem_get_info()[1] "
                          "/ 2^20): what vLLM's gpu_memory_utilization multiplies.")
    marketed_memory_gb: float = Field(gt=0, description="The datasheet's figure (a label).")
    bf16_dense_tflops: float = Field(gt=0)
    compute_capability: str | None = Field(
        default=None, pattern=r"^\d+\.\d+$", validate_default=True,
        description="CUDA compute capability (torch's major.minor; None: not NVIDIA, or not "
                    "known). vLLM keys defaults and kernels on it: 10.x, data-centre "
                    "Blackwell, captures CUDA graphs of up to 1024 tokens from vLLM 0.28; "
                    "NVFP4 below 10.0 needs vLLM 0.9 (llmplan/perf/support.py).")
    @field_validator("compute_capability", mode="before")
    @classmethod
    def _as_written(cls, value: Any) -> Any:
        # YAML reads an unquoted 9.0 as a number, and 12 as a whole one
        if isinstance(value, bool):
            return value
        return f"{value:.1f}" if isinstance(value, int | float) else value

    @field_validator("compute_capability")
    @classmethod
    def _nvidia_has_one(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("vendor", "nvidia") == "nvidia":
            raise ValueError(
                "required for an NVIDIA GPU: vLLM picks its kernels and defaults by it "
                "(torch's major.minor: 8.0 A100, 8.6 A10 and RTX 3090, 8.9 L4, L40S and RTX "
                "4090, 9.0 H100 and H200, 10.0 B200, 10.3 B300, 12.0 RTX 5090 and RTX PRO "
                "6000)")
        return value

    fp8_dense_tflops: float | None = Field(
        default=None, gt=0, description="FP8 tensor cores (Hopper, Ada, Blackwell, MI300); "
                                        "None: FP8 weights are dequantised to BF16.")
    fp4_dense_tflops: float | None = Field(
        default=None, gt=0, description="FP4 tensor cores (Blackwell, MI355X); None: 4-bit "
                                        "weights are dequantised (W4A16).")
    int8_dense_tops: float | None = Field(
        default=None, gt=0, description="INT8 tensor cores, where their rate is not the FP8 "
                                        "one (Ampere has INT8 but no FP8; GeForce Ada runs "
                                        "FP8 at half rate with FP32 accumulation, INT8 at "
                                        "full); None: fp8_dense_tflops.")
    memory_bandwidth_gb_per_s: float = Field(gt=0, description="Peak HBM/GDDR bandwidth.")
    interconnect: Literal["nvlink", "pcie", "infinity_fabric"] = "pcie"
    interconnect_gb_per_s: float = Field(
        gt=0, description="Per GPU, one direction, to its peers (NVLink 4: 450).")
    peer_to_peer: bool = Field(
        default=True,
        description="GPUs of one server read and write each other's memory directly (CUDA "
                    "peer-to-peer), which vLLM's custom all-reduce needs on PCIe cards; "
                    "NVIDIA's driver leaves it off on GeForce cards.")
    host_allreduce_bus_gb_per_s: float = Field(
        default=3.9, gt=0,
        description="Without peer-to-peer (peer_to_peer false): NCCL's all-reduce bus bandwidth "
                    "(nccl-tests busbw at 32-128 MB) through host memory, its SHM transport. "
                    "A property of the server more than of the card: median of eight "
                    "published nccl-tests plateaus of stock-driver GeForce boxes, 0.9-27 GB/s "
                    "(2 x RTX 4090: 2.22, 3.71, 0.89, 9.04; 4 x RTX 4090: 2.57, kalavai-net/"
                    "kalavai-client scripts/README.md and lab notes; 8 x RTX 4090 on two EPYC "
                    "7542: 14.45, blog.chlc.cc 'RTX4090 GPUDirect P2P Unlocked!'; 4 x RTX 5090 "
                    "on Genoa: 27.26, NVIDIA/nccl-tests#287; 2 x RTX 2080 Ti behind a PCIe "
                    "switch: 4.00, Anthony-Hoo's AutoDL test). Set the box's own figure when "
                    "known: many-channel server CPUs reach 14-27.")
    interconnect_domain_gpus: int = Field(
        default=8, gt=0, le=1024,
        description="GPUs that reach each other at interconnect_gb_per_s: one server's (8 in "
                    "HGX/DGX boards, 8-GPU PCIe servers and MI300-series OAM platforms), or "
                    "a rack's NVLink domain (GB200 NVL72: 72, whose trays hand pipeline "
                    "stages over through NVLink). tp stays within one server (node_gpus): "
                    "past it vLLM would span hosts, which is neither simulated nor "
                    "provisioned.")
    network_gb_per_s: float = Field(
        default=6.25, gt=0,
        description="Per GPU, one direction, between servers: the server's scale-out NICs "
                    "shared by its GPUs (DGX/HGX: a 400 Gb/s ConnectX-7 per GPU = 50; "
                    "default: one 400 Gb/s NIC for 8 GPUs). Pipeline stages on several "
                    "servers hand over through it.")
    board_gpus: int = Field(
        default=1, gt=0, le=1024,
        description="The fewest GPUs one can buy together: 1 for PCIe cards; an SXM or OAM "
                    "module comes on a baseboard of 4 or 8 (HGX, AMD's UBB), so an owned "
                    "fleet buys whole boards.")
    node_gpus: int = Field(
        default=8, gt=0, le=1024,
        description="GPUs one server, so one Kubernetes node, holds (8 on HGX/DGX boards and "
                    "8-GPU servers; 4 in a GB200 NVL72 compute tray): the most one pod can "
                    "be given (a replica whose pipeline stages span servers has a pod per "
                    "server).")
    tdp_w: float = Field(gt=0)
    purchase_usd: float = Field(ge=0)
    rental_usd_per_gpu_hour: float = Field(ge=0)
    reserved_usd_per_gpu_hour: float = Field(ge=0)
    prices_as_of: datetime.date
    k8s_product_label: str | None = Field(
        default=None, description="Node label value (nvidia.com/gpu.product or AMD's).")
    host_arch: Literal["amd64", "arm64"] = Field(
        default="amd64",
        description="The CPU architecture of the servers the GPU comes in, as Kubernetes "
                    "labels their nodes (kubernetes.io/arch): arm64 for Grace hosts (GB200, "
                    "GH200), whose pods need an image published for arm64.")
    gemm_efficiency_vs_h100: dict[Literal["bf16", "fp8", "fp4"], float] = Field(
        default_factory=dict,
        description="This GPU's measured dense GEMM rate as a share of its datasheet peak, "
                    "over the H100 SXM's share in the same benchmark (the roofline's "
                    "compute_efficiency is an H100's; absent: 1, the GPU's libraries reach "
                    "the same share of their peak).")
    marlin_vs_bf16_gemm: float | None = Field(
        default=None, gt=0, le=1,
        description="Share of this GPU's BF16 GEMM rate that Marlin-family kernels (vLLM's "
                    "W4A16/W8A16 dequantising GEMMs, Ampere-style mma.sync) reach at prefill "
                    "sizes (M >= 1,024): they do about the same work per SM and clock on "
                    "Ampere and Hopper, so they fall further below the newer tensor cores' "
                    "peak. None: the roofline's dequant_efficiency.")

    @model_validator(mode="after")
    def _consistent(self) -> GpuSpec:
        reported_mib = self.marketed_memory_gb * 1e9 / MIB
        if not 0.9 * reported_mib <= self.memory_mib <= 1.2 * reported_mib:
            raise ValueError(
                f"memory_mib ({self.memory_mib:g}) is not what a card marketed with "
                f"{self.marketed_memory_gb:g} GB reports (from {0.9 * reported_mib:,.0f} to "
                f"{1.2 * reported_mib:,.0f} MiB; cards report 0.98-1.07 x their marketed "
                f"bytes): expected one device's MiB, nvidia-smi's 'MiB' total (GiB x 1024), "
                f"and its own marketed GB (a board of two devices: one of them)")
        for name, low, high, unit, example in _GPU_SCALES:
            figure = getattr(self, name)
            if figure is not None and not low <= figure <= high:
                raise ValueError(
                    f"{name} ({figure:g}) is not in {unit} (a GPU's is {low:,g} to "
                    f"{high:,g}; {example}): a figure in another unit (x1000 or /1000) makes "
                    f"every step that far off")
        rates = [("bf16_dense_tflops", self.bf16_dense_tflops),
                 ("fp8_dense_tflops", self.fp8_dense_tflops),
                 ("fp4_dense_tflops", self.fp4_dense_tflops)]
        given = [(name, rate) for name, rate in rates if rate is not None]
        for (wide, wide_rate), (narrow, narrow_rate) in itertools.pairwise(given):
            if narrow_rate < wide_rate:
                raise ValueError(f"{narrow} ({narrow_rate:g}) is below {wide} "
                                 f"({wide_rate:g}): tensor cores run a narrower format at "
                                 f"least as fast (leave a rate out when the GPU has no "
                                 f"tensor cores for it)")
        cc = self.capability
        if self.vendor == "nvidia" and cc is not None:
            # NVIDIA's FP8 tensor cores came with Ada and Hopper (8.9, 9.0), FP4 with
            # Blackwell (10.0, 12.0)
            for name, rate, since in (("fp8_dense_tflops", self.fp8_dense_tflops, (8, 9)),
                                      ("fp4_dense_tflops", self.fp4_dense_tflops, (10, 0))):
                if rate is not None and cc < since:
                    raise ValueError(
                        f"{name} on compute capability {self.compute_capability}: NVIDIA's "
                        f"tensor cores for it start at {since[0]}.{since[1]}; leave it out "
                        f"(the weights are then dequantised, as vLLM does on this GPU)")
        return self

    @property
    def capability_major(self) -> int | None:
        """The compute capability's major number (9: Hopper, 10: data-centre Blackwell;
        None: not given)."""
        return self.capability[0] if self.capability is not None else None

    @property
    def capability(self) -> tuple[int, int] | None:
        """The compute capability as (major, minor), for comparisons (None: not given)."""
        if self.compute_capability is None:
            return None
        major, minor = self.compute_capability.split(".")
        return int(major), int(minor)

    @property
    def memory_bytes(self) -> float:
        return self.memory_mib * MIB

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.memory_bandwidth_gb_per_s * 1e9

    @property
    def int8_tops(self) -> float | None:
        """Dense INT8 tensor-core TOP/s (None: no INT8 tensor cores listed): vLLM's W8A8
        INT8 layers run CUTLASS's INT8 GEMMs from capability 7.5 to 9.x (its Blackwell
        builds have none, so vLLM refuses INT8 there: llmplan.perf.support)."""
        return self.int8_dense_tops if self.int8_dense_tops is not None \
            else self.fp8_dense_tflops

    def flops_per_s(self, weights: str) -> float:
        """Dense tensor-core rate of the tensor cores a format multiplies on (a format of
        weights alone, such as gpt-oss's MXFP4, is asked for as "bf16":
        llmplan.perf.steptime.gemm_flops_per_s)."""
        if weights == "int8" and self.int8_tops is not None:
            return self.int8_tops * 1e12
        if weights == "fp8" and self.fp8_dense_tflops is not None:
            return self.fp8_dense_tflops * 1e12
        if weights in ("mxfp4", "nvfp4") and self.fp4_dense_tflops is not None:
            return self.fp4_dense_tflops * 1e12
        return self.bf16_dense_tflops * 1e12

    def gemm_efficiency(self, weights: str) -> float:
        """The measured GEMM share of peak over an H100's for the kernels `weights` run on
        (FP8 tensor cores, INT8 ones where they have their own rate (the 16-bit share
        stands in), else the 16-bit ones: dequantising kernels compute in BF16)."""
        if weights in ("mxfp4", "nvfp4") and self.fp4_dense_tflops is not None:
            return self.gemm_efficiency_vs_h100.get("fp4", 1.0)
        if weights == "int8" and self.int8_dense_tops is not None:
            return self.gemm_efficiency_vs_h100.get("bf16", 1.0)
        native_fp8 = weights in ("fp8", "int8") and self.fp8_dense_tflops is not None
        return self.gemm_efficiency_vs_h100.get("fp8" if native_fp8 else "bf16", 1.0)

    def runs_natively(self, weights: str) -> bool:
        """Whether this GPU has tensor cores for the format (else a dequantising kernel)."""
        if weights in ("bf16", "fp16"):
            return True
        if weights == "int8":
            return self.int8_tops is not None
        if weights == "fp8":
            return self.fp8_dense_tflops is not None
        if weights in ("mxfp4", "nvfp4"):
            return self.fp4_dense_tflops is not None
        return False   # int4 (AWQ/GPTQ): W4A16 kernels everywhere


class ChatTemplate(BaseModel):
    """Tokens a model's chat template puts around the messages of a chat request: the
    engine computes them (and caches them) like the prompt's own."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    message_tokens: float = Field(ge=0, le=1000, description="Around each message (role "
                                  "marker, end of turn), on average over the two roles.")
    reply_tokens: float = Field(ge=0, le=1000, description="Once per request: the "
                                "assistant's opening the prompt ends with (the generation "
                                "prompt), and a begin-of-text token where the template "
                                "writes one.")
    default_system_tokens: float = Field(
        default=0.0, ge=0, le=10_000, description="A system message the template inserts "
        "when the request has none (SmolLM2, Qwen2.5, Llama 3.1), template included.")

    def prompt_tokens(self, turn: np.ndarray) -> np.ndarray:
        """Template tokens of a chat prompt at each `turn` (0: one user message; turn k
        carries k earlier user messages and k answers before its own message), rounded."""
        tokens: np.ndarray = np.rint(self.default_system_tokens + self.reply_tokens
                                     + self.message_tokens * (2 * turn + 1))
        return tokens.astype(np.int64)

    def shared_tokens(self, turn: np.ndarray) -> np.ndarray:
        """The part of them a prefix shared with earlier requests covers: on a first turn,
        the inserted system message and the user message's opening; later, everything the
        previous turn's prompt had (its history is this turn's prefix)."""
        first = np.rint(self.default_system_tokens + self.message_tokens / 2)
        return np.where(turn > 0, self.prompt_tokens(turn - 1), first).astype(np.int64)


#: [block_n, block_k] of a block-quantised checkpoint: output and input rows per scale.
WeightBlock = tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]]


class Checkpoint(BaseModel):
    """A published Hugging Face repository of weights, with where we learnt it exists."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hf_id: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$",
                       description="Hugging Face repository, `owner/name`.")
    hub_gated: bool | None = Field(
        default=None, description="Whether the hub asks for an accepted licence and a token "
                                  "before it serves the files (None: not known).")
    source: str = Field(min_length=1, description="Where the repository (and its format, "
                                                  "and its gating when known) is documented.")
    weight_block_size: WeightBlock | None = Field(
        default=None, description="FP8 block quantisation: its config.json's quantization_"
                                  "config.weight_block_size [block_n, block_k] (None: not "
                                  "block-quantised). Every slice tensor parallelism cuts must "
                                  "be a whole number of blocks.")


#: Speculative-decoding methods whose drafter is a separate published checkpoint.
DrafterMethod = Literal["eagle", "eagle3"]


#: How far below what its shapes imply a model's parameter counts may be: model cards round
#: ("7B" for Mistral-7B's 7.25 billion), and norms, biases and vision towers only add.
SHAPES_TOLERANCE = 0.95


class ModelSpec(_Entry):
    """One open-weights model architecture (what sizes weights, the KV cache and FLOPs)."""

    self_sourced_fields: ClassVar[frozenset[str]] = frozenset({"checkpoints", "drafters"})

    hf_id: str
    architecture: str | None = Field(
        default=None, pattern=r"^[A-Za-z][A-Za-z0-9]*$",
        description="The checkpoint's config.json architectures[0] (LlamaForCausalLM), which "
                    "vLLM looks up in its model registry: a pinned vLLM release older than "
                    "the architecture is refused (llmplan/perf/support.py; None: not "
                    "checked).")
    hub_gated: bool | None = Field(
        default=None, description="Whether `hf_id` is a gated repository (an accepted licence "
                                  "and a token before download; None: not known).")
    checkpoints: dict[DType, Checkpoint] = Field(
        default_factory=dict, description="Published checkpoints of this model in other "
                                          "weight formats (`hf_id` holds default_dtype).")
    drafters: dict[DrafterMethod, Checkpoint] = Field(
        default_factory=dict, description="Published EAGLE drafters for this model, per "
                                          "speculative-decoding method.")
    layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    attention_heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate_size: int = Field(gt=0, description="Dense MLP width (dense layers).")
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool = False
    params_b: float = Field(gt=0, description="Total parameters, billions (model card).")
    active_params_b: float = Field(gt=0, description="Parameters used per token (MoE: "
                                                     "shared + routed top-k).")
    max_context_tokens: int = Field(gt=0)
    default_dtype: DType = Field(default="bf16", description="The format the checkpoint ships "
                                                             "in.")
    mxfp4_activations: Literal["bf16", "mxfp4"] = Field(
        default="mxfp4", description="What the MXFP4 experts multiply: mxfp4, a checkpoint "
        "that quantises the activations too (AMD Quark's W4A4), at the GPU's FP4 rate; "
        "bf16, a checkpoint of weights alone (gpt-oss: no activation scales), whose experts "
        "compute at the 16-bit rate on every GPU (llmplan.perf.steptime.gemm_flops_per_s).")
    weight_block_size: WeightBlock | None = Field(
        default=None, description="hf_id's FP8 block quantisation, [block_n, block_k] of its "
                                  "quantization_config (DeepSeek-V3: [128, 128]; None: not "
                                  "block-quantised).")
    experts: int | None = Field(default=None, gt=0, description="Routed experts per MoE layer.")
    experts_per_token: int | None = Field(default=None, gt=0)
    shared_experts: int = Field(default=0, ge=0)
    moe_intermediate_size: int | None = Field(default=None, gt=0)
    moe_layers: int | None = Field(default=None, ge=0,
                                   description="Layers with experts (default: all).")
    attention: Literal["gqa", "mla"] = Field(
        default="gqa", description="mla: DeepSeek's latent KV (kv_lora_rank + rope dims).")
    kv_lora_rank: int | None = Field(default=None, gt=0)
    q_lora_rank: int | None = Field(
        default=None, gt=0, description="MLA's query latent (DeepSeek-V3: 1536; None: the "
                                        "query is projected directly, split by tensor "
                                        "parallelism).")
    qk_rope_head_dim: int | None = Field(default=None, gt=0)
    sliding_window_tokens: int | None = Field(
        default=None, gt=0, description="Window of the sliding-window layers.")
    sliding_layers: int = Field(default=0, ge=0,
                                description="How many layers attend only within the window.")
    local_attention: Literal["sliding", "chunked"] = Field(
        default="sliding", description="How the window layers attend: a sliding window "
                                       "(gpt-oss, Gemma 3), or chunks of the window's length "
                                       "(Llama 4's attention_chunk_size), which some vLLM "
                                       "releases page as full attention.")
    vision_params_b: float = Field(
        default=0.0, ge=0, description="Parameters of the vision encoder and its projector "
                                       "into the text model, billions, counted in params_b "
                                       "(vLLM loads them): they run only on images, so a "
                                       "step of text neither reads nor multiplies them "
                                       "(llmplan.perf.steptime).")
    mtp_layers: int = Field(default=0, ge=0, description="Multi-token-prediction layers "
                                                         "(DeepSeek), used for speculation.")
    mtp_params_b: float = Field(
        default=0.0, ge=0, description="Parameters of the MTP modules beyond those they share "
                                       "with the model (embedding, output head), billions: "
                                       "loaded next to the weights when speculating with "
                                       "them; not in params_b.")
    mtp_active_params_b: float | None = Field(
        default=None, gt=0, description="Parameters one token goes through in an MTP module, "
                                        "billions, the shared embedding and output head "
                                        "included, as DeepSeek counts them (None: "
                                        "mtp_params_b, a dense module).")
    chat_template: ChatTemplate | None = Field(
        default=None, description="Tokens the chat template adds to a task with `api: chat` "
                                  "(None: not known; none are added).")
    hub_weights_copies: int = Field(
        default=1, ge=1, description="Copies of the weights as safetensors in the model's own "
                                     "repository (hf_id): gpt-oss's keeps a second set under "
                                     "original/, which vLLM before 0.14.0 downloads too.")
    reasoning_parser: str | None = Field(
        default=None, description="vLLM's reasoning parser for the model's thinking "
                                  "(--reasoning-parser): it streams the reasoning apart from "
                                  "the answer, as the simulation times it (None: the model "
                                  "does not think, or vLLM has no parser for it).")

    @property
    def always_thinks(self) -> bool:
        """Whether the model reasons before every answer, with no switch to turn it off
        (`ALWAYS_THINKING_PARSERS`)."""
        return self.reasoning_parser in ALWAYS_THINKING_PARSERS

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if (self.experts is None) != (self.experts_per_token is None) or \
                (self.experts is not None and self.moe_intermediate_size is None):
            raise ValueError("a mixture of experts needs experts, experts_per_token and "
                             "moe_intermediate_size")
        if self.experts is not None and self.experts_per_token is not None \
                and self.experts_per_token > self.experts:
            raise ValueError(f"experts_per_token ({self.experts_per_token}) exceeds experts "
                             f"({self.experts}): a token is routed to k of the E experts")
        if self.moe_layers is not None and self.moe_layers > self.layers:
            raise ValueError(f"moe_layers ({self.moe_layers}) exceeds layers ({self.layers})")
        if self.kv_heads > self.attention_heads or self.attention_heads % self.kv_heads:
            raise ValueError(f"attention_heads ({self.attention_heads}) must be a multiple of "
                             f"kv_heads ({self.kv_heads}): each KV head serves a whole group "
                             f"of query heads")
        if self.attention == "mla" and (self.kv_lora_rank is None
                                        or self.qk_rope_head_dim is None):
            raise ValueError("attention: mla needs kv_lora_rank and qk_rope_head_dim")
        if self.active_params_b > self.params_b * 1.001:
            raise ValueError(f"active_params_b ({self.active_params_b:g}) exceeds params_b "
                             f"({self.params_b:g}): expected the total parameter count in "
                             "params_b and the count a token uses in active_params_b")
        routed_b = self.routed_active_params / 1e9
        if self.active_params_b < routed_b:
            raise ValueError(f"active_params_b ({self.active_params_b:g}) is below what a "
                             f"token's {self.experts_per_token} routed experts alone hold "
                             f"({routed_b:.3g} billion): expected the parameters a token "
                             f"uses, in billions")
        floor_b = (self.embedding_params + self.expert_params) / 1e9
        if self.params_b <= floor_b:
            raise ValueError(f"params_b ({self.params_b:g}) is not above what the embeddings "
                             f"and routed experts of these shapes hold alone ({floor_b:.3g} "
                             "billion): expected the total parameter count, in billions")
        shapes_b = self.shape_params / 1e9
        if self.params_b < SHAPES_TOLERANCE * shapes_b:
            raise ValueError(f"params_b ({self.params_b:g}) is below what these shapes hold "
                             f"({shapes_b:.3g} billion in the embeddings, attention, MLPs "
                             "and experts): expected the total parameter count, in billions, "
                             "or the layers and widths of config.json")
        token_b = self.shape_active_params / 1e9
        if self.active_params_b < SHAPES_TOLERANCE * token_b:
            raise ValueError(f"active_params_b ({self.active_params_b:g}) is below what a "
                             f"token goes through in these shapes ({token_b:.3g} billion: "
                             "attention, MLPs, shared and routed experts); "
                             "expected params_b for a dense model, and for a mixture of "
                             "experts the shared weights plus the top-k routed experts")
        if self.sliding_layers > self.layers:
            raise ValueError("sliding_layers cannot exceed layers")
        if self.sliding_layers and self.sliding_window_tokens is None:
            raise ValueError("sliding_layers need sliding_window_tokens")
        if self.hub_gated is not None and "hub_gated" in self.model_fields_set \
                and not self.sources.get("hub_gated"):
            raise ValueError("no source given for: hub_gated (add it under sources)")
        if self.vision_params_b * 1e9 > self.dense_params:
            raise ValueError(f"vision_params_b ({self.vision_params_b:g}) exceeds what params_b "
                             f"holds beyond the embeddings and routed experts "
                             f"({self.dense_params / 1e9:.3g} billion): expected the vision "
                             f"encoder's own parameters, billions")
        if self.mtp_params_b and not self.mtp_layers:
            raise ValueError("mtp_params_b needs mtp_layers (the MTP modules they belong to)")
        if self.default_dtype in self.checkpoints:
            raise ValueError(f"checkpoints.{self.default_dtype}: hf_id already holds the "
                             f"default_dtype ({self.default_dtype}) weights")
        return self

    def weights_repo(self, dtype: str) -> Checkpoint | None:
        """The published repository holding this model's weights stored as `dtype` (None:
        none is known): `hf_id` for the format it ships in, else `checkpoints`."""
        if dtype == self.default_dtype:
            return Checkpoint(hf_id=self.hf_id, hub_gated=self.hub_gated,
                              source=self.sources.get("hub_gated") or "hf_id",
                              weight_block_size=self.weight_block_size)
        return next((repo for stored, repo in self.checkpoints.items() if stored == dtype), None)

    def weight_block(self, dtype: str) -> WeightBlock | None:
        """[block_n, block_k] of the checkpoint holding the weights as `dtype` (None: not
        block-quantised, or no published checkpoint: vLLM quantises while loading)."""
        repo = self.weights_repo(dtype)
        return repo.weight_block_size if repo is not None else None

    # ------------------------------------------------------------------ parameters

    @property
    def is_moe(self) -> bool:
        return self.experts is not None

    @property
    def moe_layer_count(self) -> int:
        if not self.is_moe:
            return 0
        return self.layers if self.moe_layers is None else self.moe_layers

    @property
    def embedding_params(self) -> float:
        """Input embedding and (unless tied) the output head."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def expert_params(self) -> float:
        """Routed experts of every MoE layer (gate, up and down projections)."""
        if not self.is_moe:
            return 0.0
        assert self.experts is not None and self.moe_intermediate_size is not None
        return (self.moe_layer_count * self.experts * 3.0 * self.hidden_size
                * self.moe_intermediate_size)

    @property
    def _attention_mlp_params(self) -> float:
        """At least what the attention projections (q, k, v, o; MLA: its down-projections
        only), the dense layers' MLPs and the shared experts hold: an MLP's up and down
        matrices (a gated one has a third: StarCoder2, Falcon and Phi-2 have none), norms
        and biases left out."""
        h = self.hidden_size
        if self.attention == "mla":
            attention = self.latent_projection_params
        else:
            attention = self.layers * 2.0 * h * self.head_dim * (self.attention_heads
                                                                 + self.kv_heads)
        mlps = (self.layers - self.moe_layer_count) * 2.0 * h * self.intermediate_size
        shared = self.moe_layer_count * self.shared_experts * 2.0 * h \
            * (self.moe_intermediate_size or 0)
        return attention + mlps + shared

    @property
    def shape_params(self) -> float:
        """Parameters these shapes hold at least: embeddings, attention, MLPs, shared and
        routed experts (norms, biases and a vision tower would add to them)."""
        return self.embedding_params + self._attention_mlp_params + self.expert_params

    @property
    def shape_active_params(self) -> float:
        """Parameters a token goes through at least: attention, MLPs, shared experts and its
        top-k routed experts (model cards count the output head or not: it is left out)."""
        return self._attention_mlp_params + self.routed_active_params

    @property
    def routed_active_params(self) -> float:
        """Routed expert parameters one token goes through (top-k of E in every MoE layer)."""
        if not self.is_moe:
            return 0.0
        assert self.experts is not None and self.experts_per_token is not None
        return self.expert_params * self.experts_per_token / self.experts

    @property
    def expert_params_each(self) -> float:
        """One routed expert of one layer."""
        assert self.moe_intermediate_size is not None
        return 3.0 * self.hidden_size * self.moe_intermediate_size

    @property
    def dense_params(self) -> float:
        """Everything but embeddings and routed experts: attention, dense MLPs, shared
        experts, norms (from the model card's total)."""
        return max(0.0, self.params_b * 1e9 - self.embedding_params - self.expert_params)

    @property
    def vision_params(self) -> float:
        """The vision encoder and projector (in dense_params: loaded, not run on text)."""
        return self.vision_params_b * 1e9

    def vision_bytes(self, dtype: str) -> float:
        """`vision_params` as weight_bytes counts them, in the format of the layers outside
        the experts."""
        return self.vision_params * WEIGHT_BITS[self.dense_dtype(dtype)] / 8.0

    @property
    def replicated_params(self) -> float:
        """Parameters outside the experts that every GPU of a tensor-parallel group holds
        and multiplies whole: the routers and MLA's down-projections (DeepSeek-V3: 0.11 B
        and 0.92 B)."""
        return self.router_params + self.latent_projection_params

    @property
    def router_params(self) -> float:
        """The routers: experts x hidden a routed layer, vLLM's ReplicatedLinear (GateLinear
        from 0.17) built with no quantisation (quant_config=None): 16-bit in every
        checkpoint."""
        return float(self.moe_layer_count * (self.experts or 0) * self.hidden_size)

    @property
    def latent_projection_params(self) -> float:
        """MLA's down-projections, q_a_proj (hidden x q_lora_rank) and kv_a_proj_with_mqa
        (hidden x (kv_lora_rank + rope dims)): ReplicatedLinear, or fused_qkv_a_proj with
        disable_tp (deepseek_v2.py, read in the 0.10.2 and 0.34.0 wheels); in the
        checkpoint's format."""
        if self.attention != "mla":
            return 0.0
        assert self.kv_lora_rank is not None and self.qk_rope_head_dim is not None
        latents = (self.q_lora_rank or 0) + self.kv_lora_rank + self.qk_rope_head_dim
        return float(self.layers * self.hidden_size * latents)

    def replicated_bytes(self, dtype: str) -> float:
        """`replicated_params` as stored: the routers in 16 bits, the down-projections in
        the format of the layers outside the experts."""
        return self.router_params * 2.0 \
            + self.latent_projection_params * WEIGHT_BITS[self.dense_dtype(dtype)] / 8.0

    def dense_dtype(self, dtype: str) -> str:
        """The format of the layers outside the routed experts when the checkpoint is in
        `dtype`: MXFP4 on a mixture of experts quantises only the experts (as gpt-oss
        ships: attention and router in BF16)."""
        return "bf16" if dtype == "mxfp4" and self.is_moe else dtype

    def weight_bytes_without_experts(self, dtype: str) -> float:
        """Bytes of the weights every step reads whatever its tokens: embeddings, output
        head and the dense part (attention, dense MLPs, shared experts)."""
        dense_bits = WEIGHT_BITS[self.dense_dtype(dtype)]
        return self.embedding_params * 2.0 + self.dense_params * dense_bits / 8.0

    def weight_bytes(self, dtype: str) -> float:
        """Bytes of all weights stored in format `dtype`, scales included.

        Embeddings and the output head stay 16-bit in quantised checkpoints. MXFP4 on a
        mixture of experts quantises only the experts (as gpt-oss ships).
        """
        return (self.embedding_params * 2.0 + self.expert_params * WEIGHT_BITS[dtype] / 8.0
                + self.dense_params * WEIGHT_BITS[self.dense_dtype(dtype)] / 8.0)

    # ------------------------------------------------------------------ KV cache

    @property
    def full_layers(self) -> int:
        return self.layers - self.sliding_layers

    def kv_bytes_per_token_per_layer(self, dtype: str, tp: int = 1) -> float:
        """One token's K and V in one layer on one GPU of `tp`. MLA keeps one latent vector
        (kv_lora_rank + rope dims) per token, replicated on every GPU; GQA splits the KV
        heads over the GPUs (replicated when there are fewer heads than GPUs)."""
        size = DTYPE_BYTES[dtype]
        if self.attention == "mla":
            assert self.kv_lora_rank is not None and self.qk_rope_head_dim is not None
            return (self.kv_lora_rank + self.qk_rope_head_dim) * size
        return 2.0 * max(1, self.kv_heads // tp) * self.head_dim * size

    def kv_bytes_per_token(self, dtype: str) -> float:
        """K and V of one token in every layer, over a whole replica at tp=1."""
        return self.layers * self.kv_bytes_per_token_per_layer(dtype)


#: vLLM reasoning parsers of models that reason before every answer, with no switch to
#: turn it off: gpt-oss (the harmony format's analysis channel; reasoning_effort low,
#: medium or high, never none: openai/gpt-oss model card) and DeepSeek-R1 (it opens every
#: answer with its thinking: the model card's usage notes). Qwen3's hybrid models think by
#: default but take enable_thinking false.
ALWAYS_THINKING_PARSERS = frozenset({"openai_gptoss", "deepseek_r1"})


class RateLimitTier(BaseModel):
    """One account tier's limits for a model (None: the provider sets none)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    requests_per_min: float | None = Field(default=None, gt=0)
    tokens_per_min: float | None = Field(default=None, gt=0, description="Input + output.")
    input_tokens_per_min: float | None = Field(default=None, gt=0)
    output_tokens_per_min: float | None = Field(default=None, gt=0)
    requests_per_day: float | None = Field(default=None, gt=0)
    tokens_per_day: float | None = Field(default=None, gt=0)


#: Whether a provider's API streams a reasoning model's thinking while the model thinks
#: (its first chunk comes before the answer) or withholds it (the first chunk is the
#: answer's, after every reasoning token was generated), as each calls it by default:
#: - openai, azure_openai: no. "Reasoning tokens are not visible via the API"
#:   (platform.openai.com/docs/guides/reasoning; Azure OpenAI's reasoning models likewise); a
#:   Responses API client may request a reasoning summary instead.
#: - google: no. "By default only the final output is returned"; thought summaries are
#:   opt-in, includeThoughts (ai.google.dev/gemini-api/docs/thinking).
#: - anthropic: yes, thinking_delta events before the text
#:   (docs.anthropic.com/en/docs/build-with-claude/extended-thinking).
#: - bedrock: yes, reasoningContent deltas in the Converse stream
#:   (docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ReasoningContentBlockDelta.html).
REASONING_STREAMED: dict[str, bool] = {"openai": False, "azure_openai": False, "google": False,
                                       "anthropic": True, "bedrock": True}

#: The reasoning_effort values a gateway can send a task simulated without reasoning, in
#: OpenAI's vocabulary (LiteLLM translates it for the other providers: Gemini 2.5's thinking
#: budget, Gemini 3's thinking level, Bedrock's gpt-oss effort), lowest first.
ReasoningEffort = Literal["none", "minimal", "low"]

#: Hidden reasoning tokens an answer is taken to carry at each lowest effort, where the
#: model cannot turn reasoning off. "none": no reasoning (OpenAI: "gpt-5.1 defaults to none,
#: which does not perform reasoning"; Gemini 2.5 Flash: "to turn thinking off ... set the
#: thinkingBudget parameter to 0"). "minimal": 128, the thinking budget LiteLLM 1.108.7
#: (the gateway's pinned version, constants.py
#: DEFAULT_REASONING_EFFORT_MINIMAL_THINKING_BUDGET_GEMINI_2_5_PRO) sends Gemini 2.5 Pro
#: for it, a ceiling there; OpenAI says only that minimal yields "very few reasoning
#: tokens": ESTIMATE. "low": 1,024, LiteLLM's DEFAULT_REASONING_EFFORT_LOW_THINKING_BUDGET,
#: a ceiling on Gemini 2.5; on OpenAI's models and Gemini 3's thinking level "low" no
#: figure is published: ESTIMATE. A scenario that knows better gives the task its own
#: reasoning_tokens.
LEAST_EFFORT_REASONING_TOKENS: dict[str, int] = {"none": 0, "minimal": 128, "low": 1024}


class LongContextPrice(BaseModel):
    """A provider's prices for a request whose prompt is longer than `above_input_tokens`:
    the whole request (its input, cache reads and writes, and output) is billed at these."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    above_input_tokens: int = Field(gt=0)
    input_usd_per_mtok: float = Field(ge=0)
    output_usd_per_mtok: float = Field(ge=0)
    cached_input_usd_per_mtok: float | None = Field(default=None, ge=0)

    @property
    def cache_read_usd_per_mtok(self) -> float:
        """A cache read's price: the cached price, or the input price without one."""
        return self.cached_input_usd_per_mtok if self.cached_input_usd_per_mtok is not None \
            else self.input_usd_per_mtok


#: The prefixes of Bedrock's system-defined cross-Region inference profile ids: one per
#: geography whose Regions a profile keeps the data in (AWS Bedrock user guide, "Geographic
#: cross-Region inference" and "Supported Regions and models for inference profiles",
#: docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html: US, US-GOV,
#: EU, APAC, AU, CA and JP profiles), and `global`, whose destinations are every commercial
#: Region ("Global cross-Region inference", global-cross-region-inference.html).
BEDROCK_GEOGRAPHIES = ("us", "us-gov", "eu", "apac", "au", "ca", "jp")
BEDROCK_GLOBAL = "global"


def bedrock_profile_prefix(model_id: str) -> str | None:
    """The profile prefix of a Bedrock model id (`eu` of eu.anthropic...; None: a model's
    own id, invoked in the Region called)."""
    prefix = model_id.split(".", 1)[0]
    return prefix if "." in model_id and prefix in (*BEDROCK_GEOGRAPHIES, BEDROCK_GLOBAL) \
        else None


class BedrockRouting(BaseModel):
    """Where Bedrock answers a model called from each source Region: the model itself in the
    Region, or a cross-Region inference profile and the Regions it may process the call in.

    A profile's destinations depend on the Region it is called from (AWS: calling
    us.anthropic.claude-3-haiku from us-west-2 routes to us-east-1 and us-west-2 only), and a
    geographic profile's list never changes (AWS makes a new profile instead)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    foundation_model: str = Field(
        description="The model's own id (no profile prefix), e.g. "
                    "anthropic.claude-sonnet-4-5-20250929-v1:0.")
    in_region: list[str] = Field(
        default_factory=list,
        description="Regions that serve the model on demand in the Region itself (its own "
                    "id); empty: none known.")
    profiles: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict,
        description="Geographic profiles: geography prefix (us, eu, apac, au, ca, jp, us-gov) "
                    "-> source Region -> the destination Regions a call from it may be "
                    "processed in.")
    global_sources: list[str] = Field(
        default_factory=list,
        description="Source Regions of the model's global profile (destinations: every "
                    "commercial Region); empty: no global profile known.")

    @field_validator("profiles")
    @classmethod
    def _geographic(cls, value: dict[str, dict[str, list[str]]],
                    ) -> dict[str, dict[str, list[str]]]:
        for geo, table in value.items():
            if geo not in BEDROCK_GEOGRAPHIES:
                raise ValueError(f"'{geo}' is no geographic profile prefix; expected one of "
                                 f"{', '.join(BEDROCK_GEOGRAPHIES)} (global ones go under "
                                 f"global_sources)")
            empty = [source for source, destinations in table.items() if not destinations]
            if not table or empty:
                raise ValueError(f"the {geo} profile needs each source Region's destination "
                                 f"Regions (none for {', '.join(empty) or 'any source'})")
        return value

    def model_id(self, prefix: str | None) -> str:
        """The id a call sends: the model's own, or `prefix`.<model>."""
        return self.foundation_model if prefix is None else f"{prefix}.{self.foundation_model}"
#: The spread llmplan's default provider latency has (llmplan.scenario.cloud.CloudLatency:
#: time to first token 350 ms median, 1,200 ms p95; 90 output tokens/s median, 35 at p5),
#: lent to a measured median whose source gives no tail: p95 = median x 1200/350, p5 =
#: median x 35/90.
TTFT_P95_OVER_MEDIAN = 1200.0 / 350.0
RATE_P5_OVER_MEDIAN = 35.0 / 90.0


class MeasuredLatency(_Entry):
    """A hosted model's streaming speed as a public benchmark measured it on the provider's
    own API: the median output tokens per second once the answer streams and the median
    time to its first token, each with its source (`sources`, keyed by field, quoting the
    figure) and the date it was measured or read (`as_of`). Where the source gives no tail,
    the simulation lends the median the spread of llmplan's default (TTFT_P95_OVER_MEDIAN,
    RATE_P5_OVER_MEDIAN). A scenario's own `latency:` figures win over these."""

    measured_by: str = Field(
        min_length=1, max_length=40,
        description="Short name of the source, as the decision table quotes it "
                    "(\"Artificial Analysis\").")
    as_of: datetime.date = Field(
        description="The date the figures were measured: where the source names only a month, "
                    "that month's last day (the latest they can date from); where it dates "
                    "them not at all, the day it was read. sources.as_of says which.")
    output_tokens_per_s: float | None = Field(
        default=None, gt=0, le=100_000,
        description="Median output tokens per second of one streamed answer, after its first "
                    "token (None: not measured; the provider default applies).")
    output_tokens_per_s_p5: float | None = Field(
        default=None, gt=0, le=100_000,
        description="The slow tail, 5th percentile, where the source gives it (None: the "
                    "median x RATE_P5_OVER_MEDIAN, the default's spread).")
    ttft_ms: float | None = Field(
        default=None, gt=0, le=600_000,
        description="Median time to the first token in milliseconds as the benchmark's "
                    "client saw it (round trip and prompt reading included), without hidden "
                    "reasoning (a reasoning model's non-reasoning setting: the simulation "
                    "adds the thinking itself; None: not measured).")
    ttft_ms_p95: float | None = Field(
        default=None, gt=0, le=600_000,
        description="Its 95th percentile where the source gives it (None: the median x "
                    "TTFT_P95_OVER_MEDIAN, the default's spread).")
    ttft_prompt_tokens: int | None = Field(
        default=None, gt=0, le=10_000_000,
        description="The prompt length the time to first token was measured with (Artificial "
                    "Analysis's default workload: 10,000 tokens). The simulation adds each "
                    "request's own prompt reading (prefill_tokens_per_s), so it takes this "
                    "one's out of the measured figures (None: not stated; only the round "
                    "trip is taken out: provider_ttft_ms).")

    @field_validator("as_of")
    @classmethod
    def _measured_already(cls, value: datetime.date) -> datetime.date:
        # a date to come would claim figures nobody has measured yet
        if value > datetime.date.today():
            raise ValueError(f"{value} is after today; expected the date the figures were "
                             f"measured or read")
        return value

    @model_validator(mode="after")
    def _complete_and_ordered(self) -> MeasuredLatency:
        if self.output_tokens_per_s is None and self.ttft_ms is None:
            raise ValueError("give output_tokens_per_s or ttft_ms (a median), or leave "
                             "latency out")
        for tail, median in (("output_tokens_per_s_p5", "output_tokens_per_s"),
                             ("ttft_ms_p95", "ttft_ms")):
            if getattr(self, tail) is not None and getattr(self, median) is None:
                raise ValueError(f"{tail} needs {median}, the median it is the tail of")
        if self.output_tokens_per_s_p5 is not None and self.output_tokens_per_s is not None \
                and self.output_tokens_per_s_p5 > self.output_tokens_per_s:
            raise ValueError("output_tokens_per_s_p5 must be <= output_tokens_per_s (the slow "
                             "tail of a rate)")
        if self.ttft_ms_p95 is not None and self.ttft_ms is not None \
                and self.ttft_ms_p95 < self.ttft_ms:
            raise ValueError("ttft_ms_p95 must be >= ttft_ms")
        if not self.sources.get("as_of"):
            raise ValueError("no source given for: as_of (say where the date comes from, "
                             "under sources)")
        return self

    def provider_ttft_ms(self, prefill_tokens_per_s: float,
                         network_rtt_ms: float) -> tuple[float, float] | None:
        """(median, p95) provider-side time to first token of a prompt of no length, as the
        simulation takes it. A benchmark's figure is what its client saw, the round trip and
        the reading of its prompt included; the simulation adds each request's own, so the
        benchmark's come out: `network_rtt_ms` (its round trip taken as the deployment's)
        and ttft_prompt_tokens at `prefill_tokens_per_s`, never more than half the median
        together (a pace or a round trip the measurement cannot have had). The p95: the
        measured one less the same, else the median x TTFT_P95_OVER_MEDIAN. Simulated at the
        benchmark's prompt length and that round trip, the median is the measured one.
        None: no TTFT measured."""
        if self.ttft_ms is None:
            return None
        reading = 0.0 if self.ttft_prompt_tokens is None \
            else 1e3 * self.ttft_prompt_tokens / prefill_tokens_per_s
        taken = min(reading + network_rtt_ms, self.ttft_ms / 2)
        median = self.ttft_ms - taken
        p95 = self.ttft_ms_p95 - taken if self.ttft_ms_p95 is not None \
            else median * TTFT_P95_OVER_MEDIAN
        return median, p95

    @property
    def output_tokens_per_s_p5_used(self) -> float | None:
        """The p5 the simulation uses: the measured one, else the default's spread."""
        if self.output_tokens_per_s is None:
            return None
        return self.output_tokens_per_s_p5 if self.output_tokens_per_s_p5 is not None \
            else self.output_tokens_per_s * RATE_P5_OVER_MEDIAN

    @property
    def basis(self) -> str:
        """Where the figures come from, short: "Artificial Analysis, 2026-12-07"."""
        return f"{self.measured_by}, {self.as_of.isoformat()}"


class CloudModelSpec(_Entry):
    """A hosted API model with its list prices and its provider's rate-limit tiers."""

    self_sourced_fields: ClassVar[frozenset[str]] = frozenset({"latency"})

    provider: Literal["openai", "anthropic", "google", "bedrock", "azure_openai"]
    model_id: str
    input_usd_per_mtok: float = Field(ge=0)
    output_usd_per_mtok: float = Field(ge=0)
    cached_input_usd_per_mtok: float | None = Field(
        default=None, ge=0, description="Price of a prompt-cache read.")
    cache_write_usd_per_mtok: float | None = Field(
        default=None, ge=0, description="Price of writing the prompt cache (Anthropic).")
    min_cacheable_tokens: int | None = Field(default=None, gt=0)
    cache_hit_step_tokens: int | None = Field(
        default=None, gt=0, description="A cache read covers the cached prefix in steps of "
        "this many tokens past min_cacheable_tokens (OpenAI before GPT-5.6: 128, so a "
        "9,000-token prefix reads 8,960); None: the whole prefix the cache holds.")
    cache_ttl_s: float | None = Field(default=None, gt=0)
    reasoning_billed_as_output: bool = True
    reasoning_streamed: bool | None = Field(
        default=None,
        description="Whether the API streams the model's reasoning (or a summary of it) while "
                    "it thinks, so the client's first token comes before the answer; false: "
                    "the first token is the answer's, after the hidden reasoning. None: the "
                    "provider's default (REASONING_STREAMED).")
    least_reasoning_effort: ReasoningEffort | None = Field(
        default=None,
        description="The lowest reasoning_effort the API accepts for this model, which the "
                    "gateway sends with a task simulated without reasoning (LiteLLM "
                    "translates it for the provider): \"none\" turns reasoning off; "
                    "\"minimal\" or \"low\" leave hidden reasoning the simulation adds "
                    "(LEAST_EFFORT_REASONING_TOKENS), timed and billed as output. None: "
                    "nothing is sent, the model reasoning only when a request asks for it "
                    "(Anthropic's extended thinking) or not at all.")
    default_rpm: float = Field(gt=0, description="Requests/min of the default tier.")
    default_tpm: float = Field(gt=0, description="Tokens/min of the default tier.")
    default_tier: str | None = None
    rate_limit_tiers: dict[str, RateLimitTier] = Field(default_factory=dict)
    output_quota_burndown: float = Field(
        default=1.0, ge=1, description="Quota tokens one output token takes from the token "
                                       "limit (Bedrock: 5 for Claude 4 and later).")
    context_tokens: int = Field(gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    max_input_tokens: int | None = Field(
        default=None, gt=0, description="The longest prompt the API takes, where it is less "
                                        "than the context window (OpenAI's: the window less "
                                        "the maximum output; None: the window).")
    long_context: LongContextPrice | None = Field(
        default=None, description="Higher prices for every token of a request whose prompt "
                                  "is past a length (Gemini Pro and Claude past 200k tokens, "
                                  "OpenAI's GPT-6 family past 272k).")
    bedrock_routing: BedrockRouting | None = Field(
        default=None, description="Bedrock: the Regions each source Region's call of the "
                                  "model may be processed in (the stack picks the id that "
                                  "keeps the data where the scenario allows).")
    latency: MeasuredLatency | None = Field(
        default=None,
        description="Measured streaming speed on the provider's API (its own sources and "
                    "date); None: no public measurement was found, and a scenario that sets "
                    "no latency simulates llmplan's default provider latency.")
    prices_as_of: datetime.date

    @model_validator(mode="after")
    def _routing_is_of_this_model(self) -> CloudModelSpec:
        routing = self.bedrock_routing
        if routing is None:
            return self
        if self.provider != "bedrock":
            raise ValueError(f"bedrock_routing is for Bedrock models, and this one's provider "
                             f"is {self.provider}")
        prefix = bedrock_profile_prefix(self.model_id)
        if routing.model_id(prefix) != self.model_id:
            raise ValueError(f"bedrock_routing.foundation_model {routing.foundation_model} is "
                             f"not the model of model_id {self.model_id}")
        return self

    @model_validator(mode="after")
    def _effort_of_a_reasoning_model(self) -> CloudModelSpec:
        if self.least_reasoning_effort is not None and not self.reasons:
            raise ValueError(f"least_reasoning_effort {self.least_reasoning_effort!r} is for "
                             f"a reasoning model, and this one has reasoning_billed_as_output "
                             f"false (it generates no reasoning): leave it out")
        if self.least_reasoning_effort is not None \
                and not self.sources.get("least_reasoning_effort"):
            # it decides what every plain call costs: say where it comes from
            raise ValueError("no source given for: least_reasoning_effort (add it under "
                             "sources)")
        return self

    @property
    def plain_reasoning_tokens(self) -> int:
        """Hidden reasoning tokens an answer to a task that asks for no reasoning carries
        at least_reasoning_effort, the lowest the model accepts (0: it can answer without,
        or reasons only when asked)."""
        effort = self.least_reasoning_effort
        return 0 if effort is None else LEAST_EFFORT_REASONING_TOKENS[effort]

    @property
    def cache_read_usd_per_mtok(self) -> float:
        """A cache read's price: the cached price, or the input price without one."""
        return self.cached_input_usd_per_mtok if self.cached_input_usd_per_mtok is not None \
            else self.input_usd_per_mtok

    @property
    def reasons(self) -> bool:
        """Whether the model can generate hidden reasoning at all: the catalog marks a
        non-reasoning model (GPT-4o, GPT-4.1, Claude 3.5, Llama and Nova on Bedrock) with
        reasoning_billed_as_output false, each entry's source saying so."""
        return self.reasoning_billed_as_output

    @property
    def streams_reasoning(self) -> bool:
        """Whether a call's first streamed token may be a reasoning one (see
        reasoning_streamed)."""
        if self.reasoning_streamed is not None:
            return self.reasoning_streamed
        return REASONING_STREAMED[self.provider]


class Catalog(BaseModel):
    """Everything the planner knows about hardware and models, keyed by id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus: dict[str, GpuSpec]
    models: dict[str, ModelSpec]
    cloud_models: dict[str, CloudModelSpec] = Field(default_factory=dict)

    def model_of_repo(self, hf_id: str) -> tuple[str, str] | None:
        """(catalog model, the weight format it holds) of a Hugging Face repository: a
        model's `hf_id` or one of its `checkpoints` (None: no catalog model's)."""
        for name, model in self.models.items():
            if model.hf_id == hf_id:
                return name, model.default_dtype
            for dtype, repo in model.checkpoints.items():
                if repo.hf_id == hf_id:
                    return name, dtype
        return None

    def merged(self, overrides: dict[str, dict[str, dict[str, Any]]], source: str) -> Catalog:
        """A copy with `overrides` (raw scenario `catalog:` entries) applied field by field.

        Fields given in the scenario get `source` as their source unless the entry says one.
        Raises pydantic ValidationError with locs under the section and entry id.
        """
        sections: dict[str, Any] = {}
        for section in ("gpus", "models", "cloud_models"):
            current: dict[str, Any] = dict(getattr(self, section))
            for key, fields in overrides.get(section, {}).items():
                base = current[key].model_dump(exclude_unset=True) if key in current \
                    else {"sources": {}}
                given = fields.get("sources", {})
                if not isinstance(given, dict):  # let validation report the wrong type
                    current[key] = {**base, **fields}
                    continue
                sources = {**base.get("sources", {}),
                           **{name: source for name in fields if name != "sources"},
                           **given}
                fields = {name: _sourced_within(name, value, source)
                          for name, value in fields.items()}
                current[key] = {**base, **fields, "sources": sources}
            sections[section] = current
        return Catalog.model_validate(sections)


def _sourced_within(name: str, value: Any, source: str) -> Any:
    """A scenario's field as given, a `latency:` block (which keeps its own sources) with
    `source` as the source of each figure and date it gives without one."""
    if name != "latency" or not isinstance(value, dict) \
            or not isinstance(value.get("sources", {}), dict):
        return value
    given = value.get("sources", {})
    return {**value, "sources": {**{field: source for field in value if field != "sources"},
                                 **given}}


#: How a scenario's `catalog:` fields are sourced when they give no source of their own
#: (followed by the scenario's file): the staleness check knows them by it.
SCENARIO_SOURCE = "scenario "


@cache
def builtin_catalog() -> Catalog:
    """The catalog shipped in llmplan/catalog/*.yaml."""
    folder = resources.files("llmplan.catalog")
    data: dict[str, Any] = {}
    for name in ("gpus.yaml", "models.yaml", "cloud_models.yaml"):
        loaded = yaml.safe_load(folder.joinpath(name).read_text(encoding="utf-8")) or {}
        for section in ("gpus", "models", "cloud_models"):
            if section in loaded:
                data[section] = loaded[section]
    return Catalog.model_validate(data)
