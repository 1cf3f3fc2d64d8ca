"""Cloud rate limits and retries, outages and fall-back, and the restricted-data rule."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import page_text, scenario_from

from llmplan.pipeline import fallback_after_clients_left
from llmplan.sim.metrics import summarise_run
from llmplan.sim.records import (
    BLOCKED,
    FAILED,
    OK,
    SERVED_CLOUD,
    SERVED_LOCAL,
    THROTTLED,
    TIMED_OUT,
)
from llmplan.sim.run import run_deployment
from llmplan.sim.table import request_table
from llmplan.traffic import build_request_stream

BURST = """
    seed: 2
    duration: 0.04
    traffic: {{kind: constant, rate_per_s: 1000}}     # 40 requests within 39 ms
    tasks: [{{name: t, prompt_tokens: {{kind: fixed, tokens: 50}},
             output_tokens: {{kind: fixed, tokens: 20}}}}]
    deployments:
      api:
        kind: cloud
        model: gpt-4o-mini
        limits: {{requests_per_min: 30, tokens_per_min: 1000000}}
        retry: {{max_retries: {retries}, initial_backoff_s: 4, jitter: none,
                 honor_retry_after: {honor}}}
        latency: {{network_rtt_ms: 20}}
    simulation: {{drain_s: 600}}
"""


def _run(text: str, name: str = "api"):  # type: ignore[no-untyped-def]
    loaded = scenario_from(text)
    scenario = loaded.scenario
    stream = build_request_stream(scenario)
    run = run_deployment(loaded, name, stream, scenario.duration_s)
    return run, stream, request_table(run, stream), summarise_run(run, stream, scenario)


def test_429s_and_retries_match_the_hand_computed_case() -> None:
    # RPM 30: a full bucket of 30, refilled at 0.5 per second
    _, stream, table, summary = _run(BURST.format(retries=0, honor="false"))
    assert len(stream) == 40
    assert (table.outcome == OK).sum() == 30
    assert (table.outcome == THROTTLED).sum() == 10
    assert table.throttles.sum() == 10
    # one retry 4 s later (after the 20 ms round trip): 2 tokens have refilled
    _, stream, table, summary = _run(BURST.format(retries=1, honor="false"))
    assert (table.outcome == OK).sum() == 32
    assert table.throttles.sum() == 10 + 8
    retried_ok = (table.attempts == 2) & (table.outcome == OK)
    assert retried_ok.sum() == 2
    start = table.start_s[retried_ok]
    np.testing.assert_allclose(start, stream.arrival_s[retried_ok] + 0.020 + 4.0)
    assert summary.cloud.throttle_events == 18


def test_honouring_retry_after_waits_at_least_that_long() -> None:
    # the bucket is empty: every 429 says "retry after 2 s" (one request at 0.5/s);
    # with a 1 s policy backoff, honouring it still waits 2 s
    text = BURST.format(retries=3, honor="true").replace("initial_backoff_s: 4",
                                                         "initial_backoff_s: 1")
    _, stream, table, _ = _run(text)
    second_try = (table.attempts == 2) & (table.outcome == OK)
    assert second_try.any()
    gap = table.start_s[second_try] - stream.arrival_s[second_try]
    assert (gap >= 0.020 + 1.95).all()


HYBRID = """
    seed: 4
    duration: 120
    traffic: {kind: poisson, rate_per_s: 3}
    tasks:
      - {name: chat, weight: 2, prompt_tokens: {kind: fixed, tokens: 300},
         output_tokens: {kind: fixed, tokens: 60}}
      - {name: secret, prompt_tokens: {kind: fixed, tokens: 300},
         output_tokens: {kind: fixed, tokens: 30}, sensitivity: restricted}
    deployments:
      gpu:
        gpu: H100-SXM
        model: Llama-3.1-8B
        admission: {queue_limit: QUEUE}
      api:
        kind: cloud
        model: gpt-4o-mini
        limits: {requests_per_min: 100000, tokens_per_min: 100000000}
        retry: {max_retries: 0}
        outages: {windows: [{start_s: 40, duration_s: 30}]}
      mixed:
        kind: hybrid
        local: gpu
        cloud: api
        routes: [{to: cloud}]
