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
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from llmplan.decide.candidates import candidate, overload_reason
from llmplan.decide.daily import past_the_daily_limit
from llmplan.decide.decision import decide
from llmplan.decide.peak import at_the_peak, daily_peak_requests_per_s
from llmplan.decide.pool import ignore_interrupts, stopped_on_interrupt
from llmplan.decide.recommendation import per_useful_usd, recommend
from llmplan.decide.what_if import quality_variants
from llmplan.perf.memory import build_error
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.results.decision import (
    Candidate,
    DeploymentPlan,
    LoadPoint,
    Planning,
    PlanningWindow,
    RightSized,
    RightSizedFleet,
    SensitivityCase,
)
from llmplan.results.simulation import DeploymentResult, RunInfo, SimulationResult
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import LocalDeployment, SimulationMode
from llmplan.sim.cloud import sustained_limit
from llmplan.sim.metrics import summarise_run
from llmplan.sim.ratelimit import Sustained
from llmplan.sim.run import run_steady, served_stream
from llmplan.traffic import RequestStream, build_request_stream
from llmplan.traffic.arrivals import DiurnalTraffic, duration_words, trace_span_s
from llmplan.traffic.stream import MAX_SIMULATED_REQUESTS

WINDOW_REQUESTS = 6000          # requests in the busiest stretch the searches simulate
LOAD_FACTORS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
RATE_BISECTIONS = 5             # the rate is found to 1/32 of its bracket
RATE_LIMIT = 1024               # a rate factor met at this is reported as no limit found
WHOLE_STEP_DOWN = 0.9           # a rate the whole stream fails: try 10% lower, then lower
WHOLE_BISECTIONS = 1            # and bisect that bracket once (5% of the rate, the lower end)
LONG_STRETCHES = 3              # a rate is checked on the busiest stretch this many times longer
RELAXATIONS = 10                # a stretch this many queue relaxation times long has settled
REPLICA_LIMIT = 256
#: A doubled fleet that keeps up and is still short of the SLO's goodput by this many
#: times what the doubling gained is taken to be one no size helps (confirm_replicas).
SHORTFALL_TO_GAIN = 8
#: A stage whose simulations would take less than this one after another runs without a
#: pool: forking workers, sending each task and its result through pipes and the workers'
#: caches filling apart cost about a tenth of a second on two cores, more than a small
#: scenario's whole planning (a 180-request hybrid: 0.16 s serial, 0.58 s with a pool).
#: The estimate is from planning's own runs (`Planner.s_per_request`).
POOL_WORTH_S = 0.5
#: simulations a replica or rate search runs besides the load curve's (doubling, then
#: bisections): its task's cost in stretch simulations, for POOL_WORTH_S
SEARCH_SIMULATIONS = 8
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Point:
    """One planning simulation: a deployment, its fleet size, a rate factor, which stream."""

    name: str
    replicas: int | None = None     # None: as in the scenario
    factor: float = 1.0
    whole: bool = False             # the whole stream (else the busiest stretch)
    long: bool = False              # the busiest stretch LONG_STRETCHES times as long


def busiest_stretch(stream: RequestStream, duration_s: float,
                    requests: int = WINDOW_REQUESTS) -> tuple[RequestStream, float, float]:
    """(the `requests` consecutive requests arriving in the shortest time, shifted to start
    at 0; their span in s; where they start in the scenario in s). The whole stream (and
    duration) when it has no more requests than that."""
    n = len(stream)
    if n <= requests:
        return stream, duration_s, 0.0
    arrivals = stream.arrival_s
    spans = arrivals[requests - 1:] - arrivals[:n - requests + 1]
    start = int(np.argmin(spans))
    stop = start + requests
    t0 = float(arrivals[start])
    # the span runs to where the next request would have arrived: a window of `requests`
    # arrivals at the stretch's own rate
    end = float(arrivals[stop]) if stop < n else duration_s
    window = stream.rows(slice(start, stop))
    return replace(window, arrival_s=window.arrival_s - t0), end - t0, t0


# a pool worker's planner: handed over when the pool forks (not pickled), with the cache
# as it was then
_WORKER: list[Planner] = []


def _start_worker(planner: Planner) -> None:
    ignore_interrupts()
    _WORKER[:] = [planner]


def _run_in_worker(point: Point) -> DeploymentResult:
    return _WORKER[0].simulate(point)


#: a whole-stream task: ("confirm", deployment, replicas the search found) or ("variant",
#: deployment, the variant case)
WholeTask = tuple[str, str, int]


def _whole_in_worker(task: WholeTask) -> tuple[object, dict[Point, DeploymentResult]]:
    planner = _WORKER[0]
    kind, name, number = task
    if kind == "variant":
        return planner.simulate_variant(number, name), {}
    return planner.confirm_replicas(name, number), planner.harvest()


def _search_in_worker(task: tuple[str, str]) -> tuple[str, str, object, dict[Point,
                                                                        DeploymentResult]]:
    planner = _WORKER[0]
    kind, name = task
    return kind, name, planner.search(kind, name), planner.harvest()


