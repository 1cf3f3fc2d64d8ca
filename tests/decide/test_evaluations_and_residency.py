"""Quality imported from a load test's test-set results; data residency as a constraint."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import scenario_from

from llmplan.errors import ScenarioError
from llmplan.loadtests.records import RequestRecord
from llmplan.loadtests.summary import summarise_records
from llmplan.pipeline import evaluate

SCENARIO = """
    seed: 1
    duration: 600
    traffic: {kind: poisson, rate_per_s: 1}
    tasks:
      - {name: answer, prompt_tokens: {kind: fixed, tokens: 300},
         output_tokens: {kind: fixed, tokens: 50}}
      - {name: tag, prompt_tokens: {kind: fixed, tokens: 100},
         output_tokens: {kind: fixed, tokens: 4}, quality: {gpu: 0.5}}
    evaluations: {gpu: staging-run}
    constraints: {data_residency: [eu]}
    deployments:
      gpu: {gpu: H100-SXM, model: Llama-3.1-8B}
      api-us: {kind: cloud, model: gpt-4o-mini, region: us,
              limits: {requests_per_min: 5000, tokens_per_min: 2000000}}
      api-eu: {kind: cloud, model: gpt-4o-mini, region: eu,
              limits: {requests_per_min: 5000, tokens_per_min: 2000000}}
"""


def _with_summary(tmp_path: Path) -> Path:
    """A load-test summary whose test set judged 80% of `answer` and 90% of `tag` right."""
    run = tmp_path / "staging-run"
    run.mkdir()
    rows = [RequestRecord(id=i, task=task, target="staging", scheduled_ts=float(i),
                          send_ts=float(i), schedule_delay_ms=0.0, status=200, ttft_ms=50.0,
                          e2e_ms=200.0, output_tokens=4, correct=i % 10 < right)
            for task, right in (("answer", 8), ("tag", 9)) for i in range(40)]
    summary = summarise_records(rows, planned=80, planned_span_s=80.0, slo_by_task={},
                                mode="open")
    (run / "summary.json").write_text(summary.model_dump_json())
    return tmp_path


def test_quality_comes_from_the_load_test_unless_given(tmp_path: Path) -> None:
    loaded = scenario_from(SCENARIO, base_dir=_with_summary(tmp_path))
    tasks = {t.name: t for t in loaded.scenario.tasks}
    assert tasks["answer"].quality == {"gpu": 0.8}      # imported
    assert tasks["tag"].quality == {"gpu": 0.5}         # explicit rate wins
    result = evaluate(loaded)
    gpu = result.deployments["gpu"]
    answer_share = gpu.per_task["answer"].requests / gpu.requests.total
    expected = answer_share * 0.8 + (1 - answer_share) * 0.5      # all within the SLO
    assert gpu.useful.useful_fraction == pytest.approx(expected, rel=1e-9)
    check = next(c for c in result.checklist if "correctly" in c.item)
    assert check.status == "measured" and "staging-run" in check.evidence
    # the useful results' quality is the load test's for gpu, an assumption for none
    assert gpu.useful.quality_source == "measured (load-test evaluation)"
    assert result.deployments["api-eu"].useful.quality_source.startswith("assumed")


def test_data_residency_rules_out_other_regions(tmp_path: Path) -> None:
    result = evaluate(scenario_from(SCENARIO, base_dir=_with_summary(tmp_path)))
    deps = result.deployments
    assert not deps["api-us"].feasible
    assert "outside the allowed regions (eu)" in deps["api-us"].infeasible_because[0]
    assert deps["api-eu"].feasible and deps["gpu"].feasible


@pytest.mark.parametrize(("region", "allowed", "within"), [
    ("eu", "eu", True), ("EU", "eu", True), ("eu-central-1", "eu", True),
    ("eu-west-1", "EU", True), ("Europe", "eu", False), ("eu", "eu-central-1", False),
    ("us-east-1", "eu", False), ("eu-central-1", "eu-central-1", True),
    ("eu-central-10", "eu-central-1", False),
])
def test_a_residency_entry_allows_itself_and_the_regions_under_it(
        region: str, allowed: str, within: bool) -> None:
    from llmplan.scenario.models import region_within

    assert region_within(region, allowed) is within


def test_a_missing_evaluation_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read a load-test summary"):
        scenario_from(SCENARIO, base_dir=tmp_path)
