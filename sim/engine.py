"""Run one deployment against a request stream: SimPy drives arrivals, servers serve them.

Local fleets: in fast mode arrivals are handed to the replicas in time order, with a SimPy
event only where another event comes between them, and the replicas advance lazily
(replica.py); reference mode (reference.py) runs a SimPy process per
replica with one event per batch step. Cloud APIs (cloud.py) and hybrid routers (hybrid.py)
run in the same environment. Every kind fills the same `Records`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import simpy

from llmplan.catalog import Catalog
from llmplan.catalog.catalog import ChatTemplate
from llmplan.perf.memory import KvCapacity
from llmplan.perf.steptime import StepTime
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import LocalDeployment, SimulationMode
from llmplan.sim.cloud import CloudEndpoint
from llmplan.sim.fleet import LocalFleet, build_fleet
from llmplan.sim.fleet_control import FleetController
from llmplan.sim.hybrid import HybridRouter
from llmplan.sim.records import SERVED_LOCAL, Records
from llmplan.sim.replica import Replica
from llmplan.sim.serving import Workload
from llmplan.sim.sessions import SessionLoop
from llmplan.traffic import RequestStream

Progress = Callable[[float], None]
AnyDeployment = LocalDeployment | CloudDeployment | HybridDeployment


@dataclass
class DeploymentRun:
    """Everything a finished run knows, before summarising."""

    name: str
    deployment: AnyDeployment
    records: Records
    duration_s: float
    horizon_s: float
    fleet: LocalFleet | None = None
    cloud: CloudEndpoint | None = None
    parts: dict[str, str] = field(default_factory=dict)   # hybrid: {"local": name, "cloud": ...}
    shares_prefixes: bool = False       # some requests carry a shared prefix
    sessions: SessionLoop | None = None  # conversations: later turns sent when due
    #: prompt tokens as the engine computed them (chat template added), when they differ
    #: from the stream's
    engine_prompt_tokens: np.ndarray | None = None
    #: the requests as the run served them, when they differ from the stream it was given:
    #: the hidden reasoning an API that cannot answer without adds to tasks that ask for
    #: none (`unasked_reasoning`; a hybrid's: to those its API answered or was priced for)
    served_stream: RequestStream | None = None
    #: a hybrid's requests as its API serves them, when they differ from the stream
    #: (`hybrid_api_requests`): what each call it sent there was charged and counted
    api_stream: RequestStream | None = None

    def served(self, given: RequestStream) -> RequestStream:
        """The requests this run served: `given` as the run changed it (served_stream)."""
        return given if self.served_stream is None else self.served_stream

    @property
    def arrival_s(self) -> list[float] | None:
        """When each request was sent, when sessions made it depend on the run."""
        return self.sessions.arrivals if self.sessions is not None else None

    @property
    def step_time(self) -> StepTime | None:
        return self.fleet.step_time if self.fleet is not None else None

    @property
    def capacity(self) -> KvCapacity | None:
        return self.fleet.capacity if self.fleet is not None else None

    @property
    def busy_s(self) -> list[float]:
        return [r.busy_s for r in self.fleet.replicas] if self.fleet is not None else []


def _local_fleet(env: simpy.Environment, dep: LocalDeployment, catalog: Catalog, work: Workload,
                 *, mode: SimulationMode, replica_class: type[Replica], seed: int,
                 horizon_s: float) -> LocalFleet:
    fleet = build_fleet(env, dep, catalog, work, mode=mode, replica_class=replica_class)
    if dep.failures is not None or dep.autoscaling is not None:
        fleet.control = FleetController(env, fleet, horizon_s,
                                        np.random.default_rng([seed, 13]))
    return fleet


def _hidden_tokens(dep: AnyDeployment, catalog: Catalog,
                   deployments: Mapping[str, AnyDeployment] | None) -> int:
    """The hidden reasoning tokens `dep`'s API (a hybrid's API part) adds to each answer of
    a task that asks for none: its model's lowest effort's (0: none, or no API)."""
    cloud = dep if isinstance(dep, CloudDeployment) else None
    if isinstance(dep, HybridDeployment) and deployments is not None:
        part = deployments[dep.cloud]
        cloud = part if isinstance(part, CloudDeployment) else None
    return 0 if cloud is None else catalog.cloud_models[cloud.model].plain_reasoning_tokens


def unasked_reasoning(dep: AnyDeployment, catalog: Catalog, stream: RequestStream, *,
                      plain_tasks: Sequence[bool] | None,
                      deployments: Mapping[str, AnyDeployment] | None = None,
                      task_sensitivity: Sequence[str] | None = None,
                      task_kinds: Sequence[str | None] | None = None,
                      restricted_stays_local: bool = True) -> RequestStream:
    """`stream` with the hidden reasoning a cloud model that cannot answer without it adds
    to each request of a task that asks for none (`plain_tasks`, per task): the catalog's
    least_reasoning_effort, which the stack's gateway sends, leaves plain_reasoning_tokens
    per answer. A hybrid's, before a run: the tasks its routes send the API (what its run
    serves where is the run's: `hybrid_api_requests`, `DeploymentRun.served`)."""
    tokens = _hidden_tokens(dep, catalog, deployments)
    if not tokens or plain_tasks is None or not any(plain_tasks):
        return stream
    sent = np.asarray(plain_tasks, dtype=bool)
    if isinstance(dep, HybridDeployment):
        labels = list(task_sensitivity or ["internal"] * len(stream.task_names))
        kinds = task_kinds or [None] * len(labels)
        sent &= np.array([dep.task_side(task, kind, label,
                                        restricted_stays_local=restricted_stays_local)
                          == "cloud" for task, kind, label in zip(stream.task_names, kinds,
                                                                  labels, strict=True)],
                         dtype=bool)
    return stream.with_hidden_reasoning(sent[stream.task_index], tokens)


