"""Locust users for LLM endpoints. Runs only inside `locust`, started by loadtests/runner.py.

Configuration comes from the JSON file named by $LLMPLAN_LOADTEST (written by the runner):
the target, the plan file, the mode (open-loop replay or closed-loop), optional stages, the
output folder, the stop file, the grace period and (closed loop) a request count. Each
process takes its share of the plan (every Nth request for worker i of N), so master +
workers send every planned request exactly once.

Conversations: a plan item that is a later turn of a session is not sent at a planned time
but when the previous turn's answer has ended plus its pause, with the real history in front
(every earlier prompt and the answer the server actually gave), so the server's prompt cache
sees a real growing conversation. A session stays on one process.

Stopping: when the runner creates the stop file (Ctrl-C, --duration) nothing more is sent,
at once; requests in flight get `grace_s` to finish and are then cut and recorded as
`cancelled` (at once when the runner writes `cut` into the stop file: a second Ctrl-C).
Should Locust stop its users itself first (SIGTERM), the requests they had in flight are
recorded `cancelled` as it does. A process writes `started.<pid>` (the wall-clock time its
plan starts, or in a closed loop its first send), so the duration counts from the sending,
not from Locust's start-up; when it has nothing in flight and nothing left to send it
writes `done.<pid>` so the runner knows its records are complete.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import gevent
import locust.runners
import locust.stats
from gevent.event import Event
from locust import LoadTestShape, User, constant, events, task
from locust.exception import StopUser

from llmplan.loadtests.clients import (
    BedrockStream,
    Message,
    OpenAIStream,
    keep_received,
    new_message,
)
from llmplan.loadtests.plan import PlanItem, read_plan
from llmplan.loadtests.records import RecordWriter, RequestRecord
from llmplan.loadtests.targets import Target

CONFIG: dict[str, Any] = json.loads(Path(os.environ["LLMPLAN_LOADTEST"]).read_text())
TARGET = Target.model_validate(CONFIG["target"])
OUT = Path(CONFIG["out_dir"])
STOP_FILE = Path(CONFIG["stop_file"])
#: the llmplan process that started this one (its children are reparented when it dies)
LAUNCHER = os.getppid()
GRACE_S = float(CONFIG.get("grace_s", 5.0))
Stream = OpenAIStream | BedrockStream
# Locust's CSV and worker reports lag by these intervals: keep them short, and let one pass
# before saying "done", so locust_stats.csv counts every request the records hold
vars(locust.stats)["CSV_STATS_INTERVAL_SEC"] = 0.25
locust.runners.WORKER_REPORT_INTERVAL = 1
SETTLE_S = 0.6 if int(CONFIG.get("workers", 1)) <= 1 else 1.2


class _Dispatch:
    """This process's share of the plan, handed to users one request at a time."""

    def __init__(self) -> None:
        self.items: list[PlanItem] = []
        self.next = 0
        self.cycle = 0             # closed loop: how many times the share was replayed
        self.sent = 0
        self.plan_size = 0
        self.start_ts = 0.0
        self.worker = 0
        self.writer: RecordWriter | None = None
        self.stop = Event()
        self.inflight: dict[int, tuple[RequestRecord, Stream]] = {}
        self.taken = 0             # taken and not yet written (waiting or in flight)
        self.max_sends: int | None = None
        self.done_marked = False
        self.environment: Any = None
        # conversations: later turns by (session, turn), turns ready to send (heap of
        # due time, order, item, history, cycle), and turns in flight whose next is to come
        self.followers: dict[tuple[int, int], list[PlanItem]] = {}
        self.turn_size: dict[tuple[int, int], int] = {}
        # turns in flight with a next turn: (session, turn, cycle) -> requests not ended
        # yet, the history they were sent after, the (message, answer) of each that ended
        self.open_turns: dict[tuple[int, int, int],
                              tuple[int, list[Message], list[tuple[int, str, Message | None]]]] = {}
        self.ready: list[tuple[float, int, PlanItem, list[Message], int]] = []
        self.order = itertools.count()
        self.awaiting = 0

    def begin(self, worker_index: int, worker_count: int) -> None:
        plan = read_plan(CONFIG["plan"])
        self.worker = worker_index
        self.plan_size = len(plan)
        mine = [p for p in plan
                if (p.session if p.session >= 0 else p.index) % worker_count == worker_index]
        self.items = [p for p in mine if p.session < 0 or p.turn == 0]
        for p in mine:
            if p.session >= 0:
                key = (p.session, p.turn)
                self.turn_size[key] = self.turn_size.get(key, 0) + 1
                if p.turn:
                    self.followers.setdefault(key, []).append(p)
        total = CONFIG.get("max_requests")
        if total is not None:      # closed loop: this process's share of the request count
            self.max_sends = total // worker_count + (1 if worker_index < total % worker_count
                                                      else 0)
        self.start_ts = time.time() + float(CONFIG.get("start_delay_s", 0.5))
        if CONFIG["mode"] != "closed":
            self._mark_start(self.start_ts)
        self.writer = RecordWriter(OUT / f"requests.{os.getpid()}.jsonl")
        gevent.spawn(self._watch)

    def take(self) -> Taken | None:
        """The next request: a conversation's turn that is due first, else the next planned
        one (None: nothing more to send)."""
        while True:
            if self.stop.is_set() or (self.max_sends is not None and
                                      self.sent >= self.max_sends):
                return None
            if self.next >= len(self.items) and CONFIG["mode"] == "closed" and self.items:
                self.next = 0
                self.cycle += 1
            planned = self.items[self.next] if self.next < len(self.items) else None
            at = (time.time() if CONFIG["mode"] == "closed" or planned is None
                  else self.start_ts + planned.send_s)
            if self.ready and (planned is None or self.ready[0][0] <= at):
                due, _, item, history, cycle = heapq.heappop(self.ready)
                return self._taken(item, due, history, cycle)
            if planned is not None:
                self.next += 1
                return self._taken(planned, at, [], self.cycle)
            if not self.awaiting:
                return None
            gevent.sleep(0.01)     # a conversation's next turn is still to come

    def _mark_start(self, ts: float) -> None:
        """The run's clock starts here (open loop: the plan's time zero; closed loop: the
        first send), not at Locust's launch: --duration is time spent sending."""
        (OUT / f"started.{os.getpid()}").write_text(repr(ts), encoding="utf-8")

    def _taken(self, item: PlanItem, scheduled: float, history: list[Message],
               cycle: int) -> Taken:
        if self.sent == 0 and CONFIG["mode"] == "closed":
            self._mark_start(time.time())
        self.sent += 1
        self.taken += 1
        key = (item.session, item.turn, cycle)
        if (item.session, item.turn + 1) in self.followers and key not in self.open_turns:
            self.open_turns[key] = (self.turn_size[(item.session, item.turn)], history, [])
            self.awaiting += 1
        return Taken(item, item.index + cycle * self.plan_size, item.warmup and cycle == 0,
                     scheduled, history, cycle)

    def answered(self, taken: Taken, answer: Message | None) -> None:
        """A request ended (`answer` None: without one); when every request of its turn
        has, the conversation's next turn is due after its pause, with them in its
        history, unless one of them failed: that ends the conversation, and its later
        turns are never sent (as the simulator has them)."""
        item = taken.item
        key = (item.session, item.turn, taken.cycle)
        if key not in self.open_turns:
            return
        left, history, done = self.open_turns[key]
        done.append((item.index, item.prompt, answer))
        if left > 1:
            self.open_turns[key] = (left - 1, history, done)
            return
        del self.open_turns[key]
        self.awaiting -= 1
        ended = [(index, prompt, reply) for index, prompt, reply in done if reply is not None]
        if self.stop.is_set() or len(ended) < len(done):
            return
        history = list(history)
        # in plan order, whatever ended first
        for _, prompt, reply in sorted(ended, key=lambda d: d[0]):
            history += [new_message(history, prompt), reply]
        for follower in self.followers[(item.session, item.turn + 1)]:
            heapq.heappush(self.ready, (time.time() + follower.think_s, next(self.order),
                                        follower, history, taken.cycle))

    def untake(self, taken: Taken) -> None:
        """Stopped before its time: never sent, never recorded."""
        self.taken -= 1
        self.sent -= 1

    def exhausted(self) -> bool:
        if self.stop.is_set() or (self.max_sends is not None and self.sent >= self.max_sends):
            return True
        return CONFIG["mode"] == "open" and self.next >= len(self.items) and \
            not self.ready and not self.awaiting

    def write(self, record: RequestRecord) -> None:
        self.inflight.pop(record.id, None)
        self.taken -= 1
        if self.writer is not None:
            self.writer.write(record)
        if self.exhausted() and self.taken == 0:
            self.mark_done()

    def mark_done(self) -> None:
        if not self.done_marked:
            self.done_marked = True
            gevent.spawn_later(SETTLE_S, self._finish)

    def _finish(self) -> None:
        """Say so, and (one process) end Locust the normal way: its CSV and HTML are final."""
        (OUT / f"done.{os.getpid()}").touch()
        runner = getattr(self.environment, "runner", None)
        if runner is not None and type(runner).__name__ == "LocalRunner":
            runner.quit()

    def _watch(self) -> None:
        """Stop at the stop file, or when llmplan, which launched this process, is gone (even
        SIGKILLed: nobody would stop the run): no more sends; in-flight requests get
        GRACE_S (or none once the stop file says `cut`), then are cut, and every record is
        on disk for `calibrate` to join."""
        while not STOP_FILE.exists() and os.getppid() == LAUNCHER:
            gevent.sleep(0.05)
        self.stop.set()
        deadline = time.monotonic() + GRACE_S
        while self.inflight and time.monotonic() < deadline and not _cut_now():
            gevent.sleep(0.05)
        for _, stream in list(self.inflight.values()):
            stream.cancel()
        deadline = time.monotonic() + 2.0
        while self.inflight and time.monotonic() < deadline:
            gevent.sleep(0.02)
        self.record_inflight()                     # streams that could not be cut
        if self.taken <= 0:
            self.mark_done()

    def record_inflight(self) -> None:
        """Record every request still in flight as cancelled, with what it received."""
        for record, stream in list(self.inflight.values()):
            keep_received(record, stream.timing)
            record.error_class, record.error = "cancelled", "the run stopped"
            self.write(record)


