"""A month is made of the traffic's long-run rate, whichever stretch of it is simulated:
the monthly volume (and so every monthly cost) from the rate the traffic states, the SLO
from the simulated window."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import scenario_from

from llmplan.pipeline import evaluate
from llmplan.results.decision import CostLine

MONTH_S = 730 * 3600.0

# identical calls, every one served: $0.5/M in x 1,000 + $2/M out x 100 = $0.0007 a call
DIURNAL = """
    seed: 2
    duration: 1800
    traffic: {kind: diurnal, mean_rate_per_s: 2, peak_to_mean: 3, peak_hour: 14,
              start_hour: 13.75}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 1000},
             output_tokens: {kind: fixed, tokens: 100}}]
    slo: {ttft_ms: 5000, e2e_ms: 20000, min_goodput_fraction: 0.95}
    catalog:
      cloud_models:
        gpt-4o-mini: {input_usd_per_mtok: 0.5, output_usd_per_mtok: 2.0}
    deployments:
      api: {kind: cloud, model: gpt-4o-mini,
            limits: {requests_per_min: 100000, tokens_per_min: 100000000}}
"""
PER_CALL_USD = (1000 * 0.5 + 100 * 2.0) / 1e6


def _token_usd(items: list[CostLine]) -> float:
    return sum(i.usd_per_month for i in items if i.item in ("input_tokens", "output_tokens"))


def test_a_diurnal_peak_is_billed_at_the_days_mean() -> None:
    result = evaluate(scenario_from(DIURNAL))
    assert result.scenario.requests / 1800 > 2.5 * 2      # the window is the peak (~3x)
    api = result.deployments["api"]
    assert api.requests.completed == api.requests.total     # every call billed
    assert api.cost.requests_per_month == pytest.approx(2 * MONTH_S, rel=1e-9)
    assert _token_usd(api.cost.items) == pytest.approx(2 * MONTH_S * PER_CALL_USD, rel=1e-9)
    assert "mean_rate_per_s 2/s" in (result.scenario.volume_basis or "")
    assert f"{2 * MONTH_S:,.0f} requests a month" in result.monthly_volume()
    # twice the daily mean, twice the month and its API bill
    doubled = evaluate(scenario_from(DIURNAL.replace("mean_rate_per_s: 2",
                                                     "mean_rate_per_s: 4")))
    api2 = doubled.deployments["api"]
    assert api2.cost.requests_per_month == pytest.approx(4 * MONTH_S, rel=1e-9)
    assert _token_usd(api2.cost.items) == pytest.approx(2 * _token_usd(api.cost.items),
                                                        rel=1e-9)


def test_a_flat_rate_is_its_stated_rate_not_the_draw() -> None:
    result = evaluate(scenario_from(DIURNAL.replace(
        """{kind: diurnal, mean_rate_per_s: 2, peak_to_mean: 3, peak_hour: 14,
              start_hour: 13.75}""", "{kind: poisson, rate_per_s: 3}")))
    assert result.scenario.requests != 3 * 1800                # a random count
    assert result.deployments["api"].cost.requests_per_month == \
        pytest.approx(3 * MONTH_S, rel=1e-9)


def test_a_trace_is_billed_at_its_own_rate(tmp_path: Path) -> None:
    # 11 requests a second apart (10 s); 5 s of it simulated: 1 request/s for the month
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,prompt_tokens,output_tokens\n"
                     + "".join(f"{t},1000,100\n" for t in range(11)))
    loaded = scenario_from(DIURNAL.replace("duration: 1800", "duration: 5").replace(
        """{kind: diurnal, mean_rate_per_s: 2, peak_to_mean: 3, peak_hour: 14,
              start_hour: 13.75}""", f"{{kind: trace, path: {trace}}}"))
    result = evaluate(loaded)
    assert result.scenario.requests == 5
    assert result.deployments["api"].cost.requests_per_month == \
        pytest.approx(1.0 * MONTH_S, rel=1e-9)
    assert "the trace's own rate" in (result.scenario.volume_basis or "")


def test_a_trace_shorter_than_the_run_is_named_as_why_it_arrives_light(tmp_path: Path) -> None:
    """A 10-second trace in a 60-second run idles 50 s: planning says so, not that the
    run's end cuts conversations off (there are none)."""
    from llmplan.decide.planning import plan
    from llmplan.sim.run import simulate_scenario

    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,prompt_tokens,output_tokens\n"
                     + "".join(f"{t},1000,100\n" for t in range(11)))
    loaded = scenario_from(DIURNAL.replace("duration: 1800", "duration: 60").replace(
        """{kind: diurnal, mean_rate_per_s: 2, peak_to_mean: 3, peak_hour: 14,
              start_hour: 13.75}""", f"{{kind: trace, path: {trace}}}"))
    planned = plan(simulate_scenario(loaded), loaded, jobs=1)
    (note,) = [n for n in planned.notes if "below the" in n]
    assert "the trace's arrivals span 10 s of the 1 min simulated" in note
    assert "cuts off" not in note


@pytest.mark.parametrize("duration_s", [300, 1800])
def test_conversations_count_every_turn_however_short_the_window(duration_s: int) -> None:
    """Sessions of 4 to 16 turns average 10 requests, plus two parallel calls for each
    later turn of an agent loop of 2 to 4 turns (1 + 2 x 2 = 5): a month counts them so
    whatever the window; the turns a short window cuts off (sessions it ends in) are not
    missing from the month."""
    result = evaluate(scenario_from(DIURNAL.replace(
        """{kind: diurnal, mean_rate_per_s: 2, peak_to_mean: 3, peak_hour: 14,
              start_hour: 13.75}""", "{kind: poisson, rate_per_s: 0.2}").replace(
        "duration: 1800", f"duration: {duration_s}").replace(
        """tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 1000},
             output_tokens: {kind: fixed, tokens: 100}}]""",
        """tasks:
      - {name: chat, weight: 3, prompt_tokens: {kind: fixed, tokens: 100},
         output_tokens: {kind: fixed, tokens: 50},
         session: {turns_min: 4, turns_max: 16, think_time_s: 5}}
      - {name: agent, weight: 1, prompt_tokens: {kind: fixed, tokens: 100},
         output_tokens: {kind: fixed, tokens: 50},
         session: {kind: agent, turns_min: 2, turns_max: 4, think_time_s: 1,
                   fan_out: 2}}""")))
    per_arrival = 0.75 * 10 + 0.25 * 5
    assert result.deployments["api"].cost.requests_per_month == pytest.approx(
        0.2 * per_arrival * MONTH_S, rel=1e-9)
    assert "x 8.75 requests each" in (result.scenario.volume_basis or "")