class Planner:
    """Memoised planning simulations of one evaluated scenario."""

    def __init__(self, loaded: LoadedScenario, simulation: SimulationResult,
                 window_requests: int = WINDOW_REQUESTS) -> None:
        self.loaded = loaded
        self.info = simulation.scenario
        self.seed = simulation.scenario.seed
        self.stream = build_request_stream(loaded.scenario, self.seed)
        self.duration_s = loaded.scenario.duration_s
        self.window, self.window_s, self.window_start_s = busiest_stretch(
            self.stream, self.duration_s, window_requests)
        self.long, self.long_s, _ = busiest_stretch(
            self.stream, self.duration_s, window_requests * LONG_STRETCHES)
        #: whether the stretch is the whole stream, before any speed-up (for the report)
        self.whole_window = self.window is self.stream
        #: when the simulated hours miss a diurnal traffic's daily peak, the stretches are
        #: sped up to its rate (requests/s, conversations' turns counted, as the stream
        #: does): every search judges a candidate at the peak
        self.sped_up_to_peak: float | None = None
        self.peak_requests_per_s = daily_peak_requests_per_s(loaded, simulation)
        pace = len(self.window) / self.window_s if self.window_s > 0 else 0.0
        if self.peak_requests_per_s is not None and pace > 0 \
                and self.peak_requests_per_s > pace * (1 + 1e-9):
            peak = self.peak_requests_per_s
            self.sped_up_to_peak = peak / pace
            same = self.long is self.window
            self.window, self.window_s = self.window.scaled(pace / peak), len(self.window) / peak
            # the traffic stays near its peak for hours: the longer stretch is the sped-up
            # busiest one again and again, back to back (the simulated hours' own longer
            # stretch, sped up to the peak on average, would rise past it along their curve)
            self.long, self.long_s = (self.window, self.window_s) if same else \
                (self.window.repeated(LONG_STRETCHES, self.window_s),
                 LONG_STRETCHES * self.window_s)
        else:
            self.peak_requests_per_s = None
        #: how much lighter the stretch arrives than the long-run rate the month's costs
        #: are at (conversations cut off by the run's end, a light draw), 1.0 when it is
        #: not: the volume cases speed it up by this much more, so "volume x2" is twice
        #: the costed volume
        long_run = simulation.scenario.long_run_requests_per_s
        self.light_draw = long_run / pace if self.sped_up_to_peak is None \
            and long_run is not None and pace > 0 and long_run > pace * (1 + 1e-9) else 1.0
        #: per autoscaled fleet (or hybrid on one), the replicas it ran on average over the
        #: evaluated run, at the stream's mean rate: what its autoscaler holds there
        self.running: dict[str, float] = {}
        for name, result in simulation.deployments.items():
            fleet = self._autoscaled(name)
            if fleet is not None and result.local is not None and len(self.stream):
                self.running[name] = (result.local.fleet.mean_active_replicas
                                      + result.local.fleet.mean_loading_replicas)
        #: wall seconds and requests of the simulations run in this process (`s_per_request`)
        self.timed_s, self.timed_requests = 0.0, 0
        self.cache: dict[Point, DeploymentResult] = {}
        self.fresh: dict[Point, DeploymentResult] = {}   # run here since the last harvest
        #: the sensitivity's cases that set local fleets up otherwise (`variant_cases`), and
        #: their whole-stream runs by (case, deployment)
        self._variant_cases: list[tuple[str, LoadedScenario, set[str]]] | None = None
        self.variants: dict[tuple[int, str], DeploymentResult] = {}
        #: per cloud API, the rate its limits sustain at the stretch's token mix, as the
        #: API serves it (a model that cannot answer without reasoning adds hidden tokens
        #: to a plain task's answers, which its limits count as the simulation does)
        self.limits: dict[str, Sustained] = {}
        for name, dep in loaded.scenario.deployments.items():
            if isinstance(dep, CloudDeployment):
                sustained = sustained_limit(dep, loaded.catalog.cloud_models[dep.model],
                                            served_stream(loaded, name, self.window),
                                            self.window_s)
                if sustained is not None:
                    self.limits[name] = sustained
        if simulation.scenario.mode == SimulationMode.FAST.value:
            # the evaluated run is the whole-stream point at the scenario's fleet (not a
            # cloud API's: planning starts its limits primed, the evaluated run full)
            for name, result in simulation.deployments.items():
                if isinstance(loaded.scenario.deployments[name], CloudDeployment):
                    continue
                self.cache[Point(name, whole=True)] = result
                if self.window is self.stream:
                    self.cache[Point(name)] = result

    def _normal(self, point: Point) -> Point:
        """The same simulation under one key (the scenario's own fleet size is None)."""
        replicas = point.replicas
        if replicas is not None and replicas == self.fleet_replicas(point.name):
            replicas = None
        whole = (point.whole or (point.long and self.long is self.stream)) \
            and self.window is not self.stream
        long = point.long and not whole and self.long is not self.window
        return Point(point.name, replicas, point.factor, whole, long)

    def fleet_replicas(self, name: str) -> int | None:
        dep = self.loaded.scenario.deployments[name]
        fleet = dep.local if isinstance(dep, HybridDeployment) else name
        local = self.loaded.scenario.deployments[fleet]
        return local.replicas if isinstance(local, LocalDeployment) else None

    def _autoscaled(self, name: str) -> LocalDeployment | None:
        """Deployment `name`'s local fleet when it autoscales (a hybrid's local part too)."""
        dep = self.loaded.scenario.deployments[name]
        fleet = self.loaded.scenario.deployments[dep.local] \
            if isinstance(dep, HybridDeployment) else dep
        return fleet if isinstance(fleet, LocalDeployment) \
            and fleet.autoscaling is not None else None

    def steady_replicas(self, name: str, requests_per_s: float) -> int | None:
        """The replicas an autoscaled fleet holds at a steady `requests_per_s`: as many as
        it ran over the evaluated run, in proportion to the rate, within its bounds (None:
        not an autoscaled fleet). A stretch of a month at that rate starts there, not at
        the scenario's starting count: the autoscaler caught up with a volume that lasts
        long before (its model loads take minutes, a stretch lasts seconds)."""
        fleet, running = self._autoscaled(name), self.running.get(name)
        if fleet is None or running is None or fleet.autoscaling is None:
            return None
        scale = fleet.autoscaling
        mean = len(self.stream) / self.duration_s
        wanted = math.ceil(running * requests_per_s / mean - 1e-9)
        return min(scale.max_replicas, max(scale.min_replicas, wanted))

    def simulate(self, point: Point) -> DeploymentResult:
        point = self._normal(point)
        if point in self.cache:
            return self.cache[point]
        stream, span = ((self.stream, self.duration_s) if point.whole
                        else (self.long, self.long_s) if point.long
                        else (self.window, self.window_s))
        replicas = point.replicas
        if replicas is None and not (point.whole and point.factor == 1.0) and span > 0:
            replicas = self.steady_replicas(point.name, len(stream) / span * point.factor)
        loaded = resized(self.loaded, point.name, replicas)
        scaled = stream.scaled(1.0 / point.factor)
        drain = _drain_s(self.loaded, span, point.factor)
        # planning always uses the fast scheduler (reference mode is for checking it)
        start = time.perf_counter()
        run = run_steady(loaded, point.name, scaled, span / point.factor, seed=self.seed,
                         mode=SimulationMode.FAST, drain_s=drain)
        result = summarise_run(run, scaled, loaded.scenario)
        self.timed_s += time.perf_counter() - start
        self.timed_requests += len(scaled)
        self.cache[point] = self.fresh[point] = result
        return result

    def limit_factor(self, name: str) -> float | None:
        """The rate factor at which the stretch reaches the rate a cloud API's limits
        sustain (None: not a cloud API, or no limits)."""
        sustained = self.limits.get(name)
        if sustained is None or not len(self.window):
            return None
        return sustained.requests_per_s / (len(self.window) / self.window_s)

    def within_limits(self, point: Point) -> bool:
        """The point's rate is one the deployment's API limits sustain."""
        limit = self.limit_factor(point.name)
        return limit is None or point.factor <= limit * (1 + 1e-9)

    def meets(self, point: Point) -> bool:
        """Within the API's limits and the SLO; a resized fleet also with full batches
        that keep up with the traffic's long-run rate (candidates.overload_reason), as the
        decision judges the fleet it sizes."""
        if not self.within_limits(point):
            return False
        found = self.simulate(point)
        return found.slo.met and (point.replicas is None or overload_reason(
            point.name, found, self.loaded, self.info) is None)

    def min_replicas(self, name: str) -> int | None:
        """Fewest replicas meeting the SLO on the busiest stretch (None past the limit)."""
        hi = 1
        while not self.meets(Point(name, replicas=hi)):
            if hi >= REPLICA_LIMIT:
                return None
            hi = min(REPLICA_LIMIT, hi * 2)
        lo = hi // 2   # does not meet (or 0)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.meets(Point(name, replicas=mid)):
                hi = mid
            else:
                lo = mid
        return hi

    def confirm_replicas(self, name: str, replicas: int) -> int | None:
        """The search's answer, raised until the whole stream meets the SLO too: one
        replica more, then doubled until it does, then bisected (as min_replicas
        searches). None past REPLICA_LIMIT, or once doubling a fleet that keeps up with
        the traffic gains too little to ever reach the SLO's goodput
        (`_size_does_not_help`).

        One more first: the busiest stretch is most of what the day asks, so the day
        mostly needs the stretch's answer or one replica more, and a whole-stream run is
        the dearest simulation planning makes (a 6-hour agent stream took 4 s at each
        fleet size): doubling straight away had run 8, then 6, to find 5 after 4."""
        lo, hi = replicas - 1, replicas       # lo: known to miss, or below the answer
        while not self.meets(Point(name, replicas=hi, whole=True)):
            if hi >= REPLICA_LIMIT or self._size_does_not_help(name, lo, hi):
                return None
            lo, hi = hi, min(REPLICA_LIMIT, hi + 1 if hi == replicas else hi * 2)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.meets(Point(name, replicas=mid, whole=True)):
                hi = mid
            else:
                lo = mid
        return hi

    def met_already(self, name: str, replicas: int) -> bool:
        """Whether the whole stream at `replicas` is simulated already and meets the SLO
        (so `confirm_replicas` returns `replicas` without a run)."""
        point = Point(name, replicas=replicas, whole=True)
        return self._normal(point) in self.cache and self.meets(point)

    def _size_does_not_help(self, name: str, fewer: int, more: int) -> bool:
        """Whether `more` replicas (twice `fewer`, both missing on the whole stream) keep
        up with the traffic and gained so little over `fewer` that the share still short
        of the SLO's is SHORTFALL_TO_GAIN times that gain: each doubling gains less than
        the one before (what misses on a fleet that keeps up is what a larger one only
        spreads thinner: long prompts beside short ones, or ones past the TTFT bound on an
        idle GPU), so no size reaches it."""
        if fewer < 1 or more < 2 * fewer:
            return False
        larger = self.simulate(Point(name, replicas=more, whole=True))
        smaller = self.simulate(Point(name, replicas=fewer, whole=True))
        met, before = larger.slo.goodput_fraction, smaller.slo.goodput_fraction
        if met is None or before is None:
            return False
        kept_up = overload_reason(name, larger, self.loaded, self.info) is None
        short = larger.slo.min_goodput_fraction - met
        return kept_up and short > SHORTFALL_TO_GAIN * max(0.0, met - before)

    def capacity_factor(self, name: str, *, scaled_out: bool = False) -> float | None:
        """The rate factor at which the stream's mean rate reaches what a fixed local fleet
        finishes with every batch full (None: not a local fleet, or one that autoscales
        unless `scaled_out`: then what its max_replicas finish so, each replica at the
        run's full-batch rate over the replicas it ran). Past it a queue grows for as long
        as the traffic lasts, however well a short stretch fares."""
        dep = self.loaded.scenario.deployments[name]
        if not isinstance(dep, LocalDeployment) or not len(self.stream) \
                or self.duration_s <= 0 or (dep.autoscaling is not None and not scaled_out):
            return None
        local = self.simulate(Point(name)).local
        if local is None or local.utilisation.full_batch_requests_per_s <= 0:
            return None
        full = local.full_batch_requests_per_s_with(dep.autoscaling.max_replicas) \
            if dep.autoscaling is not None else local.utilisation.full_batch_requests_per_s
        return full / self.mean_rate() if full is not None else None

    def mean_rate(self) -> float:
        """The stream's mean requests/s a long overload is judged by: the run's own, or,
        when the stretches were sped up to a daily peak the run misses, the peak's (the
        traffic stays near it for hours)."""
        if self.peak_requests_per_s is not None:
            return self.peak_requests_per_s
        return len(self.stream) / self.duration_s

    def max_rate_factor(self, name: str) -> float | None:
        """Largest rate factor with the SLO met on the busiest stretch and on a stretch
        LONG_STRETCHES times as long (`_held_on_a_longer_stretch`), and the mean rate
        within the fleet's full-batch throughput, at its max_replicas when it autoscales
        (None under 1/64)."""
        ceiling = self.capacity_factor(name, scaled_out=True)
        factor = self._max_meeting_factor(name)
        if factor is None and ceiling is not None and 1 / 64 <= ceiling <= RATE_LIMIT \
                and self.meets(Point(name, factor=ceiling)):
            # met even at RATE_LIMIT: a stretch short enough to fit one full batch at any
            # speed-up says nothing of the traffic kept up; the full batches' throughput
            # bounds it, as it bounds a factor found below the limit
            factor = ceiling
        if ceiling is not None and factor is not None and factor > ceiling:
            factor = ceiling if self.meets(Point(name, factor=ceiling)) else \
                self._bisect_down(name, ceiling)
        held = None if factor is None else self._held_on_a_longer_stretch(name, factor)
        return None if held is None else self._met_as_shown(name, held)

    def _met_as_shown(self, name: str, factor: float) -> float | None:
        """`factor` when the SLO also holds at it to two significant digits, rounded down
        (as the volume cases show it); else the largest such factor under it that holds.
        Close to capacity goodput wavers around the bound from one speed-up to the next
        (retail's hybrid: met at 1.61x and 1.5x, missed at 1.55x and 1.6x), so a
        bisection can end on a lucky factor just above rates the SLO misses."""
        long = not self._settles_within_the_stretch(name, factor)
        shown = _two_digits_down(factor)
        while not (self.meets(Point(name, factor=shown))
                   and (not long or self.meets(Point(name, factor=shown, long=True)))):
            shown = _two_digits_down(shown - 10.0 ** (math.floor(math.log10(shown)) - 1))
            if shown < 1 / 64:
                return None
        return factor if shown == _two_digits_down(factor) else shown

    def _settles_within_the_stretch(self, name: str, factor: float) -> bool:
        """Whether the stretch is long enough for the fleet's queue to reach its steady
        state at `factor`: an API has no queue of its own, and a fixed fleet loaded to rho
        of its full-batch throughput relaxes in about 1 / (1 - sqrt(rho))^2 mean service
        times (the M/M/1 queue's relaxation time, Morse 1955): the stretch must hold
        RELAXATIONS of them. A hybrid or an autoscaled fleet is checked on a longer
        stretch."""
        if isinstance(self.loaded.scenario.deployments[name], CloudDeployment):
            return True
        ceiling = self.capacity_factor(name)
        if ceiling is None or not len(self.window):
            return False
        # the stretch's rate against the fleet's throughput (capacity_factor is against
        # the whole stream's mean rate)
        rho = factor / ceiling * (len(self.window) / self.window_s) / self.mean_rate()
        return rho < 1 and (1 - math.sqrt(rho)) ** 2 * len(self.window) >= RELAXATIONS

    def _held_on_a_longer_stretch(self, name: str, factor: float) -> float | None:
        """`factor`, or the largest below it at which the busiest stretch LONG_STRETCHES
        times as long (the whole stream when shorter) meets the SLO too. The busiest
        stretch starts with an empty queue: close to the fleet's capacity a queue takes
        longer than the stretch to build (at 97% of it, an hour grows one tens of times
        what a few minutes do), so a rate the stretch holds can still be one the
        traffic, kept up, does not."""
        if self._settles_within_the_stretch(name, factor) or \
                self.meets(Point(name, factor=factor, long=True)):
            return factor
        hi, lo = factor, factor * WHOLE_STEP_DOWN
        while not self.meets(Point(name, factor=lo, long=True)):
            hi, lo = lo, lo * WHOLE_STEP_DOWN
            if lo < 1 / 64:
                return None
        return self._bisect(name, lo, hi, WHOLE_BISECTIONS, long=True)[0]

    def _bisect_down(self, name: str, hi: float) -> float | None:
        """The largest factor under `hi` (which fails) meeting the SLO, to 1/32 of the
        bracket (None under 1/64)."""
        bracket = self._halve_until_met(name, hi)
        return None if bracket is None else self._bisect(name, *bracket)[0]

    def _halve_until_met(self, name: str, hi: float) -> tuple[float, float] | None:
        """(lo, hi): halving from a failing `hi` down to a factor that meets the SLO."""
        lo = hi / 2
        while not self.meets(Point(name, factor=lo)):
            hi, lo = lo, lo / 2
            if lo < 1 / 64:
                return None
        return lo, hi

    def _bisect(self, name: str, lo: float, hi: float, steps: int = RATE_BISECTIONS, *,
                long: bool = False) -> tuple[float, float]:
        """Bisection of [lo met, hi failed] to 1/2^steps of it, on the busiest stretch (or
        the longer one): the last bracket."""
        for _ in range(steps):
            mid = (lo + hi) / 2
            if self.meets(Point(name, factor=mid, long=long)):
                lo = mid
            else:
                hi = mid
        return lo, hi

    def _max_meeting_factor(self, name: str) -> float | None:
        """Largest rate factor with the SLO met on the busiest stretch (None under 1/64)."""
        met = [f for f in LOAD_FACTORS if self.meets(Point(name, factor=f))]
        failed = [f for f in LOAD_FACTORS if f not in met]
        if met and (not failed or max(met) > max(failed)):
            lo, hi = max(met), max(met) * 2
            while self.meets(Point(name, factor=hi)):
                if hi >= RATE_LIMIT:
                    return None
                lo, hi = hi, hi * 2
        elif met:
            lo = max(met)
            hi = min(f for f in failed if f > lo)
        else:
            bracket = self._halve_until_met(name, min(LOAD_FACTORS))
            if bracket is None:
                return None
            lo, hi = bracket
        lo, hi = self._bisect(name, lo, hi)
        limit = self.limit_factor(name)
        if limit is not None and lo < limit < hi and self.meets(Point(name, factor=limit)):
            return limit        # the API's limit, exactly, when it is what binds
        return lo

    def search(self, kind: str, name: str) -> int | float | None:
        """One search: "replicas" (min_replicas) or "rate" (max_rate_factor)."""
        return self.min_replicas(name) if kind == "replicas" else self.max_rate_factor(name)

    def variant_cases(self) -> list[tuple[str, LoadedScenario, set[str]]]:
        """The sensitivity's cases with local fleets set up otherwise (prefix caching
        switched, a mixture of experts or PCIe cards laid out the other way): each case's
        label, scenario and the deployments it changes."""
        if self._variant_cases is None:
            self._variant_cases = [case for case in (
                _prefix_caching_toggled(self), _layout_flipped(self), _stages_flipped(self))
                if case is not None]
        return self._variant_cases

    def variant_runs(self, names: Iterable[str]) -> list[tuple[int, str]]:
        """(case, deployment) of every whole-stream run the variant cases need among
        `names` (the evaluated deployments)."""
        evaluated = list(names)
        return [(case, name) for case, (_, _, affected) in enumerate(self.variant_cases())
                for name in evaluated if name in affected]

    def simulate_variant(self, case: int, name: str) -> DeploymentResult:
        """Deployment `name` as variant case `case` sets it up, on the whole stream at
        the scenario's rate and fleet sizes (run once)."""
        if (case, name) not in self.variants:
            changed = self.variant_cases()[case][1]
            self.variants[case, name] = simulate_one(changed, name, seed=self.seed)[0]
        return self.variants[case, name]

    def s_per_request(self) -> float | None:
        """Wall seconds a planning simulation has taken per request here (None: none run
        yet). Not the evaluated run's: its time includes the process's warm-up (tables
        built, modules loaded), ten times a small scenario's simulation."""
        return self.timed_s / self.timed_requests if self.timed_requests else None

    def work_s(self, runs: int, requests: int) -> float | None:
        """About how long `runs` simulations of `requests` requests each take one after
        another, in s (None: not known)."""
        rate = self.s_per_request()
        return None if rate is None else rate * runs * requests

    def harvest(self) -> dict[Point, DeploymentResult]:
        fresh, self.fresh = self.fresh, {}
        return fresh


