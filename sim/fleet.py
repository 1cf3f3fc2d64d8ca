"""A local deployment's replicas and the router in front of them.

`build_fleet` turns a scenario deployment into replicas: the KV capacity and step time of
the performance model (llmplan.perf), the engine limits, a router from the registry.
Failures and autoscaling (fleet_control.py) act on a fleet through `active`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import simpy

from llmplan.catalog import Catalog
from llmplan.perf.engine import WHOLE_PROMPT_ADMISSION_RELEASE
from llmplan.perf.memory import KvCapacity, kv_capacity
from llmplan.perf.steptime import StepTime, build_step_time
from llmplan.perf.steptime_spec import CalibratedStepTime
from llmplan.scenario.models import LocalDeployment, SimulationMode
from llmplan.sim.records import FAILED
from llmplan.sim.reference import ReferenceReplica
from llmplan.sim.replica import Replica
from llmplan.sim.router import Router, make_router
from llmplan.sim.serving import ReplicaConfig, Workload
from llmplan.sim.stepmodel import StepModel


class FleetControl(Protocol):
    """What the metrics read of a fleet's failure and autoscaling controller."""

    failures: int
    retried: int
    scale_events: list[tuple[float, int]]

    def replica_seconds(self, edges_s: np.ndarray) -> np.ndarray:
        """Replica-seconds on in each interval between consecutive edges (after a run)."""
        ...

    def loading_seconds(self, end_s: float) -> float:
        """Replica-seconds spent loading a model (autoscaling's spin-up) up to end_s."""
        ...


@dataclass
class LocalFleet:
    """The replicas of one local deployment and the router in front of them.

    `replicas` holds every replica that may ever run (up to autoscaling's maximum);
    `active` the ones taking traffic now (up, and scaled in).
    """

    deployment: LocalDeployment
    catalog: Catalog
    replicas: list[Replica] | list[ReferenceReplica]
    router: Router
    capacity: KvCapacity
    step_time: StepTime
    active: list[Replica] | list[ReferenceReplica] = field(default_factory=list)
    control: FleetControl | None = None
    #: where a request goes again when the replica serving it fails: the fleet's router,
    #: or a hybrid's (which may send it to the cloud)
    reroute: Callable[[int, float], object] | None = None

    def route_again(self, rid: int, t: float) -> None:
        """A request taken back from a failed replica, sent where `reroute` says."""
        if self.reroute is not None:
            self.reroute(rid, t)
        else:
            self.route(rid, t)

    def route(self, rid: int, t: float) -> Replica | ReferenceReplica | None:
        """Bring the chosen replica up to t and hand it the request (None: none is up)."""
        active = self.active
        if not active:
            fail_unroutable(self, rid, t)
            return None
        replica = active[self.router.choose(active, t, rid)]
        replica.advance(t)
        replica.arrive(rid, t)
        return replica

    def finish(self, horizon_s: float) -> None:
        for replica in self.replicas:
            replica.advance(horizon_s)


def fail_unroutable(fleet: LocalFleet, rid: int, t: float) -> None:
    """No replica is up: the request fails at once."""
    rec = fleet.replicas[0].rec
    rec.outcome[rid] = FAILED
    rec.finish_s[rid] = t
    if rec.on_end is not None:
        rec.on_end(rid)


def _max_model_len(capacity: KvCapacity, chunked_prefill: bool, batched_tokens: int) -> int:
    return capacity.max_model_len if chunked_prefill else min(capacity.max_model_len,
                                                              batched_tokens)


def _measured_on_vllm(dep: LocalDeployment) -> bool:
    """Whether the replica schedules as vLLM does: not llama.cpp's slots, and a
    calibration, if it is timed by one, measured on vLLM."""
    if dep.engine.prefix_caching == "per_slot":
        return False
    spec = dep.step_time
    if isinstance(spec, CalibratedStepTime):
        return spec.calibration is not None and spec.calibration.server.engine == "vllm"
    return True


def build_fleet(env: simpy.Environment, dep: LocalDeployment, catalog: Catalog, work: Workload,
                *, mode: SimulationMode = SimulationMode.FAST,
                replica_class: type[Replica] = Replica) -> LocalFleet:
    """The deployment's replicas (all that autoscaling may start), the first ones active."""
    setup = dep.setup(catalog)
    capacity = kv_capacity(setup)
    step = build_step_time(setup, dep.step_time)
    engine, admission = dep.engine, dep.admission
    config = ReplicaConfig(
        step=StepModel(**step.coefficients()), blocks=capacity.blocks,
        block_size=capacity.block_size_tokens, max_num_seqs=setup.max_num_seqs,
        max_num_batched_tokens=setup.max_num_batched_tokens,
        chunked_prefill=engine.chunked_prefill,
        max_model_len=_max_model_len(capacity, engine.chunked_prefill,
                                     setup.max_num_batched_tokens),
        queue_limit=admission.queue_limit, queue_timeout_s=admission.queue_timeout_s,
        prefix_caching=engine.prefix_caching,
        slot_prompt_similarity=engine.slot_prompt_similarity,
        host_cache_tokens=int(engine.host_prompt_cache_gib * 2**30
                              / (capacity.kv_bytes_per_token * dep.gpus_per_replica)),
        sliding_groups=capacity.sliding_groups, full_groups=capacity.full_groups,
        window_blocks=capacity.window_blocks,
        # a request's chunk: one rank's budget; with pipeline stages, up to every
        # micro-batch's of the round (its next chunk is scheduled while the last is in flight)
        max_chunk_tokens=setup.rank_max_num_batched_tokens * setup.pp,
        # llama.cpp's slots (per_slot) each hold a whole request's context
        admit_whole_prompt=(engine.release >= WHOLE_PROMPT_ADMISSION_RELEASE
                            and engine.prefix_caching != "per_slot"),
        # with pipeline stages vLLM's batch queue is the stages' (max_concurrent_batches:
        # pp, async or not), so async scheduling adds no step of its own there
        async_admission=setup.async_scheduling and setup.pp == 1 and _measured_on_vllm(dep))
    replicas: list[Replica] | list[ReferenceReplica]
    router = make_router(dep.router, work.groups, work.shared, work.prompts)
    work = work.on_ranks(setup.attention_ranks)     # each rank caches its own requests
    if mode == SimulationMode.REFERENCE:
        if dep.failures is not None or dep.autoscaling is not None:
            raise ValueError("reference mode does not simulate failures or autoscaling")
        replicas = [ReferenceReplica(env, i, config, work) for i in range(dep.replicas)]
    else:
        replicas = [replica_class(i, config, work) for i in range(dep.max_replicas)]
    return LocalFleet(dep, catalog, replicas, router, capacity, step,
                      active=replicas[:dep.replicas])
