"""Routers: which replica gets the next request. One class per policy, one registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from llmplan.sim.replica import Replica

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

    @property
    def index(self) -> int:
        """The replica's number in its fleet."""

    def load_at(self, t: float) -> int: ...


class Router(Protocol):
    needs_load: bool

    def choose(self, replicas: Sequence[Loaded], t: float, rid: int) -> int: ...


class RoundRobin:
    """Replica i, i+1, ... in turn, whatever their load (nginx's default round robin per
    request with equal weights: the stack's balancer for `round_robin`)."""

    needs_load = False

    def __init__(self) -> None:
        self._next = 0

    def choose(self, replicas: Sequence[Loaded], t: float, rid: int) -> int:
        # the list shrinks when a replica fails or is scaled in: wrap to its length
        chosen = self._next % len(replicas)
        self._next = (chosen + 1) % len(replicas)
        return chosen


class LeastOutstanding:
    """The replica with the fewest requests in flight, as nginx's `least_conn` picks the pod
    (the stack's balancer, llmplan/provision/balancer.py): ties go in turn by smooth
    weighted round robin over the tied replicas, equal weights
    (ngx_http_upstream_get_least_conn_peer: every tied peer's current weight grows by its
    weight, the largest wins, the first on a tie, and loses the tied peers' total)."""

    needs_load = True

    def __init__(self) -> None:
        self._current: dict[int, int] = {}   # replica index (in the fleet) -> current weight

    def choose(self, replicas: Sequence[Loaded], t: float, rid: int) -> int:
        loads = _loads(replicas, t)
        low, first, ties = loads[0], 0, 1   # the lowest load, where it first is, how often
        for i in range(1, len(loads)):     # (a loop of native ints when compiled)
            load = loads[i]
            if load < low:
                low, first, ties = load, i, 1
            elif load == low:
                ties += 1
        if ties == 1:
            return first
        current = self._current
        best, best_weight, tied = first, 0, 0
        for i in range(first, len(loads)):
            if loads[i] != low:
                continue
            key = _index(replicas[i])
            weight = current.get(key, 0) + 1
            current[key] = weight
            tied += 1
            if i == first or weight > best_weight:
                best, best_weight = i, weight
        current[_index(replicas[best])] = best_weight - tied
        return best


def _loads(replicas: Sequence[Loaded], t: float) -> list[int]:
    # hot path (every arrival): the fast replica read natively when compiled (a protocol's
    # attributes are looked up by name), load_at inlined for replicas that cannot have
    # changed
    loads = []
    for r in replicas:
        if isinstance(r, Replica):
            loads.append(r.load_at(t))
            continue
        if t >= r.quiet_until_s:
            loads.append(r.load_at(t))
        else:
            loads.append(r.n_in + r.last_finished if r.last_end_s > t else r.n_in)
    return loads


def _index(replica: Loaded) -> int:
    """The replica's number in its fleet (read natively from the fast replica)."""
    if isinstance(replica, Replica):
        return replica.index
    return replica.index


class PrefixAffinity:
    """Cache-aware routing as vLLM's router and SGLang's gateway do it (`cache_aware`): a
    request whose shared prefix covers more than `cache_threshold` of its prompt goes to
    the replica that last served its prefix group (a system prompt, a document, a
    conversation), where that prefix is most likely cached; other requests, and every
    request once the fleet is unbalanced (the busiest replica has more than
    `balance_abs_threshold` requests over the idlest and more than `balance_rel_threshold`
    times as many), go to the least loaded replica, which becomes the group's home.
    Defaults are theirs: 0.3, 64 and 1.5."""

    needs_load = True

    def __init__(self, groups: list[int], shared: list[int], prompts: list[int], *,
                 cache_threshold: float = 0.3, balance_abs_threshold: int = 64,
                 balance_rel_threshold: float = 1.5) -> None:
        self.groups, self.shared, self.prompts = groups, shared, prompts
        self.cache_threshold = cache_threshold
        self.balance_abs = balance_abs_threshold
        self.balance_rel = balance_rel_threshold
        self.home: dict[int, int] = {}       # group -> replica index (in the fleet)

    def choose(self, replicas: Sequence[Loaded], t: float, rid: int) -> int:
        loads = _loads(replicas, t)
        low, high = min(loads), max(loads)
        least = loads.index(low)
        group = self.groups[rid] if self.groups else -1
        if group < 0 or self.shared[rid] <= self.cache_threshold * self.prompts[rid]:
            return least
        if not (high - low > self.balance_abs and high > self.balance_rel * low):
            home = self.home.get(group, -1)
            if home >= 0:
                for i, replica in enumerate(replicas):
                    if replica.index == home:
                        return i
        self.home[group] = replicas[least].index
        return least


#: One class per router name of the scenario schema (a test checks both lists agree).
ROUTERS: dict[RouterName, type[RoundRobin] | type[LeastOutstanding] | type[PrefixAffinity]] = {
    "round_robin": RoundRobin,
    "least_outstanding": LeastOutstanding,
    "prefix_affinity": PrefixAffinity,
}


def make_router(name: RouterName, groups: list[int] | None = None,
                shared: list[int] | None = None, prompts: list[int] | None = None) -> Router:
    """The router `name`; prefix_affinity reads each request's prefix group and share."""
    if name == "prefix_affinity":
        return PrefixAffinity(groups or [], shared or [], prompts or [])
    if name == "round_robin":
        return RoundRobin()
    return LeastOutstanding()