def resized(loaded: LoadedScenario, name: str, replicas: int | None) -> LoadedScenario:
    """The scenario with deployment `name`'s local fleet at `replicas` (None: unchanged)."""
    scenario = loaded.scenario
    if replicas is None:
        return loaded
    dep = scenario.deployments[name]
    fleet = dep.local if isinstance(dep, HybridDeployment) else name
    local = scenario.deployments[fleet]
    assert isinstance(local, LocalDeployment)
    deployments = dict(scenario.deployments)
    deployments[fleet] = local.model_copy(update={"replicas": replicas})
    return LoadedScenario(scenario.model_copy(update={"deployments": deployments}),
                          loaded.catalog, loaded.path)


def scaled_stream(loaded: LoadedScenario, rate_factor: float,
                  seed: int | None = None) -> RequestStream:
    """The scenario's traffic at `rate_factor` times its rate over its whole duration: the
    stream sped up, and repeated back to back until the duration is full (at 20x, twenty
    copies of a twentieth of the time), so an overload lasts as long as the scenario and
    its queue builds as it would; slowed down, the part that fits the duration."""
    stream = build_request_stream(loaded.scenario, seed)
    duration = loaded.scenario.duration_s
    if not len(stream) or rate_factor == 1.0:
        return stream
    period = duration / rate_factor
    copies = math.ceil(rate_factor)
    if copies * len(stream) > MAX_SIMULATED_REQUESTS:
        raise ValueError(f"{rate_factor:g} times the traffic is about "
                         f"{rate_factor * len(stream):,.0f} requests, more than the "
                         f"{MAX_SIMULATED_REQUESTS:,} a run simulates")
    repeated = stream.scaled(1.0 / rate_factor).repeated(copies, period)
    return repeated.rows(np.flatnonzero(repeated.arrival_s < duration))


