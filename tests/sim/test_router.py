"""least_outstanding picks as the stack's balancer does (nginx least_conn): the fewest
requests in flight, ties in turn by smooth weighted round robin over the tied replicas."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from helpers import run_first, scenario_from

from llmplan.sim.router import LeastOutstanding, RoundRobin
from llmplan.sim.table import request_table


@dataclass
class _Replica:
    """A replica whose load the test sets (the router's Loaded view of it)."""

    index: int
    n_in: int
    quiet_until_s: float = 0.0
    last_end_s: float = 0.0
    last_finished: int = 0

    def load_at(self, t: float) -> int:
        return self.n_in


def test_the_least_loaded_replica_wins() -> None:
    router = LeastOutstanding()
    replicas = [_Replica(0, 3), _Replica(1, 1), _Replica(2, 2)]
    assert [router.choose(replicas, 0.0, rid) for rid in range(3)] == [1, 1, 1]


def test_ties_go_in_turn_like_nginx_least_conn() -> None:
    """By hand, nginx's rule with weights 1: each tied peer's current weight +1, the
    largest (the first on a tie) is chosen and loses the number tied."""
    router = LeastOutstanding()
    idle = [_Replica(i, 0) for i in range(3)]
    # weights (0,0,0) -> (1,1,1): 0 wins -> (-2,1,1); (-1,2,2): 1 -> (-1,-1,2);
    # (0,0,3): 2 -> (0,0,0); and again
    assert [router.choose(idle, 0.0, rid) for rid in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    # now (-2,1,1); replica 0 busier: 1 and 2 tied -> (-2,2,2): 1 -> (-2,0,2);
    # (-2,1,3): 2 -> (-2,1,1); (-2,2,2): 1
    busy = [_Replica(0, 1), _Replica(1, 0), _Replica(2, 0)]
    assert [router.choose(busy, 0.0, rid) for rid in range(3)] == [1, 2, 1]


def test_ties_follow_the_fleet_index_not_the_position() -> None:
    """With the autoscaler's replicas the list the router sees changes; the turn belongs
    to the replica (its index in the fleet), as nginx keeps it per peer."""
    router = LeastOutstanding()
    assert router.choose([_Replica(0, 0), _Replica(1, 0)], 0.0, 0) == 0
    # replica 0 gone: replica 1 is now first in the list, and it alone is idle with 2
    assert router.choose([_Replica(1, 0), _Replica(2, 0)], 0.0, 1) == 0      # replica 1
    assert router.choose([_Replica(1, 0), _Replica(2, 0)], 0.0, 2) == 1      # replica 2


def test_round_robin_ignores_load() -> None:
    router = RoundRobin()
    replicas = [_Replica(0, 9), _Replica(1, 0)]
    assert [router.choose(replicas, 0.0, rid) for rid in range(4)] == [0, 1, 0, 1]


def test_round_robin_wraps_when_a_replica_leaves() -> None:
    """A failure or a scale-in shrinks the list between two choices: the turn wraps to the
    replicas left (it used to return an index past the end)."""
    router = RoundRobin()
    three = [_Replica(i, 0) for i in range(3)]
    assert [router.choose(three, 0.0, rid) for rid in range(2)] == [0, 1]
    two = three[:2]
    assert [router.choose(two, 0.0, rid) for rid in range(3)] == [0, 1, 0]


FLEET = """
    seed: 3
    duration: 400
    traffic: {kind: poisson, rate_per_s: 0.5}
    tasks:
      - name: t
        prompt_tokens: {kind: fixed, tokens: 64}
        output_tokens: {kind: fixed, tokens: 8}
    deployments:
      fleet:
        gpu: H100-SXM
        model: Llama-3.1-8B
        replicas: 4
        router: least_outstanding
"""


def test_a_quiet_fleet_shares_its_requests() -> None:
    """At 0.5 req/s of requests lasting well under a second, nearly every arrival finds
    the whole fleet idle: a tie. nginx (and now the simulation) takes the four pods in
    turn, so each serves close to a quarter; the rule before sent nearly all to the first."""
    run, stream = run_first(scenario_from(FLEET))
    table = request_table(run, stream)
    counts = np.bincount(table.replica, minlength=4)
    assert len(stream) > 150
    shares = counts / counts.sum()
    assert shares.max() - shares.min() < 0.05, counts
