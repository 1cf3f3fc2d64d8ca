"""The seed guide's hybrid pattern as routes: a task says what it does (`kind`), a hybrid's
routes match kinds, and `routes: seed` is the guide's own split (classification, redaction,
extraction and drafting on the fleet; reasoning, tool use, writing and multimodal on the
API). The simulator and the gateway the stack provisions route alike."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import scenario_from

from llmplan.errors import ScenarioError
from llmplan.pipeline import evaluate
from llmplan.provision.router_config import task_routes
from llmplan.provision.stack import plan_of
from llmplan.scenario.cloud import HybridDeployment, Route
from llmplan.sim.records import SERVED_CLOUD, SERVED_LOCAL
from llmplan.sim.run import run_deployment
from llmplan.sim.table import request_table
from llmplan.traffic import build_request_stream

SCENARIO = """
    seed: 3
    duration: 300
    traffic: {{kind: poisson, rate_per_s: 2}}
    tasks:
      - {{name: triage, kind: classification, prompt_tokens: {{kind: fixed, tokens: 200}},
         output_tokens: {{kind: fixed, tokens: 5}}}}
      - {{name: plan, kind: reasoning, prompt_tokens: {{kind: fixed, tokens: 400}},
         output_tokens: {{kind: fixed, tokens: 200}}}}
      - {{name: letter, kind: writing, sensitivity: restricted,
         prompt_tokens: {{kind: fixed, tokens: 300}}, output_tokens: {{kind: fixed, tokens: 300}}}}
      - {{name: other, prompt_tokens: {{kind: fixed, tokens: 100}},
         output_tokens: {{kind: fixed, tokens: 50}}}}
    deployments:
      gpu: {{gpu: L40S, model: Llama-3.1-8B, replicas: 2}}
      api: {{kind: cloud, model: gpt-4o-mini}}
      both: {{kind: hybrid, local: gpu, cloud: api, routes: {routes}}}
"""


def test_seed_routes_send_each_kind_where_the_guide_says() -> None:
    loaded = scenario_from(SCENARIO.format(routes="seed"))
    both = loaded.scenario.deployments["both"]
    assert isinstance(both, HybridDeployment)
    assert both.routes == "seed" and both.rules == [
        Route(kinds=["classification", "redaction", "extraction", "drafting"], to="local"),
        Route(kinds=["reasoning", "tool_use", "writing", "multimodal"], to="cloud")]
    stream = build_request_stream(loaded.scenario)
    table = request_table(run_deployment(loaded, "both", stream, 300.0), stream)
    served = {name: table.served_by[(table.task_index == i) & (table.outcome == 1)]
              for i, name in enumerate(stream.task_names)}
    assert all(len(v) > 50 for v in served.values())
    assert (served["triage"] == SERVED_LOCAL).all()       # classification: the fleet
    assert (served["plan"] == SERVED_CLOUD).all()         # reasoning: the API
    # writing goes to the API, but restricted data stays local whatever the routes say
    assert (served["letter"] == SERVED_LOCAL).all()
    assert (served["other"] == SERVED_LOCAL).all()        # no kind: the default side
    # the gateway the stack provisions routes each task the same way
    plan = plan_of(loaded, evaluate(loaded), "both")
    sides = {r.task: r.side for r in task_routes(plan)}
    assert sides == {"triage": "local", "plan": "cloud", "letter": "local", "other": "local"}


def test_a_route_by_kind_and_the_default() -> None:
    loaded = scenario_from(SCENARIO.format(
        routes="[{kinds: [classification], to: local}], default: cloud"))
    stream = build_request_stream(loaded.scenario)
    table = request_table(run_deployment(loaded, "both", stream, 300.0), stream)
    ok = table.outcome == 1
    names = np.asarray(stream.task_names)[table.task_index]
    assert (table.served_by[ok & (names == "triage")] == SERVED_LOCAL).all()
    assert (table.served_by[ok & np.isin(names, ["plan", "other"])] == SERVED_CLOUD).all()


def test_routes_by_kind_need_tasks_with_kinds() -> None:
    text = SCENARIO.format(routes="seed").replace("kind: classification, ", "") \
        .replace("kind: reasoning, ", "").replace("kind: writing, ", "")
    with pytest.raises(ScenarioError) as error:
        scenario_from(text)
    message = str(error.value)
    assert "deployments.both.routes:" in message
    assert "no task has a kind these routes name" in message


def test_a_hybrid_adds_unasked_reasoning_to_the_tasks_its_routes_send_the_api() -> None:
    """On GPT-5 (nothing lower than minimal effort) the plain tasks the routes send the
    API carry minimal's hidden tokens; the tasks the fleet serves (classification, the
    restricted letter kept local, the default side) do not. Served requests of the API's
    task (plan) are the same as with the tokens given: output = visible + hidden."""
    from llmplan.catalog.catalog import LEAST_EFFORT_REASONING_TOKENS
    from llmplan.pipeline import reasoning_unasked_on_an_api

    loaded = scenario_from(SCENARIO.format(routes="seed").replace("gpt-4o-mini", "gpt-5"))
    stream = build_request_stream(loaded.scenario)
    run = run_deployment(loaded, "both", stream, 300.0)
    served = run.served(stream)
    hidden = LEAST_EFFORT_REASONING_TOKENS["minimal"]
    assert served.reasoning_tokens is not None
    plan = served.task_index == stream.task_names.index("plan")
    assert (served.reasoning_tokens[plan] == hidden).all()
    assert (served.reasoning_tokens[~plan] == 0).all()
    assert np.array_equal(served.output_tokens, stream.output_tokens + np.where(plan, hidden, 0))
    [note] = [n for n in reasoning_unasked_on_an_api(loaded) if "'both'" in n]
    assert "task plan give" in note
