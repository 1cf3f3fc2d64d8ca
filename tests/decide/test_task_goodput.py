"""A task whose SLO sets a share of its own must reach it: the run's average goodput does
not carry a 99% task whose requests mostly miss; a task SLO that sets none takes the
scenario's share."""

from __future__ import annotations

from helpers import scenario_from

from llmplan.pipeline import evaluate

SCENARIO = """
    seed: 4
    duration: 120
    traffic: {kind: poisson, rate_per_s: 4}
    tasks:
      - {name: chat, weight: 9, prompt_tokens: {kind: fixed, tokens: 300},
         output_tokens: {kind: fixed, tokens: 60}}
      - {name: intent, weight: 1, prompt_tokens: {kind: fixed, tokens: 200},
         output_tokens: {kind: fixed, tokens: 5}, slo: {ttft_ms: TTFT OWN}}
    slo: {ttft_ms: 2500, min_goodput_fraction: 0.9}
    deployments:
      api: {kind: cloud, model: gpt-4o-mini,
            limits: {requests_per_min: 100000, tokens_per_min: 100000000}}
"""


def test_a_task_below_its_own_share_misses_the_slo() -> None:
    # an API's TTFT is hundreds of ms: a 100 ms bound leaves the intent task at ~0%, while
    # nine requests in ten (chat) meet their 2.5 s: the run's goodput is about 90%
    result = evaluate(scenario_from(SCENARIO.replace("TTFT OWN",
                                                     "100, min_goodput_fraction: 0.99")))
    api = result.deployments["api"]
    intent = api.per_task["intent"].goodput_fraction
    assert intent is not None and intent < 0.5
    assert not api.slo.met and not api.feasible
    assert api.slo.tasks_short and api.slo.tasks_short[0].startswith("intent: ")
    assert any(r.startswith("misses a task's SLO: intent: ") and "99% required" in r
               for r in api.infeasible_because)


def test_a_task_slo_without_a_share_takes_the_scenarios() -> None:
    loaded = scenario_from(SCENARIO.replace("TTFT OWN", "100"))
    intent = next(t for t in loaded.scenario.tasks if t.name == "intent")
    assert loaded.scenario.slo_for(intent).min_goodput_fraction == 0.9
    # without a share of its own, the intent task is judged with the run (not on its own)
    api = evaluate(loaded).deployments["api"]
    assert api.slo.tasks_short is None
    assert api.slo.met == ((api.slo.goodput_fraction or 0.0) >= 0.9)
