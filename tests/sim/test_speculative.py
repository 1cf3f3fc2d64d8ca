"""Speculative decoding speeds up decode only: prefill tokens cost what they cost without it,
plus the drafter's own pass over them (vLLM's EagleProposer runs the EAGLE head on every
token the model computed, prompt tokens included: vllm/v1/spec_decode/eagle.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import run_first, scenario_from

from llmplan.catalog import builtin_catalog
from llmplan.perf.drafter import drafter
from llmplan.perf.engine import EngineSpec, SpeculativeSpec
from llmplan.perf.memory import kv_capacity
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.steptime import build_step_time
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.scenario.models import LocalDeployment
from llmplan.sim.metrics import summarise_run
from llmplan.sim.table import request_table

CATALOG = builtin_catalog()

EAGLE = ("{weights_dtype: fp8, speculative: {method: eagle3, num_speculative_tokens: 3, "
         "mean_acceptance_length: 2.4, draft_params_b: 0.8}}")
PLAIN = "{weights_dtype: fp8}"

SCENARIO = """
    seed: 8
    duration: {duration}
    traffic: {traffic}
    tasks:
      - name: only
        prompt_tokens: {{kind: fixed, tokens: {prompt}}}
        output_tokens: {{kind: fixed, tokens: {output}}}
    deployments:
      one:
        gpu: H100-SXM
        model: Llama-3.3-70B
        tp: 2
        engine: {engine}
        admission: {{queue_timeout_s: 1000}}
