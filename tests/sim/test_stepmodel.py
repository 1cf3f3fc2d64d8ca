"""The step model on paper: the GEMMs and attention each take the max of their compute and
their memory traffic, serial parts add, pieces join."""

from __future__ import annotations

import pytest

from llmplan.sim.stepmodel import NEVER, StepModel


def test_memory_bound_until_compute_takes_over() -> None:
    # weights take 10 ms to read; every token costs 1 ms of compute; the CPU 4 ms a step
    hidden = StepModel(weights_s=0.010, compute_per_token_s=0.001, cpu_s=0.004,
                       async_cpu=True)
    assert hidden.step_s(0, 5, 0) == pytest.approx(0.010)    # memory bound, CPU hidden
    assert hidden.step_s(0, 20, 0) == pytest.approx(0.020)   # compute bound
    assert hidden.step_s(2, 1, 0) == pytest.approx(0.010)    # prefill tokens count too
    exposed = StepModel(weights_s=0.010, compute_per_token_s=0.001, cpu_s=0.004,
                        async_cpu=False)
    assert exposed.step_s(0, 5, 0) == pytest.approx(0.014)
    assert exposed.step_s(0, 20, 0) == pytest.approx(0.024)
    # all-reduces and launch gaps never overlap
    serial = StepModel(weights_s=0.010, serial_s=0.001, serial_per_token_s=0.0001)
    assert serial.step_s(0, 10, 0) == pytest.approx(0.010 + 0.001 + 0.001)


def test_cpu_bound_steps_with_async_scheduling() -> None:
    model = StepModel(weights_s=0.002, cpu_s=0.001, cpu_per_seq_s=0.0001, async_cpu=True)
    assert model.step_s(0, 5, 0) == pytest.approx(0.002)
    assert model.step_s(0, 30, 0) == pytest.approx(0.004)    # 1 ms + 30 x 0.1 ms of CPU


def test_the_api_server_is_a_pipeline_stage_neither_async_nor_the_gpu_hides() -> None:
    # 10 ms of weights, CPU 1 ms + 0.1 ms per sequence, the API server 0.2 ms per streamed
    # token: with 100 sequences it needs 20 ms a step, more than the GPU (10) or the CPU (11)
    # overlapped by async scheduling; without it the engine's 10 + 11 ms stay on top
    for async_cpu in (True, False):
        model = StepModel(weights_s=0.010, cpu_s=0.001, cpu_per_seq_s=0.0001,
                          async_cpu=async_cpu, frontend_per_seq_s=0.0002)
        assert model.step_s(0, 100, 0) == pytest.approx(0.020 if async_cpu else 0.021)
        # 10 sequences: 2 ms of API server, below the engine (10 ms, or 10 + 2 of CPU)
        assert model.step_s(0, 10, 0) == pytest.approx(0.010 if async_cpu else 0.012)
        assert model.step_s(500, 0, 0) == pytest.approx(0.010 if async_cpu else 0.011)
    # speculative decoding: a verify step emits `accepted` tokens per sequence, each streamed
    spec = StepModel(weights_s=0.010, frontend_per_seq_s=0.0002, verify_tokens=4, accepted=2.5)
    assert spec.step_s(0, 100, 0) == pytest.approx(0.020)    # per emitted token


def test_what_bounds_a_step() -> None:
    model = StepModel(weights_s=0.010, compute_per_token_s=0.0001, serial_s=0.001,
                      cpu_s=0.001, cpu_per_seq_s=0.0001, async_cpu=True,
                      frontend_per_seq_s=0.0002)
    assert model.bound_by(0, 10, 0) == "gpu_memory"        # 10 ms of weights
    assert model.bound_by(200, 10, 0) == "gpu_compute"     # 21 ms of FLOPs
    assert model.bound_by(0, 60, 0) == "api_server"        # 12 ms of streaming > 11 of GPU
    cpu = StepModel(weights_s=0.001, cpu_s=0.005, async_cpu=True)
    assert cpu.bound_by(0, 1, 0) == "cpu"
    latency = StepModel(weights_s=0.001, serial_s=0.004)
    assert latency.bound_by(0, 1, 0) == "gpu_serial"


