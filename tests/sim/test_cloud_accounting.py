"""An API's limits and bill as its provider counts them, against hand calculations."""

from __future__ import annotations

import pytest
from helpers import scenario_from

from llmplan.decide.pricing import windows_per_month
from llmplan.pipeline import evaluate
from llmplan.results import DeploymentResult
from llmplan.sim.run import simulate_scenario


def _item(result: DeploymentResult, name: str) -> float:
    return next(i.usd_per_month for i in result.cost.items if i.item == name)


# Claude Sonnet 4.5 on Bedrock: a call reserves its prompt and max_tokens at the start, and
# an unset max_tokens reserves the model's maximum output, 64,000 tokens (AWS). At 100,000
# tokens a minute one such reservation fits at a time, and a call settles (1,000 + 5 x 100
# counted) only as it ends: calls a second apart queue on the reservation, though the
# tokens they count (1,500 a call, 90,000 a minute) are within the limit.
BEDROCK_MAX_TOKENS = """
    seed: 2
    duration: 300
    traffic: {{kind: constant, rate_per_s: 1}}
    tasks: [{{name: t, prompt_tokens: {{kind: fixed, tokens: 1000}},
              output_tokens: {{kind: fixed, tokens: 100}}}}]
    slo: {{ttft_ms: 5000, min_goodput_fraction: 0.9}}
    deployments:
      api: {{kind: cloud, model: claude-sonnet-4.5-bedrock,
             limits: {{requests_per_min: 1000, tokens_per_min: 100000{max_tokens}}}}}
"""


def test_bedrock_reserves_the_model_maximum_when_max_tokens_is_unset() -> None:
    unset = simulate_scenario(scenario_from(BEDROCK_MAX_TOKENS.format(max_tokens="")))
    capped = simulate_scenario(scenario_from(
        BEDROCK_MAX_TOKENS.format(max_tokens=", max_tokens: 200")))
    unset_api, capped_api = unset.deployments["api"], capped.deployments["api"]
    assert unset_api.cloud is not None and capped_api.cloud is not None
    assert capped_api.cloud.throttle_events == 0 and capped_api.slo.met
    assert unset_api.cloud.throttle_events > 100 and not unset_api.slo.met
    # every call let through reserved 1,000 + 64,000
    assert unset_api.cloud.tokens_charged_against_limit == 65_000 * unset_api.cloud.served


# One 5,000-token system prompt in front of every call, cached by OpenAI at $0.50/M: on tier
# 1 (30,000 tokens a minute) most calls are refused, on a raised quota none. The month is
# priced at the volume offered either way, and a refused call would have read the cache
# like the rest: the input bill is the same, 1.314 M calls x (100 x $2 + 5,000 x $0.5) / M.
UNSERVED = """
    seed: 1
    duration: 600
    traffic: {kind: constant, rate_per_s: 0.5}
    tasks: [{name: rag, prompt_tokens: {kind: fixed, tokens: 100},
             output_tokens: {kind: fixed, tokens: 100},
             shared_prefix: {groups: 1, tokens: {kind: fixed, tokens: 5000}}}]
    slo: {ttft_ms: 5000, min_goodput_fraction: 0.9}
    deployments:
      tier1: {kind: cloud, model: gpt-4.1}
      raised: {kind: cloud, model: gpt-4.1,
               limits: {requests_per_min: 10000, tokens_per_min: 30000000}}
"""


def test_calls_the_api_refused_are_priced_with_the_cache_reads_they_would_make() -> None:
    loaded = scenario_from(UNSERVED)
    result = evaluate(loaded)
    tier1, raised = result.deployments["tier1"], result.deployments["raised"]
    assert tier1.cloud is not None and tier1.cloud.unserved is not None
    assert tier1.cloud.unserved.requests > tier1.cloud.served      # most were refused
    assert raised.cloud is not None and raised.cloud.unserved is None
    calls = 300 * windows_per_month(result.scenario, loaded.scenario.economics)
    by_hand = calls * (100 * 2.0 + 5000 * 0.5) / 1e6
    assert _item(raised, "input_tokens") == pytest.approx(by_hand, rel=0.01)
    assert _item(tier1, "input_tokens") == pytest.approx(by_hand, rel=0.01)


# A short FAQ task sharing a 20,000-token cached prefix beside rare 150,000-token documents
# that share nothing: past claude-haiku-5.5's 128,000-token threshold, the documents pay
# the long-context input price on all of their prompt, none of it a cache read.
LONG_CONTEXT = """
    seed: 1
    duration: 1200
    traffic: {kind: poisson, rate_per_s: 1.05}
    tasks:
      - {name: faq, weight: 20, prompt_tokens: {kind: fixed, tokens: 100},
         output_tokens: {kind: fixed, tokens: 100},
         shared_prefix: {groups: 1, tokens: {kind: fixed, tokens: 20000}}}
      - {name: bigdoc, weight: 1, prompt_tokens: {kind: fixed, tokens: 150000},
         output_tokens: {kind: fixed, tokens: 1000}}
    slo: {ttft_ms: 60000, min_goodput_fraction: 0.5}
    deployments:
      haiku: {kind: cloud, model: claude-haiku-5.5,
              limits: {requests_per_min: 10000, tokens_per_min: 100000000,
                       output_tokens_per_min: 10000000}}
"""