def simulate_one(loaded: LoadedScenario, name: str, *, rate_factor: float = 1.0,
                 seed: int | None = None) -> tuple[DeploymentResult, int]:
    """Summary of one deployment on the scenario's traffic at `rate_factor` times its rate
    over its whole duration (`scaled_stream`: what a sweep point simulates), and the
    requests that was."""
    stream = scaled_stream(loaded, rate_factor, seed)
    if not len(stream):
        raise ValueError(f"the traffic at x{rate_factor:g} draws no request in "
                         f"{loaded.scenario.duration_s:g} s: expected a larger scale (or a "
                         f"longer duration)")
    duration = loaded.scenario.duration_s
    run = run_steady(loaded, name, stream, duration, seed=seed, mode=SimulationMode.FAST,
                     drain_s=loaded.scenario.simulation.drain_s)
    return summarise_run(run, stream, loaded.scenario), len(stream)


def _drain_s(loaded: LoadedScenario, span_s: float, factor: float) -> float:
    """Time to finish after the last arrival of `span_s` of traffic sped up `factor` times:
    the scenario's drain, else the unscaled span (more traffic comes sooner, but each answer
    takes as long; a slowed-down span keeps its own longer length)."""
    drain = loaded.scenario.simulation.drain_s
    return max(span_s, span_s / factor) if drain is None else drain