def test_a_little_kv_reading_does_not_make_compute_bound_gemms_memory_bound() -> None:
    # 256 decodes: 25.6 ms of GEMM FLOPs against 10 ms of weights; their 1,000 context
    # tokens take 1 ms to read against 0.1 ms of attention FLOPs. The step waits 25.6 +
    # 0 ms on FLOPs and 1 ms on reads: compute-bound, though attention alone reads more
    model = StepModel(weights_s=0.010, compute_per_token_s=0.0001,
                      memory_per_kv_token_s=1e-6, compute_per_pair_s=1e-7)
    assert model.step_s(0, 256, 1000) == pytest.approx(0.0256 + 0.001)
    assert model.bound_by(0, 256, 1000) == "gpu_compute"
    # few decodes reading long contexts: the weights and the KV are both reads
    assert model.bound_by(0, 4, 20_000) == "gpu_memory"


@pytest.mark.parametrize("async_cpu", [True, False])
def test_decode_runs_step_onto_and_off_the_api_server_floor_exactly(async_cpu: bool) -> None:
    # 50 sequences: the floor (50 x 0.4 ms = 20 ms) is on top until attention's KV reads
    # (2 us per context token, +100 us a step) pass it; the jump must agree step by step
    model = StepModel(weights_s=0.010, memory_per_kv_token_s=2e-6, cpu_s=0.001,
                      cpu_per_seq_s=1e-5, async_cpu=async_cpu, frontend_per_seq_s=0.0004)
    kv = 0
    for _ in range(3):
        first, growth, steps = model.decode_run(50, kv)
        last = min(steps, 500) - 1
        for j in (0, last):
            assert first + growth * j == pytest.approx(model.step_s(0, 50, kv + 50 * j),
                                                       rel=1e-12)
        if steps == NEVER:
            break
        kv += 50 * steps
    assert growth == pytest.approx(50 * 2e-6)      # the KV reads' line, last
    floor = model.decode_run(50, 0)
    assert floor[1] == 0.0 and floor[0] == pytest.approx(0.020)    # engine: 10 (+1.5) ms


def test_linear_layers_and_attention_each_take_their_own_max() -> None:
    # the GEMMs read 10 ms of weights and compute 1 ms; attention computes 5 ms over 1 ms of
    # KV reads: the kernels run one after the other, so 10 + 5 ms (one max over the step's
    # sums, 11 ms, would let attention's FLOPs hide under the weight reads)
    model = StepModel(weights_s=0.010, compute_per_token_s=0.0005, compute_per_pair_s=5e-6,
                      memory_per_kv_token_s=1e-6)
    assert model.step_s(0, 2, 1000) == pytest.approx(0.010 + 0.005)
    # past 20 tokens the GEMMs are compute bound (0.5 ms each), attention still adds its own
    assert model.step_s(40, 0, 0, 1000) == pytest.approx(0.020 + 0.005)


def test_decode_runs_are_linear_pieces_that_end_where_another_part_takes_over() -> None:
    # 4 sequences; the GEMMs read 10 ms of weights (2 ms of compute); attention reads 1 ms
    # of window KV per sequence and 2 us per context token, and computes 10 us per context
    # token: per step the context grows by 4, attention's reads by 8 us and its compute by
    # 40 us. Reads are on top (4 ms + 8 us j) until compute (40 us j) passes at j = 125.
    model = StepModel(weights_s=0.010, compute_per_token_s=0.0005, compute_per_pair_s=1e-5,
                      memory_per_kv_token_s=2e-6, memory_per_seq_s=1e-3)
    first, growth, steps = model.decode_run(4, 0)
    assert first == pytest.approx(0.014) and growth == pytest.approx(8e-6)
    assert steps == 125
    for j in (0, 100, 124):
        assert first + growth * j == pytest.approx(model.step_s(0, 4, 4 * j), rel=1e-12)
    first, growth, steps = model.decode_run(4, 4 * 125)
    assert growth == pytest.approx(4e-5) and steps == NEVER
    assert first == pytest.approx(model.step_s(0, 4, 500), rel=1e-12)


