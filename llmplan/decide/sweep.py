"""`llmplan sweep`: a grid of GPU type x replica count x router x traffic scale (x the
replica's layout for a mixture of experts), in parallel.

Each grid point is one simulation of the scenario's base local deployment, resized and
re-routed, under the scenario's traffic at the scale's multiple of its rate for the whole
duration (planning.scaled_stream); with its monthly cost and cost per useful result.
Points run in a local process pool by default, or as tasks on a Ray cluster when an
address is given. The Pareto front keeps, per traffic scale, the SLO-meeting points that
no other point of the same scale beats on both monthly cost and E2E p95 (a fleet under
twice the traffic is not "beaten" by itself under the traffic as given).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field

from llmplan.decide.candidates import overload_reason
from llmplan.decide.pool import ignore_interrupts, stopped_on_interrupt
from llmplan.decide.pricing import price
from llmplan.decide.scaled_runs import simulate_one
from llmplan.perf.memory import build_error
from llmplan.results._base import ResultModel
from llmplan.scenario import LoadedScenario
from llmplan.scenario.models import LocalDeployment, RouterName, Scenario, SimulationMode
from llmplan.sim.run import run_info
from llmplan.traffic import build_request_stream

#: a replica's layout: its GPUs one tensor-parallel group, pipeline stages of one GPU each
#: (the deployment's pp), or one data-parallel rank each with the experts spread over them
#: (engine.data_parallel_attention, expert_parallel)
LAYOUTS = ("tp", "pp", "dp")


@dataclass(frozen=True)
class Point:
    gpu: str
    replicas: int
    router: RouterName
    traffic_scale: float
    layout: str | None = None     # None: the base deployment's own


class PointResult(ResultModel):
    """One simulated grid point (or why it could not run)."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("layout", "overloaded")

    gpu: str
    replicas: int
    router: str
    traffic_scale: float
    layout: str | None = None
    #: a replica's GPUs: tp x pp (with layout dp, tp is the data-parallel ranks)
    tp: int = 1
    pp: int = 1
    name: str
    error: str | None = None
    ttft_p95_ms: float | None = None
    e2e_p95_ms: float | None = None
    goodput_fraction: float | None = None
    slo_met: bool = False
    #: why the fleet could not carry the traffic past the run, though it met the SLO in it
    #: (candidates.overload_reason): off the Pareto front
    overloaded: str | None = None
    requests_per_s: float | None = None
    monthly_usd: float | None = None
    usd_per_useful_result: float | None = None


class SweepResult(ResultModel):
    """sweep.json."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("points_not_run",)

    base: str
    points: list[PointResult]
    pareto_front: list[PointResult]
    points_not_run: int | None = Field(
        default=None, description="Points of the grid a Ctrl-C left unrun (None: every "
                                  "point ran); `points` holds those that finished.")


def grid(gpus: list[str], replicas: list[int], routers: list[RouterName],
         scales: list[float], layouts: list[str | None] | None = None) -> list[Point]:
    return [Point(g, r, rt, s, lay) for g, r, lay, rt, s in itertools.product(
        gpus, replicas, layouts or [None], routers, scales)]


def with_variant(scenario: Scenario, base: str, name: str, varied: LocalDeployment) -> Scenario:
    """`scenario` plus `varied` as deployment `name`, inheriting what the scenario keys by the
    base deployment's name: each task's quality rate and the base's evaluation."""
    tasks = [task.model_copy(update={"quality": {**task.quality, name: task.quality[base]}})
             if base in task.quality else task for task in scenario.tasks]
    evaluations = dict(scenario.evaluations)
    if base in evaluations:
        evaluations[name] = evaluations[base]
    return scenario.model_copy(update={"deployments": {**scenario.deployments, name: varied},
                                       "tasks": tasks, "evaluations": evaluations})


