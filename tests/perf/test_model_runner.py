"""Which of vLLM's model runners serves a replica, as each release's vllm/config/vllm.py
decides it (read in the published wheels), and what that changes in the memory budget."""

from __future__ import annotations

import pytest
from helpers import DRAFT, EAGLE3, NGRAM

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec, SpeculativeSpec
from llmplan.perf.memory import activation_bytes, batches_in_flight, graphs_in_budget, memory_budget
from llmplan.perf.runner import model_runner
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.support import release_error

CATALOG = builtin_catalog()


def _setup(model: str, release: str, *, weights: str | None = None, pp: int = 1,
           **engine: object) -> ReplicaSetup:
    return ReplicaSetup("H100-SXM", model, CATALOG.gpus["H100-SXM"], CATALOG.models[model],
                        EngineSpec(vllm_version=release, weights_dtype=weights,  # type: ignore[arg-type]
                                   **engine),  # type: ignore[arg-type]
                        1, pp=pp)


@pytest.mark.parametrize(("model", "release", "weights", "runner"), [
    ("Qwen3-8B", "0.21.0", None, "v1"),           # no default V2 architecture before 0.22
    ("Qwen3-8B", "0.22.0", None, "v2"),           # 0.22: Qwen3, unquantized
    ("Qwen3-8B", "0.22.0", "fp8", "v1"),
    ("Llama-3.1-8B", "0.22.0", None, "v1"),
    ("Llama-3.1-8B", "0.23.0", None, "v2"),       # 0.23: Llama, Mistral, Qwen3
    ("Llama-3.1-8B", "0.23.0", "int4", "v1"),    # a quantized checkpoint
    ("Llama-3.1-8B", "0.23.0", "fp8", "v2"),     # no FP8 checkpoint: quantized on loading
    ("Llama-3.1-8B", "0.24.0", "fp8", "v2"),      # 0.24: those in any format
    ("Gemma-3-27B", "0.24.0", None, "v1"),
    ("Gemma-3-27B", "0.25.0", None, "v2"),        # 0.25-0.28: every dense model
    ("Qwen3-32B", "0.27.1", None, "v2"),
    ("Qwen3-30B-A3B", "0.28.0", None, "v1"),      # ... but not a mixture of experts
    ("Qwen3-30B-A3B", "0.29.0", None, "v2"),      # 0.29: every model
    ("gpt-oss-20b", "0.33.0", None, "v2"),
])
def test_the_default_runner_by_release_and_model(model: str, release: str,
                                                 weights: str | None, runner: str) -> None:
    assert model_runner(_setup(model, release, weights=weights)) == runner


@pytest.mark.parametrize(("release", "speculative", "pp", "runner"), [
    ("0.31.0", NGRAM, 1, "v1"), ("0.32.0", NGRAM, 1, "v2"),
    ("0.30.0", DRAFT, 1, "v1"), ("0.31.0", DRAFT, 1, "v2"),
    ("0.29.0", EAGLE3, 2, "v1"), ("0.30.0", EAGLE3, 2, "v2"),
    ("0.25.0", EAGLE3, 1, "v2"),
])
def test_drafts_v2_does_not_run_yet_fall_back_to_v1(release: str, speculative: SpeculativeSpec,
                                                    pp: int, runner: str) -> None:
    assert model_runner(_setup("Llama-3.1-8B", release, pp=pp,
                               speculative=speculative)) == runner


def test_v2_kept_its_graphs_out_of_the_budget_until_0_29() -> None:
    # its profile_cudagraph_memory returned 0 until 0.29; V1's counts from 0.20
    assert not graphs_in_budget(_setup("Qwen3-32B", "0.27.1"))
    assert graphs_in_budget(_setup("Qwen3-30B-A3B", "0.27.1"))
    assert graphs_in_budget(_setup("Qwen3-32B", "0.29.0"))
    assert graphs_in_budget(_setup("Qwen3-32B", "0.21.0"))


def test_async_batches_in_flight_follow_the_runner() -> None:
    # max_concurrent_batches: V2 keeps a batch per stage plus one; V1 with stages one per
    # stage (it does not overlap them with async scheduling)
    assert batches_in_flight(_setup("Gemma-3-27B", "0.27.1", pp=2, async_scheduling=True)) == 3
    assert batches_in_flight(_setup("gpt-oss-20b", "0.27.1", pp=2, async_scheduling=True)) == 2
    assert batches_in_flight(_setup("gpt-oss-20b", "0.27.1", async_scheduling=True)) == 2
    assert batches_in_flight(_setup("gpt-oss-20b", "0.29.0", pp=2, async_scheduling=True)) == 3