def _cut_now() -> bool:
    """Whether the runner asked for the requests in flight to be cut now (a second Ctrl-C
    writes `cut` into the stop file)."""
    try:
        return STOP_FILE.read_text(encoding="utf-8").strip() == "cut"
    except OSError:
        return False


class Taken(NamedTuple):
    """A request taken to send: its plan item, unique id (plan index, offset by replays),
    whether it is a warm-up one (first pass only), when it is due, and the conversation
    before it (empty: none)."""

    item: PlanItem
    request_id: int
    warmup: bool
    scheduled_ts: float
    history: list[Message]
    cycle: int


DISPATCH = _Dispatch()


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if type(runner).__name__ == "MasterRunner":
        gevent.spawn(_quit_with_the_launcher, runner)
        return                 # the master sends nothing: only workers take their share
    DISPATCH.environment = environment
    index = getattr(runner, "worker_index", 0)
    DISPATCH.begin(max(0, index), int(CONFIG.get("workers", 1)) or 1)


def _quit_with_the_launcher(runner: Any) -> None:
    """The master's watch: when llmplan is gone, end the run (the workers stop themselves)."""
    while os.getppid() == LAUNCHER:
        gevent.sleep(0.5)
    gevent.sleep(GRACE_S + 3.0)        # the workers' in-flight requests finish or are cut
    runner.quit()


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    """Locust stopped its users (its own end, or SIGTERM: it kills the users still in a
    request after --stop-timeout): what they had in flight is recorded cancelled, with what
    it received, and nothing else can be sent, so this process's records are complete."""
    if DISPATCH.writer is not None:
        DISPATCH.stop.set()
        DISPATCH.record_inflight()
        DISPATCH.writer.close()
        DISPATCH.writer = None
        (OUT / f"done.{os.getpid()}").touch()


