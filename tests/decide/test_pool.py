"""A Ctrl-C during planning or a sweep stops their process pools at once: the workers
leave SIGINT to the parent, and an interrupted pool ends its workers rather than wait
for their simulations (a worker blocked on its queue had hung the command)."""

from __future__ import annotations

import multiprocessing
import signal
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from llmplan.decide.pool import ignore_interrupts, stopped_on_interrupt


def _busy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _ignores_sigint(_: int) -> bool:
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_an_interrupted_pool_ends_its_workers_without_waiting_for_them() -> None:
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork"),
                               initializer=ignore_interrupts)
    # the workers ignore Ctrl-C: the terminal's SIGINT goes to the whole process group
    assert pool.submit(_ignores_sigint, 0).result()
    workers = list(pool._processes.values())
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), stopped_on_interrupt(pool):
        pool.map(_busy, [60.0, 60.0, 60.0])
        raise KeyboardInterrupt
    # a minute of work each, queued and running: ended, not waited for (bound generous
    # for a loaded machine; waiting would take 60 s at least)
    assert time.monotonic() - started < 30
    # ended (the pool's own thread may have reaped them first: is_alive() can't tell then)
    deadline = time.monotonic() + 10
    while any(_running(w.pid) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_running(w.pid) for w in workers)


def _running(pid: int | None) -> bool:
    """Whether the process runs (not gone, not a zombie), from /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_pool_left_normally_finishes_its_work() -> None:
    pool = ProcessPoolExecutor(max_workers=2, initializer=ignore_interrupts)
    with stopped_on_interrupt(pool):
        assert list(pool.map(_busy, [0.01, 0.02])) == [0.01, 0.02]