#: Modules whose threads do not survive a fork (gRPC, which Pulumi's engine and mocks run):
#: with one of them loaded, planning runs its simulations one after another instead.
FORK_UNSAFE = ("grpc",)


def _dearest_first(deployment: object) -> int:
    """A sort key by how long a deployment's simulation takes: a hybrid runs both paths,
    an API has no queue."""
    order: dict[type, int] = {HybridDeployment: 0, LocalDeployment: 1, CloudDeployment: 2}
    return order.get(type(deployment), 1)


def _pool(planner: Planner, jobs: int, tasks: int,
          work_s: float | None = None) -> ProcessPoolExecutor | None:
    """A pool forked now, so its workers start from the planner's cache as it is; None
    when the stage's work (`work_s` one after another, when known) is too little to gain
    from one (POOL_WORTH_S)."""
    if min(jobs, tasks) <= 1 or "fork" not in multiprocessing.get_all_start_methods() \
            or any(name in sys.modules for name in FORK_UNSAFE) \
            or (work_s is not None and work_s < POOL_WORTH_S):
        return None
    return ProcessPoolExecutor(max_workers=min(jobs, tasks),
                               mp_context=multiprocessing.get_context("fork"),
                               initializer=_start_worker, initargs=(planner,))


def _run_all(planner: Planner, jobs: int, points: Iterable[Point]) -> None:
    todo = [p for p in dict.fromkeys(planner._normal(p) for p in points)
            if p not in planner.cache]
    if jobs > 1 and len(todo) > 2 and planner.s_per_request() is None:
        # one run here first, the dearest kind at the scenario's rate: its time tells
        # whether the rest gains from a pool (which starts with it in its cache)
        deployments = planner.loaded.scenario.deployments
        first = min(todo, key=lambda p: (_dearest_first(deployments[p.name]),
                                         abs(math.log(p.factor))))
        planner.simulate(first)
        todo.remove(first)
    pool = _pool(planner, jobs, len(todo), planner.work_s(len(todo), len(planner.window)))
    if pool is None:
        for point in todo:
            planner.simulate(point)
        return
    with stopped_on_interrupt(pool):
        for point, result in zip(todo, pool.map(_run_in_worker, todo), strict=True):
            planner.cache[point] = result


def _search_all(planner: Planner, jobs: int,
                searches: list[tuple[str, str]]) -> dict[tuple[str, str], object]:
    found: dict[tuple[str, str], object] = {}
    pool = _pool(planner, jobs, len(searches), planner.work_s(
        len(searches) * SEARCH_SIMULATIONS, len(planner.window)))
    if pool is None:
        for kind, name in searches:
            found[kind, name] = planner.search(kind, name)
        return found
    with stopped_on_interrupt(pool):
        for kind, name, value, fresh in pool.map(_search_in_worker, searches):
            found[kind, name] = value
            planner.cache.update(fresh)
    return found


def _confirm_all(planner: Planner, jobs: int, candidates: dict[str, int],
                 names: Iterable[str]) -> dict[str, int | None]:
    """`confirm_replicas` of each fleet's searched count, and the variant cases' runs of
    the deployments `names` (what the sensitivity needs), sharing the cores: all are
    whole-stream runs, the dearest planning makes, and independent of one another (a
    fleet's confirmation runs its sizes one after another). One at a time without a
    pool, the variants left to the sensitivity. A count whose run is made already and
    meets the SLO (the scenario's own fleet) is confirmed here: no task to fork for."""
    confirmed: dict[str, int | None] = {
        name: n for name, n in candidates.items() if planner.met_already(name, n)}
    tasks: list[WholeTask] = [("confirm", name, n) for name, n in candidates.items()
                              if name not in confirmed]
    tasks += [("variant", name, case) for case, name in planner.variant_runs(names)
              if (case, name) not in planner.variants]
    pool = _pool(planner, jobs, len(tasks), planner.work_s(len(tasks), len(planner.stream)))
    if pool is None:
        return {name: confirmed[name] if name in confirmed
                else planner.confirm_replicas(name, n) for name, n in candidates.items()}
    with stopped_on_interrupt(pool):
        for (kind, name, number), (value, fresh) in zip(
                tasks, pool.map(_whole_in_worker, tasks), strict=True):
            if kind == "variant":
                assert isinstance(value, DeploymentResult)
                planner.variants[number, name] = value
            else:
                assert value is None or isinstance(value, int)
                confirmed[name] = value
                planner.cache.update(fresh)
    return confirmed


