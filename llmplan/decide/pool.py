"""Process pools a Ctrl-C stops at once: the workers ignore SIGINT (the terminal sends it
to the whole process group, and each worker printed its own KeyboardInterrupt traceback,
or one blocked on its queue and the run hung), and the pool is torn down without waiting
for what is queued, so the interrupt reaches the command, which says what it kept."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import process as futures_process
from contextlib import contextmanager


def ignore_interrupts() -> None:
    """A worker's first act: leave Ctrl-C to the parent process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def stopped_on_interrupt(pool: ProcessPoolExecutor) -> Iterator[ProcessPoolExecutor]:
    """`pool`, shut down when the block ends; on an exception (Ctrl-C's KeyboardInterrupt
    among them) its queued work is cancelled and its workers ended, not waited for."""
    try:
        yield pool
    except BaseException:
        # the running workers are in the middle of a simulation: end them
        workers = list((getattr(pool, "_processes", None) or {}).values())
        manager = getattr(pool, "_executor_manager_thread", None)
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
        for worker in workers:
            worker.join(timeout=5)
        # the pool's manager thread sees its workers gone and closes its pipes: waiting for
        # it here keeps the interpreter's exit from writing to a closed one (a traceback)
        pool.shutdown(wait=True)
        # ... and Python 3.11's exit hook still wakes it through the pipe it closed (a
        # traceback, "Bad file descriptor": fixed in 3.12): it has nothing left to wake
        wakeups = getattr(futures_process, "_threads_wakeups", None)
        if manager is not None and wakeups is not None:
            wakeups.pop(manager, None)
        raise
    pool.shutdown(wait=True)
