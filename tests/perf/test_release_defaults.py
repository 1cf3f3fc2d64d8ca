"""vLLM's defaults, release by release, as its own code sets them (read in the published
wheels: vllm/config/cache.py, vllm/config/vllm.py, vllm/v1/kv_cache_interface.py)."""

from __future__ import annotations

import pytest
from helpers import DRAFT, EAGLE3, NGRAM

from llmplan.catalog import builtin_catalog
from llmplan.errors import InputError
from llmplan.perf.engine import EngineSpec, SpeculativeSpec
from llmplan.perf.memory import batches_in_flight, kv_capacity
from llmplan.perf.setup import ReplicaSetup
from llmplan.scenario import LoadedScenario, load_scenario_text

CATALOG = builtin_catalog()


def _scenario(deployments: str) -> LoadedScenario:
    """A short scenario of one task with these deployments (YAML lines under
    `deployments:`)."""
    return load_scenario_text("""
name: s
duration: 10
traffic: {kind: poisson, rate_per_s: 1}
tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 100},
         output_tokens: {kind: fixed, tokens: 10}}]
deployments:""" + deployments + "\n")


def _setup(gpu: str = "H100-SXM", model: str = "Llama-3.1-8B", pp: int = 1,
           **engine: object) -> ReplicaSetup:
    return ReplicaSetup(gpu, model, CATALOG.gpus[gpu], CATALOG.models[model],
                        EngineSpec(**engine), 1, pp=pp)  # type: ignore[arg-type]


def test_the_memory_utilisation_default_rose_to_0_92_in_0_20() -> None:
    assert _setup(vllm_version="0.19.1").gpu_memory_utilization == 0.9
    assert _setup(vllm_version="0.20.0").gpu_memory_utilization == 0.92


@pytest.mark.parametrize(("version", "pp", "speculative", "on"), [
    ("0.13.0", 1, None, False),
    ("0.14.0", 1, None, True),           # on by default from 0.14
    ("0.14.1", 2, None, False),          # not with pipeline stages before 0.15
    ("0.15.0", 2, None, True),
    ("0.31.0", 1, NGRAM, False),         # the V1 runner's CPU n-gram proposer: never
    ("0.32.0", 1, NGRAM, True),          # Model Runner V2 drafts n-grams on the GPU
    ("0.27.1", 1, DRAFT, False),         # a draft model from 0.28
    ("0.28.0", 1, DRAFT, True),
    ("0.14.0", 1, EAGLE3, True),
])
def test_async_scheduling_is_on_by_default_where_vllm_turns_it_on(
        version: str, pp: int, speculative: SpeculativeSpec | None, on: bool) -> None:
    setup = _setup(vllm_version=version, pp=pp, speculative=speculative)
    assert setup.async_scheduling is on


@pytest.mark.parametrize(("version", "speculative", "said"), [
    ("0.31.0", NGRAM, "async scheduling is only supported with EAGLE/MTP"),
    ("0.15.0", DRAFT, "async scheduling is only supported with EAGLE/MTP"),
    ("0.11.0", EAGLE3, "speculative decoding is not supported with async scheduling")])
def test_async_scheduling_set_on_with_drafts_vllm_refuses_is_refused(
        version: str, speculative: SpeculativeSpec, said: str) -> None:
    with pytest.raises(ValueError, match=rf"vLLM {version} does not run these settings: "
                                         r"async_scheduling: true with speculative.method "
                                         rf"{speculative.method} is refused \('{said}"):
        EngineSpec(vllm_version=version, async_scheduling=True, speculative=speculative)


@pytest.mark.parametrize(("version", "speculative"), [
    ("0.16.0", DRAFT), ("0.32.0", NGRAM), ("0.11.1", EAGLE3)])
def test_async_scheduling_set_on_with_drafts_vllm_runs_is_taken(
        version: str, speculative: SpeculativeSpec) -> None:
    """Set on, a draft model runs async from 0.16 though vLLM turns it on itself only
    from 0.28."""
    engine = EngineSpec(vllm_version=version, async_scheduling=True, speculative=speculative)
    assert engine.async_scheduling


@pytest.mark.parametrize(("method", "first", "before"), [
    ("draft_model", "0.15.0", "0.14.1"), ("mtp", "0.11.0", "0.10.2"),
    ("eagle3", "0.9.1", "0.9.0")])
