"""Routers: which replica gets the next request. One class per policy, one registry."""

from __future__ import annotations

from typing import Protocol


class Loaded(Protocol):
    def outstanding(self, t: float) -> int: ...
    def advance(self, until_s: float) -> None: ...


class Router(Protocol):
    needs_load: bool

    def choose(self, replicas: list[Loaded], t: float) -> int: ...


class RoundRobin:
    """Replica i, i+1, ... in turn (what a plain Kubernetes Service roughly does)."""

    needs_load = False

    def __init__(self) -> None:
        self._next = 0

    def choose(self, replicas: list[Loaded], t: float) -> int:
        chosen = self._next
        self._next = (chosen + 1) % len(replicas)
        return chosen


class LeastOutstanding:
    """The replica with the fewest requests in flight; ties go to the lowest index."""

    needs_load = True

    def choose(self, replicas: list[Loaded], t: float) -> int:
        best, best_load = 0, None
        for i, replica in enumerate(replicas):
            replica.advance(t)
            load = replica.outstanding(t)
            if best_load is None or load < best_load:
                best, best_load = i, load
        return best


ROUTERS: dict[str, type[RoundRobin] | type[LeastOutstanding]] = {
    "round_robin": RoundRobin,
    "least_outstanding": LeastOutstanding,
}


def make_router(name: str) -> Router:
    return ROUTERS[name]()
