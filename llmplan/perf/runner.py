"""Which of vLLM's two GPU model runners serves a replica, release by release.

Model Runner V2 (vllm/v1/worker/gpu/model_runner.py) became the default in steps, read in
the published wheels (vllm/config/vllm.py: DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES,
`_is_default_v2_model_runner_model`, `_get_v2_model_runner_unsupported_features`):
- 0.22: Qwen3ForCausalLM; 0.23: LlamaForCausalLM, MistralForCausalLM and Qwen3ForCausalLM;
  both only dense and from a checkpoint without a quantization_config. 0.24: those three in
  any format.
- 0.25-0.28: every dense model (and a few MoE architectures, none in the catalog).
- 0.29 on: every model.
It falls back to V1 for what it does not run yet: n-gram drafts until 0.32, a draft model
until 0.31 (only EAGLE, EAGLE-3 and MTP before), EAGLE-3 with pipeline stages until 0.30.

What it changes in the budget (llmplan/perf/memory.py): V2's `profile_cudagraph_memory`
returned 0 until 0.29 (a "TBD" stub), so before 0.29 a replica on V2 keeps its CUDA graphs
out of the KV budget; V2's sampler warm-up holds 16-bit logits (an fp32 copy more until
0.26, a second fp32 pass from 0.33) and its sampler's buffers are allocated before
profiling (`runner_buffers_bytes`); with async scheduling V2 keeps a batch per pipeline
stage plus one in flight, V1 two without stages and one per stage with them
(`max_concurrent_batches`). A scenario may set the runner (`engine.model_runner`, vLLM's
VLLM_USE_V2_MODEL_RUNNER).
"""

from __future__ import annotations

from typing import Literal

from llmplan.perf.setup import ReplicaSetup

Runner = Literal["v1", "v2"]

#: The architectures Model Runner V2 served by default, unquantized and dense only in the
#: first two releases
V2_ARCHITECTURES: dict[tuple[int, int], frozenset[str]] = {
    (0, 22): frozenset({"Qwen3ForCausalLM"}),
    (0, 23): frozenset({"LlamaForCausalLM", "MistralForCausalLM", "Qwen3ForCausalLM"}),
    (0, 24): frozenset({"LlamaForCausalLM", "MistralForCausalLM", "Qwen3ForCausalLM"}),
}
V2_ANY_FORMAT_RELEASE = (0, 24)  # the listed architectures, quantized checkpoints too
V2_DENSE_RELEASE = (0, 25)       # every dense model
V2_EVERY_MODEL_RELEASE = (0, 29)
#: The release from which V2 runs each speculative method (before: V1)
V2_DRAFTS_RELEASE = {"ngram": (0, 32), "draft_model": (0, 31)}
V2_EAGLE3_STAGES_RELEASE = (0, 30)


def v2_lacks(setup: ReplicaSetup) -> tuple[tuple[int, int], str] | None:
    """The release from which Model Runner V2 runs this replica's drafts, and what it
    lacks before (None: it runs them at this release)."""
    release, speculative = setup.engine.release, setup.engine.speculative
    if speculative is None:
        return None
    since = V2_DRAFTS_RELEASE.get(speculative.method, (0, 0))
    if release < since:
        return since, f"{speculative.method} drafts"
    if speculative.method == "eagle3" and setup.pp > 1 and release < V2_EAGLE3_STAGES_RELEASE:
        return V2_EAGLE3_STAGES_RELEASE, "EAGLE-3 with pipeline stages"
    return None


def _by_default(setup: ReplicaSetup) -> bool:
    release, model = setup.engine.release, setup.model
    if release >= V2_EVERY_MODEL_RELEASE:
        return True
    if release >= V2_DENSE_RELEASE:
        return not model.is_moe
    listed = V2_ARCHITECTURES.get(release[:2], frozenset())
    if model.architecture not in listed:
        return False
    return release >= V2_ANY_FORMAT_RELEASE \
        or not (model.is_moe or _quantized_checkpoint(setup))


def _quantized_checkpoint(setup: ReplicaSetup) -> bool:
    """Whether the weights come from a checkpoint with a quantization_config (vLLM's
    `ModelConfig.is_quantized`), not 16-bit ones quantized while loading (FP8 of a model
    without an FP8 checkpoint, as the stack serves it)."""
    dtype, model = setup.weights_dtype, setup.model
    return dtype not in ("bf16", "fp16") and (dtype == model.default_dtype
                                              or dtype in model.checkpoints)


def model_runner(setup: ReplicaSetup) -> Runner:
    """The model runner that serves this replica: the scenario's `engine.model_runner`
    (VLLM_USE_V2_MODEL_RUNNER), else the one its vLLM release picks."""
    if setup.engine.model_runner is not None:
        return setup.engine.model_runner
    if not _by_default(setup):
        return "v1"
    return "v1" if v2_lacks(setup) is not None else "v2"


__all__ = ["Runner", "model_runner", "v2_lacks"]
