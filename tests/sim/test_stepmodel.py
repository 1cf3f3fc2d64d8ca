"""The step model on paper: overlapping parts take the max, serial parts add, pieces join."""

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


def test_decode_runs_are_linear_pieces_that_end_where_another_part_takes_over() -> None:
    # 4 sequences; compute grows 40 us per step (their context grows by 4 tokens), memory
    # 8 us: memory (10 ms) is on top until compute (2 ms + 0.04 ms x j) passes it at j = 200
    model = StepModel(weights_s=0.010, compute_per_token_s=0.0005, compute_per_pair_s=1e-5,
                      memory_per_kv_token_s=2e-6)
    first, growth, steps = model.decode_run(4, 0)
    assert first == pytest.approx(0.010) and growth == pytest.approx(8e-6)
    # memory line 0.010 + 8e-6 j meets compute line 0.002 + 4e-5 j at j = 250
    assert steps == 250
    for j in (0, 100, 249):
        assert first + growth * j == pytest.approx(model.step_s(0, 4, 4 * j), rel=1e-12)
    first, growth, steps = model.decode_run(4, 4 * 250)
    assert growth == pytest.approx(4e-5) and steps == NEVER
    assert first == pytest.approx(model.step_s(0, 4, 1000), rel=1e-12)


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
    first, _, _ = model.decode_run(4, 0)
    assert first == pytest.approx(0.016 / 2.5)
