"""What a break-even row tells a reader beyond where two cost lines cross: when the
decision excluded one of its two sides (a crossing with an API that may not see the data
is no choice between the two, whatever it costs), and where the two cost the same per
useful result, the measure the recommendation ranks by."""

from __future__ import annotations

import pytest
from helpers import scenario_from

from llmplan.pipeline import evaluate
from llmplan.results.decision import PER_USEFUL_MOVES, Result

#: one GPU and one API; the task's sensitivity and quality are filled in by each test
SCENARIO = """
    seed: 1
    duration: 120
    traffic: {kind: constant, rate_per_s: 1}
    tasks: [{name: notes, sensitivity: SENSITIVITY, QUALITY
             prompt_tokens: {kind: fixed, tokens: 500},
             output_tokens: {kind: fixed, tokens: 100}}]
    slo: {ttft_ms: 5000, tpot_ms: 200, min_goodput_fraction: 0.9}
    deployments:
      gpu: {gpu: L4, model: Llama-3.1-8B}
      api: {kind: cloud, model: gpt-4o-mini,
            limits: {requests_per_min: 100000, tokens_per_min: 100000000}}
"""


def _scenario(sensitivity: str, quality: str = "") -> str:
    return SCENARIO.replace("SENSITIVITY", sensitivity).replace("QUALITY", quality)


@pytest.fixture(scope="module")
def restricted() -> Result:
    return evaluate(scenario_from(_scenario("restricted")))


def test_a_row_against_an_excluded_api_names_it_and_why(restricted: Result) -> None:
    api = restricted.deployments["api"]
    assert not api.feasible and restricted.deployments["gpu"].feasible
    (row,) = restricted.break_even
    # the row carries the decision's own reasons for leaving the API out
    assert row.excluded is not None
    assert row.excluded.startswith("api is excluded by the decision")
    for reason in api.infeasible_because:
        assert reason in row.excluded
    assert "restricted data (notes)" in row.excluded
    assert "gpu is excluded" not in row.excluded
    # in words too, and in result.json
    assert row.line().endswith(row.excluded)
    assert row.model_dump()["excluded"] == row.excluded
    # the terminal's break-even lines leave the pair out altogether
    assert restricted.break_even_lines() == []


def test_a_row_between_two_options_says_nothing_excluded() -> None:
    result = evaluate(scenario_from(_scenario("internal")))
    assert all(d.feasible for d in result.deployments.values())
    (row,) = result.break_even
    assert row.excluded is None
    assert "excluded" not in row.model_dump()      # omitted from result.json, not null
    assert "excluded" not in row.line()


def test_a_quality_gap_moves_the_break_even_per_useful_result() -> None:
    # every request within the generous SLO: the useful shares are the quality rates
    result = evaluate(scenario_from(_scenario("internal", "quality: {gpu: 0.5, api: 1.0},")))
    assert all(d.slo.goodput_fraction == 1.0 for d in result.deployments.values())
    (row,) = result.break_even
    assert row.local_useful_share == pytest.approx(0.5)
    assert row.cloud_useful_share == pytest.approx(1.0)
    # on paper: gpu's (L + l V) / 0.5 V = api's (C + c V) / 1.0 V
    #   => V = (L - 0.5 C) / (0.5 c - l), with each side's fixed and per-request cost
    expected = (row.local_fixed_usd - 0.5 * row.cloud_fixed_usd) \
        / (0.5 * row.cloud_usd_per_request - row.local_usd_per_request)
    volume, cost_volume = row.break_even_useful_requests_per_month, \
        row.break_even_requests_per_month
    assert volume == pytest.approx(expected, rel=1e-9)
    assert cost_volume is not None and volume > cost_volume    # half as useful: further out
    # there the two candidates' own costs per useful result agree
    gpu, api = result.deployments["gpu"].cost, result.deployments["api"].cost
    assert gpu.usd_at(volume) / (0.5 * volume) == pytest.approx(
        api.usd_at(volume) / (1.0 * volume), rel=1e-9)
    words = row.line()
    assert "per useful result, which the ranking uses (50% of gpu's requests useful, " \
           "100% of api's)" in words
    assert f"{volume / 1e6:,.3g} M requests a month" in words or f"{volume:,.0f}" in words


def test_equal_useful_shares_give_the_cost_break_even_and_no_second_figure() -> None:
    result = evaluate(scenario_from(_scenario("internal", "quality: {gpu: 0.8, api: 0.8},")))
    (row,) = result.break_even
    assert row.break_even_useful_requests_per_month == pytest.approx(
        row.break_even_requests_per_month, rel=1e-9)
    assert "per useful result" not in row.line()


def test_a_small_quality_gap_adds_no_second_figure_to_the_line() -> None:
    # 2% apart: the figure moves (a few percent), within what the costs' own assumptions
    # can be trusted to, and the line does not repeat it
    result = evaluate(scenario_from(_scenario("internal", "quality: {gpu: 0.8, api: 0.816},")))
    (row,) = result.break_even
    volume, cost = row.break_even_useful_requests_per_month, row.break_even_requests_per_month
    assert volume is not None and cost is not None
    assert cost < volume <= cost * (1 + PER_USEFUL_MOVES)
    assert "per useful result" not in row.line()