def _reprice(loaded: LoadedScenario, cloud_factor: float, gpu_factor: float) -> LoadedScenario:
    catalog = loaded.catalog
    gpus = {k: g.model_copy(update={
        "purchase_usd": g.purchase_usd * gpu_factor,
        "rental_usd_per_gpu_hour": g.rental_usd_per_gpu_hour * gpu_factor,
        "reserved_usd_per_gpu_hour": g.reserved_usd_per_gpu_hour * gpu_factor})
        for k, g in catalog.gpus.items()}
    clouds = {k: m.model_copy(update={
        "input_usd_per_mtok": m.input_usd_per_mtok * cloud_factor,
        "output_usd_per_mtok": m.output_usd_per_mtok * cloud_factor,
        "cached_input_usd_per_mtok": (m.cached_input_usd_per_mtok * cloud_factor
                                      if m.cached_input_usd_per_mtok is not None else None),
        "cache_write_usd_per_mtok": (m.cache_write_usd_per_mtok * cloud_factor
                                     if m.cache_write_usd_per_mtok is not None else None),
        "long_context": (m.long_context.model_copy(update={
            "input_usd_per_mtok": m.long_context.input_usd_per_mtok * cloud_factor,
            "output_usd_per_mtok": m.long_context.output_usd_per_mtok * cloud_factor,
            "cached_input_usd_per_mtok": (
                m.long_context.cached_input_usd_per_mtok * cloud_factor
                if m.long_context.cached_input_usd_per_mtok is not None else None)})
            if m.long_context is not None else None)})
        for k, m in catalog.cloud_models.items()}
    # the provider's fees per request and per tool call are its prices too (egress,
    # observability and reviews are not the provider's)
    deployments = {name: dep.model_copy(update={"costs": dep.costs.model_copy(update={
        "per_request_usd": dep.costs.per_request_usd * cloud_factor,
        "usd_per_tool_call": dep.costs.usd_per_tool_call * cloud_factor})})
        if isinstance(dep, CloudDeployment) else dep
        for name, dep in loaded.scenario.deployments.items()}
    return replace(loaded, catalog=catalog.model_copy(update={"gpus": gpus,
                                                             "cloud_models": clouds}),
                   scenario=loaded.scenario.model_copy(update={"deployments": deployments}))


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
    _run_all(planner, jobs, [Point(n, factor=f) for n in names for f in LOAD_FACTORS])
    say("planning: replica and rate searches")
    # the longest first, so the last to start is a short one (a hybrid's search runs both
    # paths, an API's no queue); which process runs which never changes a result
    by_cost = sorted(names, key=lambda n: _dearest_first(scenario.deployments[n]))
    searches = [("rate", n) for n in by_cost] + [("replicas", n) for n in local] \
        if bounded else []
    found = _search_all(planner, jobs, searches)
    say("planning: replica counts on the whole stream")
    candidates = {n: found.get(("replicas", n)) for n in local}
    confirmed = _confirm_all(planner, jobs, {n: r for n, r in candidates.items()
                                             if isinstance(r, int)}, simulation.deployments)
    replicas = {n: confirmed.get(n) for n in candidates}
    # the searches and load curves speed up the busiest stretch, so a factor is a multiple
    # of its rate (not of the run's mean: a diurnal day's peak is several times that)
    base_rate = len(planner.window) / planner.window_s
    notes += _over_limit_notes(planner, simulation)
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
    notes += _bursts_missed_notes(planner, simulation, per_deployment, base_rate)
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


def right_sized(simulation: SimulationResult, planner: Planner,
                replicas: dict[str, int | None], window: PlanningWindow | None = None,
                plans: dict[str, DeploymentPlan] | None = None) -> RightSized | None:
    """The decision again with each fixed local fleet (a hybrid's local part too) at the
    fewest replicas meeting the SLO on the whole stream, each candidate resized on its own
    (the runs the replica search confirmed, so no new simulation); None when no fleet's
    size changes. A fleet bought larger than it needs, or too small to meet the SLO, is
    what this shows: the answer as configured prices the fleets as written."""
    loaded = planner.loaded
    fleets: dict[str, RightSizedFleet] = {}
    candidates: dict[str, Candidate] = {}
    for name, summary in simulation.deployments.items():
        n, now = replicas.get(name), planner.fleet_replicas(name)
        dep = loaded.scenario.deployments[name]
        fleet = dep.local if isinstance(dep, HybridDeployment) else name
        local = loaded.scenario.deployments[fleet]
        if n is None or now is None or n == now or not isinstance(local, LocalDeployment) \
                or local.autoscaling is not None:
            candidates[name] = candidate(name, summary, loaded, simulation.scenario)
            continue
        resized_run = planner.simulate(Point(name, replicas=n, whole=True))
        candidates[name] = found = candidate(name, resized_run, resized(loaded, name, n),
                                             simulation.scenario)
        fleets[name] = RightSizedFleet(fleet=fleet, replicas=n, simulated_replicas=now,
                                       monthly_usd=found.cost.monthly_usd,
                                       usd_per_useful_result=found.cost.usd_per_useful_result,
                                       feasible=found.feasible)
    if not fleets:
        return None
    if window is not None and plans is not None:
        # a fleet resized by the replica search meets the SLO at the stretch's pace, the
        # daily peak's when the run misses it; the others are judged as in the decision
        kept = {n: c for n, c in candidates.items() if n in fleets}
        candidates = {**at_the_peak({n: c for n, c in candidates.items() if n not in fleets},
                                    window, plans), **kept}
        candidates = {n: candidates[n] for n in simulation.deployments}
    # past its API's daily limit a hybrid is its fleet alone on the whole traffic: a run of
    # that fleet shows it only at as many replicas as the hybrid's, or fewer
    size = {n: fleets[n].replicas if n in fleets else planner.fleet_replicas(n)
            for n in candidates}
    runs: dict[str, Candidate | None] = {}
    for name in candidates:
        dep = loaded.scenario.deployments[name]
        if isinstance(dep, HybridDeployment) and dep.local in candidates:
            has, alone = size[name], size[dep.local]
            runs[name] = candidates[dep.local] if has is None or alone is None \
                or alone <= has else None
    candidates = past_the_daily_limit(candidates, loaded, simulation.scenario, runs)
    return RightSized(fleets=fleets, recommendation=recommend(candidates, loaded))


def _over_limit_notes(planner: Planner, simulation: SimulationResult) -> list[str]:
    """Cloud APIs whose limits do not sustain the scenario's own busiest stretch at the
    costed volume (the stretch as it arrives, times the light draw)."""
    notes = []
    costed_pace = len(planner.window) / planner.window_s * planner.light_draw
    for name in planner.limits:
        limit = planner.limit_factor(name)
        if limit is None or limit >= planner.light_draw * (1 - 1e-9):
            continue
        sustained = planner.limits[name]
        dep = planner.loaded.scenario.deployments[name]
        assert isinstance(dep, CloudDeployment)
        met = simulation.deployments[name].slo.met
        needed = sustained.needed_for(costed_pace)
        notes.append(
            f"{name}: {dep.model}'s limits ({sustained.limit}) sustain "
            f"{sustained.requests_per_s:,.2f} requests/s at this token mix, less than the "
            f"traffic's busiest stretch "
            f"({costed_pace:,.2f}/s"
            + (" with the costed volume" if planner.light_draw > 1 else "") + "), "
            f"so at most {limit * _mean_rate(planner, simulation):,.2f}/s on average "
            "with this traffic's shape (the planning's max sustainable rate is the first: "
            "the busiest stretch's pace)"
            + (_met_anyway(simulation.deployments[name]) if met else "")
            + f"; raise the account's tier or its limits to at least {needed} ("
            + ", ".join(f"limits.{key}" for key in sustained.fields_for(costed_pace))
            + ")")
    return notes