"""
ONE_ARRIVAL = "{kind: constant, rate_per_s: 0.001}"     # a single request at t = 0

# The drafter on paper, from the H100 SXM datasheet and the roofline's default efficiencies:
# 0.8 B 16-bit parameters on 2 GPUs, 2 FLOPs per parameter per token at 989.4 TFLOP/s x 0.55,
# its 1.6 GB of weights read at 3,350 GB/s x 0.75 per pass; three passes per step
DRAFT_PER_TOKEN_S = 2 * 0.8e9 / (2 * 989.4e12 * 0.55)
DRAFT_WEIGHTS_S = 0.8e9 * 2 / (2 * 3350e9 * 0.75)


def _run(engine: str, *, prompt: int, output: int, traffic: str = ONE_ARRIVAL,
         duration: float = 100.0):
    loaded = scenario_from(SCENARIO.format(engine=engine, prompt=prompt, output=output,
                                           traffic=traffic, duration=duration))
    run, stream = run_first(loaded)
    return request_table(run, stream), summarise_run(run, stream, loaded.scenario)


def test_a_prefill_costs_the_same_plus_the_drafters_pass() -> None:
    # 2,000 prompt tokens in one step (budget 8,192), one output token: no decode step
    plain, _ = _run(PLAIN, prompt=2000, output=1)
    eagle, _ = _run(EAGLE, prompt=2000, output=1)
    drafter_s = max(2000 * DRAFT_PER_TOKEN_S, DRAFT_WEIGHTS_S) + 2 * DRAFT_WEIGHTS_S
    assert eagle.ttft_s[0] - plain.ttft_s[0] == pytest.approx(drafter_s, rel=1e-6)


def test_decode_steps_are_spread_over_the_accepted_tokens() -> None:
    # one sequence decoding 200 tokens: each step is memory-bound (14 ms of weights), so
    # verifying 4 tokens instead of 1 costs about the same, plus the drafter's 3 passes
    # (each bound by its weight reads), and emits 2.4 tokens
    plain, _ = _run(PLAIN, prompt=100, output=200)
    eagle, _ = _run(EAGLE, prompt=100, output=200)
    expected = (plain.tpot_s[0] + 3 * DRAFT_WEIGHTS_S) / 2.4
    assert eagle.tpot_s[0] == pytest.approx(expected, rel=0.01)
    assert eagle.tpot_s[0] < plain.tpot_s[0] / 2


def test_a_verify_steps_tokens_stream_as_one_chunk() -> None:
    """ITL is the gap between streamed chunks (what a load test measures): a verify step's
    2.4 tokens on average leave the engine together, so one request's chunks come a whole
    verify step apart (2.4 x its TPOT), where without drafts a chunk is a token."""
    plain_table, plain = _run(PLAIN, prompt=100, output=200)
    eagle_table, eagle = _run(EAGLE, prompt=100, output=200)
    assert plain.latency.itl_ms.p50 == pytest.approx(plain_table.tpot_s[0] * 1e3, rel=0.01)
    assert eagle.latency.itl_ms.p50 == pytest.approx(2.4 * eagle_table.tpot_s[0] * 1e3,
                                                     rel=0.01)
    assert eagle.latency.tpot_ms.p50 == pytest.approx(eagle_table.tpot_s[0] * 1e3, rel=1e-6)


def test_prefill_bound_capacity_is_not_multiplied_by_the_acceptance_length() -> None:
    # 2,000-token prompts, 2 output tokens: nearly all the work is prefill, which
    # speculation cannot speed up; the drafter's pass over the prompt (0.8 B of 16-bit
    # parameters next to 70 B at FP8, about 4% of the work) slows it a little
    overload = "{kind: poisson, rate_per_s: 12}"
    _, plain = _run(PLAIN, prompt=2000, output=2, traffic=overload, duration=60)
    _, eagle = _run(EAGLE, prompt=2000, output=2, traffic=overload, duration=60)
    p, e = plain.local.utilisation, eagle.local.utilisation   # type: ignore[union-attr]
    assert 0.93 * p.full_batch_requests_per_s < e.full_batch_requests_per_s \
        <= p.full_batch_requests_per_s
    assert 0.93 * p.achieved_requests_per_s < e.achieved_requests_per_s \
        <= 1.01 * p.achieved_requests_per_s


@pytest.mark.parametrize("engine", [PLAIN, EAGLE])
def test_mfu_stays_under_the_compute_efficiency_when_overloaded(engine: str) -> None:
    # the GEMMs run at compute_efficiency (0.55) of the FP8 peak at best, and the run's
    # MFU counts the work its duration saw (not the requests started while draining)
    _, result = _run(engine, prompt=2000, output=2, traffic="{kind: poisson, rate_per_s: 12}",
                     duration=60)
    use = result.local.utilisation   # type: ignore[union-attr]
    assert use.engine_busy_fraction > 0.99
    assert 0.4 < use.mfu_fraction <= 0.55


# ---------------------------------------------------------------- what the drafter weighs


def _setup(gpu: str, model: str, tp: int, engine: str):
    loaded = scenario_from(f"""
    duration: 10
    traffic: {{kind: constant, rate_per_s: 1}}
    tasks:
      - {{name: only, prompt_tokens: {{kind: fixed, tokens: 10}},
         output_tokens: {{kind: fixed, tokens: 10}}}}
    deployments:
      one: {{gpu: {gpu}, model: {model}, tp: {tp}, engine: {engine}}}
    """)
    dep = loaded.scenario.deployments["one"]
    assert isinstance(dep, LocalDeployment)
    return dep, dep.setup(loaded.catalog)


DRAFT = ("{{weights_dtype: fp8, speculative: {{method: draft_model, drafter: {drafter}, "
         "num_speculative_tokens: 3, mean_acceptance_length: 2.2}}}}")


@pytest.mark.parametrize("drafter", ["Qwen3-0.6B", "Qwen/Qwen3-0.6B"])
def test_a_draft_model_from_the_catalog_weighs_what_the_catalog_says(drafter: str) -> None:
    """Qwen3-0.6B drafting for Qwen3-32B, by name or by repository: its 0.596 B parameters
    in BF16 are 1.192e9 bytes next to the model's; its 28 layers of 8 KV heads x 128 dims
    page their K and V in the same blocks: 28 x 2 x 8 x 128 x 2 B = 114,688 B a token on top
    of Qwen3-32B's 64 layers (262,144 B)."""
    dep, setup = _setup("H100-SXM", "Qwen3-32B", 1, DRAFT.format(drafter=drafter))
    _, plain = _setup("H100-SXM", "Qwen3-32B", 1, "{weights_dtype: fp8}")
    assert dep.engine.speculative is not None
    assert dep.engine.speculative.drafter == "Qwen/Qwen3-0.6B"     # what vLLM downloads
    with_draft, without = kv_capacity(setup), kv_capacity(plain)
    assert with_draft.error is None
    assert with_draft.budget.weights_bytes - without.budget.weights_bytes == \
        pytest.approx(1.192e9)
    assert without.kv_bytes_per_token == 262_144
    assert with_draft.kv_bytes_per_token == 262_144 + 114_688
    # the step time reads the same drafter: like a head of 0.596 B 16-bit parameters
    head = _setup("H100-SXM", "Qwen3-32B", 1, "{weights_dtype: fp8, speculative: {method: "
                  "eagle3, num_speculative_tokens: 3, mean_acceptance_length: 2.2, "
                  "draft_params_b: 0.596}}")[1]
    drafted, headed = build_step_time(setup, RooflineStepTime()), \
        build_step_time(head, RooflineStepTime())
    assert drafted.draft_weights_s > 0 and drafted.draft_per_token_s > 0
    assert drafted.draft_weights_s == pytest.approx(headed.draft_weights_s)
    assert drafted.draft_per_token_s == pytest.approx(headed.draft_per_token_s)
    # and each of its 3 passes reads its own KV cache of the decoding contexts: 114,688 B
    # a token at 3,350 GB/s x 0.75, 1.3x the model's own 262,144 B read once; the EAGLE
    # head reads one layer shaped like the model's (4,096 B)
    bandwidth = 3350e9 * 0.75
    assert drafted.serial_per_kv_token_s == pytest.approx(3 * 114_688 / bandwidth)
    assert drafted.memory_per_kv_token_s == pytest.approx(262_144 / bandwidth)
    assert headed.serial_per_kv_token_s == pytest.approx(3 * 4_096 / bandwidth)