def run_point(loaded: LoadedScenario, base: str, point: Point) -> PointResult:
    """Simulate one grid point and price it (a plain function: pickled to workers)."""
    scenario = loaded.scenario
    dep = scenario.deployments[base]
    assert isinstance(dep, LocalDeployment)
    update: dict[str, object] = {"gpu": point.gpu, "replicas": point.replicas,
                                 "router": point.router, "autoscaling": None}
    layout = ""
    if point.layout is not None:
        ranks = point.layout == "dp"
        update["engine"] = dep.engine.model_copy(update={
            "data_parallel_attention": ranks,
            "expert_parallel": ranks or dep.engine.expert_parallel})
        gpus = dep.gpus_per_replica
        update["tp"], update["pp"] = (1, gpus) if point.layout == "pp" else (gpus, 1)
        layout = f"-{point.layout}{gpus}"
    varied = dep.model_copy(update=update)
    name = f"{point.gpu}x{point.replicas}{layout}-{point.router}-{point.traffic_scale:g}"
    variant = LoadedScenario(with_variant(scenario, base, name, varied), loaded.catalog,
                             loaded.path)
    head = {"gpu": point.gpu, "replicas": point.replicas, "router": point.router,
            "traffic_scale": point.traffic_scale, "layout": point.layout, "tp": varied.tp,
            "pp": varied.pp, "name": name}
    setup = varied.setup(loaded.catalog)
    error = build_error(setup)
    if error:
        return PointResult(**head, error=error)
    try:
        summary, requests = simulate_one(variant, name, rate_factor=point.traffic_scale)
    except ValueError as too_many:
        return PointResult(**head, error=str(too_many))
    # the scaled traffic over the scenario's whole duration
    info = run_info(scenario, build_request_stream(scenario), scenario.seed,
                    SimulationMode.FAST).sped_up(point.traffic_scale, requests=requests,
                                                 span_s=scenario.duration_s
                                                 * point.traffic_scale)
    cost = price(name, summary, variant, info)
    overloaded = overload_reason(name, summary, variant, info) if summary.slo.met else None
    return PointResult(**head, ttft_p95_ms=summary.latency.ttft_ms.p95, overloaded=overloaded,
                       e2e_p95_ms=summary.latency.e2e_ms.p95,
                       goodput_fraction=summary.slo.goodput_fraction, slo_met=summary.slo.met,
                       requests_per_s=summary.throughput.requests_per_s,
                       monthly_usd=cost.monthly_usd,
                       usd_per_useful_result=cost.usd_per_useful_result)


def run_grid(loaded: LoadedScenario, base: str, points: list[Point], *, workers: int = 2,
             ray_address: str | None = None,
             on_done: Callable[[PointResult], None] | None = None) -> SweepResult:
    """Every point's result, in grid order, and the Pareto front."""
    rows: dict[Point, PointResult] = {}
    interrupted = None
    try:
        for point, row in _execute(loaded, base, points, workers, ray_address):
            rows[point] = row
            if on_done is not None:
                on_done(row)
    except KeyboardInterrupt:
        # Ctrl-C keeps what finished: the points run so far, in grid order
        interrupted = len(points) - len(rows)
    ordered = [rows[p] for p in points if p in rows]
    return SweepResult(base=base, points=ordered, pareto_front=pareto_front(ordered),
                       points_not_run=interrupted)


def _execute(loaded: LoadedScenario, base: str, points: list[Point], workers: int,
             ray_address: str | None) -> Iterator[tuple[Point, PointResult]]:
    if ray_address is not None:
        import ray

        ray.init(address=None if ray_address == "local" else ray_address,
                 include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
        try:
            remote = ray.remote(run_point)
            shared = ray.put(loaded)
            pending = {remote.remote(shared, base, p): p for p in points}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                point = pending.pop(done[0])
                yield point, ray.get(done[0])
        finally:
            ray.shutdown()
        return
    if workers <= 1:
        for point in points:
            yield point, run_point(loaded, base, point)
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=ignore_interrupts)
    with stopped_on_interrupt(pool):
        futures = {pool.submit(run_point, loaded, base, p): p for p in points}
        for future in as_completed(futures):
            yield futures[future], future.result()


#: monthly costs closer than this share count as the same: points that differ only in
#: how busy the same GPUs were (a router, say) differ by cents of electricity
SAME_COST_SHARE = 0.005


def pareto_front(rows: list[PointResult]) -> list[PointResult]:
    """Per traffic scale, the SLO-meeting points not beaten on both monthly cost and E2E p95
    by another point of that scale, costs within SAME_COST_SHARE of each other counting as
    equal; by scale, then monthly cost. From the fastest point on, a slower one joins the
    front only if it is cheaper, by more than that share, than every point already on it
    (exact twins, such as one replica under two routers, both stay)."""
    ok = [r for r in rows if not r.error and r.slo_met and not r.overloaded
          and r.monthly_usd is not None
          and r.e2e_p95_ms is not None]
    front: list[PointResult] = []
    for scale in sorted({r.traffic_scale for r in ok}):
        cheapest, last = math.inf, None
        for r in sorted((r for r in ok if r.traffic_scale == scale),
                        key=lambda r: (r.e2e_p95_ms, r.monthly_usd)):
            assert r.monthly_usd is not None
            twin = last is not None and (last.e2e_p95_ms, last.monthly_usd) == \
                (r.e2e_p95_ms, r.monthly_usd)
            if twin or r.monthly_usd < (1 - SAME_COST_SHARE) * cheapest:
                front.append(r)
                cheapest, last = min(cheapest, r.monthly_usd), r
    return sorted(front, key=lambda r: (r.traffic_scale, r.monthly_usd or 0.0))