def test_v2_holds_the_samplers_penalty_counts_and_ngram_token_ids() -> None:
    # sample/penalties.py: int32 per sequence and vocabulary entry, and a bit each; the
    # structured-output worker's grammar bitmask, a bit each per sequence and draft position
    model = CATALOG.models["Llama-3.1-8B"]
    words = -(-model.vocab_size // 32)
    v2 = memory_budget(_setup("Llama-3.1-8B", "0.33.0", max_num_seqs=256))
    assert v2.runner_buffers_bytes == pytest.approx(
        256 * (model.vocab_size + words + words) * 4.0)
    assert memory_budget(_setup("Llama-3.1-8B", "0.21.0",
                                max_num_seqs=256)).runner_buffers_bytes == 0.0
    # from 0.32 n-gram drafts keep every request's token ids on the GPU, sized by
    # max_model_len as vLLM first sets it (the whole context when left unset)
    bitmask_drafts = 256 * words * NGRAM.num_speculative_tokens * 4.0
    ngram = memory_budget(_setup("Llama-3.1-8B", "0.33.0", max_num_seqs=256,
                                 max_model_len=32768, speculative=NGRAM))
    assert ngram.runner_buffers_bytes - v2.runner_buffers_bytes == pytest.approx(
        256 * 32768 * 4.0 + bitmask_drafts)
    whole = memory_budget(_setup("Llama-3.1-8B", "0.33.0", max_num_seqs=256,
                                 speculative=NGRAM))
    assert whole.runner_buffers_bytes - v2.runner_buffers_bytes == pytest.approx(
        256 * model.max_context_tokens * 4.0 + bitmask_drafts)
    # 0.31 drafts n-grams on the V1 runner, which keeps them in host memory
    assert memory_budget(_setup("Llama-3.1-8B", "0.31.0", max_num_seqs=256,
                                speculative=NGRAM)).runner_buffers_bytes == 0.0


def test_v2_warm_up_samples_the_16_bit_logits_as_they_come() -> None:
    # until 0.33 no fp32 copies: the logits next to the forward pass's output (or the
    # forward pass if larger)
    model = CATALOG.models["Qwen3-8B"]
    engine = {"max_num_seqs": 1024, "max_num_batched_tokens": 1024}
    logits = 1024 * model.vocab_size * 2.0
    hidden = 1024 * model.hidden_size * 2.0
    assert activation_bytes(_setup("Qwen3-8B", "0.32.0", **engine)) == pytest.approx(
        hidden + logits)
    # before 0.26 its sampler copied them to fp32 whatever the requests asked
    assert activation_bytes(_setup("Qwen3-8B", "0.25.0", **engine)) == pytest.approx(
        hidden + logits + 2 * logits)
    v1 = _setup("Qwen3-8B", "0.21.0", **engine)
    assert activation_bytes(v1) > 2.5 * (hidden + logits)
    # from 0.33 a second pass with every sampling parameter set adds the fp32 pipeline,
    # V1's fitted copies standing in for it
    assert activation_bytes(_setup("Qwen3-8B", "0.33.0", **engine)) == pytest.approx(
        hidden + logits + (activation_bytes(v1) - hidden))


def test_the_runner_set_by_the_scenario_wins_where_vllm_takes_the_setting() -> None:
    # VLLM_USE_V2_MODEL_RUNNER: V1 forced on a dense model of 0.27.1 budgets its graphs
    # and keeps no sampler buffers; V2 forced on 0.21 keeps them and leaves its graphs out
    v1 = _setup("Qwen3-32B", "0.27.1", model_runner="v1")
    assert model_runner(v1) == "v1" and graphs_in_budget(v1)
    assert memory_budget(v1).runner_buffers_bytes == 0.0
    v2 = _setup("Qwen3-30B-A3B", "0.27.1", model_runner="v2")
    assert model_runner(v2) == "v2" and not graphs_in_budget(v2)
    assert memory_budget(v2).runner_buffers_bytes > 0.0
    # before 0.22, where V2 first served a model by default, forcing it is not modelled
    with pytest.raises(ValueError, match=r"model_runner v2 before 0\.22"):
        EngineSpec(vllm_version="0.21.0", model_runner="v2")
    # the variable came in 0.12 and left with the V1 runner in 0.34
    with pytest.raises(ValueError, match=r"VLLM_USE_V2_MODEL_RUNNER, which came in 0\.12\.0"):
        EngineSpec(vllm_version="0.11.0", model_runner="v1")
    with pytest.raises(ValueError, match=r"has no V1 model runner \(0\.34\.0 removed it\)"):
        EngineSpec(vllm_version="0.34.0", model_runner="v1")
    # V2 forced where it cannot run the drafts: vLLM refuses to start
    error = release_error(_setup("Llama-3.1-8B", "0.31.0", model_runner="v2",
                                 speculative=NGRAM))
    assert error is not None and "model_runner v2 runs ngram drafts from 0.32.0" in error
    assert release_error(_setup("Llama-3.1-8B", "0.32.0", model_runner="v2",
                                speculative=NGRAM)) is None