"""


def test_outage_moves_traffic_to_the_fallback_and_shows_in_the_figures() -> None:
    text = HYBRID.replace("QUEUE", "1000")
    _, stream, cloud_only, cloud_summary = _run(text, "api")
    in_outage = (stream.arrival_s >= 40) & (stream.arrival_s < 70)
    assert in_outage.sum() > 40
    assert (cloud_only.outcome[in_outage] == FAILED).all()
    assert (cloud_only.outcome[~in_outage] == OK).all()
    assert cloud_summary.requests.failed == in_outage.sum()
    _, _, hybrid, summary = _run(text, "mixed")
    chat = hybrid.task_index == 0
    assert (hybrid.outcome == OK).all()
    assert (hybrid.served_by[in_outage & chat] == SERVED_LOCAL).all()
    assert (hybrid.served_by[~in_outage & chat] == SERVED_CLOUD).all()
    assert (hybrid.fallbacks[in_outage & chat] == 1).all()
    # the failed cloud call's round trip is part of their latency
    assert np.nanmin(hybrid.ttft_s[in_outage & chat]) > 0.040
    assert summary.hybrid.moved_between_paths == (in_outage & chat).sum()


@pytest.mark.parametrize("retry", ["{max_retries: 0, request_timeout_s: 10}",
                                   "{max_retries: 0, request_timeout_s: 60}",
                                   "{max_retries: 1, request_timeout_s: 40}"])
def test_a_fall_back_after_the_clients_left_saves_nothing_and_is_noted(retry: str) -> None:
    # the API hangs from 40 s on; clients give up on a request not started within 60 s
    text = HYBRID.replace("QUEUE", "1000").replace("retry: {max_retries: 0}",
                                                   f"retry: {retry}") \
        .replace("outages: {windows:", "outages: {mode: timeouts, windows:") \
        .replace("duration_s: 30", "duration_s: 100")   # the retry hangs too
    _, stream, table, _ = _run(text, "mixed")
    in_outage = (stream.arrival_s >= 40) & (stream.arrival_s < 70) & (table.task_index == 0)
    assert in_outage.sum() > 40
    assert (table.fallbacks[in_outage] == 1).all()
    notes = fallback_after_clients_left(scenario_from(text))
    if retry.endswith("10}"):
        assert (table.outcome[in_outage] == OK).all()
        assert (table.served_by[in_outage] == SERVED_LOCAL).all()
        assert notes == []
    else:   # 60 s or 2 x 40 s of timeouts: the fall-back comes after the clients left
        assert (table.outcome[in_outage] == TIMED_OUT).all()
        assert len(notes) == 1 and "hybrid 'mixed'" in notes[0] and "60 s" in notes[0]
        assert ("2 attempts of 40 s" in notes[0]) == retry.startswith("{max_retries: 1")


@pytest.mark.parametrize("queue_limit", [1000, 0])
def test_restricted_requests_never_reach_the_cloud(queue_limit: int) -> None:
    # every route says cloud, and with queue_limit 0 and one seat the local fleet refuses
    # every request arriving while its seat is taken (the outage's fallbacks take it):
    # restricted requests must then fail, never go to the cloud
    text = HYBRID.replace("QUEUE", str(queue_limit))
    if queue_limit == 0:
        text = text.replace("        admission:", "        engine: {max_num_seqs: 1}\n"
                                                 "        admission:")
    _, _stream, table, summary = _run(text, "mixed")
    restricted = table.task_index == 1
    assert restricted.sum() > 50
    assert not (table.served_by[restricted] == SERVED_CLOUD).any()   # every request
    assert (table.served_by[~restricted & (table.outcome == OK)] != -1).all()
    assert summary.hybrid.restricted_served_by_cloud == 0
    if queue_limit == 0:
        blocked = table.outcome[restricted] == BLOCKED
        assert blocked.any()
        assert summary.hybrid.restricted_blocked == blocked.sum()


def test_a_daily_limit_spent_sends_the_rest_to_the_fallback_at_once() -> None:
    # 100 requests/day: the 101st chat call gets a 429 whose retry-after is the rest of
    # the day, past the two minutes a client waits (openai-python's MAX_RETRY_AFTER_DELAY):
    # it gives up at once and the local fleet serves it
    text = HYBRID.replace("QUEUE", "1000").replace(
        "limits: {requests_per_min: 100000, tokens_per_min: 100000000}",
        "limits: {requests_per_min: 100000, requests_per_day: 100}").replace(
        "retry: {max_retries: 0}", "retry: {max_retries: 5}").replace(
        "        outages: {windows: [{start_s: 40, duration_s: 30}]}\n", "")
    _, _, table, summary = _run(text, "mixed")
    chat = table.task_index == 0
    assert (table.outcome == OK).all()
    assert ((table.served_by == SERVED_CLOUD) & chat).sum() == 100
    moved = chat & (table.fallbacks == 1)
    assert moved.sum() == chat.sum() - 100 and (table.served_by[moved] == SERVED_LOCAL).all()
    assert (table.attempts[moved] == 1).all()      # no retry waits out the day
    assert summary.cloud.throttled_requests == moved.sum()


SHORT_DAY = HYBRID.replace("QUEUE", "1000").replace(
    "limits: {requests_per_min: 100000, tokens_per_min: 100000000}",
    "limits: {requests_per_min: 100000, requests_per_day: 20000}").replace(
    "        outages: {windows: [{start_s: 40, duration_s: 30}]}\n", "")


def _decided(text: str):  # type: ignore[no-untyped-def]
    from llmplan.decide.decision import decide
    from llmplan.sim.run import simulate_scenario
    loaded = scenario_from(text)
    return decide(simulate_scenario(loaded), loaded)


def test_a_daily_limit_a_short_run_never_fills_makes_the_api_infeasible() -> None:
    """3 requests/s are 259,200 calls a day, 7.7% of which the limit lets through: the API
    alone cannot carry the rest. The hybrid sends the API its chats (about two in three:
    162,269 a day in this run) and, the limit spent, sends the rest to its H100 at once
    (the test above): the H100 alone serves the whole traffic within the SLO in its own
    run, so the hybrid stays in, saying what was simulated. It was excluded for the limit
    alone."""
    result = _decided(SHORT_DAY)
    api = result.deployments["api"].infeasible_because
    assert any("daily limit (20,000 requests/day) carries 7.7%" in r for r in api)
    gpu, mixed = result.deployments["gpu"], result.deployments["mixed"]
    assert gpu.feasible and mixed.feasible
    assert mixed.daily_limit is not None
    assert "daily limit (20,000 requests/day) carries 12.3% of the 162,269 calls a day the " \
           "hybrid sends it (the 2 min simulated start the day's count at zero)" \
        in mixed.daily_limit
    assert f"gpu alone, simulated on the whole of this traffic, serves it within the SLO " \
           f"({gpu.slo.goodput_shown()} goodput)" in mixed.daily_limit
    assert gpu.daily_limit is None and result.deployments["api"].daily_limit is None
    # the report says it too, in the hybrid's routing section
    import html

    from llmplan.report.page import render
    page = html.unescape(page_text(render(result)))
    assert f"mixed: {mixed.daily_limit}." in page.split("Hybrid routing")[1]


def test_a_hybrid_past_its_daily_limit_pays_the_api_for_the_calls_it_lets_through() -> None:
    """Past the limit the API answers no more of the hybrid's chats: a month of it bills
    20,000 calls a day for 730 / 24 days, each 300 tokens in at $0.15/M and 60 out at
    $0.6/M ($27.38 and $21.90), not the 162,269 a day the run's rate sends it. What
    grows with volume on the fleet is the run's for that share and the H100's alone for
    the rest; what does not (the fleet, the API's monthly fees) is the hybrid's."""
    result = _decided(SHORT_DAY)
    gpu, mixed = result.deployments["gpu"], result.deployments["mixed"]
    items = {line.item: line for line in mixed.cost.items}
    days = 730 / 24
    assert items["cloud_input_tokens"].usd_per_month == pytest.approx(
        20_000 * days * 300 * 0.15e-6, rel=1e-9)
    assert items["cloud_output_tokens"].usd_per_month == pytest.approx(
        20_000 * days * 60 * 0.6e-6, rel=1e-9)
    fleet = {line.item: line for line in gpu.cost.items}
    assert all(items[n].usd_per_month == fleet[n].usd_per_month
               for n in fleet if not fleet[n].variable)
    assert mixed.cost.monthly_usd == pytest.approx(
        sum(line.usd_per_month for line in mixed.cost.items))
    assert mixed.cost.usd_per_useful_result == pytest.approx(
        mixed.cost.monthly_usd / mixed.cost.useful_results_per_month)


def test_a_daily_limit_whose_rest_the_fleet_cannot_serve_excludes_the_hybrid() -> None:
    """The same hybrid on one L4 with answers of 600 tokens: its full batches answer 1.63
    requests/s, over the 1/s the hybrid leaves it (its restricted third) but under the 3/s
    it gets once the limit is spent. The hybrid's own two minutes meet the SLO; past the
    limit it is the L4 alone, whose run misses it: excluded for the SLO, the limit named."""
    result = _decided(SHORT_DAY.replace("gpu: H100-SXM", "gpu: L4")
                      .replace("tokens: 60}", "tokens: 600}"))
    gpu, mixed = result.deployments["gpu"], result.deployments["mixed"]
    assert gpu.local is not None
    assert 1.0 < gpu.local.utilisation.full_batch_requests_per_s < 3.0
    assert mixed.slo.met and not gpu.slo.met
    (why,) = mixed.infeasible_because
    assert why.startswith("misses the SLO once its API's daily limit is spent: api's daily "
                          "limit (20,000 requests/day) carries 12.")
    assert f"past it every call goes to gpu, which alone on this traffic " \
           f"{gpu.infeasible_because[0]}" in why
    # and what to raise to serve the whole day as the hybrid's run did
    assert "; to carry it, raise it to at least 162," in why
    assert why.endswith(" requests/day (limits.requests_per_day)")
    assert mixed.daily_limit is None


def test_a_daily_limit_on_a_hybrid_that_does_not_fall_back_excludes_it() -> None:
    """Without fallback_to_local the calls past the limit fail: the limit excludes it."""
    result = _decided(SHORT_DAY.replace("routes: [{to: cloud}]",
                                        "routes: [{to: cloud}]\n        fallback_to_local: false"))
    mixed = result.deployments["mixed"]
    assert not mixed.feasible and mixed.daily_limit is None
    assert any("carries 12.3% of the 162,269 calls a day this traffic sends it" in r
               and "fallback_to_local is off, so the rest fail" in r
               for r in mixed.infeasible_because)


@pytest.mark.parametrize("limit", [100, 100_000])
def test_a_run_of_a_day_judges_a_hybrid_past_its_daily_limit_by_its_own_slo(
        limit: int) -> None:
    """A day at 0.01 requests/s is 864 calls, all routed to the API; the L4 alone misses
    a 25 ms TPOT (16 GB of weights read at 300 GB/s: about 53 ms a token). With 100 a day
    the API answers 11.6% of them and the rest go to the L4: the day-long run shows the
    hybrid missing the SLO, and the exclusion names the limit; with 100,000 it meets it."""
    result = _decided(f"""
        seed: 4
        duration: 86400
        traffic: {{kind: poisson, rate_per_s: 0.01}}
        tasks: [{{name: chat, prompt_tokens: {{kind: fixed, tokens: 300}},
                 output_tokens: {{kind: fixed, tokens: 60}}}}]
        slo: {{ttft_ms: 1500, tpot_ms: 25, min_goodput_fraction: 0.95}}
        deployments:
          gpu: {{gpu: L4, model: Llama-3.1-8B}}
          api: {{kind: cloud, model: gpt-4o-mini,
                limits: {{requests_per_min: 100000, requests_per_day: {limit}}}}}
          mixed: {{kind: hybrid, local: gpu, cloud: api, routes: [{{to: cloud}}]}}
    """)
    gpu, mixed = result.deployments["gpu"], result.deployments["mixed"]
    assert not gpu.slo.met and mixed.daily_limit is None
    if limit > 864:
        assert mixed.feasible
        return
    assert not mixed.slo.met
    assert mixed.infeasible_because[0].startswith("misses the SLO")
    assert mixed.infeasible_because[1] == (
        "api's daily limit (100 requests/day) carries 11.6% of the 864 calls a day the "
        "hybrid sends it: the run, a day or longer, saw it spent and the rest served by gpu")


def test_overlapping_outage_windows_are_one_outage() -> None:
    from llmplan.scenario.cloud import CloudDeployment
    from llmplan.sim.cloud import outage_windows
    spec = CloudDeployment.model_validate({
        "kind": "cloud", "model": "gpt-4o-mini", "outages": {"windows": [
            {"start_s": 100, "duration_s": 100}, {"start_s": 100, "duration_s": 100},
            {"start_s": 150, "duration_s": 100}, {"start_s": 400, "duration_s": 10}]}})
    windows = outage_windows(spec, 1000.0, np.random.default_rng(0))
    assert windows == [(100.0, 250.0), (400.0, 410.0)]


def test_a_replica_failing_under_requests_sends_them_by_the_hybrids_rules() -> None:
    # the only replica fails at 40 s for 30 s: chats it was serving go to the API (none up),
    # the restricted ones it was serving cannot, and are blocked like those arriving then
    text = HYBRID.replace("QUEUE", "1000").replace("        routes: [{to: cloud}]\n", "") \
        .replace("        admission: {queue_limit: 1000}\n",
                 "        admission: {queue_limit: 1000}\n"
                 "        failures: {windows: [{replica: 0, start_s: 40, duration_s: 30}]}\n") \
        .replace("        outages: {windows: [{start_s: 40, duration_s: 30}]}\n", "") \
        .replace("tokens: 60}", "tokens: 1500}").replace("tokens: 30}, sensitivity",
                                                          "tokens: 1500}, sensitivity")
    _, _, table, summary = _run(text, "mixed")        # answers of about 10 s: many in flight
    chat, secret = table.task_index == 0, table.task_index == 1
    taken_back = (table.fallbacks > 0) & (table.arrival_s < 40)
    assert (taken_back & chat).any() and (taken_back & secret).any()
    assert (table.outcome[taken_back & chat] == OK).all()
    assert (table.served_by[taken_back & chat] == SERVED_CLOUD).all()
    assert (table.outcome[taken_back & secret] == BLOCKED).all()
    down = (table.arrival_s >= 40) & (table.arrival_s < 70)
    assert (table.outcome[down & secret] == BLOCKED).all()
    assert summary.hybrid.restricted_blocked == int(
        (secret & (table.outcome == BLOCKED)).sum()) > int((down & secret).sum())
    assert summary.hybrid.restricted_served_by_cloud == 0


def test_traffic_a_tenth_over_the_limit_still_gets_the_limits_worth() -> None:
    # 1.1 calls/s against 60 requests/min, each retried up to 3 times at its retry-after:
    # the API answers about one a second, never none (a 429 counted against the bucket
    # would keep it empty for good once retries outnumber the refill)
    text = BURST.format(retries=3, honor="true").replace(
        "duration: 0.04", "duration: 600").replace("rate_per_s: 1000", "rate_per_s: 1.1") \
        .replace("requests_per_min: 30", "requests_per_min: 60")
    _, stream, table, _ = _run(text)
    served = int((table.outcome == OK).sum())
    assert len(stream) == 660 and 600 <= served <= 660


def test_a_daily_limit_the_run_meets_counts_what_was_sent_not_served() -> None:
    # a call a second for 10 min against 100 requests/day: the run itself is refused after
    # 100, and a day of the traffic is 86,400 calls, not the 100 served x 144
    from llmplan.pipeline import evaluate
    result = evaluate(scenario_from("""
        seed: 1
        duration: 600
        traffic: {kind: constant, rate_per_s: 1}
        tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 100},
                 output_tokens: {kind: fixed, tokens: 10}}]
        deployments:
          api: {kind: cloud, model: gpt-4o-mini, limits: {requests_per_day: 100}}
    """))
    api = result.deployments["api"]
    assert api.cloud is not None and api.cloud.served == 100
    assert api.cloud.requests_sent == 600
    assert any("daily limit (100 requests/day) carries 0.1% of the 86,400 calls" in r
               for r in api.infeasible_because)


@pytest.mark.parametrize(("limits", "share", "advice"), [
    ("requests_per_day: 10000", 10_000 / 86_400,
     "raise it to at least 86,400 requests/day (limits.requests_per_day)"),
    ("tokens_per_day: 5000000", 5e6 / 103_680_000,
     "raise it to at least 103,680,000 tokens/day (limits.tokens_per_day)"),
    ("requests_per_day: 10000, tokens_per_day: 5000000", 5e6 / 103_680_000,
     "raise them to at least 86,400 requests/day (limits.requests_per_day) and "
     "103,680,000 tokens/day (limits.tokens_per_day)")])
def test_a_daily_limit_exclusion_says_what_to_raise_and_to_what(limits: str, share: float,
                                                                 advice: str) -> None:
    """A call a second is 86,400 calls a day, each charged its 1,000-token prompt and its
    200 tokens out (no max_tokens: the output reserved), 103,680,000 tokens a day: the
    exclusion names each daily limit short of that and the figure it must reach, as the
    per-minute limits' advice does (it said "raise limits.requests_per_day /
    tokens_per_day" whichever was short, and by how much nowhere). With both short, the
    tighter is the one quoted (5,000,000 / 103,680,000 = 4.8%) and both are to raise."""
    from llmplan.pipeline import evaluate
    result = evaluate(scenario_from(f"""
        seed: 1
        duration: 600
        traffic: {{kind: constant, rate_per_s: 1}}
        tasks: [{{name: t, prompt_tokens: {{kind: fixed, tokens: 1000}},
                 output_tokens: {{kind: fixed, tokens: 200}}}}]
        deployments:
          api: {{kind: cloud, model: gpt-4o-mini,
                limits: {{requests_per_min: 1000, tokens_per_min: 10000000, {limits}}}}}
    """))
    (daily,) = [r for r in result.deployments["api"].infeasible_because if "daily" in r]
    assert daily.endswith("to carry it, " + advice)
    assert f"carries {share:.1%} of the" in daily


def test_restricted_requests_are_counted_where_the_scenario_lets_them_go() -> None:
    """With restricted_stays_local off, a route may send restricted data to the API: the
    hybrid says how much went (it said 0) and is not excluded for it."""
    from helpers import scenario_from

    from llmplan.pipeline import evaluate

    loaded = scenario_from("""
        seed: 2
        duration: 60
        traffic: {kind: poisson, rate_per_s: 2}
        tasks:
          - {name: payroll, sensitivity: restricted, prompt_tokens: {kind: fixed, tokens: 200},
             output_tokens: {kind: fixed, tokens: 20}}
        constraints: {restricted_stays_local: false}
        deployments:
          fleet: {gpu: L4, model: Llama-3.1-8B}
          api: {kind: cloud, model: gpt-4o-mini}
          both: {kind: hybrid, local: fleet, cloud: api,
                 routes: [{tasks: [payroll], to: cloud}]}
    """)
    both = evaluate(loaded).deployments["both"]
    assert both.hybrid is not None
    assert both.hybrid.restricted_requests == both.requests.total > 0
    assert both.hybrid.restricted_served_by_cloud == both.hybrid.served_cloud > 0
    assert not any("restricted" in r for r in both.infeasible_because)


def test_a_hybrid_that_kept_everything_on_one_side_says_so() -> None:
    """Every route to the fleet and a queue that never passes the spill-over wait: the
    hybrid ran as its fleet alone, which the terminal says rather than show it as both."""
    from llmplan.pipeline import evaluate
    from llmplan.render import one_sided
    text = HYBRID.replace("QUEUE", "1000").replace("routes: [{to: cloud}]", "routes: []") \
        .replace("        outages: {windows: [{start_s: 40, duration_s: 30}]}\n", "")
    result = evaluate(scenario_from(text))
    assert result.deployments["mixed"].hybrid is not None
    assert result.deployments["mixed"].hybrid.served_cloud == 0
    [line] = one_sided(result)
    assert line.startswith("mixed answered every request on gpu") and "api nothing" in line
    assert one_sided(evaluate(scenario_from(HYBRID.replace("QUEUE", "1000")))) == []


def test_requests_too_long_for_the_model_are_named_by_task_with_the_limit() -> None:
    from llmplan.pipeline import evaluate
    from llmplan.render import not_served
    text = HYBRID.replace("QUEUE", "1000").replace(
        "prompt_tokens: {kind: fixed, tokens: 300},\n         output_tokens: {kind: fixed, "
        "tokens: 30}, sensitivity: restricted}",
        "prompt_tokens: {kind: fixed, tokens: 200000},\n         output_tokens: {kind: fixed, "
        "tokens: 30}, sensitivity: restricted}")
    result = evaluate(scenario_from(text))
    [line] = [line for line in not_served(result) if line.startswith("gpu ")]
    secret = result.deployments["gpu"].per_task["secret"]
    assert secret.too_long == secret.requests > 0
    assert f"(too long by task: secret {secret.requests:,} of {secret.requests:,}; " \
           f"max_model_len 131,072 tokens)" in line
    # an API's line names its window and longest answer (gpt-4o-mini: 128k, 16,384 out);
    # result.json gives them only where a request was too long
    [api_line] = [line for line in not_served(result) if line.startswith("api ")]
    assert "; gpt-4o-mini's window 128,000 tokens, at most 16,384 out (reasoning " \
           "included))" in api_line
    fits = evaluate(scenario_from(HYBRID.replace("QUEUE", "1000"))).deployments["api"]
    assert fits.cloud is not None and fits.cloud.context_tokens is None
    # report.html's 'not answered' cells say the same
    import html

    from llmplan.report.page import render
    page = page_text(render(result))
    for name in ("gpu", "api"):
        words = result.deployments[name].too_long_by_task()
        assert words and html.escape(words) in page, name
    # with every request too long nothing ran: no full-batch figure judges the fleet
    none_fit = evaluate(scenario_from(text.replace("tokens: 300}", "tokens: 200000}")))
    assert none_fit.deployments["gpu"].requests.completed == 0
    assert not any("full batches" in why
                   for why in none_fit.deployments["gpu"].infeasible_because)


def test_a_hybrid_whose_fleet_answered_nothing_says_why() -> None:
    """Every prompt longer than the fleet's max_model_len: each request moves to the API,
    none routed there. The line says they moved; it used to blame the routes."""
    from llmplan.pipeline import evaluate
    from llmplan.render import one_sided
    result = evaluate(scenario_from("""
        seed: 3
        duration: 60
        traffic: {kind: constant, rate_per_s: 0.5}
        tasks: [{name: long, prompt_tokens: {kind: fixed, tokens: 9000},
                 output_tokens: {kind: fixed, tokens: 50}}]
        deployments:
          fleet: {gpu: L40S, model: Llama-3.1-8B, engine: {max_model_len: 8192}}
          api: {kind: cloud, model: gpt-4o-mini}
          both: {kind: hybrid, local: fleet, cloud: api}
    """))
    hybrid = result.deployments["both"].hybrid
    assert hybrid is not None and hybrid.served_local == 0
    assert hybrid.moved_between_paths > 0
    [line] = one_sided(result)
    assert line.startswith("both answered every request on api: fleet answered none (")
    assert f"{hybrid.moved_between_paths:,} moved between the two" in line
    assert "routes" not in line