def _mean_rate(planner: Planner, simulation: SimulationResult) -> float:
    """The traffic's mean requests/s the busiest stretch stands for: the run's own, or the
    day's when the stretch was sped up to a daily peak the run misses."""
    long_run = simulation.scenario.long_run_requests_per_s
    if planner.sped_up_to_peak is not None and long_run is not None:
        return long_run
    return len(planner.stream) / planner.duration_s


def _met_anyway(result: DeploymentResult) -> str:
    """Why a run over its API's sustained rate still met the SLO."""
    cloud = result.cloud
    if cloud is not None and cloud.throttled_requests:
        return "; the run still met the SLO, its refused calls retried in time"
    return ("; the run met the SLO without a refusal: it starts with the limit's whole "
            "allowance, which it did not spend")


def _load_point(result: DeploymentResult, requests_per_s: float) -> LoadPoint:
    return LoadPoint(requests_per_s=requests_per_s,
                     goodput_fraction=result.slo.goodput_fraction,
                     ttft_p95_ms=result.latency.ttft_ms.p95,
                     e2e_p95_ms=result.latency.e2e_ms.p95)


def _prefix_caching_toggled(planner: Planner) -> tuple[str, LoadedScenario, set[str]] | None:
    """When prompts share prefixes: the scenario with every local engine's prefix caching
    switched (off when any has it on, else to vLLM's), the case's label, and the deployments
    it changes (local fleets and the hybrids that use them). None otherwise."""
    if planner.stream.prefix_group is None:
        return None
    scenario = planner.loaded.scenario
    local = {name: dep for name, dep in scenario.deployments.items()
             if isinstance(dep, LocalDeployment)}
    if not local:
        return None
    on = any(dep.engine.prefix_caching != "off" for dep in local.values())
    policy = "off" if on else "vllm"
    changed, affected = _with_fleets(planner, {
        name: dep.model_copy(update={"engine": dep.engine.model_copy(
            update={"prefix_caching": policy})}) for name, dep in local.items()})
    return f"local prefix caching {'off' if on else 'on'}", changed, affected


def _with_fleets(planner: Planner, fleets: dict[str, LocalDeployment]
                 ) -> tuple[LoadedScenario, set[str]]:
    """The scenario with these local fleets in place of its own, and the deployments that
    changes: the fleets and the hybrids that use them."""
    scenario = planner.loaded.scenario
    affected = set(fleets) | {name for name, dep in scenario.deployments.items()
                              if isinstance(dep, HybridDeployment) and dep.local in fleets}
    deployments = {**scenario.deployments, **fleets}
    return replace(planner.loaded, scenario=scenario.model_copy(
        update={"deployments": deployments})), affected


def _buildable(planner: Planner, fleets: dict[str, LocalDeployment]
               ) -> tuple[LoadedScenario, set[str]] | None:
    """`_with_fleets` of those of `fleets` that can be built (None: none can)."""
    catalog = planner.loaded.catalog
    kept = {name: dep for name, dep in fleets.items() if build_error(dep.setup(catalog)) is None}
    return _with_fleets(planner, kept) if kept else None


def _layout_flipped(planner: Planner) -> tuple[str, LoadedScenario, set[str]] | None:
    """When a local fleet runs a mixture of experts over several GPUs with the roofline
    step model: the scenario with those fleets' replicas laid out the other way (data-parallel
    ranks with the experts spread, vLLM's --data-parallel-size with --enable-expert-parallel,
    when any runs one tensor-parallel engine; else every such fleet as one), the case's
    label, and the deployments it changes (the fleets and the hybrids that use them). Fleets
    the other layout cannot run (a drafter, a model that does not fit) keep theirs; None
    when none changes."""
    scenario, catalog = planner.loaded.scenario, planner.loaded.catalog
    moe = {name: dep for name, dep in scenario.deployments.items()
           if isinstance(dep, LocalDeployment) and dep.tp > 1 and dep.pp == 1
           and dep.model in catalog.models and catalog.models[dep.model].is_moe
           and isinstance(dep.step_time, RooflineStepTime)}
    if not moe:
        return None
    to_ranks = any(not dep.engine.data_parallel_attention for dep in moe.values())
    update: dict[str, object] = {"data_parallel_attention": to_ranks}
    if to_ranks:
        update["expert_parallel"] = True
    flipped = _buildable(planner, {
        name: dep.model_copy(update={"engine": dep.engine.model_copy(update=update)})
        for name, dep in moe.items() if dep.engine.data_parallel_attention != to_ranks})
    if flipped is None:
        return None
    label = ("mixture-of-experts fleets as data-parallel ranks (experts spread)" if to_ranks
             else "mixture-of-experts fleets as one tensor-parallel engine per replica")
    return label, *flipped


def _stages_flipped(planner: Planner) -> tuple[str, LoadedScenario, set[str]] | None:
    """When a local fleet spreads each replica over several PCIe cards (no NVLink) with the
    roofline step model: the scenario with those replicas' GPUs as pipeline stages of one
    GPU each when any runs tensor-parallel (vLLM's advice for GPUs without NVLink: a stage
    hands one hidden state on where tensor parallelism all-reduces every layer's), else
    every such fleet as one tensor-parallel group; the case's label and the deployments it
    changes. Fleets the other layout cannot run keep theirs; None when none changes."""
    scenario, catalog = planner.loaded.scenario, planner.loaded.catalog
    pcie = {name: dep for name, dep in scenario.deployments.items()
            if isinstance(dep, LocalDeployment) and dep.gpus_per_replica > 1
            and dep.gpu in catalog.gpus and catalog.gpus[dep.gpu].interconnect == "pcie"
            and not dep.engine.data_parallel_attention
            and isinstance(dep.step_time, RooflineStepTime)}
    to_stages = any(dep.pp == 1 for dep in pcie.values())
    flipped = _buildable(planner, {
        name: dep.model_copy(update={"tp": 1, "pp": dep.gpus_per_replica} if to_stages
                             else {"tp": dep.gpus_per_replica, "pp": 1})
        for name, dep in pcie.items() if (dep.pp == 1) == to_stages})
    if flipped is None:
        return None
    label = ("fleets on PCIe cards as pipeline stages (a GPU each)" if to_stages
             else "fleets on PCIe cards as one tensor-parallel group per replica")
    return label, *flipped


FILL_FRACTION = 0.8      # the "well used" point: 80% of full batches (latency still bounded)