def hybrid_api_requests(dep: HybridDeployment, catalog: Catalog, stream: RequestStream, *,
                        plain_tasks: Sequence[bool] | None,
                        deployments: Mapping[str, AnyDeployment] | None,
                        task_sensitivity: Sequence[str] | None,
                        restricted_stays_local: bool) -> RequestStream:
    """A hybrid's requests as its API serves them: every request of a task that asks for
    no reasoning carries the hidden tokens its API model adds (`unasked_reasoning`), not
    only those its routes send there, since any request its data lets out may spill or fall
    over to the API; its fleet serves `stream` as asked. A later turn of an agent loop
    carries the hidden reasoning of its earlier turns, as if the API had answered them all
    (what the run sent where is not known when its requests are sized)."""
    tokens = _hidden_tokens(dep, catalog, deployments)
    if not tokens or plain_tasks is None or not any(plain_tasks):
        return stream
    labels = list(task_sensitivity or ["internal"] * len(stream.task_names))
    sent = np.asarray(plain_tasks, dtype=bool) \
        & ~np.array([restricted_stays_local and label == "restricted" for label in labels],
                    dtype=bool)
    return stream.with_hidden_reasoning(sent[stream.task_index], tokens)


def simulate_deployment(name: str, dep: AnyDeployment, catalog: Catalog,
                        stream: RequestStream, duration_s: float, *, drain_s: float | None = None,
                        mode: SimulationMode = SimulationMode.FAST,
                        progress: Progress | None = None,
                        replica_class: type[Replica] = Replica, seed: int = 0,
                        deployments: Mapping[str, AnyDeployment] | None = None,
                        task_sensitivity: Sequence[str] | None = None,
                        task_kinds: Sequence[str | None] | None = None,
                        restricted_stays_local: bool = True,
                        plain_tasks: Sequence[bool] | None = None,
                        prime_limits: bool = False,
                        cloud_demand: tuple[float, float, float, float] | None = None,
                        ) -> DeploymentRun:
    """Simulate `dep` serving `stream`; arrivals stop at duration_s, work stops at the horizon.

    A hybrid deployment names its local and cloud parts: pass the scenario's `deployments`
    and each task's sensitivity (public / internal / restricted) and kind. `llmplan.sim.run` passes
    all of it from a scenario. A local deployment's model adds its chat template's tokens
    to the prompts of chat tasks (`api: chat`); hybrid and cloud deployments send the
    prompts as they are. `prime_limits`: a cloud deployment's rate limits start as a
    minute of the same traffic left them (the stream is a stretch of a longer busy
    period), not with a full minute's allowance; a hybrid's cloud part is not (what reaches
    it depends on its router) unless `cloud_demand` says what does: (requests per second,
    tokens each is charged, tokens each uses, prompt tokens each sends), e.g. measured by
    a first run. `plain_tasks`: per task, whether it asks for no reasoning (a cloud model
    that cannot answer without adds some: `unasked_reasoning`; a hybrid's API to every such
    call it gets, its fleet to none: `hybrid_api_requests`; the run's `served`).
    """
    horizon = duration_s + (duration_s if drain_s is None else drain_s)
    asked = api = stream
    if isinstance(dep, HybridDeployment):
        # its fleet serves the requests as asked, its API with the hidden reasoning it adds
        api = hybrid_api_requests(dep, catalog, stream, plain_tasks=plain_tasks,
                                  deployments=deployments, task_sensitivity=task_sensitivity,
                                  restricted_stays_local=restricted_stays_local)
    else:
        stream = unasked_reasoning(dep, catalog, stream, plain_tasks=plain_tasks,
                                   deployments=deployments, task_sensitivity=task_sensitivity,
                                   task_kinds=task_kinds,
                                   restricted_stays_local=restricted_stays_local)
    served = None if stream is asked else stream
    given = stream.prompt_tokens
    template = None
    if isinstance(dep, LocalDeployment):
        template = catalog.models[dep.model].chat_template
        if template is not None:      # chat tasks' prompts as the engine computes them
            stream = stream.with_chat_template(template)
    records = Records(len(stream), horizon)
    arrivals = stream.arrival_s.tolist()
    work, sharing = _workload(stream, records, arrivals, template)
    env = Environment()
    run = DeploymentRun(name, dep, records, duration_s, horizon, shares_prefixes=sharing,
                        engine_prompt_tokens=None if stream.prompt_tokens is given
                        else stream.prompt_tokens,
                        served_stream=served)
    handler: Callable[[int, float], object]
    if isinstance(dep, LocalDeployment):
        run.fleet = _local_fleet(env, dep, catalog, work, mode=mode,
                                 replica_class=replica_class, seed=seed, horizon_s=horizon)
        handler = run.fleet.route
    elif isinstance(dep, CloudDeployment):
        cloud = run.cloud = CloudEndpoint(env, name, dep, catalog.cloud_models[dep.model], work,
                                          seed=seed, horizon_s=horizon, duration_s=duration_s)
        if prime_limits:
            cloud.prime(duration_s)
        handler = cloud.submit
    else:
        parts = deployments or {}
        local_dep, cloud_dep = parts[dep.local], parts[dep.cloud]
        assert isinstance(local_dep, LocalDeployment) and isinstance(cloud_dep, CloudDeployment)
        run.fleet = _local_fleet(env, local_dep, catalog, work, mode=mode,
                                 replica_class=replica_class, seed=seed, horizon_s=horizon)
        api_work = work if api is asked else _workload(api, records, arrivals, None)[0]
        run.cloud = CloudEndpoint(env, dep.cloud, cloud_dep,
                                  catalog.cloud_models[cloud_dep.model], api_work, seed=seed,
                                  horizon_s=horizon, duration_s=duration_s)
        if cloud_demand is not None:
            run.cloud.limiter.prime(*cloud_demand)
        run.parts = {"local": dep.local, "cloud": dep.cloud}
        router = HybridRouter(
            dep, run.fleet, run.cloud, work, stream,
            task_sensitivity=list(task_sensitivity or ["internal"] * len(stream.task_names)),
            restricted_stays_local=restricted_stays_local, task_kinds=task_kinds)
        if prime_limits:
            # the API's prompt cache as the requests its routes send it left it (what
            # spills over comes and goes with the fleet's queue: not counted)
            run.cloud.warm_cache(router.routed_to_cloud(), duration_s)
        handler = router.arrive
    order: list[int] | None = None
    if stream.session is not None and stream.turn is not None and stream.think_s is not None:
        loop = run.sessions = SessionLoop(env, session=stream.session, turn=stream.turn,
                                          think_s=stream.think_s, arrivals=arrivals,
                                          records=records, handler=handler)
        if run.fleet is not None and isinstance(run.fleet.replicas[0], Replica):
            loop.watch(run.fleet.replicas)
        order, plain = loop.first, handler

        def handler(rid: int, t: float) -> None:
            plain(rid, t)
            loop.wake_all()
    _Arrivals(env, arrivals, handler, progress, order)
    env.run(until=horizon)
    if run.fleet is not None:
        run.fleet.finish(horizon)
    if api is not asked:           # a hybrid's API adds hidden reasoning
        run.api_stream = api
        run.served_stream = stream.served_two_ways(api, _priced_by_the_api(records))
    return run


