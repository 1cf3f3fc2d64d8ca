"""A hybrid whose API cannot answer without reasoning (GPT-5: its lowest effort is minimal,
128 hidden tokens an answer): every call of a plain task that reaches the API carries those
tokens, whichever way it got there (its route, a spill-over, a fall-back), and what its
fleet serves carries none. Checked on paper and against the same hybrid in front of an API
that answers plainly (GPT-4o mini), whose calls fail and succeed at the same times."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import scenario_from

from llmplan.catalog.catalog import LEAST_EFFORT_REASONING_TOKENS
from llmplan.pipeline import reasoning_unasked_on_an_api
from llmplan.scenario import LoadedScenario
from llmplan.sim.engine import DeploymentRun
from llmplan.sim.metrics import summarise_run
from llmplan.sim.records import OK, SERVED_CLOUD, SERVED_LOCAL
from llmplan.sim.run import run_deployment
from llmplan.sim.table import RequestTable, request_table
from llmplan.traffic import RequestStream, build_request_stream

HIDDEN = LEAST_EFFORT_REASONING_TOKENS["minimal"]
ANSWER = 50

# `long` is past the fleet's max_model_len: the fleet refuses each of its requests at once
# and it spills to the API (spillover_when_full); `short` fits. The API's round trip is set,
# so both API models fail and answer at the same times.
SPILL = """
    seed: 3
    duration: 300
    traffic: {{kind: poisson, rate_per_s: 1}}
    tasks:
      - {{name: short, prompt_tokens: {{kind: fixed, tokens: 200}},
         output_tokens: {{kind: fixed, tokens: 50}}}}
      - {{name: long, prompt_tokens: {{kind: fixed, tokens: 2000}},
         output_tokens: {{kind: fixed, tokens: 50}}}}
    deployments:
      gpu: {{gpu: L40S, model: Llama-3.1-8B, replicas: 1, engine: {{max_model_len: 1024}}}}
      api: {{kind: cloud, model: {model}, latency: {{network_rtt_ms: 30}}{outages}}}
      both: {{kind: hybrid, local: gpu, cloud: api{routes}}}
