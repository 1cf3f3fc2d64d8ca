"""Planning by search over simulations: how many replicas, how much traffic, how stable.

* load_curve: goodput and tails at fractions and multiples of the scenario's traffic (the
  same requests compressed or stretched in time);
* max_sustainable_rate: the highest mean request rate at which the SLO still holds
  (bracketed by the load curve, then bisection on the rate factor) and, for a fixed local
  fleet, at most what it finishes with every batch full (a short stretch run a little
  past that meets the SLO before its queue has grown: the day would not); for a cloud API, also
  within the rate its provider's limits sustain at the stream's token mix (a rate over
  that is refused in part for as long as it lasts, whatever a short simulation shows);
* min_replicas: the fewest replicas of a local (or hybrid's local) fleet meeting every SLO
  at the scenario's traffic (doubling, then bisection; more replicas never make the SLO
  harder to meet), confirmed on the whole stream;
* sensitivity: does the winner change if volume halves or doubles (the load curve's
  simulations, decided again), or if cloud token or GPU prices move (costs recomputed)?

What keeps planning within about the time of the simulation itself: the searches run on
the *busiest stretch* of the request stream (the `WINDOW_REQUESTS` consecutive requests
that arrive in the shortest time; the whole stream when it is shorter), which is what
decides an SLO and is cheap to simulate; every simulation is run once (memoised by
deployment, replicas and rate factor); independent simulations share the machine's cores
(not a stage too small to gain from forking: POOL_WORTH_S);
and the one figure a fleet is bought by, the replica count, is confirmed on the whole
stream (stepping up, one replica first, if the whole day needs more than its busiest
stretch), beside the sensitivity's other whole-stream runs. Same scenario
and seed, same planning: the pool changes only when a simulation runs, never its result.

A cloud API's limits start each planning simulation as the same traffic, kept up, leaves
them (sim/cloud.py, `prime`): the stretch is part of a busy period, and a limiter starting
with a full minute's allowance would let a stretch sped up to a few seconds pass any rate.
A hybrid's cloud part gets what its router sends it, known only once the stretch has run:
when that run sent the API more than its limits sustain, the stretch runs again with them
primed by what it sent (requests per second and their token mix).

`plan` here composes them: the memoised simulations and the searches are planner.py's
(`Planner`, the busiest stretch), shared over the cores by planning_pool.py; the volume,
set-up (variants.py) and price cases are sensitivity.py's, the resized fleets'
decision right_sizing.py's, and the notes on rates not sustained planning_notes.py's.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from llmplan.decide.planner import LOAD_FACTORS, RATE_LIMIT, WINDOW_REQUESTS, Planner, Point
from llmplan.decide.planning_notes import bursts_missed_notes, over_limit_notes
from llmplan.decide.planning_pool import confirm_all, dearest_first, run_all, search_all
from llmplan.decide.right_sizing import right_sized
from llmplan.decide.sensitivity import sensitivity
from llmplan.results.decision import DeploymentPlan, LoadPoint, Planning, PlanningWindow
from llmplan.results.simulation import DeploymentResult, SimulationResult
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment
from llmplan.traffic.arrivals import DiurnalTraffic, duration_words, trace_span_s

Progress = Callable[[str], None]


#: how much lighter than the costed rate the simulated stream must arrive for planning to
#: say so (10%: two standard deviations of a Poisson draw of 400 requests)
LIGHT_DRAW_NOTED = 1.1



def plan(simulation: SimulationResult, loaded: LoadedScenario, *,
         jobs: int | None = None, progress: Progress | None = None,
         window_requests: int = WINDOW_REQUESTS) -> Planning:
    """The planning section of result.json (`jobs`: processes; default one per core)."""
    say = progress or (lambda _stage: None)
    planner = Planner(loaded, simulation, window_requests)
    names = list(loaded.scenario.deployments)
    local = [n for n in names if not isinstance(loaded.scenario.deployments[n], CloudDeployment)]
    jobs = min(os.cpu_count() or 1, 8) if jobs is None else jobs
    notes: list[str] = []
    scenario = loaded.scenario
    bounded = any(slo is not None and (slo.ttft_ms or slo.tpot_ms or slo.e2e_ms
                                       or slo.ttft_visible_ms)
                  for slo in [scenario.slo, *(t.slo for t in scenario.tasks)])
    if not bounded:
        notes.append("the scenario sets no latency bound (slo.ttft_ms, tpot_ms, e2e_ms or "
                     "ttft_visible_ms): "
                     "the replica and rate searches have nothing to meet, so they were not "
                     "run; set one to size the fleet")
    if planner.sped_up_to_peak is not None:
        assert planner.peak_requests_per_s is not None
        traffic = scenario.traffic
        assert isinstance(traffic, DiurnalTraffic)
        notes.append(
            f"the simulated {duration_words(scenario.duration_s)} from "
            f"{_clock(traffic.start_hour)} "
            f"miss the traffic's daily peak ({planner.peak_requests_per_s:,.3g} requests/s "
            f"at {_clock(traffic.peak_hour)}), which the month's costs include: planning "
            f"runs the busiest stretch {planner.sped_up_to_peak:.3g}x faster, at the peak's "
            "rate, and a candidate that does not sustain it within the SLO is excluded; "
            "simulate the peak hours (traffic.start_hour, duration) to see its queues at "
            "length")
    if planner.light_draw > LIGHT_DRAW_NOTED:
        rate = simulation.scenario.long_run_requests_per_s
        assert rate is not None
        stretch = "simulated stream" if planner.whole_window else "busiest stretch"
        span_s = trace_span_s(scenario.traffic)
        why, cure = ("conversations the run's end cuts off, or a light draw",
                     "a longer duration brings the two closer")
        if span_s is not None and span_s < 0.9 * scenario.duration_s:
            why = (f"the trace's arrivals span {duration_words(span_s)} of the "
                   f"{duration_words(scenario.duration_s)} simulated, at its own rate, and "
                   f"the rest of the run is idle")
            cure = "a duration of the trace's span makes them one"
        notes.append(
            f"the {stretch} arrives at {rate / planner.light_draw:,.3g} requests/s, "
            f"{1 - 1 / planner.light_draw:.0%} below the {rate:,.3g} requests/s the "
            f"month's costs are at ({why}): the volume cases run it at multiples of the "
            f"costed rate; {cure}")
    say("planning: load curves")
    run_all(planner, jobs, [Point(n, factor=f) for n in names for f in LOAD_FACTORS])
    say("planning: replica and rate searches")
    # the longest first, so the last to start is a short one (a hybrid's search runs both
    # paths, an API's no queue); which process runs which never changes a result
    by_cost = sorted(names, key=lambda n: dearest_first(scenario.deployments[n]))
    searches = [("rate", n) for n in by_cost] + [("replicas", n) for n in local] \
        if bounded else []
    found = search_all(planner, jobs, searches)
    say("planning: replica counts on the whole stream")
    candidates = {n: found.get(("replicas", n)) for n in local}
    confirmed = confirm_all(planner, jobs, {n: r for n, r in candidates.items()
                                             if isinstance(r, int)}, simulation.deployments)
    replicas = {n: confirmed.get(n) for n in candidates}
    # the searches and load curves speed up the busiest stretch, so a factor is a multiple
    # of its rate (not of the run's mean: a diurnal day's peak is several times that)
    base_rate = len(planner.window) / planner.window_s
    notes += over_limit_notes(planner, simulation)
    per_deployment = {}
    for name in names:
        factor = found.get(("rate", name))
        at_limit = planner.cache.get(planner._normal(Point(name, factor=RATE_LIMIT)))
        if factor is None and at_limit is not None and at_limit.slo.met:
            notes.append(f"{name} met the SLO even at {RATE_LIMIT}x the traffic: no "
                         f"sustainable-rate limit found")
        per_deployment[name] = DeploymentPlan(
            min_replicas_meeting_slo=replicas.get(name),
            max_sustainable_requests_per_s=(base_rate * factor
                                            if isinstance(factor, float) else None),
            load_curve=[_load_point(planner.simulate(Point(name, factor=f)), base_rate * f)
                        for f in LOAD_FACTORS])
    notes += bursts_missed_notes(planner, simulation, per_deployment, base_rate)
    rate_factors = {name: value for (kind, name), value in found.items()
                    if kind == "rate" and isinstance(value, float)}
    window = PlanningWindow(requests=len(planner.window), start_s=planner.window_start_s,
                            span_s=planner.window_s, whole_stream=planner.whole_window,
                            sped_up_to_peak=planner.sped_up_to_peak,
                            light_draw=planner.light_draw if planner.light_draw > 1 else None)
    return Planning(deployments=per_deployment,
                    sensitivity=sensitivity(simulation, planner, rate_factors,
                                            peak=(window, per_deployment)),
                    right_sized=right_sized(simulation, planner, replicas,
                                            window, per_deployment),
                    window=window, notes=notes)


def _clock(hour: float) -> str:
    """A clock hour as HH:MM."""
    minutes = round(hour * 60) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"



def _load_point(result: DeploymentResult, requests_per_s: float) -> LoadPoint:
    return LoadPoint(requests_per_s=requests_per_s,
                     goodput_fraction=result.slo.goodput_fraction,
                     ttft_p95_ms=result.latency.ttft_ms.p95,
                     e2e_p95_ms=result.latency.e2e_ms.p95)