def test_a_speculative_method_older_releases_lack_is_refused(method: str, first: str,
                                                            before: str) -> None:
    spec = {"draft_model": DRAFT, "eagle3": EAGLE3}.get(method) or SpeculativeSpec(
        method="mtp", num_speculative_tokens=1, mean_acceptance_length=1.8)
    with pytest.raises(ValueError, match=rf"vLLM {before} does not run these settings: "
                                         rf"speculative.method {method} came in {first}; "
                                         rf"expected vllm_version >= {first}"):
        EngineSpec(vllm_version=before, speculative=spec)
    EngineSpec(vllm_version=first, speculative=spec)


def test_chunked_prefill_off_is_refused_where_v1_ignores_it() -> None:
    with pytest.raises(ValueError, match=r"vLLM 0.11.0 does not run these settings: "
                                         r"chunked_prefill: false is ignored"):
        EngineSpec(vllm_version="0.11.0", chunked_prefill=False)
    EngineSpec(vllm_version="0.11.1", chunked_prefill=False)
    EngineSpec(vllm_version="0.6.2", chunked_prefill=False)     # the V0 engine honours it


def test_data_parallel_attention_needs_0_8_3() -> None:
    with pytest.raises(ValueError, match=r"--data-parallel-size.* came in 0.8.3"):
        EngineSpec(vllm_version="0.8.2", expert_parallel=True, data_parallel_attention=True)


@pytest.mark.parametrize(("version", "pp", "async_on", "batches"), [
    ("0.25.1", 1, True, 1), ("0.26.0", 1, True, 2), ("0.26.0", 1, False, 1),
    ("0.26.0", 2, True, 2),               # V1 runner with stages: a batch per stage
    ("0.29.0", 2, True, 3),               # Model Runner V2: one more than the stages
    ("0.29.0", 2, False, 2)])
def test_batches_in_flight_follow_vllms_max_concurrent_batches(
        version: str, pp: int, async_on: bool, batches: int) -> None:
    setup = _setup(model="gpt-oss-20b", vllm_version=version, async_scheduling=async_on, pp=pp)
    assert batches_in_flight(setup) == batches


def test_the_window_layers_reserve_two_steps_of_tokens_under_async_from_0_26() -> None:
    """From 0.26 a sliding-window layer's pages per request count the tokens of every batch
    in flight (max_num_batched_tokens twice with async scheduling), so vLLM's logged
    concurrency falls; the pool itself does not change (but for the 0.02% more room 0.26
    gives the Hopper scales: mxfp4_layout.HOPPER_SCALE_GROUPS_4)."""
    old, new = (kv_capacity(_setup(model="gpt-oss-20b", vllm_version=v, async_scheduling=True))
                for v in ("0.25.1", "0.26.0"))
    assert old.vllm_blocks == pytest.approx(new.vllm_blocks, rel=5e-4)
    assert new.max_concurrency < 0.97 * old.max_concurrency


def test_a_scenario_setting_async_with_ngram_names_the_field() -> None:
    with pytest.raises(InputError, match=r"deployments.d.*engine.*speculative.method ngram"):
        _scenario("""
  d: {gpu: H100-SXM, model: Llama-3.1-8B,
      engine: {async_scheduling: true, vllm_version: '0.31.0',
               speculative: {method: ngram, mean_acceptance_length: 1.5}}}""")


def test_a_release_after_the_newest_modelled_is_simulated_with_a_note() -> None:
    from llmplan.pipeline import newer_than_modelled

    notes = newer_than_modelled(_scenario("""
  now: {gpu: H100-SXM, model: Llama-3.1-8B}
  later: {gpu: H100-SXM, model: Llama-3.1-8B, engine: {vllm_version: '0.34.0'}}"""))
    assert len(notes) == 1 and "'later' pins vLLM 0.34.0" in notes[0]
    assert "simulated with 0.33's memory accounting" in notes[0]


