"""Routers: which replica gets the next request. One class per policy, one registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from llmplan.scenario.models import RouterName


class Loaded(Protocol):
    """What a router may read of a replica."""

    @property
    def quiet_until_s(self) -> float:
        """Before this time the load changes only by arrivals routed here."""

    @property
    def n_in(self) -> int:
        """Requests queued or running."""

    @property
    def last_end_s(self) -> float:
        """End of the last executed step (its finishes count until then)."""

    @property
    def last_finished(self) -> int:
        """Requests that step finishes."""

    def load_at(self, t: float) -> int: ...


class Router(Protocol):
    needs_load: bool

    def choose(self, replicas: Sequence[Loaded], t: float) -> int: ...


class RoundRobin:
    """Replica i, i+1, ... in turn (what a plain Kubernetes Service roughly does)."""

    needs_load = False

    def __init__(self) -> None:
        self._next = 0

    def choose(self, replicas: Sequence[Loaded], t: float) -> int:
        chosen = self._next
        self._next = (chosen + 1) % len(replicas)
        return chosen


class LeastOutstanding:
    """The replica with the fewest requests in flight; ties go to the lowest index."""

    needs_load = True

    def choose(self, replicas: Sequence[Loaded], t: float) -> int:
        # load_at inlined for replicas that cannot have changed (hot path: every arrival)
        loads = [r.load_at(t) if t >= r.quiet_until_s else
                 (r.n_in + r.last_finished if r.last_end_s > t else r.n_in) for r in replicas]
        return loads.index(min(loads))


#: One class per router name of the scenario schema (a test checks both lists agree).
ROUTERS: dict[RouterName, type[RoundRobin] | type[LeastOutstanding]] = {
    "round_robin": RoundRobin,
    "least_outstanding": LeastOutstanding,
}


def make_router(name: RouterName) -> Router:
    return ROUTERS[name]()
