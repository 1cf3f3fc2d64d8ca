"""Replica failures and autoscaling of a local fleet, as SimPy callbacks.

Failures: each replica fails after an exponential time with the given MTBF (and in any
explicit window); its queued and running requests are retried on the replicas still up
(from the start: the client saw a broken stream), and it returns empty after an
exponential repair time. Autoscaling: every `interval_s` the scaler reads the waiting and
in-flight requests per active replica; above the scale-up threshold it starts one more
replica, which takes traffic after `spin_up_s` (model load); below the scale-down threshold
it stops sending to the newest one (it drains), at most once per `cooldown_s` and not within
`cooldown_s` of a scale-up (the stack's HPA holds scale-downs for the same stabilisation
window after a higher recommendation, so a replica that just loaded is not sent away by the
dip in per-replica load its own arrival causes).

A replica is on (its GPUs count in the fleet's replica-seconds, the utilisation's
denominator and the rented hours) while it takes traffic and, after a scale-down, until it
has finished what it held; a failed one is off from the end of its last step. A replica
loading its model is paid for but not on (`loading_seconds`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import simpy

from llmplan.scenario.models import FailureSpec
from llmplan.sim.fleet import LocalFleet
from llmplan.sim.replica import Replica


class FleetController:
    def __init__(self, env: simpy.Environment, fleet: LocalFleet, horizon_s: float,
                 rng: np.random.Generator) -> None:
        self.env, self.fleet, self.rng = env, fleet, rng
        dep = fleet.deployment
        self.up = [True] * len(fleet.replicas)
        self.serving = dep.replicas           # replicas 0..serving-1 take traffic
        self.starting = 0                     # replicas loading their model
        self.loading_since: list[float] = []  # ... since when, oldest first
        self.loaded: list[tuple[float, float]] = []   # finished loads (start_s, end_s)
        self.last_scale_down_s = -np.inf
        self.last_scale_up_s = -np.inf        # when the scaler last asked for one more
        self.on_since: dict[int, float] = {}      # replicas on now: since when
        self.draining: dict[int, float] = {}      # of those, scaled in: since when
        self.on_intervals: list[tuple[float, float]] = []   # closed (start_s, end_s)
        self.failures = 0
        self.retried = 0
        self.scale_events: list[tuple[float, int]] = [(0.0, self.serving)]
        self._refresh()
        if dep.failures is not None:
            self._schedule_failures(dep.failures, horizon_s)
        if dep.autoscaling is not None:
            self._later(dep.autoscaling.interval_s, self._tick)

    # ------------------------------------------------------------------ bookkeeping

    def _later(self, delay_s: float, action: Callable[[float], None]) -> None:
        self.env.timeout(max(0.0, delay_s)).callbacks.append(
            lambda _: action(self.env.now))

    def _refresh(self) -> None:
        t = self.env.now
        self.fleet.active = [r for i, r in enumerate(self.fleet.replicas)
                             if isinstance(r, Replica) and i < self.serving and self.up[i]]
        active = {r.index for r in self.fleet.active}
        for i in sorted(active & self.draining.keys()):     # back before or after draining
            end = self._drained_at(i, t)
            del self.draining[i]
            if end is not None and end < t:
                self._close(i, end)
        for i in sorted(self.on_since.keys() - active - self.draining.keys()):
            if self.up[i]:
                self.draining[i] = t                       # scaled in: it drains
        for i in sorted(active - self.on_since.keys()):
            self.on_since[i] = t

    def _close(self, i: int, end_s: float) -> None:
        self.on_intervals.append((self.on_since.pop(i), end_s))
        self.draining.pop(i, None)

    def _drained_at(self, i: int, t: float) -> float | None:
        """When draining replica i finished its last request, if it has by t (else None)."""
        replica = self.fleet.replicas[i]
        assert isinstance(replica, Replica)
        replica.advance(t, cut=False)     # every completion before t is known
        return None if replica.n_in else max(self.draining[i], replica.last_end_s)

    def replica_seconds(self, edges_s: np.ndarray) -> np.ndarray:
        """Replica-seconds the fleet had on in each interval between consecutive edges
        (call after the run: replicas still draining then are on until they finish)."""
        intervals = list(self.on_intervals)
        for i, since in self.on_since.items():
            drained = self._drained_at(i, self.env.now) if i in self.draining else None
            intervals.append((since, np.inf if drained is None else drained))
        edges = edges_s.astype(np.float64)
        out = np.zeros(max(0, len(edges) - 1))
        for start, end in intervals:
            out += np.clip(np.minimum(edges[1:], end) - np.maximum(edges[:-1], start), 0.0,
                           None)
        return out

    def loading_seconds(self, end_s: float) -> float:
        """Replica-seconds spent loading a model before taking traffic, up to end_s (paid
        for, as a rented GPU is from its start, but serving nothing)."""
        spans = self.loaded + [(since, end_s) for since in self.loading_since]
        return float(sum(max(0.0, min(end, end_s) - start) for start, end in spans))

    # ------------------------------------------------------------------ failures

    def _schedule_failures(self, spec: FailureSpec, horizon_s: float) -> None:
        for window in spec.windows:
            self._later(window.start_s, partial(self._fail, window.replica,
                                                down_s=window.duration_s))
        if spec.mtbf_hours is None:
            return
        for i in range(len(self.fleet.replicas)):
            t = 0.0
            while True:
                t += float(self.rng.exponential(spec.mtbf_hours * 3600.0))
                if t >= horizon_s:
                    break
                down = float(self.rng.exponential(spec.repair_minutes * 60.0))
                self._later(t, partial(self._fail, i, down_s=down))
                t += down

    def _fail(self, index: int, t: float, down_s: float) -> None:
        if not self.up[index]:
            return
        replica = self.fleet.replicas[index]
        assert isinstance(replica, Replica)   # reference mode has no fleet control
        self.up[index] = False
        self._refresh()
        self.failures += 1
        self._later(down_s, lambda now: self._repair(index, now))
        rec = replica.rec
        drained = self._drained_at(index, t) if index in self.draining else None
        rids = replica.evacuate(t)
        if index in self.on_since:     # off when it drained, or once its last step ends
            self._close(index, drained if drained is not None else max(t, replica.now_s))
        for rid in rids:
            self.retried += 1
            rec.fallbacks[rid] += 1
            rec.start_s[rid] = rec.first_token_s[rid] = -1.0
            self.fleet.route_again(rid, t)

    def _repair(self, index: int, t: float) -> None:
        self.up[index] = True
        self._refresh()

    # ------------------------------------------------------------------ autoscaling

    def _tick(self, t: float) -> None:
        spec = self.fleet.deployment.autoscaling
        assert spec is not None
        active = [r for r in self.fleet.active if isinstance(r, Replica)]
        for replica in active:
            replica.advance(t)
        n = max(1, len(active))
        waiting = sum(r.waiting_seen() for r in active) / n
        in_flight = sum(r.n_in for r in active) / n
        total = self.serving + self.starting
        if waiting > spec.scale_up_waiting_per_replica and total < spec.max_replicas:
            self.starting += 1
            self.loading_since.append(t)
            self.last_scale_up_s = t
            self._later(spec.spin_up_s, self._ready)
        elif in_flight < spec.scale_down_outstanding_per_replica and self.starting == 0 \
                and self.serving > spec.min_replicas \
                and t - max(self.last_scale_down_s, self.last_scale_up_s) >= spec.cooldown_s:
            self.serving -= 1          # the newest one drains: no new traffic
            self.last_scale_down_s = t
            self._refresh()
            self.scale_events.append((t, self.serving))
        self._later(spec.interval_s, self._tick)

    def _ready(self, t: float) -> None:
        self.starting -= 1
        self.serving += 1
        self.loaded.append((self.loading_since.pop(0), t))
        self._refresh()
        self.scale_events.append((t, self.serving))

