"""Run one deployment against a request stream: SimPy drives arrivals, replicas serve them.

Fast mode schedules one SimPy event per request; the replicas advance lazily between them
(see replica.py). Reference mode (reference.py) runs a SimPy process per replica with one
event per batch step. Both fill the same `Records`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import simpy

from llmplan.catalog import Catalog
from llmplan.scenario.models import LocalDeployment
from llmplan.traffic import RequestStream
from sim.kvcache import KvCapacity, kv_capacity
from sim.records import Records
from sim.reference import ReferenceReplica
from sim.replica import Replica
from sim.router import Router, make_router
from sim.serving import ReplicaConfig, Workload
from sim.steptime import StepTime, build_step_time

Progress = Callable[[float], None]


@dataclass
class DeploymentRun:
    """Everything a finished run knows, before summarising."""

    name: str
    deployment: LocalDeployment
    records: Records
    capacity: KvCapacity
    step_time: StepTime
    duration_s: float
    horizon_s: float
    busy_s: list[float]


def _engine_limits(dep: LocalDeployment, capacity: KvCapacity) -> int:
    max_len = capacity.max_model_len
    if not dep.engine.chunked_prefill:
        max_len = min(max_len, dep.engine.max_num_batched_tokens)
    return max_len


def simulate_deployment(name: str, dep: LocalDeployment, catalog: Catalog,
                        stream: RequestStream, duration_s: float, *, drain_s: float | None = None,
                        mode: Literal["fast", "reference"] = "fast",
                        progress: Progress | None = None,
                        replica_class: type[Replica] = Replica) -> DeploymentRun:
    """Simulate `dep` serving `stream`; arrivals stop at duration_s, work stops at the horizon."""
    capacity = kv_capacity(dep, catalog)
    step = build_step_time(dep, catalog)
    horizon = duration_s + (duration_s if drain_s is None else drain_s)
    records = Records(len(stream), horizon)
    arrivals = stream.arrival_s.tolist()
    work = Workload(stream.prompt_tokens.tolist(), stream.output_tokens.tolist(), arrivals,
                    records)
    engine, admission = dep.engine, dep.admission
    config = ReplicaConfig(
        step=step, blocks=capacity.blocks, block_size=capacity.block_size_tokens,
        max_num_seqs=engine.max_num_seqs, max_num_batched_tokens=engine.max_num_batched_tokens,
        chunked_prefill=engine.chunked_prefill, max_model_len=_engine_limits(dep, capacity),
        queue_limit=admission.queue_limit, queue_timeout_s=admission.queue_timeout_s)
    env = simpy.Environment()
    router = make_router(dep.router)
    replicas: list[Replica] | list[ReferenceReplica]
    if mode == "reference":
        replicas = [ReferenceReplica(env, i, config, work) for i in range(dep.replicas)]
    else:
        replicas = [replica_class(i, config, work) for i in range(dep.replicas)]
    _Arrivals(env, arrivals, replicas, router, progress)
    env.run(until=horizon)
    for replica in replicas:
        replica.advance(horizon)
    return DeploymentRun(name, dep, records, capacity, step, duration_s, horizon,
                         [r.busy_s for r in replicas])


class _Arrivals:
    """Feeds the request stream to the replicas: one SimPy timeout (and callback) per request.

    A callback chain rather than a SimPy process: resuming a generator costs about twice a
    plain callback, and arrivals are the simulator's only per-request event.
    """

    def __init__(self, env: simpy.Environment, arrivals: list[float],
                 replicas: list[Replica] | list[ReferenceReplica], router: Router,
                 progress: Progress | None) -> None:
        self.env, self.arrivals, self.replicas = env, arrivals, replicas
        self.choose = router.choose
        self.progress = progress
        self.every = max(1, len(arrivals) // 200)
        self.next = 0
        if arrivals:
            env.timeout(arrivals[0]).callbacks.append(self._arrive)

    def _arrive(self, _: simpy.Event) -> None:
        rid, arrivals, replicas = self.next, self.arrivals, self.replicas
        t = arrivals[rid]
        replica = replicas[self.choose(replicas, t)]
        replica.advance(t)
        replica.arrive(rid, t)
        if self.progress is not None and rid % self.every == 0:
            self.progress(t)
        rid += 1
        self.next = rid
        if rid < len(arrivals):
            # schedule by the exact stream time, not by accumulated float deltas
            self.env.timeout(max(0.0, arrivals[rid] - self.env.now)).callbacks.append(
                self._arrive)