def test_an_eagle_head_pages_one_layer_of_the_models_shape() -> None:
    """An EAGLE-3 head is one decoder layer shaped like the model's: Llama-3.3-70B's 80
    layers of 8 KV heads x 128 dims over 2 GPUs (4 heads each) take 80 x 2 x 4 x 128 x 2 B
    = 163,840 B a token per GPU; with the head 81 x 2,048 = 165,888 B; its 0.8 B 16-bit
    parameters add 0.8 GB per GPU."""
    _, eagle = _setup("H100-SXM", "Llama-3.3-70B", 2, EAGLE)
    _, plain = _setup("H100-SXM", "Llama-3.3-70B", 2, PLAIN)
    assert kv_capacity(plain).kv_bytes_per_token == 163_840
    assert kv_capacity(eagle).kv_bytes_per_token == 165_888
    assert kv_capacity(eagle).budget.weights_bytes - kv_capacity(plain).budget.weights_bytes \
        == pytest.approx(0.8e9)


def test_mtp_loads_the_models_mtp_module() -> None:
    """DeepSeek-V3's MTP module: 11.5 B parameters of its own (catalog mtp_params_b), stored
    like the model's FP8 weights (672.85e9 bytes for 671 B parameters: 1.00276 bytes each,
    the 16-bit embeddings included) and split over 8 GPUs: 11.5e9 x 1.00276 / 8 = 1.4415e9
    bytes per GPU. Its drafting pass goes through 2.4 B parameters less the shared
    embedding's 0.927 B (a lookup)."""
    mtp = ("{speculative: {method: mtp, num_speculative_tokens: 1, "
           "mean_acceptance_length: 1.8}}")
    _, with_mtp = _setup("H200", "DeepSeek-V3", 8, mtp)
    _, plain = _setup("H200", "DeepSeek-V3", 8, "{}")
    extra = kv_capacity(with_mtp).budget.weights_bytes - kv_capacity(plain).budget.weights_bytes
    assert extra == pytest.approx(1.4415e9, rel=1e-4)
    step = build_step_time(with_mtp, RooflineStepTime())
    assert step.draft_per_token_s > 0 and step.draft_weights_s > 0   # was 0: no drafter
    assert build_step_time(plain, RooflineStepTime()).draft_per_token_s == 0
    # its passes compute in the model's FP8, on 8 GPUs at the roofline's share of the
    # H200's FP8 peak (they had been timed at the BF16 rate, twice as long)
    active = (2.4e9 - 129_280 * 7_168)
    fp8 = 8 * 1978.9e12 * RooflineStepTime().compute_efficiency
    assert step.draft_per_token_s == pytest.approx(2 * active / fp8, rel=1e-3)