def _priced_by_the_api(records: Records) -> np.ndarray:
    """Per request of a hybrid's run, whether its API's tokens are the ones it was served
    with or priced for: sent there (an attempt at least) and not answered by the fleet
    (a fall-back the fleet answered is the fleet's; one no path answered is priced as the
    API's: llmplan.sim.metrics._missed)."""
    sent = np.asarray(records.attempts) > 0
    by_fleet = np.asarray(records.served_by) == SERVED_LOCAL
    rows: np.ndarray = sent & ~by_fleet
    return rows


def _workload(stream: RequestStream, records: Records, arrivals: list[float],
              template: ChatTemplate | None) -> tuple[Workload, bool]:
    """The columns a server reads of `stream`'s requests (with `template`: a local model's
    chat template, to chat tasks), and whether some share a prefix."""
    groups = stream.prefix_group
    # what an engine shares is the cache's: a cloud provider's cache reads only the turn
    # before's prompt anyway (sim/prompt_cache.py)
    shared = stream.engine_shared_tokens()
    keep = stream.cache_write_groups()
    sharing = groups is not None and shared is not None
    work = Workload(stream.prompt_tokens.tolist(), stream.output_tokens.tolist(), arrivals,
                    records, groups=groups.tolist() if groups is not None and sharing else None,
                    shared=shared.tolist() if shared is not None and sharing else None,
                    keep_groups=keep.tolist() if keep is not None and sharing else None,
                    turns=(stream.session >= 0).tolist()
                    if sharing and stream.session is not None else None)
    side = stream.side_calls() if sharing else None
    if side is not None:
        work = replace(work, side_calls=side.tolist())
    base = stream.conversation_bases() if sharing else None
    if base is not None:
        work = replace(work, base_groups=base[0].tolist(), base_shared=base[1].tolist())
    if sharing and template is not None and any(stream.chat_tasks):
        head, chat_groups = stream.template_head(template)
        work = replace(work, head_tokens=head, head_groups=chat_groups)
    return work, sharing