def test_window_layers_read_each_context_up_to_the_window() -> None:
    # window 1,000 tokens: a whole window costs 1 ms of reads and 0.5 ms of FLOPs per query.
    # 4 sequences at 100 tokens each read 400 tokens' worth (0.4 windows), not four windows;
    # at 5,000 tokens each they read four whole windows; a mix is bounded by both
    model = StepModel(weights_s=0.010, memory_per_seq_s=1e-3, compute_per_window_seq_s=5e-4,
                      window_tokens=1000)
    assert model.step_s(0, 4, 400) == pytest.approx(0.010 + 0.0004)
    assert model.step_s(0, 4, 20_000) == pytest.approx(0.010 + 0.004)
    assert model.step_s(0, 4, 2_000) == pytest.approx(0.010 + 0.002)
    # without a window size (a calibrated model) each decoding sequence costs a window
    assert StepModel(weights_s=0.010, memory_per_seq_s=1e-3).step_s(0, 4, 400) == \
        pytest.approx(0.014)
    # a prefill chunk's queries attend at most the window: 2,000 tokens from an empty
    # context are 2,001,000 pairs, at most 2,000 x 1,000 in the window layers
    compute = StepModel(compute_per_window_seq_s=5e-4, window_tokens=1000)
    assert compute.step_s(2000, 0, 0, 2_001_000) == pytest.approx(5e-4 * 2000)
    assert compute.step_s(500, 0, 0, 125_250) == pytest.approx(5e-4 * 125.25)


def test_a_decode_run_ends_where_the_contexts_fill_the_window() -> None:
    # 4 sequences from 2,000 context tokens: the window reads grow by 4 tokens a step until
    # the sum reaches 4 x 1,000 (500 steps), then stay at four windows
    model = StepModel(weights_s=0.010, memory_per_seq_s=1e-3, memory_per_kv_token_s=1e-7,
                      window_tokens=1000)
    first, growth, steps = model.decode_run(4, 2000)
    assert steps == 500
    for j in (0, 1, 250, 499):
        assert first + growth * j == pytest.approx(model.step_s(0, 4, 2000 + 4 * j),
                                                   rel=1e-12)
    after, growth_after, steps_after = model.decode_run(4, 4000)
    assert steps_after == NEVER and growth_after == pytest.approx(4e-7)
    assert after == pytest.approx(model.step_s(0, 4, 4000), rel=1e-12)
    # a context that does not end on a step: K = 3,998 reaches 4,000 in one step
    assert model.decode_run(4, 3998)[2] == 1


def test_experts_touched_grow_with_the_tokens_of_a_step() -> None:
    # 8 experts, top-2: one token touches 2 of 8; many tokens touch all of them
    model = StepModel(weights_s=0.001, experts_s=0.008, experts=8, experts_per_token=2)
    assert model.step_s(0, 1, 0) == pytest.approx(0.001 + 0.008 * 2 / 8)
    assert model.step_s(0, 2, 0) == pytest.approx(0.001 + 0.008 * (1 - 0.75 ** 2))
    assert model.step_s(500, 0, 0) == pytest.approx(0.009)


def test_speculative_decoding_spreads_a_verify_step_over_its_accepted_tokens() -> None:
    # 3 drafts + 1: each sequence verifies 4 tokens; 2.5 are kept on average
    model = StepModel(weights_s=0.010, compute_per_token_s=0.001, verify_tokens=4,
                      accepted=2.5)
    assert model.step_s(0, 2, 0) == pytest.approx(0.010 / 2.5)   # 8 tokens: still memory
    assert model.step_s(0, 4, 0) == pytest.approx(0.016 / 2.5)   # 16 tokens of compute
    assert model.step_s(100, 0, 0) == pytest.approx(0.100)      # prefill is not spread
    # next to decodes neither: 100 prompt tokens at 1 ms each, 8 verify tokens over 2.5
    assert model.step_s(100, 2, 0) == pytest.approx(0.100 + 0.008 / 2.5)
    first, _, _ = model.decode_run(4, 0)
    assert first == pytest.approx(0.016 / 2.5)