"""


def _run(model: str, *, outages: str = "", routes: str = ""
         ) -> tuple[LoadedScenario, RequestStream, DeploymentRun, RequestTable]:
    loaded = scenario_from(SPILL.format(model=model, outages=outages, routes=routes))
    stream = build_request_stream(loaded.scenario)
    run = run_deployment(loaded, "both", stream, loaded.scenario.duration_s)
    return loaded, stream, run, request_table(run, run.served(stream))


def test_a_plain_request_that_spills_to_the_api_carries_its_hidden_reasoning() -> None:
    """Every `long` request spills (the fleet cannot hold it): on GPT-5 each answer is 50
    visible tokens and 128 hidden ones, billed as output; `short`, which the fleet serves,
    keeps its 50 tokens, and the fleet serves it as it does in front of GPT-4o mini. (Only
    the requests the routes send the API had carried the tokens: the spilled ones were
    billed their 50 visible tokens alone.)"""
    loaded, stream, run, table = _run("gpt-5")
    long = stream.task_index == stream.task_names.index("long")
    assert long.sum() > 100 and (~long).sum() > 100
    assert (table.served_by[long] == SERVED_CLOUD).all()
    assert (table.served_by[~long] == SERVED_LOCAL).all()
    assert (table.outcome == OK).all()
    served = run.served(stream)
    assert served.reasoning_tokens is not None
    assert (served.output_tokens == np.where(long, ANSWER + HIDDEN, ANSWER)).all()
    assert (served.reasoning_tokens == np.where(long, HIDDEN, 0)).all()
    result = summarise_run(run, stream, loaded.scenario)
    assert result.cloud is not None
    assert result.cloud.output_tokens == int(long.sum()) * (ANSWER + HIDDEN)
    # the fleet's requests: as in front of an API that adds nothing
    *_, plain = _run("gpt-4o-mini")
    assert np.array_equal(table.finish_s[~long], plain.finish_s[~long])
    assert np.array_equal(table.ttft_s[~long], plain.ttft_s[~long])
    # the note names them: no route sends them the API, their spilled calls get the tokens
    [note] = [n for n in reasoning_unasked_on_an_api(loaded) if "'both'" in n]
    assert "tasks short, long give no reasoning_tokens (their calls that spill" in note


def test_a_plain_request_the_api_fails_is_served_by_the_fleet_without_it() -> None:
    """Both tasks go to the API, which is down for the first 100 s: the calls it fails then
    fall back to the fleet (the part the fleet serves), the rest it answers. On GPT-5 each
    answer it gives carries the 128 hidden tokens; the fleet generates the visible 50 alone
    and serves them at the times it does when the API is GPT-4o mini. (The fleet had served
    a fall-back with the API's hidden tokens, 178 generated tokens an answer.)"""
    routes = ", default: cloud"
    outages = ", outages: {windows: [{start_s: 0, duration_s: 100}]}"
    loaded, stream, run, table = _run("gpt-5", outages=outages, routes=routes)
    *_, plain = _run("gpt-4o-mini", outages=outages, routes=routes)
    short = stream.task_index == stream.task_names.index("short")
    fleet = table.served_by == SERVED_LOCAL
    api = table.served_by == SERVED_CLOUD
    assert (fleet & short).sum() > 20 and (api & short).sum() > 50
    assert np.array_equal(fleet, plain.served_by == SERVED_LOCAL)
    served = run.served(stream)
    assert (served.output_tokens[fleet] == ANSWER).all()
    assert (served.output_tokens[api] == ANSWER + HIDDEN).all()
    assert np.array_equal(table.finish_s[fleet], plain.finish_s[fleet])
    result = summarise_run(run, stream, loaded.scenario)
    assert result.cloud is not None and result.cloud.served == int(api.sum())
    assert result.cloud.output_tokens == int(api.sum()) * (ANSWER + HIDDEN)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-5.1"])
def test_an_api_that_answers_plainly_leaves_the_hybrids_run_as_it_was(model: str) -> None:
    """GPT-4o mini never reasons and GPT-5.1 takes effort none: nothing is added, and the
    run serves the stream as given."""
    _, stream, run, _ = _run(model)
    assert run.served_stream is None and run.api_stream is None
    assert run.served(stream) is stream


AGENT = """
    seed: 5
    duration: 300
    traffic: {kind: poisson, rate_per_s: 0.2}
    tasks:
      - name: loop
        prompt_tokens: {kind: uniform, min_tokens: 1100, max_tokens: 1300}
        output_tokens: {kind: uniform, min_tokens: 20, max_tokens: 80}
        session: {kind: agent, turns_min: 3, turns_max: 5, think_time_s: 2, fan_out: 2}
    deployments:
      gpu: {gpu: L40S, model: Llama-3.1-8B, replicas: 1, engine: {max_model_len: 1024}}
      api: {kind: cloud, model: gpt-5}
      both: {kind: hybrid, local: gpu, cloud: api}
"""


def test_an_agent_loop_that_spills_whole_is_the_apis_own_run() -> None:
    """Every call of the agent loop is past the fleet's max_model_len, so the hybrid spills
    each to the API, at the time it is sent: its API part is the API deployment's own run,
    call by call, the hidden reasoning of earlier calls in the later calls' history (more
    prompt tokens, the same cache reads) and in each answer's bill."""
    loaded = scenario_from(AGENT)
    stream = build_request_stream(loaded.scenario)
    hybrid = run_deployment(loaded, "both", stream, loaded.scenario.duration_s)
    alone = run_deployment(loaded, "api", stream, loaded.scenario.duration_s)
    a, b = (summarise_run(r, stream, loaded.scenario).cloud for r in (hybrid, alone))
    assert a is not None and b is not None and b.served > 50
    assert a.served == b.served
    assert a.input_tokens == b.input_tokens > int(stream.prompt_tokens.sum())
    assert a.cached_input_tokens == b.cached_input_tokens
    assert a.output_tokens == b.output_tokens == int(stream.output_tokens.sum()) \
        + HIDDEN * len(stream)
    assert np.array_equal(hybrid.records.finish_s, alone.records.finish_s)


def test_the_apis_demand_counts_the_hidden_reasoning_of_every_call_sent_there() -> None:
    """A hybrid that sends its API more calls a second than its limits sustain starts its
    second run's limits from the first run's demand: every call sent there was charged
    and counted with GPT-5's 128 hidden tokens, the ones its fleet then answered after a
    429 or the outage too, so each used its prompt + 50 + 128 tokens. (The fleet's answers,
    50 tokens, had been counted for those.)"""
    from llmplan.sim.run import cloud_demand_over_limits

    routes = ", default: cloud"
    outages = ", limits: {requests_per_min: 30}, " \
        "outages: {windows: [{start_s: 0, duration_s: 100}]}"
    loaded, stream, run, table = _run("gpt-5", outages=outages, routes=routes)
    sent = table.attempts > 0
    assert sent.all() and (table.served_by == SERVED_LOCAL).sum() > 50
    demand = cloud_demand_over_limits(loaded, "both", run, stream, loaded.scenario.duration_s)
    assert demand is not None
    rate, charged, used, prompt = demand
    assert rate == pytest.approx(len(stream) / loaded.scenario.duration_s)
    assert prompt == pytest.approx(float(stream.prompt_tokens.mean()))
    assert used == pytest.approx(prompt + ANSWER + HIDDEN)
    assert charged == pytest.approx(used)       # no max_tokens: the answer is reserved
