"""The hybrid router: ordered rules, spill-over to the cloud, fall-back in both directions.

Per request, first matching route (by task, its kind and sensitivity) or the default picks
a side.
Hard constraint first: a request marked sensitive (its task is `restricted` and the
scenario keeps restricted data local) goes to the local fleet only, whatever the rules,
spill-over or fall-back say; if the local fleet refuses it, it fails and is counted as
blocked. Otherwise a local-bound request spills to the cloud when the chosen replica's
expected queue wait passes `spillover_wait_s` or its admission refuses it, and a
cloud-bound request that the API finally fails (429s after retries, outage, timeout) or
refuses (too long for its model) falls back to the local fleet when `fallback_to_local`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmplan.scenario.cloud import HybridDeployment
from llmplan.sim.cloud import CloudEndpoint
from llmplan.sim.fleet import LocalFleet
from llmplan.sim.records import BLOCKED, PENDING, REJECTED, TOO_LONG
from llmplan.sim.serving import Workload
from llmplan.traffic import RequestStream

CLOUD = "cloud"


class HybridRouter:
    def __init__(self, spec: HybridDeployment, fleet: LocalFleet, cloud: CloudEndpoint,
                 work: Workload, stream: RequestStream, *, task_sensitivity: list[str],
                 restricted_stays_local: bool,
                 task_kinds: Sequence[str | None] | None = None) -> None:
        self.spec, self.fleet, self.cloud, self.rec = spec, fleet, cloud, work.records
        self.task_index = stream.task_index.tolist()
        # the rules only look at task, its kind and sensitivity: resolve them once per task
        kinds = task_kinds or [None] * len(task_sensitivity)
        self.side_of_task = [spec.side_of(name, kind, label) for name, kind, label
                             in zip(stream.task_names, kinds, task_sensitivity, strict=True)]
        stays = [restricted_stays_local and label == "restricted" for label in task_sensitivity]
        self.sensitive = [stays[i] for i in self.task_index]
        cloud.on_give_up = self._cloud_gave_up
        fleet.reroute = self._replica_failed

    def routed_to_cloud(self) -> np.ndarray:
        """Per request, whether its task's route sends it to the API (not what spills or
        falls back there)."""
        cloud = np.array([side == CLOUD for side in self.side_of_task], dtype=bool)
        routed: np.ndarray = cloud[np.asarray(self.task_index, dtype=np.int64)] \
            & ~np.asarray(self.sensitive, dtype=bool)
        return routed

    def arrive(self, rid: int, t: float) -> None:
        if self.sensitive[rid]:
            self._local(rid, t, may_spill=False)
            return
        if self.side_of_task[self.task_index[rid]] == CLOUD:
            self.cloud.submit(rid, t)
        else:
            self._local(rid, t, may_spill=True)

    def _local(self, rid: int, t: float, may_spill: bool) -> None:
        fleet = self.fleet
        if not fleet.active:   # every replica is down
            if not self.sensitive[rid] and may_spill:
                self.rec.fallbacks[rid] += 1
                self.cloud.submit(rid, t)
            else:
                fleet.route(rid, t)   # counted as failed
                if self.sensitive[rid]:
                    self.rec.outcome[rid] = BLOCKED   # must stay local, and none is up
            return
        replica = fleet.active[fleet.router.choose(fleet.active, t, rid)]
        replica.advance(t)
        if may_spill and self.spec.spillover_wait_s is not None and \
                replica.expected_wait_s() > self.spec.spillover_wait_s:
            self.rec.fallbacks[rid] += 1
            self.cloud.submit(rid, t)
            return
        replica.arrive(rid, t)
        refused = self.rec.outcome[rid] in (REJECTED, TOO_LONG)
        if not refused:
            return
        if self.sensitive[rid]:
            self.rec.outcome[rid] = BLOCKED   # must stay local, and local said no
        elif may_spill and self.spec.spillover_when_full:
            self.rec.outcome[rid] = PENDING
            self.rec.finish_s[rid] = -1.0
            self.rec.fallbacks[rid] += 1
            self.cloud.submit(rid, t)

    def _replica_failed(self, rid: int, t: float) -> None:
        """A request whose replica failed under it goes again by the same rules: to the
        fleet's other replicas, or to the cloud when none is up (or their queue is past
        the spill-over wait), unless it must stay local."""
        self._local(rid, t, may_spill=not self.sensitive[rid])

    def _cloud_gave_up(self, rid: int, t: float, failure: int) -> None:
        if self.spec.fallback_to_local and not self.sensitive[rid]:
            self.rec.outcome[rid] = PENDING
            self.rec.finish_s[rid] = -1.0
            self.rec.fallbacks[rid] += 1
            self._local(rid, t, may_spill=False)
