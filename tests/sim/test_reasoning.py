"""Reasoning tasks: hidden tokens generated before the answer, on paper and in the bill."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_first, scenario_from

from llmplan.pipeline import evaluate
from llmplan.report.page import render
from llmplan.scenario.models import SimulationMode
from llmplan.sim.metrics import summarise_run
from llmplan.sim.records import OK, TOO_LONG
from llmplan.sim.table import request_table
from llmplan.traffic import build_request_stream

# one request at t = 0; the linear step model of test_single_request.py
ONE = """
    seed: 1
    duration: 100
    traffic: {{kind: constant, rate_per_s: 0.001}}
    tasks:
      - name: think
        prompt_tokens: {{kind: fixed, tokens: 100}}
        output_tokens: {{kind: fixed, tokens: 10}}
        {reasoning}
    deployments:
      one:
        gpu: H100-SXM
        model: Llama-3.1-8B
        step_time: {{kind: linear, fixed_ms: 2, per_prefill_token_us: 10,
                    per_decode_seq_us: 100, per_kv_token_ns: 50}}
"""


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_hidden_tokens_come_first_and_are_decoded_like_the_answer(mode: str) -> None:
    loaded = scenario_from(ONE.format(
        reasoning="reasoning_tokens: {kind: fixed, tokens: 30}"))
    run, stream = run_first(loaded, SimulationMode(mode))
    table = request_table(run, stream)
    # 40 tokens generated: prefill 3 ms, then 39 decode steps, step j reading 100 + j tokens
    decode = 39 * 0.0021 + 50e-9 * (39 * 100 + 39 * 40 / 2)
    assert table.e2e_s[0] == pytest.approx(0.003 + decode, rel=1e-12)
    assert table.ttft_s[0] == pytest.approx(0.003, rel=1e-12)
    # the visible answer starts 30 tokens later, at the request's own pace
    assert table.ttft_visible_s is not None
    assert table.ttft_visible_s[0] == pytest.approx(0.003 + 30 * decode / 39, rel=1e-12)
    summary = summarise_run(run, stream, loaded.scenario)
    visible = summary.latency.ttft_visible_ms
    assert visible is not None and visible.p50 == pytest.approx(table.ttft_visible_s[0] * 1e3)


def test_a_task_without_reasoning_keeps_its_stream_and_result() -> None:
    plain = scenario_from(ONE.format(reasoning=""))
    stream = build_request_stream(plain.scenario)
    assert stream.reasoning_tokens is None
    summary = summarise_run(*run_first(plain), plain.scenario)
    assert "ttft_visible_ms" not in summary.latency.model_dump()


MIX = """
    seed: 4
    duration: 600
    traffic: {{kind: poisson, rate_per_s: 2}}
    tasks:
      - name: chat
        prompt_tokens: {{kind: uniform, min_tokens: 100, max_tokens: 300}}
        output_tokens: {{kind: uniform, min_tokens: 20, max_tokens: 80}}
        {reasoning}
      - name: plain
        prompt_tokens: {{kind: fixed, tokens: 50}}
        output_tokens: {{kind: fixed, tokens: 10}}
    deployments:
      api: {{kind: cloud, model: gpt-4o-mini}}