def test_an_e5m2_cache_on_hopper_waits_for_0_22() -> None:
    """vLLM serves an fp8 KV cache on Hopper with FlashAttention, which takes only e4m3
    until 0.22 (vllm/v1/attention/backends/flash_attn.py)."""
    old = kv_capacity(_setup(vllm_version="0.21.0", kv_dtype="fp8_e5m2"))
    assert old.error is not None and "fp8_e5m2 on H100-SXM" in old.error
    assert kv_capacity(_setup(vllm_version="0.22.0", kv_dtype="fp8_e5m2")).error is None
    assert kv_capacity(_setup(vllm_version="0.21.0", kv_dtype="fp8_e4m3")).error is None
    # other GPUs took another backend for fp8 caches
    assert kv_capacity(_setup(gpu="L40S", vllm_version="0.21.0", kv_dtype="fp8_e5m2")).error \
        is None


@pytest.mark.parametrize(("engine", "first"), [
    # each advice is the release that runs every setting at once, not the first one's
    ({"vllm_version": "0.9.2rc1", "async_scheduling": True, "speculative": EAGLE3}, "0.11.1"),
    ({"vllm_version": "0.9.1", "async_scheduling": True, "speculative": NGRAM}, "0.32.0"),
    ({"vllm_version": "0.8.0", "expert_parallel": True, "data_parallel_attention": True,
      "api_server_count": 2}, "0.9.1")])
def test_the_advice_is_a_release_that_takes_every_setting(engine: dict[str, object],
                                                         first: str) -> None:
    with pytest.raises(ValueError, match=rf"expected vllm_version >= {first},"):
        EngineSpec(**engine)
    EngineSpec(**{**engine, "vllm_version": first})


@pytest.mark.parametrize(("value", "said"), [
    (0.2, r"a bare 0.2 is a YAML number: 0.2 or 0.20\?"),
    (0.1, r"0.1 or 0.10\?"),
    ("v0.11.0", r"'v0.11.0' is not a vLLM release number"),
    ("0.14 beta; whatever", r"is not a vLLM release number"),
    (1, r"'1' is not a vLLM release number")])
def test_a_version_vllm_never_had_or_yaml_garbles_is_refused(value: object, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        EngineSpec(vllm_version=value)


@pytest.mark.parametrize("value", [0.9, 0.33, "0.8.5.post1", "0.10.1.1", "0.9.2rc1", "0.33"])
def test_release_numbers_as_pypi_writes_them_are_taken(value: object) -> None:
    assert EngineSpec(vllm_version=value).vllm_version == str(value)


def test_a_token_budget_that_does_not_fit_is_named_as_the_cause() -> None:
    """Without chunked prefill the step's budget holds a whole context; Llama-4-Scout's 10M
    tokens make a profiling peak no GPU holds: the refusal names it and its fix."""
    setup = _setup(gpu="B200", model="Llama-4-Scout", chunked_prefill=False,
                   weights_dtype="fp8")
    error = kv_capacity(ReplicaSetup("B200", "Llama-4-Scout", CATALOG.gpus["B200"],
                                     CATALOG.models["Llama-4-Scout"], setup.engine, 8)).error
    assert error is not None and "profiling peak" in error
    assert "expected engine.max_model_len set" in error and "bigger GPU" not in error


@pytest.mark.parametrize(("budget", "seqs", "expected"), [
    (None, None, (8192, 1024)),     # an H100's API-server defaults
    (512, None, (512, 512)),        # max_num_seqs = min(default, the budget)
    (1, None, (1, 1)),
    (4096, None, (4096, 1024)),
    (2048, 64, (2048, 64)),         # both given: as given
])
def test_max_num_seqs_left_to_vllm_never_exceeds_the_token_budget(
        budget: int | None, seqs: int | None, expected: tuple[int, int]) -> None:
    """vllm/engine/arg_utils.py (0.11.0 and 0.27.1): an unset max_num_seqs defaults to
    min(the GPU's default, max_num_batched_tokens), so a budget below the default runs
    as many sequences as it has tokens rather than being refused or raised."""
    setup = ReplicaSetup(gpu_name="H100-SXM", model_name="Llama-3.1-8B",
                         gpu=CATALOG.gpus["H100-SXM"], model=CATALOG.models["Llama-3.1-8B"],
                         engine=EngineSpec(vllm_version="0.11.0", max_num_batched_tokens=budget,
                                           max_num_seqs=seqs), tp=1)
    assert (setup.rank_max_num_batched_tokens, setup.rank_max_num_seqs) == expected
