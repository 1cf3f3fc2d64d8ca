"""The decision table's rows say what their figures are: where requests went as the
simulation routed them, and the useful share with the task quality it is made of."""

from __future__ import annotations

import pytest
from helpers import scenario_from

from llmplan.pipeline import evaluate
from llmplan.results.decision import Result

# every request restricted; the API's limit (30 requests a minute) is a quarter of the
# traffic (2/s), so most calls are refused (429) past the retries: sent, not answered
SCENARIO = """
    seed: 5
    duration: 300
    traffic: {kind: poisson, rate_per_s: 2}
    tasks:
      - name: records
        prompt_tokens: {kind: fixed, tokens: 400}
        output_tokens: {kind: fixed, tokens: 50}
        sensitivity: restricted
        quality: {gpu: 0.7, api: 0.95}
      - name: notes
        weight: 0.1
        prompt_tokens: {kind: fixed, tokens: 400}
        output_tokens: {kind: fixed, tokens: 50}
        sensitivity: restricted
    slo: {ttft_ms: 2000}
    deployments:
      gpu: {gpu: L40S, model: Llama-3.1-8B}
      api:
        kind: cloud
        model: gpt-4o-mini
        limits: {requests_per_min: 30, tokens_per_min: 1000000}
"""


@pytest.fixture(scope="module")
def result() -> Result:
    return evaluate(scenario_from(SCENARIO))


def _row(result: Result, question: str) -> dict[str, str]:
    return next(r.answers for r in result.decision_table if r.question == question)


def test_a_throttled_api_still_received_every_request(result: Result) -> None:
    api = result.deployments["api"]
    assert api.cloud is not None
    total, served = api.requests.total, api.cloud.served
    assert served < 0.5 * total                      # most were refused, yet all were sent
    row = _row(result, "data_location")
    assert row["api"] == (f"every request sent to the provider, {served / total:.0%} "
                          f"answered by it; {total:,} restricted requests (100%), all of "
                          f"them sent to the provider")
    assert row["gpu"].startswith("no request sent to a provider;")
    assert row["gpu"].endswith("all of them kept on owned hardware")


def test_the_quality_row_names_the_useful_share_and_the_task_quality(result: Result) -> None:
    row = _row(result, "model_quality")
    api = result.deployments["api"]
    useful = api.useful.useful_fraction or 0.0
    # the useful share is within the SLO x quality, not the scenario's 0.95 itself
    assert useful < 0.5
    assert row["api"] == (f"{useful:.1%} of requests useful (within the SLO x task quality); "
                          "task quality from the scenario: records 0.95; none given for "
                          "other tasks (counted 1)")
    assert "records 0.7;" in row["gpu"]
    assert "(scenario)" not in " ".join(row.values())