def test_long_context_prices_apply_to_the_long_requests_own_cache_reads() -> None:
    loaded = scenario_from(LONG_CONTEXT)
    result = evaluate(loaded)
    api = result.deployments["haiku"]
    assert api.cloud is not None and api.cloud.long_context is not None
    long = api.cloud.long_context
    assert long.cached_input_tokens == 0 and long.cache_write_tokens == 0
    model = loaded.catalog.cloud_models["claude-haiku-5.5"]
    prices = model.long_context
    assert prices is not None and prices.above_input_tokens < 150_000
    per_window = (long.input_tokens * (prices.input_usd_per_mtok - model.input_usd_per_mtok)
                  + long.output_tokens * (prices.output_usd_per_mtok
                                          - model.output_usd_per_mtok)) / 1e6
    months = windows_per_month(result.scenario, loaded.scenario.economics)
    assert _item(api, "long_context") == pytest.approx(per_window * months, rel=1e-6)


# gpt-4o-mini's tier 1 allows 10,000 requests a day besides its 500 a minute: a request
# every 2 s all day (43,200) is four times that, though ten minutes of it look fine
DAILY = """
    seed: 1
    duration: 600
    traffic: {kind: constant, rate_per_s: 0.5}
    tasks: [{name: chat, prompt_tokens: {kind: fixed, tokens: 500},
             output_tokens: {kind: fixed, tokens: 100}}]
    slo: {ttft_ms: 5000, min_goodput_fraction: 0.9}
    deployments:
      tier1: {kind: cloud, model: gpt-4o-mini}
      raised: {kind: cloud, model: gpt-4o-mini,
               limits: {requests_per_min: 5000, tokens_per_min: 2000000}}
"""


def test_the_default_tiers_daily_limit_holds_where_the_scenario_keeps_the_tier() -> None:
    result = evaluate(scenario_from(DAILY))
    tier1, raised = result.deployments["tier1"], result.deployments["raised"]
    assert not tier1.feasible and raised.feasible
    assert any("10,000 requests/day, gpt-4o-mini's tier_1" in why
               for why in tier1.infeasible_because)


# Claude on Bedrock counts a call's uncached input and 5 x its output against tokens/day
# (1,000 + 5 x 200 = 2,000 a call, 172.8 M a day at one a second), not what it reserved at
# its start (1,000 + 64,000 with max_tokens unset, 1,400 with 400)
BEDROCK_DAILY = """
    seed: 3
    duration: 600
    traffic: {{kind: constant, rate_per_s: 1}}
    tasks: [{{name: chat, prompt_tokens: {{kind: fixed, tokens: 1000}},
              output_tokens: {{kind: fixed, tokens: 200}}}}]
    slo: {{ttft_ms: 5000, tpot_ms: 200}}
    deployments:
      unset: {{kind: cloud, model: claude-sonnet-4.5-bedrock,
               limits: {{tokens_per_day: {day}}}}}
      capped: {{kind: cloud, model: claude-sonnet-4.5-bedrock,
                limits: {{tokens_per_day: {day}, max_tokens: 400}}}}
"""


@pytest.mark.parametrize(("day", "feasible"), [(160_000_000, False), (180_000_000, True)])
def test_bedrocks_daily_tokens_are_what_its_calls_count_in_the_end(day: int,
                                                                   feasible: bool) -> None:
    result = evaluate(scenario_from(BEDROCK_DAILY.format(day=day)))
    for name in ("unset", "capped"):
        candidate = result.deployments[name]
        assert candidate.feasible is feasible, candidate.infeasible_because
        if not feasible:
            assert any("172,800,000 tokens a day" in why
                       for why in candidate.infeasible_because)


# a hybrid whose routes send one task to Claude: every call shares a 50,000-token system
# prompt, one a minute. The stretch is a piece of a long day, so the provider's cache holds
# the prompt when it starts (the call a minute before the window left it), as it is priced:
# the first call reads it too, and no call waits 50 s to prefill it at 1,000 tokens a second
HYBRID_WARM = """
    seed: 4
    duration: 600
    traffic: {kind: constant, rate_per_s: 0.0166667}
    tasks: [{name: ask, prompt_tokens: {kind: fixed, tokens: 200},
             output_tokens: {kind: fixed, tokens: 20},
             shared_prefix: {groups: 1, tokens: {kind: fixed, tokens: 50000}}}]
    slo: {ttft_ms: 10000}
    deployments:
      fleet: {gpu: L4, model: Llama-3.1-8B}
      api: {kind: cloud, model: claude-sonnet-4.6,
            latency: {prefill_tokens_per_s: 1000},
            limits: {requests_per_min: 1000, tokens_per_min: 10000000,
                     output_tokens_per_min: 1000000}}
      both: {kind: hybrid, local: fleet, cloud: api, routes: [{tasks: [ask], to: cloud}]}
"""


def test_a_hybrids_api_starts_with_the_cache_its_routes_leave() -> None:
    simulation = simulate_scenario(scenario_from(HYBRID_WARM))
    both = simulation.deployments["both"]
    assert both.cloud is not None and both.cloud.served == both.requests.total >= 10
    assert both.cloud.cache_write_tokens == 0
    assert both.latency.ttft_ms.p99 is not None and both.latency.ttft_ms.p99 < 5000
