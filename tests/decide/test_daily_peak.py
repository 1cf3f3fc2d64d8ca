"""A diurnal run that misses the day's peak is planned at the peak: the month's costs are
the whole day's, so a fleet that only keeps up with a quiet hour cannot be the answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import scenario_from

from llmplan.decide.planner import Planner, busiest_stretch
from llmplan.pipeline import evaluate
from llmplan.sim.run import simulate_scenario
from llmplan.traffic.arrivals import DiurnalTraffic

SCENARIO = """
    seed: 5
    duration: 300
    traffic: {kind: diurnal, mean_rate_per_s: 12, peak_to_mean: 3, peak_hour: 14,
              start_hour: START}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 1000},
             output_tokens: {kind: fixed, tokens: 200}}]
    slo: {ttft_ms: 2000, tpot_ms: 60, min_goodput_fraction: 0.95}
    deployments:
      l4: {gpu: L40S, model: Llama-3.1-8B}
      api: {kind: cloud, model: gpt-4o,
            limits: {requests_per_min: 100000, tokens_per_min: 100000000}}
"""


def test_how_far_under_the_peak_the_simulated_hours_stay_on_paper() -> None:
    day = DiurnalTraffic(mean_rate_per_s=3, peak_to_mean=3, peak_hour=14, start_hour=2)
    k = day.concentration()
    # the curve is mean * exp(k cos a) / I0(k); from 02:00 to 02:05 it rises, so its
    # highest point is 02:05, 11 h 55 min before the peak
    angle = 2 * math.pi * (2 + 5 / 60 - 14) / 24
    assert day.peak_missed_by(300) == pytest.approx(math.exp(k * (1 - math.cos(angle))),
                                                    rel=1e-6)
    assert DiurnalTraffic(mean_rate_per_s=3, peak_to_mean=3, start_hour=13.9) \
        .peak_missed_by(3600) == pytest.approx(1.0)
    assert DiurnalTraffic(mean_rate_per_s=3, peak_to_mean=3, start_hour=0) \
        .peak_missed_by(86_400) == pytest.approx(1.0)
    # the curve's own peak, as the day's mean times peak_to_mean
    assert float(day.base_rate_at(np.array([12 * 3600.0])).item()) == pytest.approx(9.0)


def test_a_quiet_hour_run_is_planned_and_judged_at_the_peak() -> None:
    quiet = evaluate(scenario_from(SCENARIO.replace("START", "3")), planning=True)
    assert quiet.planning is not None
    window = quiet.planning.window
    peak = window.peak_requests_per_s()
    assert window.sped_up_to_peak is not None and window.sped_up_to_peak > 3
    # the busiest stretch is sped up to the peak exactly: 12/s x 3
    assert peak == pytest.approx(36.0)
    assert window.sped_up_to_peak == pytest.approx(
        36.0 / (window.requests / (window.span_s * window.sped_up_to_peak)))
    l4 = quiet.deployments["l4"]
    rate = quiet.planning.deployments["l4"].max_sustainable_requests_per_s
    assert l4.slo.met                       # the quiet five minutes alone it serves
    assert rate is not None and rate < peak
    assert not l4.feasible and "daily peak" in l4.infeasible_because[-1]
    assert quiet.recommendation.deployment == "api"
    assert any("daily peak" in note for note in quiet.planning.notes)
    # no sensitivity case hands the day back to the fleet that misses its peak
    assert all(case.winner != "l4" for case in quiet.planning.sensitivity
               if not case.change.startswith("volume x0"))


def test_a_run_over_the_peak_is_planned_as_it_was_simulated() -> None:
    busy = evaluate(scenario_from(SCENARIO.replace("START", "13.95")), planning=True)
    assert busy.planning is not None
    assert busy.planning.window.sped_up_to_peak is None
    assert busy.planning.window.peak_requests_per_s() is None
    assert "sped_up_to_peak" not in busy.model_dump_json()


def test_without_planning_a_fleet_whose_full_batches_miss_the_peak_is_excluded() -> None:
    # --no-plan: no search at the peak, but full batches bound what a fleet serves: one
    # that cannot serve the 36/s peak even so is not priced on the day's volume
    result = evaluate(scenario_from(SCENARIO.replace("START", "3")), planning=False)
    l4 = result.deployments["l4"]
    local = l4.local
    assert local is not None and local.utilisation.full_batch_requests_per_s < 36
    assert not l4.feasible and "daily peak of 36/s" in l4.infeasible_because[-1]
    assert result.recommendation.deployment == "api"
    # over the peak hours the run is judged as simulated
    busy = evaluate(scenario_from(SCENARIO.replace("START", "13.95")), planning=False)
    assert not any("daily peak" in r for d in busy.deployments.values()
                   for r in d.infeasible_because)


OVERLOADED = """
    seed: 3
    duration: 120
    traffic: {kind: poisson, rate_per_s: RATE}
    tasks: [{name: chat, prompt_tokens: {kind: lognormal, mean: 1500, p95: 4000},
             reasoning_tokens: {kind: lognormal, mean: 300, p95: 1000},
             output_tokens: {kind: lognormal, mean: 400, p95: 1000}}]
    slo: {ttft_ms: 2000, tpot_ms: 50, min_goodput_fraction: 0.95}
    deployments:
      h100: {gpu: H100-SXM, model: gpt-oss-120b}
      api: {kind: cloud, model: gpt-4o,
            limits: {requests_per_min: 100000, tokens_per_min: 100000000}}
