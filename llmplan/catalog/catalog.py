"""Typed catalog entries and the merge of scenario overrides over the built-in files."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DType = Literal["bf16", "fp16", "fp8", "int8", "int4"]

#: Bytes per stored element. int4 counts 0.5 plus nothing for scales (a ~3% underestimate).
DTYPE_BYTES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}


#: Largest magnitude accepted for any catalog number: far above any real GPU or model, and
#: small enough that the memory arithmetic (products of a few fields) stays finite.
MAX_CATALOG_NUMBER = 1e12


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    sources: dict[str, str] = Field(
        default_factory=dict, description="Where each numeric field comes from, keyed by field."
    )

    @field_validator("*")
    @classmethod
    def _not_absurdly_large(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and abs(value) > MAX_CATALOG_NUMBER:
            raise ValueError(f"must be at most {MAX_CATALOG_NUMBER:g}")
        return value

    @model_validator(mode="after")
    def _every_number_has_a_source(self) -> _Entry:
        missing = [
            name for name, value in self
            if isinstance(value, int | float) and not isinstance(value, bool)
            and name not in self.sources
        ]
        if missing:
            raise ValueError(f"no source given for: {', '.join(missing)} (add them under sources)")
        return self


class GpuSpec(_Entry):
    """One accelerator model. Prices are per GPU."""

    name: str
    memory_gb: float = Field(gt=0)
    bf16_dense_tflops: float = Field(gt=0)
    memory_bandwidth_gb_per_s: float = Field(gt=0)
    tdp_w: float = Field(gt=0)
    purchase_usd: float = Field(ge=0)
    rental_usd_per_gpu_hour: float = Field(ge=0)
    reserved_usd_per_gpu_hour: float = Field(ge=0)
    interconnect: Literal["nvlink", "pcie"] = "pcie"
    fp8_tensor_cores: bool = Field(
        default=False, description="FP8 tensor cores at twice the BF16 rate (Hopper, Ada).")

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9

    @property
    def flops_per_s(self) -> float:
        return self.bf16_dense_tflops * 1e12

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.memory_bandwidth_gb_per_s * 1e9


class ModelSpec(_Entry):
    """One open-weights model architecture (what sizes weights and the KV cache)."""

    hf_id: str
    layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    attention_heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    params_b: float = Field(gt=0)
    active_params_b: float = Field(gt=0)
    max_context_tokens: int = Field(gt=0)
    default_dtype: DType = "bf16"
    experts: int | None = Field(default=None, gt=0)
    experts_per_token: int | None = Field(default=None, gt=0)

    def weight_bytes(self, dtype: str) -> float:
        return self.params_b * 1e9 * DTYPE_BYTES[dtype]

    def kv_bytes_per_token(self, dtype: str) -> float:
        """K and V for every layer, summed over all GPUs of a replica."""
        return 2.0 * self.layers * self.kv_heads * self.head_dim * DTYPE_BYTES[dtype]


class CloudModelSpec(_Entry):
    """A hosted API model with its list prices and a typical default rate limit."""

    provider: Literal["openai", "anthropic", "bedrock", "azure_openai"]
    model_id: str
    input_usd_per_mtok: float = Field(ge=0)
    output_usd_per_mtok: float = Field(ge=0)
    cached_input_usd_per_mtok: float | None = Field(default=None, ge=0)
    default_rpm: float = Field(gt=0)
    default_tpm: float = Field(gt=0)
    context_tokens: int = Field(gt=0)


class Catalog(BaseModel):
    """Everything the planner knows about hardware and models, keyed by id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus: dict[str, GpuSpec]
    models: dict[str, ModelSpec]
    cloud_models: dict[str, CloudModelSpec] = Field(default_factory=dict)

    def merged(self, overrides: dict[str, dict[str, dict[str, Any]]], source: str) -> Catalog:
        """A copy with `overrides` (raw scenario `catalog:` entries) applied field by field.

        Fields given in the scenario get `source` as their source unless the entry says one.
        Raises pydantic ValidationError with locs under the section and entry id.
        """
        sections: dict[str, Any] = {}
        for section in ("gpus", "models", "cloud_models"):
            current: dict[str, Any] = dict(getattr(self, section))
            for key, fields in overrides.get(section, {}).items():
                base = current[key].model_dump() if key in current else {"sources": {}}
                given = fields.get("sources", {})
                if not isinstance(given, dict):  # let validation report the wrong type
                    current[key] = {**base, **fields}
                    continue
                sources = {**base.get("sources", {}),
                           **{name: source for name in fields if name != "sources"},
                           **given}
                current[key] = {**base, **fields, "sources": sources}
            sections[section] = current
        return Catalog.model_validate(sections)


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
