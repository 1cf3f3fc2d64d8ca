"""What vLLM does with an unset max_model_len when its cache cannot hold the model's context.

Before 0.14 the unset length is the model's whole context, and vLLM refuses to start when the
KV cache cannot hold one request of it (V1 `check_enough_kv_cache_memory`; V0 "The model's
max seq len ... is larger than the maximum number of tokens that can be stored in KV
cache"). From 0.14 `--max-model-len auto` (what the stack passes) fits the length to the
cache instead.
"""

from __future__ import annotations

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import kv_capacity
from llmplan.perf.setup import ReplicaSetup

CATALOG = builtin_catalog()


def _capacity(gpu: str, model: str, **engine: object):  # type: ignore[no-untyped-def]
    setup = ReplicaSetup(gpu, model, CATALOG.gpus[gpu], CATALOG.models[model],
                         EngineSpec(**engine), 1)  # type: ignore[arg-type]
    return kv_capacity(setup)


def test_a_short_cache_stops_an_old_release_from_starting() -> None:
    context = CATALOG.models["Llama-3.1-8B"].max_context_tokens
    new = _capacity("L4", "Llama-3.1-8B", vllm_version="0.14.0")
    # the case only tests something if the cache is shorter than the context
    assert new.error is None and new.blocks * new.block_size_tokens < context
    assert new.max_model_len == new.blocks * new.block_size_tokens
    old = _capacity("L4", "Llama-3.1-8B", vllm_version="0.13.0")
    assert old.error is not None
    assert f"({context} tokens) as max_model_len" in old.error
    assert f"expected engine.max_model_len <= {new.blocks * new.block_size_tokens}" in old.error


def test_an_old_release_starts_when_the_length_is_set_or_the_context_fits() -> None:
    old = _capacity("L4", "Llama-3.1-8B", vllm_version="0.11.0")
    assert old.error is not None
    short = _capacity("L4", "Llama-3.1-8B", vllm_version="0.11.0", max_model_len=16384)
    assert short.error is None and short.max_model_len == 16384
    roomy = _capacity("H100-SXM", "Llama-3.1-8B", vllm_version="0.11.0")
    assert roomy.error is None
    assert roomy.max_model_len == CATALOG.models["Llama-3.1-8B"].max_context_tokens
