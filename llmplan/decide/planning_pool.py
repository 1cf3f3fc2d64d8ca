"""Planning's simulations sharing the machine's cores: a pool forked from the planner, so
its workers start from its cache, when a stage's work is worth one (POOL_WORTH_S); the
load curves, the searches and the whole-stream runs each fanned out."""

from __future__ import annotations

import math
import multiprocessing
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor

from llmplan.decide.planner import Planner, Point
from llmplan.decide.pool import ignore_interrupts, stopped_on_interrupt
from llmplan.results.simulation import DeploymentResult
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import LocalDeployment

#: A stage whose simulations would take less than this one after another runs without a
#: pool: forking workers, sending each task and its result through pipes and the workers'
#: caches filling apart cost about a tenth of a second on two cores, more than a small
#: scenario's whole planning (a 180-request hybrid: 0.16 s serial, 0.58 s with a pool).
#: The estimate is from planning's own runs (`Planner.s_per_request`).
POOL_WORTH_S = 0.5
#: simulations a replica or rate search runs besides the load curve's (doubling, then
#: bisections): its task's cost in stretch simulations, for POOL_WORTH_S
SEARCH_SIMULATIONS = 8


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



#: Modules whose threads do not survive a fork (gRPC, which Pulumi's engine and mocks run):
#: with one of them loaded, planning runs its simulations one after another instead.
FORK_UNSAFE = ("grpc",)


def dearest_first(deployment: object) -> int:
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


def run_all(planner: Planner, jobs: int, points: Iterable[Point]) -> None:
    todo = [p for p in dict.fromkeys(planner._normal(p) for p in points)
            if p not in planner.cache]
    if jobs > 1 and len(todo) > 2 and planner.s_per_request() is None:
        # one run here first, the dearest kind at the scenario's rate: its time tells
        # whether the rest gains from a pool (which starts with it in its cache)
        deployments = planner.loaded.scenario.deployments
        first = min(todo, key=lambda p: (dearest_first(deployments[p.name]),
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


def search_all(planner: Planner, jobs: int,
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


def confirm_all(planner: Planner, jobs: int, candidates: dict[str, int],
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
