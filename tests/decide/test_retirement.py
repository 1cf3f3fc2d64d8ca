"""Cloud models being retired: read from the catalog's lifecycle notes, and named for each
candidate that uses one when the shutdown falls within the cost horizon."""

from __future__ import annotations

import datetime

import pytest
from helpers import scenario_from

from llmplan.catalog import builtin_catalog
from llmplan.catalog.lifecycle import lifecycle
from llmplan.decide.retirement import months_later, retiring_cloud_models, retiring_under
from llmplan.pipeline import evaluate
from llmplan.provision.stack import plan_of

DAY = datetime.date(2026, 12, 1)


def test_the_lifecycle_is_read_from_the_model_id_source() -> None:
    models = builtin_catalog().cloud_models
    mini = lifecycle(models["gpt-4o-mini"])    # "DEPRECATED: shutdown 2027-01-14 (successor.."
    assert (mini.status, mini.shutdown, mini.successor) == (
        "deprecated", datetime.date(2027, 1, 14), "gpt-6-luna")
    llama = lifecycle(models["llama-3.3-70b-bedrock"])      # "deprecation date 2027-03-30"
    assert (llama.status, llama.shutdown) == ("deprecated", datetime.date(2027, 3, 30))
    assert lifecycle(models["o4-mini"]).retired_on(DAY)
    assert not lifecycle(models["gpt-4o"]).retired_on(DAY)
    current = lifecycle(models["gpt-6-luna"])
    assert (current.status, current.shutdown) == ("current", None)
    # current, with the provider's scheduled date in its notes
    azure = lifecycle(models["gpt-4.1-azure"])
    assert (azure.status, azure.shutdown) == ("current", datetime.date(2027, 4, 14))
    # "successor of claude-sonnet-4-5" names what it replaces, not a successor
    assert lifecycle(models["claude-sonnet-5.5"]).successor is None


def test_months_later_keeps_the_day_or_the_months_last() -> None:
    assert months_later(DAY, 36) == datetime.date(2029, 12, 1)
    assert months_later(datetime.date(2026, 1, 31), 1) == datetime.date(2026, 2, 28)


SCENARIO = """
    duration: 60
    traffic: {{kind: poisson, rate_per_s: 1}}
    tasks:
      - {{name: chat, prompt_tokens: {{kind: fixed, tokens: 100}},
         output_tokens: {{kind: fixed, tokens: 20}}}}
    economics: {{amortisation_months: {months}}}
    deployments:
      fleet: {{gpu: L4, model: Llama-3.1-8B}}
      api: {{kind: cloud, model: {model},
             limits: {{requests_per_min: 5000, tokens_per_min: 2000000}}}}
      both: {{kind: hybrid, local: fleet, cloud: api}}
      current: {{kind: cloud, model: gpt-6-luna}}
"""


def _lines(model: str, months: int = 36, today: datetime.date = DAY) -> list[str]:
    return retiring_cloud_models(scenario_from(SCENARIO.format(model=model, months=months)),
                                 today)


def test_a_model_shut_down_within_the_horizon_is_named_with_its_users() -> None:
    assert _lines("gpt-4o-mini") == [
        "cloud model gpt-4o-mini (used by api, both): deprecated, the provider shuts it down "
        "on 2027-01-14, within the 36-month cost horizon (economics.amortisation_months): "
        "its prices stop applying then; price its successor gpt-6-luna"]
    # a current model with a scheduled shutdown inside the horizon; none past it
    assert _lines("gpt-4.1-azure", months=12) == [
        "cloud model gpt-4.1-azure (used by api, both): the provider shuts it down on "
        "2027-04-14, within the 12-month cost horizon (economics.amortisation_months): its "
        "prices stop applying then"]
    assert _lines("gpt-6-sol-azure", months=12) == []


def test_the_recommendations_own_retiring_model_is_its_risk() -> None:
    # a hybrid built on a model shut down in six weeks: its line is the hybrid's risk, not
    # the local fleet's or the current model's
    loaded = scenario_from(SCENARIO.format(model="gpt-4o-mini", months=36))
    [line] = retiring_cloud_models(loaded, DAY)
    assert retiring_under(loaded, DAY, "both") == [line]
    assert retiring_under(loaded, DAY, "api") == [line]
    assert retiring_under(loaded, DAY, "fleet") == retiring_under(loaded, DAY, "current") == []
    assert retiring_under(loaded, DAY, None) == []


def test_deprecated_after_the_horizon_and_retired_are_named_too() -> None:
    assert _lines("gpt-4o-mini", months=12, today=datetime.date(2024, 1, 1)) == [
        "cloud model gpt-4o-mini (used by api, both): deprecated, shut down on 2027-01-14 "
        "(after the 12-month cost horizon); price its successor gpt-6-luna"]
    # a shutdown date passed while the catalog still says deprecated: not a certainty
    assert _lines("gpt-4o-mini", today=datetime.date(2027, 2, 1)) == [
        "cloud model gpt-4o-mini (used by api, both): the provider's shutdown date "
        "2027-01-14 has passed: it may no longer be callable, though the catalog still "
        "lists it as deprecated; check before relying on it; price its successor gpt-6-luna"]
    retired = _lines("gemini-2.5-pro")
    assert retired == ["cloud model gemini-2.5-pro (used by api, both): retired on "
                       "2026-12-01: its prices are for a model that can no longer be called"]


def test_a_retired_model_is_not_a_candidate_and_is_not_provisioned() -> None:
    """The catalog's RETIRED status (not the clock) makes a candidate that calls the model,
    directly or as a hybrid's cloud part, infeasible, and `llmplan stack` refuses it."""
    loaded = scenario_from(SCENARIO.format(model="o4-mini", months=36))
    result = evaluate(loaded)
    for name in ("api", "both"):
        reasons = result.deployments[name].infeasible_because
        assert any("cloud model o4-mini was retired on 2026-10-23 and can no longer be "
                   "called; expected a current model" in r for r in reasons), reasons
    assert result.deployments["current"].feasible
    assert result.recommendation.deployment not in {"api", "both"}
    for name in ("api", "both"):
        with pytest.raises(ValueError, match="o4-mini was retired"):
            plan_of(loaded, result, name)
    # a deprecated model still being served stays a candidate
    assert evaluate(scenario_from(SCENARIO.format(model="gpt-4o-mini", months=36))) \
        .deployments["api"].feasible
