"""Run a load test: Locust headless in child processes (one, or a master and N workers).

Writes into the output folder: plan.json, config.json (no secrets: the key's variable NAME
only), requests.jsonl (one line per finished request), summary.json, Locust's own
locust_stats.csv / locust.html, and report.html. Ctrl-C stops Locust and still merges and
summarises every finished request. A target that stops answering makes the run end with a
clear message and a non-zero exit code, with everything finished before that on disk.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmplan.loadtests.plan import PlanItem, write_plan
from llmplan.loadtests.records import RequestRecord, merge
from llmplan.loadtests.summary import summarise_records
from llmplan.loadtests.targets import Target
from llmplan.results.loadtest import LoadTestSummary
from llmplan.scenario import LoadedScenario

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


@dataclass(frozen=True)
class LoadTestSettings:
    """How hard and how long to push (the bounds every run must state)."""

    users: int                           # concurrency cap (open loop) / users (closed loop)
    duration_s: float                    # hard stop of the whole run
    mode: Literal["open", "closed"] = "open"
    workers: int = 0                     # 0: one process; N: a master and N workers
    stages: tuple[tuple[float, int, float], ...] = ()   # closed loop: (seconds, users, rate)


@dataclass
class LoadTestResult:
    summary: LoadTestSummary
    rows: list[RequestRecord]
    out_dir: Path
    interrupted: bool
    target_down: str | None              # why the target is considered dead, if it is
    exit_codes: list[int]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _locust_cmd(user_class: str, settings: LoadTestSettings, out: Path, role: list[str],
                run_time_s: float) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
           "--loglevel", "WARNING", "--stop-timeout", "5", "--exit-code-on-error", "0"]
    if role and role[0] == "--worker":
        return cmd + role + [user_class]
    if not settings.stages:
        cmd += ["--users", str(settings.users), "--spawn-rate", str(max(settings.users, 1) * 10),
                "--run-time", f"{math.ceil(run_time_s)}s"]
    cmd += ["--csv", str(out / "locust"), "--html", str(out / "locust.html"), "--only-summary"]
    return cmd + role + [user_class]


def run_load_test(target_name: str, target: Target, plan: list[PlanItem],
                  settings: LoadTestSettings, out_dir: Path, *,
                  loaded: LoadedScenario | None = None) -> LoadTestResult:
    """Drive Locust through the plan; always leaves every finished request on disk."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("requests*.jsonl"):
        stale.unlink()
    write_plan(plan, out_dir / "plan.json")
    config = {
        "target_name": target_name, "target": target.model_dump(),
        "plan": str(out_dir / "plan.json"), "out_dir": str(out_dir), "mode": settings.mode,
        "workers": max(settings.workers, 1),
        "stages": [{"duration_s": d, "users": u, "spawn_rate": r} for d, u, r in settings.stages],
    }
    config_path = out_dir / "config.json"
    config_path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    env = {**os.environ, "LLMPLAN_LOADTEST": str(config_path)}
    _save_server_state(target, out_dir, "start")
    user_class = "BedrockUser" if target.kind == "bedrock" else "OpenAIUser"
    span = plan[-1].send_s if plan and settings.mode == "open" else 0.0
    run_time = min(settings.duration_s, span + target.request_timeout_s + 2.0) \
        if settings.mode == "open" else settings.duration_s
    commands: list[list[str]] = []
    if settings.workers > 0:
        port = _free_port()
        commands.append(_locust_cmd(user_class, settings, out_dir,
                                    ["--master", "--master-bind-host", "127.0.0.1",
                                     "--master-bind-port", str(port),
                                     "--expect-workers", str(settings.workers)], run_time))
        commands += [_locust_cmd(user_class, settings, out_dir,
                                 ["--worker", "--master-host", "127.0.0.1",
                                  "--master-port", str(port)], run_time)
                     for _ in range(settings.workers)]
    else:
        commands.append(_locust_cmd(user_class, settings, out_dir, [], run_time))
    log = (out_dir / "locust.log").open("wb")
    processes = [subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True) for cmd in commands]
    interrupted = False
    deadline = time.monotonic() + settings.duration_s + 60.0
    try:
        while any(p.poll() is None for p in processes):
            if time.monotonic() > deadline:
                _signal_all(processes, signal.SIGTERM)
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        interrupted = True
        _signal_all(processes, signal.SIGTERM)
    finally:
        for p in processes:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        log.close()
    rows = merge(out_dir)
    _save_server_state(target, out_dir, "end")
    slo_by_task = {}
    if loaded is not None:
        slo_by_task = {t.name: loaded.scenario.slo_for(t) for t in loaded.scenario.tasks}
    span_s = max((p.send_s for p in plan), default=0.0)
    if len(plan) > 1:
        span_s *= len(plan) / (len(plan) - 1)   # mean gap after the last arrival too
    down = _target_down(rows)
    summary = summarise_records(rows, planned=len(plan), planned_span_s=span_s,
                                slo_by_task=slo_by_task, mode=settings.mode)
    summary = summary.model_copy(update={"interrupted": interrupted, "target_down": down})
    (out_dir / "summary.json").write_text(summary.model_dump_json(indent=1), encoding="utf-8")
    return LoadTestResult(summary, rows, out_dir, interrupted, down,
                          [p.returncode for p in processes])


def _save_server_state(target: Target, out_dir: Path, when: str) -> None:
    """Keep what the server says about itself (llama.cpp /props, Prometheus /metrics).

    Calibration reads the slot count and context size from it; the metrics counters (decode
    calls, busy slots) are a second view of the same run. Best effort: never fails a run.
    """
    if target.kind not in {"llamacpp", "vllm"}:
        return
    base = target.base_url.rstrip("/")
    wanted = [("metrics", f"server_metrics_{when}.txt")]
    if target.kind == "llamacpp" and when == "start":
        wanted.append(("props", "server_props.json"))
    for path, name in wanted:
        try:
            with urllib.request.urlopen(f"{base}/{path}", timeout=5) as response:
                (out_dir / name).write_bytes(response.read())
        except (OSError, ValueError):
            continue


def _signal_all(processes: list[subprocess.Popen[bytes]], sig: int) -> None:
    for p in processes:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)


def _target_down(rows: list[RequestRecord]) -> str | None:
    """The target died if it answered at first and then refused or reset to the end."""
    dead_classes = {"connect", "reset"}
    tail = 0
    for row in reversed(rows):
        if row.error_class in dead_classes:
            tail += 1
        else:
            break
    if tail >= 3:
        first_dead = rows[len(rows) - tail]
        when = time.strftime("%H:%M:%S", time.localtime(first_dead.send_ts))
        return (f"target stopped answering at {when}: the last {tail} requests failed "
                f"with {first_dead.error_class} errors")
    return None