@pytest.mark.parametrize(("model", "engine", "expected"), [
    # a mixture of experts' EAGLE-3 head has an MLP of its own width: not counted
    ("gpt-oss-20b",
     "{speculative: {method: eagle3, num_speculative_tokens: 3, mean_acceptance_length: 2}}",
     ("engine.speculative.draft_params_b is not given",
      "eagle3 head (RedHatAI/gpt-oss-20b-speculator.eagle3) is no catalog model",
      "expected draft_params_b: the head's parameters, billions")),
    ("Llama-3.3-70B",
     "{speculative: {method: draft_model, drafter: someone/tiny-llama, "
     "num_speculative_tokens: 3, mean_acceptance_length: 2, draft_params_b: 1}}",
     ("'someone/tiny-llama' is no catalog model's repository",
      "expected engine.speculative.drafter to name a catalog model (its name or hf_id)")),
    # another family's tokens: vLLM checks the vocabularies match
    ("Gemma-3-27B",
     "{speculative: {method: draft_model, drafter: Qwen3-0.6B, "
     "num_speculative_tokens: 3, mean_acceptance_length: 2}}",
     ("has a vocabulary of 151936 tokens and Gemma-3-27B one of 262208",
      "vLLM refuses a pair whose vocabularies differ")),
])
def test_a_drafter_of_unknown_size_cannot_be_built(model: str, engine: str,
                                                   expected: tuple[str, ...]) -> None:
    """Simulated with no drafter weights (draft_params_b was 0 by default), the replica
    would get KV cache that vLLM gives to the drafter."""
    loaded = scenario_from(f"""
    duration: 10
    traffic: {{kind: constant, rate_per_s: 1}}
    tasks:
      - {{name: only, prompt_tokens: {{kind: fixed, tokens: 10}},
         output_tokens: {{kind: fixed, tokens: 10}}}}
    deployments:
      plain: {{gpu: H100-SXM, model: Llama-3.3-70B, tp: 2}}
      drafted: {{gpu: H100-SXM, model: {model}, tp: 2, engine: {engine}}}
    """)
    why = loaded.unbuildable["drafted"]
    # at the deployment, or at the speculative setting the message opens with
    path, message = why.split(": ", 1)
    assert path == "deployments.drafted" or (
        path.startswith("deployments.drafted.engine.speculative.")
        and message.startswith(path.removeprefix("deployments.drafted.")))
    for fragment in expected:
        assert fragment in why


def test_a_dense_models_eagle3_head_is_counted_from_its_shape() -> None:
    """Llama-3.1-8B's EAGLE-3 head, as its published config builds it (one decoder layer
    whose attention reads 2 x 4096 inputs, a 3 x 4096 -> 4096 fc, an output head over
    32,000 draft tokens): 0.42 B parameters, 0.85 GB in 16 bits."""
    attention = 2 * 4096 * (32 * 128 + 2 * 8 * 128) + 32 * 128 * 4096
    mlp = 3 * 4096 * 14336
    params = attention + mlp + 3 * 4096 * 4096 + 32_000 * 4096
    assert params == 424_673_280
    setup = ReplicaSetup("H100-SXM", "Llama-3.1-8B", CATALOG.gpus["H100-SXM"],
                         CATALOG.models["Llama-3.1-8B"], EngineSpec(speculative=SpeculativeSpec(
                             method="eagle3", num_speculative_tokens=3,
                             mean_acceptance_length=2.0)), 1)
    assert drafter(setup).error is None
    assert drafter(setup).weights_bytes == params * 2.0
    # EAGLE (1 and 2): the layer reads the hidden state, a 2h -> h fc, the model's head
    eagle = replace(setup, engine=setup.engine.model_copy(update={"speculative": SpeculativeSpec(
        method="eagle", num_speculative_tokens=3, mean_acceptance_length=2.0)}))
    layer = 4096 * (32 * 128 + 2 * 8 * 128) + 32 * 128 * 4096 + mlp
    assert drafter(eagle).weights_bytes == (layer + 2 * 4096 * 4096) * 2.0
    # the scenario's own count wins
    given = replace(setup, engine=setup.engine.model_copy(update={"speculative": SpeculativeSpec(
        method="eagle3", num_speculative_tokens=3, mean_acceptance_length=2.0,
        draft_params_b=1.0)}))
    assert drafter(given).weights_bytes == 1e9 * 2.0


def test_the_decodes_verify_tokens_come_out_of_the_prefill_budget() -> None:
    """vLLM's scheduler charges a decoding request 1 + its drafts of max_num_batched_tokens
    (num_tokens_with_spec): beside 100 sequences verifying 4 tokens each, a 2,048-token
    budget leaves 1,648 prefill tokens a verify step, 659 in the simulated step's units
    (1/2.5 of a verify step). The prefill had been given the budget less one token a
    decode (1,948 a simulated step, 4,870 a verify step: over the budget)."""
    from llmplan.sim.stepmodel import StepModel
    plain = StepModel()
    assert plain.prefill_budget(2048, 100) == 1948 and plain.prefill_budget(2048, 0) == 2048
    spec = StepModel(verify_tokens=4, accepted=2.5)
    assert spec.prefill_budget(2048, 100) == 659
    assert spec.prefill_budget(2048, 0) == 2048          # no decodes: a real step
    assert spec.prefill_budget(2048, 600) == 0           # the decodes take it all
