"""Locust users for LLM endpoints. Runs only inside `locust`, started by loadtests/runner.py.

Configuration comes from the JSON file named by $LLMPLAN_LOADTEST (written by the runner):
the target, the plan file, the mode (open-loop replay or closed-loop), optional stages and
the output folder. Each process takes its share of the plan (every Nth request for worker
i of N), so master + workers send every planned request exactly once.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape, User, constant, events, task
from locust.exception import StopUser

from llmplan.loadtests.clients import BedrockStream, OpenAIStream
from llmplan.loadtests.plan import PlanItem, read_plan
from llmplan.loadtests.records import RecordWriter, RequestRecord
from llmplan.loadtests.targets import Target

CONFIG: dict[str, Any] = json.loads(Path(os.environ["LLMPLAN_LOADTEST"]).read_text())
TARGET = Target.model_validate(CONFIG["target"])
OUT = Path(CONFIG["out_dir"])


class _Dispatch:
    """This process's share of the plan, handed to users one request at a time."""

    def __init__(self) -> None:
        self.items: list[PlanItem] = []
        self.next = 0
        self.cycle = 0             # closed loop: how many times the share was replayed
        self.plan_size = 0
        self.start_ts = 0.0
        self.active = 0
        self.worker = 0
        self.writer: RecordWriter | None = None

    def begin(self, worker_index: int, worker_count: int) -> None:
        plan = read_plan(CONFIG["plan"])
        self.worker = worker_index
        self.plan_size = len(plan)
        self.items = [p for p in plan if p.index % worker_count == worker_index]
        self.next = 0
        self.cycle = 0
        self.start_ts = time.time() + float(CONFIG.get("start_delay_s", 0.5))
        self.writer = RecordWriter(OUT / f"requests.{os.getpid()}.jsonl")

    def take(self) -> tuple[PlanItem, int] | None:
        """The next request and its unique id (plan index, offset by replays)."""
        if self.next >= len(self.items):
            if CONFIG["mode"] == "closed" and self.items:
                self.next = 0
                self.cycle += 1
            else:
                return None
        item = self.items[self.next]
        self.next += 1
        return item, item.index + self.cycle * self.plan_size


DISPATCH = _Dispatch()


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    runner = environment.runner
    index = getattr(runner, "worker_index", 0)
    DISPATCH.begin(max(0, index), int(CONFIG.get("workers", 1)) or 1)


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    if DISPATCH.writer is not None:
        DISPATCH.writer.close()
        DISPATCH.writer = None


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
        item, request_id = taken
        DISPATCH.active += 1   # taken counts as in flight: the run must not end under it
        try:
            scheduled = DISPATCH.start_ts + item.send_s if CONFIG["mode"] == "open" \
                else time.time()
            delay = scheduled - time.time()
            if delay > 0:
                gevent.sleep(delay)
            send_ts = time.time()
            record = RequestRecord(id=request_id, task=item.task,
                                   target=CONFIG["target_name"], scheduled_ts=scheduled,
                                   send_ts=send_ts,
                                   schedule_delay_ms=max(0.0, send_ts - scheduled) * 1e3,
                                   status=0, error_class=None, worker=DISPATCH.worker)
            self.stream.send(item, record)
        finally:
            DISPATCH.active -= 1
        if DISPATCH.writer is not None:
            DISPATCH.writer.write(record)
        events.request.fire(
            request_type=TARGET.kind, name=item.task, response_time=record.e2e_ms or 0.0,
            response_length=record.output_tokens or 0, context={}, start_time=send_ts,
            url=None, response=None,
            exception=None if record.error_class is None else
            RuntimeError(f"{record.error_class}: {record.error or ''}"[:200]))
        self._quit_when_done()


    def _quit_when_done(self) -> None:
        """Open loop, one process: end the run as soon as the last answer is in."""
        runner = self.environment.runner
        if CONFIG["mode"] == "open" and DISPATCH.next >= len(DISPATCH.items) \
                and DISPATCH.active == 0 and type(runner).__name__ == "LocalRunner":
            runner.quit()


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
