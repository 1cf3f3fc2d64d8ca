"""The planning simulations of one evaluated scenario, memoised: the busiest stretch of
its stream (sped up to a daily peak the run misses), a deployment at a fleet size and a
rate factor, and the searches over them (the fewest replicas meeting the SLO, the
highest sustainable rate)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from llmplan.decide.candidates import overload_reason
from llmplan.decide.peak import daily_peak_requests_per_s
from llmplan.decide.scaled_runs import drain_after_s, resized, simulate_one
from llmplan.decide.variants import layout_flipped, prefix_caching_toggled, stages_flipped
from llmplan.results.simulation import DeploymentResult, SimulationResult
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import LocalDeployment, SimulationMode
from llmplan.sim.cloud import sustained_limit
from llmplan.sim.metrics import summarise_run
from llmplan.sim.ratelimit import Sustained
from llmplan.sim.run import run_steady, served_stream
from llmplan.traffic import RequestStream, build_request_stream

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
        drain = drain_after_s(self.loaded, span, point.factor)
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
        shown = two_digits_down(factor)
        while not (self.meets(Point(name, factor=shown))
                   and (not long or self.meets(Point(name, factor=shown, long=True)))):
            shown = two_digits_down(shown - 10.0 ** (math.floor(math.log10(shown)) - 1))
            if shown < 1 / 64:
                return None
        return factor if shown == two_digits_down(factor) else shown

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
                prefix_caching_toggled(self.loaded, self.stream), layout_flipped(self.loaded),
                stages_flipped(self.loaded))
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




def two_digits_down(factor: float) -> float:
    """`factor` to two significant digits, rounded down: the volume a fleet serves within
    the SLO, rounded up, can be one it no longer serves (16.8 -> 17 flipped a case)."""
    if factor <= 0:
        return factor
    scale = 10.0 ** (1 - math.floor(math.log10(factor)))
    return math.floor(factor * scale * (1 + 1e-12)) / scale