class Environment(simpy.Environment):
    """SimPy's environment, with the clock movable across a stretch where nothing is due."""

    def skip_to(self, at_s: float) -> bool:
        """Move the clock to at_s if every scheduled event comes after it, and say whether
        it moved. Events are only scheduled while one is processed, so nothing can happen
        in between: what an event at at_s would do next may be done now, with no event."""
        queue = self._queue               # peek(), without its try (once per arrival)
        if not queue or at_s < queue[0][0]:
            self._now = at_s
            return True
        return False


class _Arrivals:
    """Feeds the request stream to a handler in time order.

    A callback chain rather than a SimPy process: resuming a generator costs about twice a
    plain callback, and arrivals are the simulator's only per-request event. Between other
    events no arrival needs one (`Environment.skip_to`): an arrival gets an event only when
    another event is due first or at the same instant (ties then go in the order SimPy's
    queue gives them, as they did when every arrival had its event).
    """

    def __init__(self, env: Environment, arrivals: list[float],
                 handler: Callable[[int, float], object], progress: Progress | None,
                 order: list[int] | None = None) -> None:
        self.env, self.arrivals, self.handler = env, arrivals, handler
        self.progress = progress
        # the requests to send, in stream order (all of them unless sessions hold some back)
        self.order = order if order is not None else range(len(arrivals))
        self.every = max(1, len(self.order) // 200)
        self.next = 0
        if self.order:
            env.timeout(arrivals[self.order[0]]).callbacks.append(self._arrive)

    def _arrive(self, _: simpy.Event) -> None:
        i, arrivals, order, env = self.next, self.arrivals, self.order, self.env
        handler, progress, n = self.handler, self.progress, len(order)
        t = arrivals[order[i]]
        while True:
            # requests of one instant arrive together (a trace's same-second rows): a
            # replica woken by the first starts its step with all of them, as the fast
            # replica does
            while True:
                handler(order[i], t)
                if progress is not None and i % self.every == 0:
                    progress(t)
                i += 1
                if i >= n or arrivals[order[i]] != t:
                    break
            if i >= n:
                break
            t = arrivals[order[i]]
            # the clock as a timeout from now would set it (the stream's exact times go to
            # the handler; the clock keeps SimPy's sum)
            now = env.now
            delay = max(0.0, t - now)
            if not env.skip_to(now + delay):
                self.next = i
                env.timeout(delay).callbacks.append(self._arrive)
                return
        self.next = i