def _fill_case(simulation: SimulationResult, planner: Planner,
               rate_factors: dict[str, float]) -> SensitivityCase | None:
    """The winner at the volume that fills the cheapest local fleet (per useful result):
    the most it serves within the SLO (the rate search), else FILL_FRACTION of its
    full-batch throughput. Local GPUs pay off when they are used."""
    verdict = decide(simulation, planner.loaded)
    local = [(per_useful_usd(c), name)
             for name, c in verdict.deployments.items()
             if c.local is not None and c.local.utilisation.load_fraction > 0]
    if not local:
        return None
    _, name = min(local)
    if name in rate_factors:
        factor, how = rate_factors[name], f"the most {name} serves within the SLO"
    elif planner.sped_up_to_peak is not None:
        return None     # its load fraction is the quiet run's, not the peak's
    else:
        use = verdict.deployments[name].local.utilisation   # type: ignore[union-attr]
        factor = FILL_FRACTION / use.load_fraction
        how = f"runs {name}'s GPUs at {FILL_FRACTION:.0%} of full batches"
    factor = _two_digits_down(factor)
    # the volume, over the costed one, that the stretch sped up `factor` times stands for
    volume = _two_digits_down(factor / planner.light_draw)
    if volume < 1.2 or factor > RATE_LIMIT or any(abs(volume / f - 1) < 0.1
                                                  for f in VOLUME_FACTORS):
        return None
    info = _at_volume(simulation.scenario.sped_up(factor, requests=len(planner.window),
                                                  span_s=planner.window_s),
                      simulation.scenario, volume)
    varied = SimulationResult(scenario=info, deployments={
        other: planner.simulate(Point(other, factor=factor))
        for other in simulation.deployments})
    result = decide(varied, planner.loaded).recommendation
    return SensitivityCase(change=f"volume x{volume:g} ({how})", winner=result.deployment,
                           ranking=result.ranking)


def _bursts_missed_notes(planner: Planner, simulation: SimulationResult,
                         plans: dict[str, DeploymentPlan], pace: float) -> list[str]:
    """Candidates that meet the SLO over the run but sustain less than the busiest
    stretch's pace at the costed volume (`pace`, as simulated, times the light draw):
    what Planning.monthly_capacity, and so the break-even's "serves at most", holds the
    sustainable rate to. A stretch sped up to a daily peak excludes such a candidate
    instead (peak.at_the_peak)."""
    if planner.sped_up_to_peak is not None:
        return []
    costed = simulation.scenario.long_run_requests_per_s
    arrives = pace * planner.light_draw
    mean = f" ({costed:,.3g} on average)" \
        if costed and abs(arrives / costed - 1) > 0.005 else ""
    notes = []
    for name, found_plan in plans.items():
        top = found_plan.max_sustainable_requests_per_s
        run = simulation.deployments.get(name)
        limit = planner.limit_factor(name)
        if limit is not None and top is not None and abs(top / (pace * limit) - 1) < 1e-9:
            continue        # its API's limits, which _over_limit_notes names
        if top is not None and top < arrives * (1 - 1e-9) and run is not None \
                and run.slo.met:
            notes.append(f"{name} meets the SLO over the run ({run.slo.goodput_shown()}) but "
                         f"not on its busiest stretch: planning finds it sustains at most "
                         f"{top:,.3g} requests/s there, below the {arrives:,.3g} the stretch "
                         f"arrives at with the costed volume{mean}, so bursts like it miss "
                         f"the SLO and it serves less than the month's volume within it")
    return notes


def _at_volume(info: RunInfo, base: RunInfo, volume: float) -> RunInfo:
    """`info` (the stretch sped up) costed at `volume` times `base`'s long-run rate."""
    rate = base.long_run_requests_per_s
    return info if rate is None else info.model_copy(
        update={"long_run_requests_per_s": rate * volume})


#: how much lighter than the costed rate the simulated stream must arrive for planning to
#: say so (10%: two standard deviations of a Poisson draw of 400 requests)
LIGHT_DRAW_NOTED = 1.1


VOLUME_FACTORS = (0.5, 2.0)


def _two_digits_down(factor: float) -> float:
    """`factor` to two significant digits, rounded down: the volume a fleet serves within
    the SLO, rounded up, can be one it no longer serves (16.8 -> 17 flipped a case)."""
    if factor <= 0:
        return factor
    scale = 10.0 ** (1 - math.floor(math.log10(factor)))
    return math.floor(factor * scale * (1 + 1e-12)) / scale


def sensitivity(simulation: SimulationResult, planner: Planner,
                rate_factors: dict[str, float] | None = None, *,
                peak: tuple[PlanningWindow, dict[str, DeploymentPlan]] | None = None
                ) -> list[SensitivityCase]:
    """The winner under changed volume (the load curve's runs and the volume that fills
    the cheapest local fleet), task quality (re-counted) and prices (repriced); `peak`:
    the scenario's run judged at a daily peak it misses, as the decision judges it."""
    cases: list[SensitivityCase] = []
    loaded = planner.loaded
    for factor in VOLUME_FACTORS:
        speed = factor * planner.light_draw
        info = _at_volume(simulation.scenario.sped_up(speed, requests=len(planner.window),
                                                      span_s=planner.window_s),
                          simulation.scenario, factor)
        varied = SimulationResult(scenario=info, deployments={
            name: planner.simulate(Point(name, factor=speed))
            for name in simulation.deployments})
        verdict = decide(varied, loaded).recommendation
        cases.append(SensitivityCase(change=f"volume x{factor:g} (fleets as simulated)",
                                     winner=verdict.deployment,
                                     ranking=verdict.ranking))
    for case, (label, changed, affected) in enumerate(planner.variant_cases()):
        varied = simulation.model_copy(update={"deployments": {
            name: planner.simulate_variant(case, name) if name in affected
            else result for name, result in simulation.deployments.items()}})
        # judged at the daily peak by the fleets' searches as simulated: a change that
        # makes a fleet faster may not show (the searches are not run again), one that
        # makes it slower does not bring it back
        verdict = decide(varied, changed, peak=peak).recommendation
        cases.append(SensitivityCase(change=label, winner=verdict.deployment,
                                     ranking=verdict.ranking))
    for label, varied in quality_variants(simulation, loaded):
        verdict = decide(varied, loaded, peak=peak).recommendation
        cases.append(SensitivityCase(change=label, winner=verdict.deployment,
                                     ranking=verdict.ranking))
    fill = _fill_case(simulation, planner, rate_factors or {})
    if fill is not None:
        cases.append(fill)
    for label, cloud_factor, gpu_factor in (("cloud prices x0.5", 0.5, 1.0),
                                            ("cloud prices x2", 2.0, 1.0),
                                            ("GPU prices x0.7", 1.0, 0.7),
                                            ("GPU prices x1.3", 1.0, 1.3)):
        verdict = decide(simulation, _reprice(loaded, cloud_factor, gpu_factor),
                         peak=peak).recommendation
        cases.append(SensitivityCase(change=label, winner=verdict.deployment,
                                     ranking=verdict.ranking))
    return cases