"""


def test_a_fleet_slower_than_the_traffic_is_excluded_whatever_a_short_run_showed() -> None:
    """Two minutes at 4 requests/s against one H100 whose full batches finish about 3 a
    second: the queue has not yet reached the SLO's bounds when the run ends, but it grows
    for as long as the traffic lasts, and the month is priced at 4/s."""
    result = evaluate(scenario_from(OVERLOADED.replace("RATE", "4")))
    h100 = result.deployments["h100"]
    assert h100.local is not None
    capacity = h100.local.utilisation.full_batch_requests_per_s
    assert capacity < 4
    assert h100.slo.met                       # the short run's latencies alone pass
    assert not h100.feasible
    assert any("the rest would wait until they time out" in why
               for why in h100.infeasible_because)
    # at a rate its full batches carry, that reason does not apply
    calm = evaluate(scenario_from(OVERLOADED.replace("RATE", f"{0.8 * capacity:.3f}")))
    assert not any("full batches answer" in why
               for why in calm.deployments["h100"].infeasible_because)


def test_a_fleet_short_of_the_rate_but_not_of_the_goodput_asked_is_not_called_overloaded() -> None:
    """At 4/s a fleet answering about 3 a second keeps about 76% within bounds over a
    month: enough for an SLO asking 70%."""
    text = OVERLOADED.replace("RATE", "4").replace("min_goodput_fraction: 0.95",
                                                   "min_goodput_fraction: 0.7")
    h100 = evaluate(scenario_from(text)).deployments["h100"]
    assert not any("full batches answer" in why for why in h100.infeasible_because)


def test_the_replica_search_sizes_past_a_fleet_its_traffic_would_overload() -> None:
    """The replica search judges a fleet as the decision does: one H100 passes the two
    minutes' latencies at 4/s, but its full batches answer about 3 a second, so the fewest
    replicas meeting the SLO is two, and the right-sized fleet is a feasible one."""
    result = evaluate(scenario_from(OVERLOADED.replace("RATE", "4")), planning=True)
    assert result.planning is not None
    assert result.planning.deployments["h100"].min_replicas_meeting_slo == 2
    sized = result.planning.right_sized
    if sized is not None and "h100" in sized.fleets:
        assert sized.fleets["h100"].feasible


def test_the_longer_stretch_at_the_peak_stays_at_the_peak() -> None:
    """The traffic stays near its daily peak for hours, so the stretch three times as long
    that planning checks a rate on is the peak's rate throughout: the sped-up busiest
    stretch three times over. The simulated morning's own longer stretch, sped up to the
    peak on average, rose past it along the curve (a queue grown on traffic above the
    peak, which a hybrid was excluded for and a fixed fleet was not)."""
    loaded = scenario_from(SCENARIO.replace("START", "7").replace("duration: 300",
                                                                  "duration: 1800"))
    planner = Planner(loaded, simulate_scenario(loaded), window_requests=2000)
    assert planner.sped_up_to_peak is not None
    peak = planner.peak_requests_per_s
    assert peak == pytest.approx(36.0)
    assert len(planner.window) / planner.window_s == pytest.approx(peak)
    long, long_s = planner.long, planner.long_s
    assert len(long) == 3 * len(planner.window) and long_s == pytest.approx(3 * planner.window_s)
    assert len(long) / long_s == pytest.approx(peak)
    # no part of it runs faster than the peak (the busiest 2,000 requests are one copy)
    busiest, busiest_s, _ = busiest_stretch(long, long_s, len(planner.window))
    assert len(busiest) / busiest_s < peak * 1.01
    # the traffic of the simulated half hour rises: its own longer stretch, sped up to the
    # peak on average, ends faster than the peak
    morning, morning_s, _ = busiest_stretch(planner.stream, loaded.scenario.duration_s, 6000)
    at_peak = morning.scaled(len(morning) / morning_s / peak)
    last, last_s, _ = busiest_stretch(at_peak, len(at_peak) / peak, 2000)
    assert len(last) / last_s > peak * 1.02


@pytest.mark.parametrize("planning", [False, True])
def test_the_full_batch_capacity_is_judged_at_the_peak_the_run_misses(planning: bool) -> None:
    """"Serves at most (full batches)": the month's volume at which the traffic's sustained
    rate reaches the fleet's full-batch throughput. A run of quiet hours arrives far under
    the day's peak, which lasts hours: scaled by the run's own rate the figure was past
    what the fleet could serve running flat out all month."""
    result = evaluate(scenario_from(SCENARIO.replace("START", "3")), planning=planning)
    (row,) = result.break_even
    l4 = result.deployments["l4"]
    assert l4.local is not None
    full = l4.local.utilisation.full_batch_requests_per_s
    month = l4.cost.requests_per_month
    assert row.local_capacity_requests_per_month == pytest.approx(month * full / 36.0)
    # never more than the fleet serves running flat out all month (730 hours)
    assert row.local_capacity_requests_per_month < full * 730 * 3600
    if planning:
        assert row.local_slo_capacity_requests_per_month is not None
        assert row.local_slo_capacity_requests_per_month <= row.local_capacity_requests_per_month


def test_a_whole_day_is_judged_at_its_peak_too() -> None:
    """A run of the whole day reaches its peak: the full-batch capacity is still the
    volume at which the peak, not the day's mean, reaches full batches (at the mean, it was
    nearly what the fleet serves flat out all month, three times what the peak allows)."""
    whole_day = SCENARIO.replace("START", "0").replace("duration: 300", "duration: 24h") \
        .replace("mean_rate_per_s: 12", "mean_rate_per_s: 0.2")
    result = evaluate(scenario_from(whole_day), planning=False)
    (row,) = result.break_even
    l4 = result.deployments["l4"]
    assert l4.local is not None
    full = l4.local.utilisation.full_batch_requests_per_s
    month = l4.cost.requests_per_month
    assert row.local_capacity_requests_per_month == pytest.approx(month * full / 0.6,
                                                                  rel=0.02)
