"""An API candidate is priced at the volume offered: the calls its limits refused would be
served, and billed, once the account's tier allows them, and the ones that got through are
the short ones, so pricing those alone understated the month and moved the break-even."""

from __future__ import annotations

import pytest
from helpers import scenario_from

from llmplan.decide.decision import decide
from llmplan.sim.run import simulate_scenario

# prompts of 200 or 4,000 tokens, half each, and 30,000 tokens a minute: the short ones pass
SCENARIO = """
    seed: 2
    duration: 600
    traffic: {kind: poisson, rate_per_s: 2}
    tasks:
      - {name: short, weight: 1, prompt_tokens: {kind: fixed, tokens: 200},
         output_tokens: {kind: fixed, tokens: 100}}
      - {name: long, weight: 1, prompt_tokens: {kind: fixed, tokens: 4000},
         output_tokens: {kind: fixed, tokens: 100}}
    deployments:
      api: {kind: cloud, model: gpt-4o,
            limits: {requests_per_min: 10000, tokens_per_min: 30000}}
"""


def test_a_throttled_api_is_priced_on_every_request_offered() -> None:
    loaded = scenario_from(SCENARIO)
    simulation = simulate_scenario(loaded)
    cloud = simulation.deployments["api"].cloud
    assert cloud is not None and cloud.unserved is not None
    requests = simulation.scenario.requests
    assert cloud.served + cloud.unserved.requests == requests
    # the served calls lean short: fewer prompt tokens a call than the offered mix
    assert cloud.input_tokens / cloud.served < 0.8 * 2100
    result = decide(simulation, loaded)
    cost = result.deployments["api"].cost
    model = loaded.catalog.cloud_models["gpt-4o"]
    offered_in = cloud.input_tokens + cloud.unserved.input_tokens
    offered_out = cloud.output_tokens + cloud.unserved.output_tokens
    per_request = (offered_in * model.input_usd_per_mtok
                   + offered_out * model.output_usd_per_mtok) / 1e6 / requests
    tokens_usd = sum(i.usd_per_month for i in cost.items
                     if i.item in {"input_tokens", "output_tokens"})
    assert tokens_usd == pytest.approx(per_request * cost.requests_per_month, rel=1e-6)
    basis = next(i.basis for i in cost.items if i.item == "input_tokens")
    assert "priced as if served" in basis


def test_an_api_that_answers_everything_has_no_unserved_section() -> None:
    loaded = scenario_from(SCENARIO.replace("tokens_per_min: 30000", "tokens_per_min: 10000000"))
    simulation = simulate_scenario(loaded)
    cloud = simulation.deployments["api"].cloud
    assert cloud is not None and cloud.unserved is None
    assert "unserved" not in simulation.model_dump_json()


def test_a_hybrids_refused_api_requests_are_priced_as_the_api_candidates_are() -> None:
    # the long task goes to the throttled API, the short one to a fleet: what the API
    # refused (no fall-back) is priced as if served, as for the API candidate; what the
    # fleet answered is not the API's
    loaded = scenario_from(SCENARIO + """
      fleet: {gpu: L40S, model: Llama-3.1-8B}
      both: {kind: hybrid, local: fleet, cloud: api, fallback_to_local: false,
             routes: [{tasks: [long], to: cloud}, {tasks: [short], to: local}]}
    """)
    simulation = simulate_scenario(loaded)
    hybrid = simulation.deployments["both"]
    cloud = hybrid.cloud
    assert cloud is not None and cloud.unserved is not None
    long_task = hybrid.per_task["long"]
    assert cloud.served + cloud.unserved.requests == long_task.requests
    assert cloud.unserved.input_tokens == 4000 * cloud.unserved.requests
    cost = decide(simulation, loaded).deployments["both"].cost
    basis = next(i.basis for i in cost.items if i.item == "cloud_input_tokens")
    assert "priced as if served" in basis