class _PlanUser(User):
    """Sends the plan: open loop (at each request's time) or closed loop (back to back)."""

    abstract = True
    wait_time = constant(0)
    stream_class: type[OpenAIStream] | type[BedrockStream] = OpenAIStream

    def on_start(self) -> None:
        self.stream = self.stream_class(TARGET)

    @task
    def send_next(self) -> None:
        taken = DISPATCH.take()
        if taken is None:
            self._quit_when_done()
            raise StopUser()
        item, request_id, warm, scheduled = (taken.item, taken.request_id, taken.warmup,
                                             taken.scheduled_ts)
        delay = scheduled - time.time()
        if delay > 0 and DISPATCH.stop.wait(delay):
            DISPATCH.untake(taken)
            if DISPATCH.taken == 0:
                DISPATCH.mark_done()
            raise StopUser()
        send_ts = time.time()
        record = RequestRecord(id=request_id, task=item.task, target=CONFIG["target_name"],
                               scheduled_ts=scheduled, send_ts=send_ts,
                               schedule_delay_ms=max(0.0, send_ts - scheduled) * 1e3,
                               status=0, error_class=None, worker=DISPATCH.worker,
                               warmup=warm,
                               session=item.session if item.session >= 0 else None,
                               turn=item.turn if item.session >= 0 else None)
        DISPATCH.inflight[request_id] = (record, self.stream)
        self.stream.send(item, record, taken.history)
        # a chat's history drops the planned thinking, an agent loop's keeps it
        DISPATCH.answered(taken, self.stream.sent_back(item)
                          if record.error_class is None else None)
        if request_id not in DISPATCH.inflight:
            return                 # the stop already recorded it as cancelled
        if self.stream.cancelled and record.error_class is not None:
            record.error_class = "cancelled"
        DISPATCH.write(record)
        events.request.fire(
            request_type=TARGET.kind, name=item.task, response_time=record.e2e_ms or 0.0,
            response_length=record.output_tokens or 0, context={}, start_time=send_ts,
            url=None, response=None,
            exception=None if record.error_class is None else
            RuntimeError(f"{record.error_class}: {record.error or ''}"[:200]))
        self._quit_when_done()

    def _quit_when_done(self) -> None:
        """End the run as soon as the last answer is in."""
        if DISPATCH.exhausted() and DISPATCH.taken <= 0:
            DISPATCH.mark_done()


class OpenAIUser(_PlanUser):
    """OpenAI-compatible chat/completions endpoints (llama.cpp, vLLM, Ollama, OpenAI)."""

    stream_class = OpenAIStream


class BedrockUser(_PlanUser):
    """AWS Bedrock ConverseStream through boto3."""

    stream_class = BedrockStream


if CONFIG.get("stages"):
    class Stages(LoadTestShape):
        """Closed-loop stages: (duration_s, users, spawn_rate) one after another."""

        stages: list[dict[str, float]] = CONFIG["stages"]

        def tick(self) -> tuple[int, float] | None:
            elapsed = self.get_run_time()
            for stage in self.stages:
                if elapsed < stage["duration_s"]:
                    return int(stage["users"]), float(stage["spawn_rate"])
                elapsed -= stage["duration_s"]
            return None
