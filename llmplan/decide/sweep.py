"""`llmplan sweep`: a grid of GPU type x replica count x router x traffic scale, in parallel.

Each grid point is one simulation of the scenario's base local deployment, resized and
re-routed, under the scenario's traffic sped up by the scale; with its monthly cost and cost
per useful result. Points run in a local process pool by default, or as tasks on a Ray
cluster when an address is given. The Pareto front keeps the SLO-meeting points that no
other point beats on both monthly cost and E2E p95.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

from llmplan.decide.decision import cost_summary, deployment_costs
from llmplan.scenario import LoadedScenario
from llmplan.scenario.models import LocalDeployment


@dataclass(frozen=True)
class Point:
    gpu: str
    replicas: int
    router: str
    traffic_scale: float


def grid(gpus: list[str], replicas: list[int], routers: list[str],
         scales: list[float]) -> list[Point]:
    return [Point(g, r, rt, s) for g, r, rt, s in itertools.product(gpus, replicas, routers,
                                                                     scales)]


def run_point(loaded: LoadedScenario, base: str, point: Point) -> dict[str, Any]:
    """Simulate one grid point and price it (a plain function: pickled to workers)."""
    from llmplan.decide.planning import simulate_one

    scenario = loaded.scenario
    dep = scenario.deployments[base]
    assert isinstance(dep, LocalDeployment)
    varied = dep.model_copy(update={"gpu": point.gpu, "replicas": point.replicas,
                                    "router": point.router, "autoscaling": None})
    name = f"{point.gpu}x{point.replicas}-{point.router}-{point.traffic_scale:g}"
    deployments = {**scenario.deployments, name: varied}
    variant = LoadedScenario(scenario.model_copy(update={"deployments": deployments}),
                             loaded.catalog, loaded.path)
    row: dict[str, Any] = {**asdict(point), "name": name}
    from sim.kvcache import kv_capacity

    capacity = kv_capacity(varied, loaded.catalog)
    if capacity.error:
        return {**row, "error": capacity.error}
    summary = simulate_one(variant, name, rate_factor=point.traffic_scale)
    factor = scenario.economics.hours_per_month * 3600.0 / (scenario.duration_s
                                                            / point.traffic_scale)
    summary["_duration_s"] = scenario.duration_s / point.traffic_scale
    cost = cost_summary(deployment_costs(name, summary, variant, factor), summary, factor)
    return {**row, "error": None,
            "ttft_p95_ms": summary["latency"]["ttft_ms"]["p95"],
            "e2e_p95_ms": summary["latency"]["e2e_ms"]["p95"],
            "goodput_fraction": summary["slo"]["goodput_fraction"],
            "slo_met": summary["slo"]["met"],
            "requests_per_s": summary["throughput"]["requests_per_s"],
            "monthly_usd": cost["monthly_usd"],
            "usd_per_useful_result": cost["usd_per_useful_result"]}


def run_grid(loaded: LoadedScenario, base: str, points: list[Point], *, workers: int = 2,
             ray_address: str | None = None,
             on_done: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Every point's row, in grid order."""
    rows: dict[Point, dict[str, Any]] = {}
    for point, row in _execute(loaded, base, points, workers, ray_address):
        rows[point] = row
        if on_done is not None:
            on_done(row)
    return [rows[p] for p in points]


def _execute(loaded: LoadedScenario, base: str, points: list[Point], workers: int,
             ray_address: str | None) -> Iterator[tuple[Point, dict[str, Any]]]:
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
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(run_point, loaded, base, p): p for p in points}
        for future in as_completed(futures):
            yield futures[future], future.result()


def pareto_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SLO-meeting points not beaten on both monthly cost and E2E p95 by another."""
    ok = [r for r in rows if not r.get("error") and r["slo_met"]]
    front = [r for r in ok if not any(
        (o["monthly_usd"] <= r["monthly_usd"] and o["e2e_p95_ms"] <= r["e2e_p95_ms"])
        and (o["monthly_usd"] < r["monthly_usd"] or o["e2e_p95_ms"] < r["e2e_p95_ms"])
        for o in ok)]
    return sorted(front, key=lambda r: r["monthly_usd"])
