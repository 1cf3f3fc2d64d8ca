"""How hard the GPUs worked (MFU, MBU) and the throughput a fleet saturates at
(sim/hardware_use.py): on paper for one request, against the simulator at overload."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers import run_first, scenario_from

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import kv_capacity
from llmplan.perf.steptime import build_step_time, roofline
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.scenario.models import LocalDeployment, SimulationMode
from llmplan.sim.hardware_use import AT_PEAK, WorkDone, full_batch, hardware_use
from llmplan.sim.metrics import summarise_run

ONE_REQUEST = """
    seed: 1
    duration: 100
    traffic: {kind: constant, rate_per_s: 0.001}   # a single arrival at t = 0
    tasks:
      - name: only
        prompt_tokens: {kind: fixed, tokens: 100}
        output_tokens: {kind: fixed, tokens: 10}
    deployments:
      one:
        gpu: H100-SXM
        model: Llama-3.1-8B
"""


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_one_request_mfu_and_mbu_on_paper(mode: str) -> None:
    loaded = scenario_from(ONE_REQUEST)
    run, stream = run_first(loaded, SimulationMode(mode))
    use = summarise_run(run, stream, loaded.scenario).local.utilisation   # type: ignore[union-attr]
    dep = loaded.scenario.deployments["one"]
    peak = roofline(dep.setup(loaded.catalog),   # type: ignore[union-attr]
                    RooflineStepTime(compute_efficiency=1, memory_efficiency=1))
    # 10 steps: one prefill of 100 tokens, then 9 decodes reading 101..109 context tokens
    kv_reads = sum(100 + j for j in range(1, 10))
    memory_s = 10 * peak.weights_s + kv_reads * peak.memory_per_kv_token_s
    # 109 tokens through the linear layers, the 9 decodes' through the output head too (the
    # prefill step's one head row is left out by the step model: 1 of 10);
    # attention: 100 x 101 / 2 causal prefill pairs plus each decode's context
    compute_s = (109 * peak.compute_per_token_s + 9 * peak.compute_per_sampled_s
                 + (5050 + kv_reads) * peak.compute_per_pair_s)
    assert peak.compute_per_sampled_s > 0.05 * peak.compute_per_token_s   # 128k x 4096 head
    assert use.mbu_fraction == pytest.approx(memory_s / 100.0, rel=1e-9)
    assert use.mfu_fraction == pytest.approx(compute_s / 100.0, rel=1e-9)
    # a single request: busy a fraction of a second in 100 s, next to nothing of the peak
    assert use.achieved_requests_per_s == pytest.approx(0.01)
    assert use.load_fraction < 0.01 and use.engine_busy_fraction < 0.01


def test_speculative_mbu_counts_a_prefill_step_whole_and_a_decode_step_per_token() -> None:
    # n-gram drafts (no drafter on the GPU), 3 per step, 2.5 tokens kept: the prefill step
    # reads the weights once; the 9 decode tokens take 9 / 2.5 verify steps, each reading
    # the weights and the context once and computing 4 tokens per sequence
    loaded = scenario_from(ONE_REQUEST + """
        engine: {speculative: {method: ngram, num_speculative_tokens: 3,
                               mean_acceptance_length: 2.5}}
    """)
    run, stream = run_first(loaded)
    use = summarise_run(run, stream, loaded.scenario).local.utilisation   # type: ignore[union-attr]
    dep = loaded.scenario.deployments["one"]
    peak = roofline(dep.setup(loaded.catalog),   # type: ignore[union-attr]
                    RooflineStepTime(compute_efficiency=1, memory_efficiency=1))
    kv_reads = sum(100 + j for j in range(1, 10))
    memory_s = (1 + 9 / 2.5) * peak.weights_s + kv_reads / 2.5 * peak.memory_per_kv_token_s
    verify = 9 * 4 / 2.5
    compute_s = ((100 + verify) * peak.compute_per_token_s + verify * peak.compute_per_sampled_s
                 + (5050 + kv_reads * 4 / 2.5) * peak.compute_per_pair_s)
    assert use.mbu_fraction == pytest.approx(memory_s / 100.0, rel=1e-9)
    assert use.mfu_fraction == pytest.approx(compute_s / 100.0, rel=1e-9)



def test_a_draft_model_counts_its_reads_and_flops_in_mbu_and_mfu() -> None:
    """Qwen3-0.6B drafting 3 tokens for Qwen3-32B (2.2 kept): after each of the 1 + 9 / 2.2
    steps it runs 3 passes, each reading its weights once, the first over the step's tokens
    and the two others over the decoding sequence; every pass of a verify step reads its
    own KV cache of the context (28 layers of 4 KiB a token, 44% of the model's)."""
    loaded = scenario_from(ONE_REQUEST.replace("Llama-3.1-8B", "Qwen3-32B") + """
        engine: {weights_dtype: fp8,
                 speculative: {method: draft_model, drafter: Qwen3-0.6B,
                               num_speculative_tokens: 3, mean_acceptance_length: 2.2}}
    """)
    run, stream = run_first(loaded)
    use = summarise_run(run, stream, loaded.scenario).local.utilisation   # type: ignore[union-attr]
    dep = loaded.scenario.deployments["one"]
    peak = roofline(dep.setup(loaded.catalog), AT_PEAK)   # type: ignore[union-attr]
    assert peak.draft_weights_s > 0 and peak.serial_per_kv_token_s > 0
    assert peak.serial_per_kv_token_s == pytest.approx(
        3 * 114_688 / 262_144 * peak.memory_per_kv_token_s)
    steps = 1 + 9 / 2.2
    kv_reads = sum(100 + j for j in range(1, 10))
    memory_s = steps * (peak.weights_s + 3 * peak.draft_weights_s) \
        + kv_reads / 2.2 * (peak.memory_per_kv_token_s + peak.serial_per_kv_token_s)
    verify = 9 * 4 / 2.2
    compute_s = ((100 + verify) * peak.compute_per_token_s + verify * peak.compute_per_sampled_s
                 + (5050 + kv_reads * 4 / 2.2) * peak.compute_per_pair_s
                 + (100 + verify + 2 * 9 / 2.2) * peak.draft_per_token_s)
    assert use.mbu_fraction == pytest.approx(memory_s / 100.0, rel=1e-9)
    assert use.mfu_fraction == pytest.approx(compute_s / 100.0, rel=1e-9)


SATURATED = """
    seed: 3
    duration: {duration}   # 900: long against the first batch's ramp (about 10 s)
    traffic: {{kind: poisson, rate_per_s: {rate}}}
    tasks:
      - name: only
        prompt_tokens: {prompt}
        output_tokens: {output}
    deployments:
      one:
        gpu: L4
        model: Llama-3.1-8B
        engine: {{max_num_seqs: {seqs}}}
        admission: {{queue_timeout_s: 1000}}   # nobody gives up: the fleet stays saturated
"""


def _saturated(rate: float, **spec: object) -> tuple[float, float, int]:
    loaded = scenario_from(SATURATED.format(rate=rate, duration=900, **spec))
    run, stream = run_first(loaded)
    result = summarise_run(run, stream, loaded.scenario)
    use = result.local.utilisation   # type: ignore[union-attr]
    return use.achieved_requests_per_s, use.full_batch_requests_per_s, \
        result.requests.preemptions


def test_saturation_estimate_matches_the_simulator_when_the_batch_limit_binds() -> None:
    # 16 sequences of 600 + 150 tokens fit the KV cache many times over: the batch is full
    # at 16 and the steady state is the estimate's
    fixed = {"prompt": "{kind: fixed, tokens: 600}", "output": "{kind: fixed, tokens: 150}",
             "seqs": 16}
    _, estimate, _ = _saturated(1.0, **fixed)
    achieved, _, preemptions = _saturated(3.0 * estimate, **fixed)
    assert preemptions == 0
    assert achieved == pytest.approx(estimate, rel=0.05)


@pytest.mark.parametrize("lengths", [
    ("{kind: fixed, tokens: 3000}", "{kind: fixed, tokens: 400}"),
    ("{kind: lognormal, mean: 3000, p95: 8000}", "{kind: lognormal, mean: 400, p95: 1200}")])
def test_saturation_estimate_bounds_a_kv_bound_fleet_from_above(
        lengths: tuple[str, str]) -> None:
    # long requests fill the KV cache (about 39k tokens on an L4) long before 256
    # sequences: vLLM preempts and recomputes (several times per request here), which the
    # full-batch estimate does not count; it stays an upper bound
    prompt, output = lengths
    spec = {"prompt": prompt, "output": output, "seqs": 256}
    _, estimate, _ = _saturated(0.5, **spec)
    achieved, _, preemptions = _saturated(3.0 * estimate, **spec)
    assert preemptions > 0
    assert achieved <= 1.05 * estimate


STREAMING = """
    seed: 5
    duration: 120
    traffic: {{kind: poisson, rate_per_s: {rate}}}
    tasks:
      - name: only
        prompt_tokens: {{kind: fixed, tokens: 100}}
        output_tokens: {{kind: fixed, tokens: 200}}
    deployments:
      one:
        gpu: H100-SXM
        model: Llama-3.1-8B
        engine: {{max_num_seqs: 1024, api_server_count: {servers}}}
        admission: {{queue_timeout_s: 1000}}
"""


def _streaming(rate: float, servers: int) -> tuple[float, float, str, str, int]:
    loaded = scenario_from(STREAMING.format(rate=rate, servers=servers))
    run, stream = run_first(loaded)
    use = summarise_run(run, stream, loaded.scenario).local.utilisation  # type: ignore[union-attr]
    return (use.achieved_requests_per_s, use.full_batch_requests_per_s,
            use.full_batch_limited_by, use.full_batch_step_bound_by, use.full_batch_sequences)


def test_a_full_batch_of_short_answers_waits_on_one_api_server() -> None:
    # 1,024 sequences of an 8B model on an H100: the GPU's GEMMs take ~28 ms of FLOPs (16 GB
    # of weights would take 6) and attention reads ~27 GB of KV (~11 ms) a step, 39 ms; the
    # API server streams 1,024 tokens at 80 us (82 ms): it sets the pace, the estimate says
    # so, and the simulator, saturated, finishes what it says
    _, estimate, limit, bound, sequences = _streaming(1.0, servers=1)
    assert (limit, bound, sequences) == ("max_num_seqs", "api_server", 1024)
    assert estimate == pytest.approx(1024 / (200 * 1024 * 80e-6), rel=0.05)
    achieved, _, _, _, _ = _streaming(1.5 * estimate, servers=1)
    assert achieved == pytest.approx(estimate, rel=0.10)
    # eight API servers share the streaming: the GPU takes over, most of its step spent on
    # the GEMMs' FLOPs
    _, more, _, bound, _ = _streaming(1.0, servers=8)
    assert bound == "gpu_compute" and more > 1.3 * estimate


def test_moe_mfu_counts_the_models_flops_not_the_slot_overhead() -> None:
    """MFU is the model's FLOPs over the peak: a prefill of 8,192 tokens through
    Qwen3-235B at tp 8 does 2 x (its layers' 21 B parameters a token goes through) FLOPs
    per token, however long the kernels take to move tokens in and out of experts."""
    catalog = builtin_catalog()
    setup = LocalDeployment(gpu="H100-SXM", model="Qwen3-235B-A22B", tp=8,
                            engine=EngineSpec(weights_dtype="fp8")).setup(catalog)
    work = WorkDone(steps=1, decode_steps=0.0, tokens=8192, prefill_pairs=0.0,
                    decode_seq_steps=0.0, kv_token_steps=0.0)
    use = hardware_use(setup, work, replica_s=1.0)
    model = setup.model
    layers = model.dense_params + model.expert_params * 8 / 128
    fp8_peak = catalog.gpus["H100-SXM"].flops_per_s("fp8") * 8
    assert use.compute_fraction == pytest.approx(2 * layers * 8192 / fp8_peak, rel=0.02)


def test_moe_mbu_reads_the_experts_each_step_touches() -> None:
    """gpt-oss-120b (4 of 128 experts a token): 100 steps, each decoding 17 sequences, two
    of them also carrying a 2,000-token prompt. A decode step touches 1 - (124/128)^17 =
    42% of the experts, a prompt's step nearly all; the run's mean step (57 tokens, 84%)
    would overstate the reads by about 70%."""
    catalog = builtin_catalog()
    setup = LocalDeployment(gpu="H100-SXM", model="gpt-oss-120b").setup(catalog)
    work = WorkDone(steps=100, decode_steps=100.0, tokens=4000 + 1700, prefill_pairs=0.0,
                    decode_seq_steps=1700.0, kv_token_steps=0.0, prefill_steps=2.0)
    peak = roofline(setup, AT_PEAK)
    untouched = 124 / 128
    share = 2 * (1 - untouched ** 2017) + 98 * (1 - untouched ** 17)
    expected_s = 100 * peak.weights_s + peak.experts_s * share
    use = hardware_use(setup, work, replica_s=1.0)
    assert use.memory_bandwidth_fraction == pytest.approx(expected_s, rel=1e-6)
    mean_step = 100 * peak.weights_s + peak.experts_s * 100 * (1 - untouched ** 57)
    assert mean_step > 1.3 * expected_s


@pytest.mark.parametrize("duration", [30, 61, 90])
def test_a_run_short_of_a_whole_minute_is_busy_at_most_all_of_its_time(duration: int) -> None:
    # the replica is never idle after its first request (8 seats, 1 long request a second):
    # busy about all of the run, however many seconds its last minute has; the last minute
    # had counted its steps up to the minute's end over only the run's seconds (busy 1.9
    # at 61 s)
    loaded = scenario_from(SATURATED.format(
        duration=duration, rate=1, prompt="{kind: fixed, tokens: 3000}",
        output="{kind: fixed, tokens: 500}", seqs=8))
    run, stream = run_first(loaded)
    use = summarise_run(run, stream, loaded.scenario).local.utilisation  # type: ignore[union-attr]
    assert 0.9 < use.engine_busy_fraction <= 1.0
    assert use.mbu_fraction <= 1.0 and use.kv_cache_mean_fraction <= 1.0


def test_one_request_on_pipeline_stages_keeps_one_stage_busy_at_a_time() -> None:
    """The same request on two stages of one H100 each: the same FLOPs and the same bytes
    (its one micro-batch reads each stage's weights once a step), over twice the GPUs."""
    loaded = scenario_from(ONE_REQUEST.replace("model: Llama-3.1-8B",
                                               "model: Llama-3.1-8B\n        pp: 2"))
    run, stream = run_first(loaded)
    use = summarise_run(run, stream, loaded.scenario).local.utilisation   # type: ignore[union-attr]
    dep = loaded.scenario.deployments["one"]
    assert isinstance(dep, LocalDeployment) and dep.gpus_per_replica == 2
    peak = roofline(dep.setup(loaded.catalog),
                    RooflineStepTime(compute_efficiency=1, memory_efficiency=1))
    kv_reads = sum(100 + j for j in range(1, 10))
    memory_s = 10 * peak.weights_s + kv_reads * peak.memory_per_kv_token_s
    compute_s = (109 * peak.compute_per_token_s + 9 * peak.compute_per_sampled_s
                 + (5050 + kv_reads) * peak.compute_per_pair_s)
    assert use.mbu_fraction == pytest.approx(memory_s / 100.0 / 2, rel=1e-9)
    assert use.mfu_fraction == pytest.approx(compute_s / 100.0 / 2, rel=1e-9)


OVERLOADED = """
    seed: 2
    duration: 30
    traffic: {{kind: poisson, rate_per_s: 30}}
    tasks:
      - {{name: chat, prompt_tokens: {{kind: fixed, tokens: 500}},
         output_tokens: {{kind: fixed, tokens: 200}}}}
    deployments:
      fleet: {deployment}
"""


@pytest.mark.parametrize("deployment", ["{gpu: MI300X, model: Llama-3.3-70B, pp: 4}",
                                        "{gpu: MI300X, model: Llama-3.3-70B, tp: 4}"])
def test_overloaded_stages_use_at_most_their_gpus(deployment: str) -> None:
    """Saturated, four stages compute at most what four GPUs can (the roofline's figures
    are one stage's GPUs': they are spread over all four), as the tensor-parallel twin."""
    loaded = scenario_from(OVERLOADED.format(deployment=deployment))
    run, stream = run_first(loaded)
    use = summarise_run(run, stream, loaded.scenario).local.utilisation  # type: ignore[union-attr]
    assert 0.2 < use.mfu_fraction <= 1.0 and 0.0 < use.mbu_fraction <= 1.0
    assert use.engine_busy_fraction > 0.95


def test_the_mbu_series_of_a_moe_agrees_with_the_runs_figure() -> None:
    """gpt-oss-120b answering 2,000-token prompts: the per-minute MBU the report charts
    splits each minute's expert reads between the steps carrying a prompt and the decode
    steps as the run's figure does. Spreading the prompts' tokens over every step had each
    step touch nearly every expert, and the series averaged about twice the run's MBU
    (over 100% of the bandwidth at times, reasoning-model's example on eight H100s)."""
    loaded = scenario_from("""
        seed: 3
        duration: 180
        traffic: {kind: poisson, rate_per_s: 1.5}
        tasks:
          - {name: rag, prompt_tokens: {kind: fixed, tokens: 2000},
             output_tokens: {kind: fixed, tokens: 150}}
        deployments:
          moe: {gpu: H100-SXM, model: gpt-oss-120b}
    """)
    run, stream = run_first(loaded)
    local = summarise_run(run, stream, loaded.scenario).local
    assert local is not None
    series = local.timeseries.mbu_fraction
    assert len(series) == 3 and max(series) <= 1.0
    # whole minutes of the same load: each minute's MBU is the run's, within the noise
    # of which minute a prompt's chunk fell in
    for value in series:
        assert value == pytest.approx(local.utilisation.mbu_fraction, rel=0.15)


@pytest.mark.parametrize(("gpu", "model", "weights"), [
    ("MI300X", "Llama-3.1-8B", "bf16"),          # GEMMs measured at 0.65 of an H100's share
    ("H100-SXM", "Qwen3-30B-A3B", "int4"),       # Marlin's experts at 0.61 of the BF16 GEMM
])
def test_mfu_divides_by_the_datasheet_peak_not_a_measured_share(
        gpu: str, model: str, weights: str) -> None:
    """MFU is the model's FLOPs over the peak of the tensor cores the format runs on: a
    GPU's or a kernel's measured share of that peak is how far below it the work runs, so
    it must not shrink the peak (it had raised the MI300X's MFU by 1 / 0.65)."""
    catalog = builtin_catalog()
    setup = LocalDeployment(gpu=gpu, model=model,
                            engine=EngineSpec(weights_dtype=weights)).setup(catalog)
    work = WorkDone(steps=1, decode_steps=0.0, tokens=8192, prefill_pairs=0.0,
                    decode_seq_steps=0.0, kv_token_steps=0.0)
    use = hardware_use(setup, work, replica_s=1.0)
    layers = setup.model.dense_params + setup.model.routed_active_params
    peak = catalog.gpus[gpu].bf16_dense_tflops * 1e12
    assert use.compute_fraction == pytest.approx(2 * layers * 8192 / peak, rel=0.02)


WINDOWED = """
    seed: 12
    duration: 900
    traffic: {{kind: poisson, rate_per_s: {rate}}}
    tasks:
      - name: rag
        prompt_tokens: {{kind: fixed, tokens: 3000}}
        output_tokens: {{kind: fixed, tokens: 300}}
    deployments:
      one:
        gpu: H100-SXM
        model: Gemma-3-27B
        admission: {{queue_timeout_s: 1000}}
"""


def test_a_sliding_window_models_full_batch_counts_its_window_pages() -> None:
    # Gemma 3 27B: 10 full-attention layers (one KV group) and 52 sliding ones of a 1,024-
    # token window (six groups of ten); a running request holds its context's pages of the
    # full group and, of each sliding group, its window's 65 (64 and the one straddled):
    # 3,000 + 300 / 2 tokens are 196.9 pages, and 6 x 65 = 390 more, so the cache's blocks
    # hold blocks / 586.9 of them, not blocks / 196.9 (as when the window was left out)
    loaded = scenario_from(WINDOWED.format(rate=1.0))
    run, stream = run_first(loaded)
    result = summarise_run(run, stream, loaded.scenario)
    assert result.local is not None
    blocks = result.local.engine.kv_cache_blocks
    use = result.local.utilisation
    assert use.full_batch_limited_by == "kv_cache"
    assert use.full_batch_sequences == int(blocks / (3150 / 16 + 6 * 65))
    estimate = use.full_batch_requests_per_s
    loaded = scenario_from(WINDOWED.format(rate=3.0 * estimate))
    run, stream = run_first(loaded)
    achieved = summarise_run(run, stream, loaded.scenario).local.utilisation \
        .achieved_requests_per_s  # type: ignore[union-attr]
    assert 0.85 * estimate <= achieved <= 1.05 * estimate


def test_a_full_batch_of_mla_requests_pays_each_cached_prefix_up_projection_once() -> None:
    """MLA up-projects the cached context of every prefill chunk (steptime.py): in the
    full-batch estimate each finished request's chunk step carries its cached tokens, so
    the time per finished request grows by cached x the per-token coefficient exactly (the
    prefill steps carry per_prefill_step requests' chunks, prefill_share of the steps)."""
    catalog = builtin_catalog()
    setup = LocalDeployment(gpu="H200", model="DeepSeek-R1", tp=8).setup(catalog)
    step = build_step_time(setup, RooflineStepTime())
    assert step.upproject_per_context_token_s > 0.0
    mix = dict(max_num_seqs=64, capacity=kv_capacity(setup), max_num_batched_tokens=8192,
               prompt_tokens=np.full(50, 30500), cached_tokens=np.full(50, 29952),
               output_tokens=np.full(50, 400))
    with_term = full_batch(step, **mix)       # type: ignore[arg-type]
    without = full_batch(replace(step, upproject_per_context_token_s=0.0),
                         **mix)               # type: ignore[arg-type]
    assert with_term.sequences == without.sequences
    assert 1.0 / with_term.requests_per_s - 1.0 / without.requests_per_s == pytest.approx(
        29952 * step.upproject_per_context_token_s, rel=1e-9)
