"""One serving replica's hardware, model and engine: what its memory and step time depend on."""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.catalog import GpuSpec, ModelSpec
from llmplan.perf.engine import EngineSpec


@dataclass(frozen=True)
class ReplicaSetup:
    """`tp` GPUs of one kind serving one model with one engine configuration."""

    gpu_name: str
    model_name: str
    gpu: GpuSpec
    model: ModelSpec
    engine: EngineSpec
    tp: int

    @property
    def weights_dtype(self) -> str:
        return self.engine.weights_dtype or self.model.default_dtype

    @property
    def kv_dtype(self) -> str:
        return self.engine.kv_dtype or self.weights_dtype