def test_the_drafter_runs_over_every_token_then_once_per_decode_per_draft() -> None:
    # 3 drafts: one pass over the step's tokens, two over one token per decoding sequence,
    # each bound by 0.1 ms of FLOPs per token or 2 ms of weight reads
    model = StepModel(compute_per_token_s=0.001, verify_tokens=4, accepted=2.5,
                      draft_per_token_s=1e-4, draft_weights_s=0.002)
    assert model.step_s(100, 0, 0) == pytest.approx(0.100 + 0.010 + 2 * 0.002)
    assert model.step_s(0, 10, 0) == pytest.approx((0.040 + 0.004 + 2 * 0.002) / 2.5)
    assert model.step_s(0, 40, 0) == pytest.approx((0.160 + 0.016 + 2 * 0.004) / 2.5)


def test_a_measured_table_of_step_tokens_and_its_extension() -> None:
    # a calibrated CPU server: 0 at no tokens, 22 ms for one decode, 48 ms for two, then
    # 10 ms per further token (the table's last rate)
    table = (0.0, 0.022, 0.048, 0.058)
    model = StepModel(serial_tokens_s=table, serial_per_token_s=0.010,
                      serial_per_kv_token_s=1e-5, serial_per_pair_s=1e-6)
    assert model.step_s(0, 1, 100) == pytest.approx(0.022 + 0.001)
    assert model.step_s(0, 2, 0) == pytest.approx(0.048)
    assert model.step_s(2, 1, 0, 3) == pytest.approx(0.058 + 3e-6)     # P + D = 3 tokens
    assert model.step_s(10, 2, 0) == pytest.approx(0.058 + 9 * 0.010)  # past the table
    # a decode run's pieces still come in closed form: the table is a constant of D
    first, growth, steps = model.decode_run(2, 500)
    assert steps == NEVER
    for j in (0, 7, 300):
        assert first + growth * j == pytest.approx(model.step_s(0, 2, 500 + 2 * j), rel=1e-12)


def test_only_sampled_tokens_go_through_the_output_head() -> None:
    """vLLM computes logits only where it samples (logits_indices): a prompt's tokens go
    through the layers, a decoding sequence's verify tokens through the head as well."""
    model = StepModel(compute_per_token_s=1e-4, compute_per_sampled_s=3e-5)
    assert model.step_s(100, 0, 0) == pytest.approx(100 * 1e-4)
    assert model.step_s(0, 4, 0) == pytest.approx(4 * (1e-4 + 3e-5))
    assert model.step_s(100, 4, 0) == pytest.approx(104 * 1e-4 + 4 * 3e-5)
    speculative = StepModel(compute_per_token_s=1e-4, compute_per_sampled_s=3e-5,
                            verify_tokens=3)
    assert speculative.step_s(0, 2, 0) == pytest.approx(6 * (1e-4 + 3e-5))
    # under a weight read the head's FLOPs hide like the layers'
    assert StepModel(weights_s=0.01, compute_per_token_s=1e-4,
                     compute_per_sampled_s=3e-5).step_s(0, 4, 0) == pytest.approx(0.01)


