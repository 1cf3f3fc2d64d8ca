"""The serving engine's settings of one replica (vLLM's scheduler and memory knobs)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmplan.catalog.catalog import DType


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EngineSpec(_Strict):
    """vLLM-style scheduler and memory knobs of one serving replica."""

    max_num_seqs: int = Field(default=256, gt=0, le=1_000_000,
                              description="Running sequences per step.")
    max_num_batched_tokens: int = Field(default=8192, gt=0, le=100_000_000,
                                        description="Tokens per step.")
    chunked_prefill: bool = True
    block_size_tokens: int = Field(default=16, gt=0, le=1024)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    runtime_reserve_gb: float = Field(
        default=1.5, ge=0, le=10_000, description="Per GPU: CUDA context, graphs, allocator slack.")
    max_model_len: int | None = Field(default=None, gt=0, le=100_000_000,
                                      description="Longest prompt + output accepted.")
    kv_cache_tokens: int | None = Field(
        default=None, gt=0, le=10**12, description="Override the KV capacity computed from memory.")
    weights_dtype: DType | None = None
    kv_dtype: DType | None = None

    @model_validator(mode="after")
    def _batch_fits(self) -> EngineSpec:
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError("max_num_batched_tokens must be >= max_num_seqs (every running "
                             "sequence needs one token of budget per step)")
        return self
