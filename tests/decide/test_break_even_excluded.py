"""A break-even row says when the decision excluded one of its two sides: a crossing with
an API that may not see the data is no choice between the two, whatever it costs."""

from __future__ import annotations

import pytest
from helpers import scenario_from

from llmplan.pipeline import evaluate
from llmplan.results.decision import Result

#: one GPU and two APIs; the task's sensitivity is filled in by each test
SCENARIO = """
    seed: 1
    duration: 120
    traffic: {kind: constant, rate_per_s: 1}
    tasks: [{name: notes, sensitivity: SENSITIVITY,
             prompt_tokens: {kind: fixed, tokens: 500},
             output_tokens: {kind: fixed, tokens: 100}}]
    slo: {ttft_ms: 5000, tpot_ms: 200, min_goodput_fraction: 0.9}
    deployments:
      gpu: {gpu: L4, model: Llama-3.1-8B}
      api: {kind: cloud, model: gpt-4o-mini,
            limits: {requests_per_min: 100000, tokens_per_min: 100000000}}
"""


@pytest.fixture(scope="module")
def restricted() -> Result:
    return evaluate(scenario_from(SCENARIO.replace("SENSITIVITY", "restricted")))


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
    result = evaluate(scenario_from(SCENARIO.replace("SENSITIVITY", "internal")))
    assert all(d.feasible for d in result.deployments.values())
    (row,) = result.break_even
    assert row.excluded is None
    assert "excluded" not in row.model_dump()      # omitted from result.json, not null
    assert "excluded" not in row.line()
