"""The arrival feed: arrivals between other events get no SimPy event, and nothing changes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import simpy

from llmplan.sim.engine import Environment, _Arrivals

Log = list[tuple[str, int, float]]


def _one_event_each(env: simpy.Environment, arrivals: list[float],
                    handler: Callable[[int, float], object]) -> None:
    """The plain way: one timeout per instant's arrivals, each scheduled by the one before."""
    def arrive(i: int) -> Callable[[simpy.Event], None]:
        def fire(_: simpy.Event) -> None:
            j, t = i, arrivals[i]
            while j < len(arrivals) and arrivals[j] == t:
                handler(j, t)
                j += 1
            if j < len(arrivals):
                env.timeout(max(0.0, arrivals[j] - env.now)).callbacks.append(arrive(j))
        return fire
    env.timeout(arrivals[0]).callbacks.append(arrive(0))


def _run(feed: Callable[..., object], arrivals: list[float], seed: int) -> Log:
    """Arrivals whose handler schedules events of its own (some due at once, some on a
    later arrival's very instant), beside an independent process: what ran, when."""
    env = Environment()
    rng = np.random.default_rng(seed)
    delays = rng.choice([0.0, 0.5, 1.0, 2.0, 0.25], size=len(arrivals)).tolist()
    log: Log = []

    def handler(rid: int, t: float) -> None:
        assert env.now == pytest.approx(t, abs=1e-9)
        log.append(("arrive", rid, env.now))
        if rid % 3 == 0:
            env.timeout(delays[rid]).callbacks.append(
                lambda _, rid=rid: log.append(("done", rid, env.now)))

    def ticker() -> simpy.events.ProcessGenerator:
        for k in range(40):
            yield env.timeout(0.75)
            log.append(("tick", k, env.now))

    env.process(ticker())
    feed(env, arrivals, handler)
    env.run(until=max(arrivals) + 10)
    return log


@pytest.mark.parametrize("seed", range(6))
def test_arrivals_run_in_the_order_one_event_each_would_give(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    # whole and half seconds: ties among arrivals, and with the ticker's and handler's events
    arrivals = np.sort(rng.integers(0, 60, 80) / 2).tolist()
    plain = _run(_one_event_each, arrivals, seed)
    fed = _run(lambda env, a, h: _Arrivals(env, a, h, None), arrivals, seed)
    assert [entry[0] for entry in plain].count("tick") == 40
    assert fed == plain


def test_the_clock_only_skips_where_no_event_is_due() -> None:
    env = Environment()
    env.timeout(5.0)
    assert env.skip_to(4.0) and env.now == 4.0
    assert not env.skip_to(5.0) and env.now == 4.0     # an event at the same instant first
    assert not env.skip_to(6.0) and env.now == 4.0