"""


def test_reasoning_adds_to_the_same_requests_and_is_billed_as_output() -> None:
    plain = scenario_from(MIX.format(reasoning=""))
    thinking = scenario_from(MIX.format(
        reasoning="reasoning_tokens: {kind: uniform, min_tokens: 200, max_tokens: 600}"))
    a, b = build_request_stream(plain.scenario), build_request_stream(thinking.scenario)
    # the same arrivals, tasks and visible lengths: the hidden tokens come on top
    assert np.array_equal(a.arrival_s, b.arrival_s)
    assert b.reasoning_tokens is not None
    assert np.array_equal(a.output_tokens, b.output_tokens - b.reasoning_tokens)
    chat = b.task_index == 0
    assert (b.reasoning_tokens[chat] >= 200).all() and (b.reasoning_tokens[~chat] == 0).all()
    cost_a, cost_b = (evaluate(s).deployments["api"] for s in (plain, thinking))
    assert cost_a.cloud is not None and cost_b.cloud is not None
    assert cost_b.requests.completed == len(b)      # every request served: all billed
    extra = cost_b.cloud.output_tokens - cost_a.cloud.output_tokens
    assert extra == int(b.reasoning_tokens.sum())
    out_a = next(i for i in cost_a.cost.items if i.item == "output_tokens").usd_per_month
    out_b = next(i for i in cost_b.cost.items if i.item == "output_tokens").usd_per_month
    assert out_b / out_a == pytest.approx(cost_b.cloud.output_tokens / cost_a.cloud.output_tokens)


THINKING = MIX.format(reasoning="reasoning_tokens: {kind: uniform, min_tokens: 200, "
                                "max_tokens: 600}").replace("gpt-4o-mini", "{model}")


def _cloud_table(model: str, extra: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                       np.ndarray, bool | None]:
    loaded = scenario_from(THINKING.replace("{model}", model) + extra)
    run, stream = run_first(loaded)
    table = request_table(run, stream)
    assert table.ttft_visible_s is not None and stream.reasoning_tokens is not None
    outcome = summarise_run(run, stream, loaded.scenario).cloud
    assert outcome is not None
    return (table.ttft_s, table.ttft_visible_s, table.tpot_s, stream.reasoning_tokens,
            outcome.reasoning_streamed)


def test_an_api_that_withholds_the_reasoning_sends_its_first_token_with_the_answer() -> None:
    # OpenAI does not return reasoning tokens: the client's first token is the answer's
    ttft, visible, tpot, hidden, streamed = _cloud_table("gpt-5-mini")
    assert streamed is False
    thinks = hidden > 0
    assert np.allclose(ttft, visible, rtol=1e-12, atol=0)
    # Anthropic streams the thinking: the first token comes a whole reasoning earlier
    ttft_a, visible_a, tpot_a, _, streamed_a = _cloud_table("claude-haiku-4.5")
    assert streamed_a is True
    assert np.allclose(visible_a - ttft_a, np.where(thinks, hidden * tpot_a, 0.0), rtol=1e-9)
    assert np.median((visible_a - ttft_a)[thinks]) > 1.5   # 200-600 tokens at ~90/s
    # the same draws (one endpoint name, one latency spec): only the first token moved
    assert np.allclose(visible, visible_a, rtol=1e-12) and np.allclose(tpot, tpot_a)
    assert np.array_equal(ttft[~thinks], ttft_a[~thinks])


def test_the_catalog_entry_overrides_its_providers_rule() -> None:
    # an OpenAI-compatible model whose API streams the reasoning (a client that asked for
    # it): the scenario says so in its catalog section
    override = ("    catalog:\n      cloud_models:\n        gpt-5-mini:\n"
                "          reasoning_streamed: true\n")
    ttft, visible, _, hidden, streamed = _cloud_table("gpt-5-mini", override)
    assert streamed is True
    assert (ttft[hidden > 0] < visible[hidden > 0]).all()


def test_a_ttft_bound_reads_the_first_token_the_client_sees() -> None:
    slo = "    slo: {ttft_ms: 1500}\n"
    met = {}
    for model in ("gpt-5-mini", "claude-haiku-4.5"):
        loaded = scenario_from(THINKING.replace("{model}", model) + slo)
        met[model] = evaluate(loaded).deployments["api"].slo.goodput_fraction
    # 200-600 hidden tokens at ~90 tokens/s take 2-7 s: withheld, every thinking request
    # misses a 1.5 s TTFT bound; streamed, most meet it
    assert met["gpt-5-mini"] < 0.6 < met["claude-haiku-4.5"]


def test_the_answer_starts_where_the_reader_sees_it() -> None:
    """The summary's TTFT is a first reasoning token for one API and the answer's for the
    other: the line under the table and the report give the first answer token of both."""
    text = THINKING.replace("{model}", "gpt-5-mini") + \
        "      streamed: {kind: cloud, model: claude-haiku-4.5}\n"
    result = evaluate(scenario_from(text))
    lines = result.first_answer_tokens()
    p95 = {name: dep.latency.ttft_visible_ms.p95 for name, dep in result.deployments.items()
           if dep.latency.ttft_visible_ms is not None}
    assert set(p95) == {"api", "streamed"}
    assert lines == [f"api {p95['api']:,.0f} ms (its TTFT: the API withholds the reasoning)",
                     f"streamed {p95['streamed']:,.0f} ms"]
    assert result.deployments["streamed"].latency.ttft_ms.p95 < p95["streamed"] / 2
    assert f"streamed {p95['streamed']:,.0f} ms" in render(result)


def test_a_max_tokens_under_the_reasoning_leaves_no_answer_and_a_bill() -> None:
    """gpt-5-mini thinks 200-600 tokens before 20-80 of answer: a client's max_tokens of
    150 stops every thinking request before its answer (billed: the prompt and 150 tokens,
    no answer: too long), while the plain requests (10 tokens) are answered."""
    loaded = scenario_from(THINKING.replace("{model}", "gpt-5-mini").replace(
        "api: {kind: cloud, model: gpt-5-mini}",
        "api: {kind: cloud, model: gpt-5-mini, limits: {max_tokens: 150}}"))
    run, stream = run_first(loaded)
    table = request_table(run, stream)
    chat = stream.task_index == 0
    assert (table.outcome[chat] == TOO_LONG).all() and (table.outcome[~chat] == OK).all()
    result = evaluate(loaded).deployments["api"]
    assert result.cloud is not None and result.cloud.abandoned is not None
    cut = result.cloud.abandoned
    assert cut.cut_off == cut.attempts == int(chat.sum())            # one attempt each
    assert cut.output_tokens == 150 * cut.attempts
    assert cut.input_tokens == int(stream.prompt_tokens[chat].sum())
    item = next(i for i in result.cost.items if i.item == "abandoned_attempts")
    assert "cut at the client's max_tokens (limits.max_tokens 150)" in item.basis
    # and the requests it ended too long are put down to it, beside the model's own limits
    assert result.cloud.client_max_tokens == 150
    assert "; the client's limits.max_tokens 150)" in result.too_long_by_task()


@pytest.mark.parametrize(("bound_ms", "met"), [(100.0, True), (40.0, False)])
def test_a_visible_ttft_bound_waits_for_the_answer(bound_ms: float, met: bool) -> None:
    """slo.ttft_visible_ms bounds when the answer starts, after the hidden reasoning: the
    request above streams its first (reasoning) token within 30 ms and the answer's 30
    tokens later, between 40 and 100 ms (the client's overhead added to both), so a 40 ms
    bound is missed where ttft_ms is met."""
    text = ONE.format(reasoning="reasoning_tokens: {kind: fixed, tokens: 30}") + f"""
    slo: {{ttft_ms: 30, ttft_visible_ms: {bound_ms}}}
    """
    loaded = scenario_from(text)
    run, stream = run_first(loaded)
    table = request_table(run, stream)
    assert table.ttft_s[0] * 1e3 < 30 and table.ttft_visible_s is not None
    assert 40 < table.ttft_visible_s[0] * 1e3 < 100
    summary = summarise_run(run, stream, loaded.scenario)
    assert summary.slo.goodput_fraction == (1.0 if met else 0.0)
    assert "visible TTFT" in loaded.scenario.slo_in_words()


def test_a_ttft_bound_between_streamed_and_withheld_reasoning_is_pointed_out() -> None:
    """A local model's first token is a reasoning token, an API that withholds reasoning
    sends the answer's first: one TTFT bound compares different moments, and simulate
    says so, until the scenario bounds the answer's start."""
    from llmplan.pipeline import first_tokens_differ

    text = ONE.format(reasoning="reasoning_tokens: {kind: fixed, tokens: 30}") + """
      api: {kind: cloud, model: gpt-6-sol}
    slo: {ttft_ms: 2000}
    """
    loaded = scenario_from(text)
    assert not loaded.catalog.cloud_models["gpt-6-sol"].streams_reasoning
    [note] = first_tokens_differ(loaded)
    assert "one streams the reasoning, so its first token" in note
    assert "api withholds it and sends the answer's first token" in note
    # the verbs agree with two of each
    more = """      two: {gpu: H100-SXM, model: Llama-3.1-8B}
      api2: {kind: cloud, model: gpt-6-sol}
      api:"""
    two = scenario_from(text.replace("      api:", more))
    [note] = first_tokens_differ(two)
    assert "one, two stream the reasoning, so their first token" in note
    assert "api, api2 withhold it and send the answer's first token" in note
    visible = scenario_from(text.replace("{ttft_ms: 2000}",
                                         "{ttft_ms: 2000, ttft_visible_ms: 9000}"))
    assert first_tokens_differ(visible) == []


@pytest.mark.parametrize(("sensitivity", "api_side"), [("internal", True),
                                                        ("restricted", False)])
def test_a_hybrid_counts_on_each_side_of_the_first_token(sensitivity: str,
                                                        api_side: bool) -> None:
    """A hybrid's requests on its API (GPT-6 Sol withholds the reasoning) get the answer's
    first token, as the simulation times them, and those on its fleet a reasoning token:
    the note lists it on both sides, its fleet streaming and its API withholding. A
    restricted task's data never reaches the API: then only its fleet counts."""
    from llmplan.pipeline import first_tokens_differ
    from llmplan.sim.engine import simulate_deployment
    from llmplan.sim.records import SERVED_CLOUD

    text = ONE.format(reasoning=f"reasoning_tokens: {{kind: fixed, tokens: 30}}\n"
                                f"        sensitivity: {sensitivity}") + """
      api: {kind: cloud, model: gpt-6-sol}
      mixed: {kind: hybrid, local: one, cloud: api, routes: [{tasks: [think], to: cloud}]}
    slo: {ttft_ms: 2000}
    """
    loaded = scenario_from(text)
    scenario = loaded.scenario
    [note] = first_tokens_differ(loaded)
    assert "mixed's fleet, one stream the reasoning, so their first token" in note
    withheld = "api, mixed's API withhold it" if api_side else "api withholds it"
    assert withheld in note
    # what the simulation does with the hybrid's requests the note speaks of
    stream = build_request_stream(scenario)
    run = simulate_deployment("mixed", scenario.deployments["mixed"], loaded.catalog, stream,
                              scenario.duration_s, deployments=scenario.deployments,
                              task_sensitivity=[t.sensitivity for t in scenario.tasks],
                              task_kinds=[t.kind for t in scenario.tasks])
    table = request_table(run, run.served(stream))
    assert table.ttft_visible_s is not None and table.ok.all()
    on_api = table.served_by == SERVED_CLOUD
    assert on_api.all() == api_side and on_api.any() == api_side
    # on its API the first token is the answer's; on its fleet, a reasoning token before it
    first_is_answer = np.isclose(table.ttft_s, table.ttft_visible_s)
    assert (first_is_answer == on_api).all()


def test_reasoning_tasks_on_an_api_that_cannot_reason_are_pointed_out() -> None:
    """GPT-4o has no hidden reasoning (the catalog's non-reasoning entries): billed for a
    reasoning task, it pays output for 30 thinking tokens a call it never generates. The
    bill shows them, as the scenario asked, and simulate says the model cannot reason;
    a reasoning model (GPT-6 Sol), or a task without reasoning, gets no such note."""
    from llmplan.pipeline import reasoning_on_a_plain_model

    text = ONE.format(reasoning="reasoning_tokens: {kind: fixed, tokens: 30}") + """
      plain: {kind: cloud, model: gpt-4o}
      thinker: {kind: cloud, model: gpt-6-sol}
    """
    loaded = scenario_from(text)
    assert not loaded.catalog.cloud_models["gpt-4o"].reasons
    assert loaded.catalog.cloud_models["gpt-6-sol"].reasons
    [note] = reasoning_on_a_plain_model(loaded)
    assert "'plain' calls gpt-4o, which does not reason" in note and "task think" in note
    # what the note is about: the one call's 10 answer + 30 thinking tokens billed as output
    api = text[:text.index("    deployments:")] + \
        "    deployments:\n      plain: {kind: cloud, model: gpt-4o}\n"
    alone = scenario_from(api)
    run, stream = run_first(alone)
    cloud = summarise_run(run, stream, alone.scenario).cloud
    assert cloud is not None and cloud.output_tokens == 10 + 30
    assert reasoning_on_a_plain_model(scenario_from(
        text.replace("reasoning_tokens: {kind: fixed, tokens: 30}", ""))) == []


UNASKED = """
    seed: 3
    duration: 300
    traffic: {{kind: poisson, rate_per_s: 1}}
    tasks:
      - name: ask
        prompt_tokens: {{kind: uniform, min_tokens: 100, max_tokens: 300}}
        output_tokens: {{kind: uniform, min_tokens: 20, max_tokens: 80}}
        {reasoning}
    deployments:
      api: {{kind: cloud, model: {model}}}
"""


@pytest.mark.parametrize(("model", "effort"), [("gpt-5", "minimal"), ("o4-mini", "low")])
def test_a_plain_task_on_a_model_that_cannot_answer_without_reasoning(model: str,
                                                                      effort: str) -> None:
    """GPT-5 takes no reasoning_effort "none" (its lowest is minimal), o4-mini none under
    low: a task that asks for no reasoning still gets that effort's hidden tokens on every
    answer. Simulated, it is the same scenario with the task giving those tokens itself:
    the same bill and the same times, request by request."""
    from llmplan.catalog.catalog import LEAST_EFFORT_REASONING_TOKENS
    from llmplan.pipeline import reasoning_unasked_on_an_api

    tokens = LEAST_EFFORT_REASONING_TOKENS[effort]
    plain = scenario_from(UNASKED.format(reasoning="", model=model))
    assert plain.catalog.cloud_models[model].least_reasoning_effort == effort
    given = scenario_from(UNASKED.format(
        reasoning=f"reasoning_tokens: {{kind: fixed, tokens: {tokens}}}", model=model))
    a, b = evaluate(plain).deployments["api"], evaluate(given).deployments["api"]
    assert a.cloud is not None and b.cloud is not None
    stream = build_request_stream(plain.scenario)
    assert a.requests.completed == len(stream)
    # every answer: its visible tokens and the effort's hidden ones, billed as output
    assert a.cloud.output_tokens == int(stream.output_tokens.sum()) + tokens * len(stream)
    assert a.cloud.output_tokens == b.cloud.output_tokens
    assert a.cost.monthly_usd == pytest.approx(b.cost.monthly_usd, rel=1e-12)
    # OpenAI withholds the reasoning: the first token the client sees is the answer's,
    # after the hidden tokens
    assert a.latency.ttft_ms.p50 == pytest.approx(b.latency.ttft_ms.p50, rel=1e-12)
    assert a.latency.e2e_ms.p95 == pytest.approx(b.latency.e2e_ms.p95, rel=1e-12)
    [note] = reasoning_unasked_on_an_api(plain)
    assert f"lowest reasoning_effort it takes is {effort}" in note
    assert f"added {tokens:,} hidden reasoning tokens" in note
    assert reasoning_unasked_on_an_api(given) == []


@pytest.mark.parametrize("model", ["gpt-5.1", "claude-haiku-4.5", "gpt-4o-mini"])
def test_a_plain_task_on_a_model_that_can_answer_without_reasoning_has_none(model: str) -> None:
    """GPT-5.1 takes effort "none", Claude thinks only when asked, GPT-4o mini never: a
    task that asks for no reasoning is billed its answer alone."""
    plain = scenario_from(UNASKED.format(reasoning="", model=model))
    result = evaluate(plain).deployments["api"]
    stream = build_request_stream(plain.scenario)
    assert result.cloud is not None
    assert result.cloud.output_tokens == int(stream.output_tokens.sum())
    assert result.latency.ttft_visible_ms is None


UNASKED_SESSIONS = """
    seed: 5
    duration: 300
    traffic: {{kind: poisson, rate_per_s: 0.2}}
    tasks:
      - name: loop
        prompt_tokens: {{kind: uniform, min_tokens: 100, max_tokens: 300}}
        output_tokens: {{kind: uniform, min_tokens: 20, max_tokens: 80}}
        session: {{kind: {kind}, turns_min: 3, turns_max: 5, think_time_s: 2, fan_out: 2}}
        {reasoning}
    deployments:
      api: {{kind: cloud, model: gpt-5}}
"""


@pytest.mark.parametrize("kind", ["agent", "chat"])
def test_the_hidden_reasoning_an_api_adds_stays_in_an_agent_loops_history(kind: str) -> None:
    """GPT-5's lowest effort (minimal) adds 128 hidden tokens to a plain task's answers. An
    agent loop's later calls carry the earlier calls' reasoning in their history, as they
    carry a task's own reasoning_tokens; a chat's do not. Either way the run is the one
    where the task gives those 128 tokens itself: the same prompts, the same cache reads,
    the same bill. (The added tokens had been left out of an agent's history.)"""
    from llmplan.catalog.catalog import LEAST_EFFORT_REASONING_TOKENS

    tokens = LEAST_EFFORT_REASONING_TOKENS["minimal"]
    plain = scenario_from(UNASKED_SESSIONS.format(kind=kind, reasoning=""))
    given = scenario_from(UNASKED_SESSIONS.format(
        kind=kind, reasoning=f"reasoning_tokens: {{kind: fixed, tokens: {tokens}}}"))
    a, b = evaluate(plain).deployments["api"], evaluate(given).deployments["api"]
    assert a.cloud is not None and b.cloud is not None and a.requests.completed > 20
    assert a.cloud.input_tokens == b.cloud.input_tokens
    assert a.cloud.cached_input_tokens == b.cloud.cached_input_tokens
    assert a.cloud.output_tokens == b.cloud.output_tokens
    assert a.cost.monthly_usd == pytest.approx(b.cost.monthly_usd, rel=1e-12)
    # and against the stream as generated: an agent's prompts grew by the earlier calls'
    # added tokens (the first turn's one answer, then two calls a turn), a chat's did not
    stream = build_request_stream(plain.scenario)
    assert stream.session is not None and stream.turn is not None
    grown = a.cloud.input_tokens - int(stream.prompt_tokens.sum())
    if kind == "chat":
        assert grown == 0
    else:
        earlier = [1 + 2 * (t - 1) if t > 0 else 0 for t in stream.turn.tolist()]
        assert grown == tokens * sum(earlier)
