"""How many KV-cache blocks one replica has, from GPU memory (vLLM's accounting).

    per GPU: memory x gpu_memory_utilization - weights / tp - activation peak - runtime reserve

The activation peak is what vLLM's profiling run measures: one forward pass of
max_num_batched_tokens (hidden states, MLP intermediates) plus sampler logits for
max_num_seqs sequences in fp32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplan.perf.setup import ReplicaSetup

GB = 1e9


@dataclass(frozen=True)
class KvCapacity:
    """KV capacity of one replica, or why there is none."""

    blocks: int
    block_size_tokens: int
    kv_bytes_per_token: float      # whole replica (all tp GPUs)
    weights_gb_per_gpu: float
    activation_gb_per_gpu: float
    max_model_len: int
    error: str | None = None

    @property
    def tokens(self) -> int:
        return self.blocks * self.block_size_tokens


def kv_capacity(setup: ReplicaSetup) -> KvCapacity:
    """KV blocks of one replica (all its GPUs), or the reason there is no room for any."""
    gpu, model, engine, tp = setup.gpu, setup.model, setup.engine, setup.tp
    weights_dtype, kv_dtype = setup.weights_dtype, setup.kv_dtype
    kv_per_token = model.kv_bytes_per_token(kv_dtype)
    weights = model.weight_bytes(weights_dtype) / tp
    activation = (engine.max_num_batched_tokens
                  * (4 * model.hidden_size + 2 * model.intermediate_size / tp) * 2.0
                  + engine.max_num_seqs * model.vocab_size * 4.0)
    free = gpu.memory_bytes * engine.gpu_memory_utilization - weights - activation \
        - engine.runtime_reserve_gb * GB
    block = engine.block_size_tokens
    if engine.kv_cache_tokens is not None:
        blocks = math.ceil(engine.kv_cache_tokens / block)
    else:
        blocks = max(0, math.floor(free * tp / kv_per_token / block))
    capacity_tokens = blocks * block
    max_len = engine.max_model_len or min(model.max_context_tokens, capacity_tokens)
    error = None
    if engine.kv_cache_tokens is None and free <= 0:
        need_gb = (weights + activation) / GB + engine.runtime_reserve_gb
        have_gb = gpu.memory_bytes / GB * engine.gpu_memory_utilization
        min_tp = next((t for t in (2, 4, 8, 16, 32, 64) if
                       model.weight_bytes(weights_dtype) / t + activation
                       + engine.runtime_reserve_gb * GB < have_gb * GB), None)
        error = (f"{setup.model_name} in {weights_dtype} does not fit on {setup.gpu_name} "
                 f"with tp={tp}: "
                 f"needs {need_gb:.1f} GB per GPU, {have_gb:.1f} GB usable at "
                 f"gpu_memory_utilization {engine.gpu_memory_utilization}; expected "
                 + (f"tp >= {min_tp}" if min_tp else "a bigger GPU")
                 + " or a smaller weights_dtype")
    elif engine.max_model_len is not None and engine.max_model_len > capacity_tokens:
        error = (f"engine.max_model_len {engine.max_model_len} exceeds the KV cache "
                 f"({capacity_tokens} tokens); expected max_model_len <= {capacity_tokens}")
    elif capacity_tokens < block:
        error = "KV cache has no room for a single block; expected more GPU memory"
    return KvCapacity(blocks, block, kv_per_token, weights / GB, activation / GB, max_len, error)