@pytest.mark.parametrize("async_cpu", [True, False])
def test_eager_launches_are_a_floor_the_kv_reads_climb_past(async_cpu: bool) -> None:
    # eager mode: 20 ms of kernel launches a step, under which the GPU's 10 ms of weight
    # reads hide; 10 sequences' KV reads (2 us per context token) add 20 us a step and
    # pass the floor after 10 ms / 20 us = 500 steps. Serial parts (1 ms) add on top of
    # either, the CPU (1 ms) overlaps with async scheduling and adds without
    model = StepModel(weights_s=0.010, memory_per_kv_token_s=2e-6, serial_s=0.001,
                      cpu_s=0.001, async_cpu=async_cpu, launch_s=0.020)
    cpu = 0.0 if async_cpu else 0.001
    assert model.step_s(0, 10, 0) == pytest.approx(0.020 + 0.001 + cpu)
    assert model.bound_by(0, 10, 0) == "cpu"                  # launching the kernels
    first, growth, steps = model.decode_run(10, 0)
    assert (first, growth) == (pytest.approx(0.021 + cpu), 0.0)
    assert steps in (500, 501)                  # the tie at 500, either side of rounding
    assert first == pytest.approx(model.step_s(0, 10, 10 * (steps - 1)), rel=1e-12)
    first, growth, steps = model.decode_run(10, 10 * 500)
    assert growth == pytest.approx(20e-6) and steps == NEVER
    for j in (0, 250):
        assert first + growth * j == pytest.approx(model.step_s(0, 10, 5000 + 10 * j),
                                                   rel=1e-12)
    assert model.bound_by(0, 10, 10 * 600) == "gpu_memory"
    # a serial part above the launch floor is what bounds the step
    slow_sync = StepModel(weights_s=0.010, serial_s=0.030, launch_s=0.020)
    assert slow_sync.bound_by(0, 10, 0) == "gpu_serial"
    # a prefill step's GPU work is far above the floor: untouched by it
    heavy = StepModel(weights_s=0.010, compute_per_token_s=0.0001, launch_s=0.020)
    assert heavy.step_s(1000, 0, 0) == pytest.approx(0.1)


def test_eager_mode_costs_launches_the_roofline_charges_per_layer() -> None:
    from helpers import scenario_from

    from llmplan.perf.steptime import roofline
    from llmplan.perf.steptime_spec import RooflineStepTime
    from llmplan.scenario.models import LocalDeployment
    loaded = scenario_from("""
        duration: 60
        traffic: {kind: poisson, rate_per_s: 1}
        tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 100},
                 output_tokens: {kind: fixed, tokens: 10}}]
        deployments:
          graphs: {gpu: H100-SXM, model: Llama-3.1-8B}
          eager: {gpu: H100-SXM, model: Llama-3.1-8B, engine: {enforce_eager: true}}
    """)
    spec = RooflineStepTime()
    steps = {}
    for name in ("graphs", "eager"):
        dep = loaded.scenario.deployments[name]
        assert isinstance(dep, LocalDeployment)
        steps[name] = roofline(dep.setup(loaded.catalog), spec)
    layers = loaded.catalog.models["Llama-3.1-8B"].layers
    assert steps["graphs"].launch_s == 0.0
    assert steps["eager"].launch_s == pytest.approx(layers * 230e-6)
    assert steps["eager"].serial_s - steps["graphs"].serial_s == pytest.approx(layers * 47e-6)
    # one decode on an H100: the 16 GB of weights (about 6.5 ms) sit under 32 layers' 7.4 ms
    # of launches
    graph_step = StepModel(**steps["graphs"].coefficients()).step_s(0, 1, 1000)
    eager_step = StepModel(**steps["eager"].coefficients()).step_s(0, 1, 1000)
    assert eager_step == pytest.approx(max(graph_step - steps["graphs"].serial_s,
                                           layers * 230e-6) + steps["eager"].serial_s,
                                       rel=1e-9)
    assert 1.5e-3 < eager_step - graph_step < 3.5e-3


def test_mla_upprojection_of_a_chunks_context_is_counted_once_under_speculation() -> None:
    # 1 us a context token. With speculative decoding (1 + 1 drafts, 1.5 accepted) a step
    # with decodes stands for 1/1.5 of a verify step and schedules 1/1.5 of its prefill
    # tokens: a prompt runs in 1.5 times as many simulated chunks, each with the same
    # context before it, so a chunk's context costs 1 us a token / 1.5 in its simulated
    # step (over the chunks, what the real ones cost); prefill tokens scale, context not
    model = StepModel(weights_s=0.010, upproject_per_context_token_s=1e-6,
                      verify_tokens=2, accepted=1.5)
    base = model.step_s(100, 4, 1_000)
    assert model.step_s(100, 4, 1_000, context_tokens=3_000) - base \
        == pytest.approx(3_000 * 1e-6 / 1.5)
    # without decodes a step is a real one: its chunk's context costs in full
    alone = model.step_s(100, 0, 0)
    assert model.step_s(100, 0, 0, context_tokens=3_000) - alone == pytest.approx(3_000e-6)
