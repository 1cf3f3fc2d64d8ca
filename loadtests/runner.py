"""Run a load test: Locust headless in child processes (one, or a master and N workers).

Writes into the output folder: plan.json, config.json (no secrets: the key's variable NAME
only), requests.jsonl (one line per request sent: finished, failed or cancelled),
warmup.jsonl, summary.json, Locust's own locust_stats.csv / locust.html, and report.html.

Stop means stop: at Ctrl-C or when --duration is up the runner creates the stop file; every
Locust process stops sending at once, gives requests in flight `grace_s` to finish, records
the rest as `cancelled`, and says it is done (`done.<pid>`); only then are the processes
ended, so nothing sent goes unrecorded. A second Ctrl-C cuts the grace short: the runner
writes `cut` into the stop file, the requests in flight are cut at once and recorded as
`cancelled`, and the runner still waits (a few seconds at most) for every process to say
it is done. A target that stops answering, or never answered, makes the run end with a
clear message and a non-zero exit code, with everything on disk.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmplan.loadtests.clients import history_note
from llmplan.loadtests.exports import write_exports
from llmplan.loadtests.plan import PlanItem, write_plan
from llmplan.loadtests.records import RequestRecord, merge
from llmplan.loadtests.scrape import MetricsScraper
from llmplan.loadtests.summary import summarise_records
from llmplan.loadtests.targets import Target
from llmplan.results.loadtest import LoadTestSummary
from llmplan.scenario import LoadedScenario

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


@dataclass(frozen=True)
class LoadTestSettings:
    """How hard and how long to push (the bounds every run must state)."""

    users: int                           # concurrency cap (open loop) / users (closed loop)
    duration_s: float                    # hard stop, counted from the plan's start
    mode: Literal["open", "closed"] = "open"
    workers: int = 0                     # 0: one process; N: a master and N workers
    stages: tuple[tuple[float, int, float], ...] = ()   # closed loop: (seconds, users, rate)
    grace_s: float = 5.0                 # at a stop, how long requests in flight may finish
    max_requests: int | None = None      # closed loop: stop after sending this many


@dataclass
class LoadTestResult:
    summary: LoadTestSummary
    rows: list[RequestRecord]
    out_dir: Path
    interrupted: bool
    target_down: str | None              # why the target is considered dead, if it is
    exit_codes: list[int]
    #: every sender said its records are complete (`done.<pid>`): no request it sent is
    #: missing from them (False: one was killed or died with requests in flight)
    complete: bool = True


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
        cmd += ["--users", str(settings.users), "--spawn-rate", str(max(settings.users, 1) * 10)]
    # a backstop only: the runner stops the run itself (stop file), Locust never cuts requests
    cmd += ["--run-time", f"{math.ceil(run_time_s)}s"]
    cmd += ["--csv", str(out / "locust"), "--html", str(out / "locust.html"), "--only-summary"]
    return cmd + role + [user_class]


#: what a run writes into its folder, all of it replaced by the next run there
#: what a run writes in its folder: exact names, and the per-process parts
RUN_FILES = ("requests.jsonl", "requests.[0-9]*.jsonl", "done.[0-9]*", "started.[0-9]*", "stop",
             "warmup.jsonl", "server_props.json", "server_metrics_*.txt", "server_metrics.prom",
             "metrics.prom", "summary.json", "summary.csv", "report.html", "locust.log",
             "locust.html", "locust_*.csv", "plan.json", "config.json")
#: what a sweep or a repeated run writes above its runs' folders
PARENT_ENTRIES = ("sweep.json", "repeats.json", "rate-*", "repeat-*")


def _matches(path: Path, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(path.name, pattern) for pattern in patterns)


def _is_run(folder: Path) -> bool:
    """A folder a load test wrote: its config.json is the runner's."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and {"target_name", "stop_file"} <= config.keys()


def out_folder_problem(out_dir: Path) -> str | None:
    """Why a load test must not write in `out_dir` (None: it may). A new or empty folder
    is fine, and so is a previous run's (or sweep's, or repeated run's): the run clears the
    files it writes itself, by their exact names, and nothing else. A folder of other files
    is refused, as is one holding records a stopped run never joined (their only copy)."""
    if not out_dir.exists():
        return None
    if not out_dir.is_dir():
        return f"{out_dir} is a file; expected a folder, existing or new"
    entries = sorted(out_dir.iterdir())
    if not entries:
        return None
    runs = [out_dir] if _is_run(out_dir) else []
    for child in entries:
        if child.is_dir() and _matches(child, PARENT_ENTRIES):
            runs += [child] if _is_run(child) else \
                [grand for grand in sorted(child.iterdir()) if grand.is_dir() and _is_run(grand)]
    ours = any(_matches(e, PARENT_ENTRIES[:2]) for e in entries)
    if not runs and not ours:
        shown = ", ".join(e.name for e in entries[:5]) + (", ..." if len(entries) > 5 else "")
        return (f"{out_dir} holds files that are not a load test's ({shown}); choose a new "
                "or empty folder (a run clears a previous run's files from its folder)")
    unjoined = [part for run in runs for part in sorted(run.glob("requests.[0-9]*.jsonl"))]
    if unjoined:
        return (f"{out_dir} holds the records of a run stopped before it joined them "
                f"({', '.join(str(p.relative_to(out_dir)) for p in unjoined[:3])}), their "
                "only copy: `llmplan calibrate` or `llmplan validate` on that folder joins "
                "them; then run again, or choose another folder")
    return None


def clear_previous_run(out_dir: Path) -> None:
    """Remove a previous run's files from `out_dir` (by their exact names): its start
    markers above all (the duration clock starts from the earliest `started.*`, so an old
    one would end the new run before it sent anything), and what it read from its server (a
    new run against another server would otherwise be calibrated with the old one's
    slots)."""
    for stale in out_dir.iterdir():
        if stale.is_file() and _matches(stale, RUN_FILES):
            stale.unlink(missing_ok=True)


def run_load_test(target_name: str, target: Target, plan: list[PlanItem],
                  settings: LoadTestSettings, out_dir: Path, *,
                  loaded: LoadedScenario | None = None) -> LoadTestResult:
    """Drive Locust through the plan; always leaves every finished request on disk."""
    problem = out_folder_problem(out_dir)
    if problem is not None:
        raise ValueError(problem)
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_previous_run(out_dir)
    write_plan(plan, out_dir / "plan.json")
    stop_file = out_dir / "stop"
    config = {
        "target_name": target_name, "target": target.model_dump(),
        "plan": str(out_dir / "plan.json"), "out_dir": str(out_dir), "mode": settings.mode,
        "workers": max(settings.workers, 1), "stop_file": str(stop_file),
        "grace_s": settings.grace_s,
        "max_requests": settings.max_requests if settings.mode == "closed" else None,
        "stages": [{"duration_s": d, "users": u, "spawn_rate": r} for d, u, r in settings.stages],
    }
    config_path = out_dir / "config.json"
    config_path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    env = {**os.environ, "LLMPLAN_LOADTEST": str(config_path)}
    _save_server_state(target, out_dir, "start")
    user_class = "BedrockUser" if target.kind == "bedrock" else "OpenAIUser"
    backstop = settings.duration_s + settings.grace_s + 30.0
    commands: list[list[str]] = []
    if settings.workers > 0:
        port = _free_port()
        commands.append(_locust_cmd(user_class, settings, out_dir,
                                    ["--master", "--master-bind-host", "127.0.0.1",
                                     "--master-bind-port", str(port),
                                     "--expect-workers", str(settings.workers)], backstop))
        commands += [_locust_cmd(user_class, settings, out_dir,
                                 ["--worker", "--master-host", "127.0.0.1",
                                  "--master-port", str(port)], backstop)
                     for _ in range(settings.workers)]
    else:
        commands.append(_locust_cmd(user_class, settings, out_dir, [], backstop))
    senders = max(settings.workers, 1)
    log = (out_dir / "locust.log").open("wb")
    # from the first sender's start to its records joined, a stop signal never cuts this
    # process short: while the run is supervised it stops the run (`_supervise`), and
    # afterwards it is noted (the senders are being ended and their records joined)
    with _stop_signals_held() as held:
        processes = [subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True) for cmd in commands]
        interrupted = False
        scraper = MetricsScraper(target, out_dir)
        scraper.start()
        try:
            with _stop_signals_as_ctrl_c():
                interrupted = _supervise(processes, out_dir, senders, settings.duration_s,
                                         settings.grace_s, presses=len(held))
        finally:
            _signal_all(processes, signal.SIGTERM)
            for p in processes:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
            log.close()
            scraper.stop()
        complete = _done_count(out_dir) >= senders
        rows = merge(out_dir)
    interrupted = interrupted or bool(held)
    _save_server_state(target, out_dir, "end")
    slo_by_task = {}
    if loaded is not None:
        slo_by_task = {t.name: loaded.scenario.slo_for(t) for t in loaded.scenario.tasks}
    measured = [p for p in plan if not p.warmup]
    span_s = max((p.send_s for p in measured), default=0.0) - \
        min((p.send_s for p in measured), default=0.0)
    if len(measured) > 1:
        span_s *= len(measured) / (len(measured) - 1)   # mean gap after the last arrival too
    down = target_down(rows)
    warm = sum(1 for p in plan if p.warmup)
    planned = settings.max_requests - warm if settings.mode == "closed" and \
        settings.max_requests else len(measured)
    summary = summarise_records(rows, planned=planned, planned_span_s=span_s,
                                slo_by_task=slo_by_task, mode=settings.mode,
                                warmup=warm,
                                shared_prompts=any(p.check is not None or p.shared_prefix_tokens
                                                   for p in plan),
                                planned_prompt_tokens=_planned_tokens(rows, plan))
    summary = summary.model_copy(update={"interrupted": interrupted, "target_down": down,
                                         "history_note": history_note(target, plan)})
    (out_dir / "summary.json").write_text(summary.model_dump_json(indent=1), encoding="utf-8")
    write_exports(summary, out_dir, {"target": target_name, "run": out_dir.name})
    return LoadTestResult(summary, rows, out_dir, interrupted, down,
                          [p.returncode for p in processes], complete)


def _planned_tokens(rows: list[RequestRecord], plan: list[PlanItem]) -> dict[int, int]:
    """Planned prompt length per record id (closed-loop replays offset ids by the plan size)."""
    by_index = {p.index: p.planned_prompt_tokens for p in plan}
    size = max(by_index, default=0) + 1
    return {r.id: by_index[r.id % size] for r in rows if r.id % size in by_index}


#: how long Locust may take to start (import gevent, read the plan) before the run's clock
#: starts anyway
STARTUP_ALLOWANCE_S = 60.0


def _stop_at(out_dir: Path, launched: float, duration_s: float) -> float | None:
    """When to stop (time.monotonic()): `duration_s` after the first sender's plan starts
    (its `started.<pid>` file), or after the launch plus the start-up allowance. None: not
    known yet."""
    starts = []
    for marker in out_dir.glob("started.*"):
        try:
            starts.append(float(marker.read_text(encoding="utf-8")))
        except ValueError:       # being written
            continue
    if starts:
        return time.monotonic() + (min(starts) + duration_s - time.time())
    if time.monotonic() > launched + STARTUP_ALLOWANCE_S:
        return launched + duration_s
    return None


#: this many requests in a row failing to connect: the target is down, and sending the
#: rest of the plan to it would only take the plan's time
DEAD_STREAK = 10


class _DeadWatch:
    """Reads the senders' records as they are written (each file from where it stopped)
    and counts the requests that failed to connect since the last that did not."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.offsets: dict[Path, int] = {}
        self.streak = 0
        self.checked = 0.0

    def down(self) -> bool:
        now = time.monotonic()
        if now - self.checked < 1.0:
            return self.streak >= DEAD_STREAK
        self.checked = now
        for part in sorted(self.out_dir.glob("requests.*.jsonl")):
            try:
                with part.open("rb") as handle:
                    handle.seek(self.offsets.get(part, 0))
                    data = handle.read()
            except OSError:
                continue
            complete = data[:data.rfind(b"\n") + 1]
            self.offsets[part] = self.offsets.get(part, 0) + len(complete)
            for line in complete.splitlines():
                try:
                    error = json.loads(line).get("error_class")
                except (ValueError, AttributeError):
                    continue
                self.streak = self.streak + 1 if error == "connect" else 0
        return self.streak >= DEAD_STREAK


#: how long the senders may take to cut their requests in flight and record them (they
#: give the cut streams 2 s to end, then record the rest themselves, and settle for 1.2 s
#: at most before saying they are done)
CUT_S = 5.0


def _supervise(processes: list[subprocess.Popen[bytes]], out_dir: Path, senders: int,
               duration_s: float, grace_s: float, *, presses: int = 0) -> bool:
    """Wait for the senders to finish; stop them `duration_s` after the plan's start, at
    Ctrl-C, or once DEAD_STREAK requests in a row failed to connect. True: interrupted.

    A second Ctrl-C cuts the grace short, not the records: the senders cut their requests
    in flight at once, record them as cancelled, and the wait goes on until they say they
    are done (CUT_S at most; a third Ctrl-C changes nothing). A grace that ran out
    without them saying so ends the same way."""
    interrupted = cutting = False    # presses: Ctrl-Cs seen (a SIGTERM or SIGHUP is one)
    stop_file = out_dir / "stop"
    drain_until: float | None = None
    launched = time.monotonic()
    stop_at: float | None = None
    dead = _DeadWatch(out_dir)
    while True:
        try:
            # what a Ctrl-C asks for is done here, inside the `try`, and only then marked
            # done: another Ctrl-C in the middle of it comes back to it
            if presses and not interrupted:
                stop_file.touch()
                drain_until = time.monotonic() + grace_s + 5.0
                interrupted = True
            if presses > 1 and not cutting:
                drain_until = _cut(stop_file)
                cutting = True
            if _done_count(out_dir) >= senders:   # one process quits by itself: a moment
                if senders == 1:
                    _wait_any(processes, 5.0)
                return interrupted
            if not any(p.poll() is None for p in processes):
                return interrupted
            if stop_at is None:
                stop_at = _stop_at(out_dir, launched, duration_s)
            now = time.monotonic()
            if drain_until is None and ((stop_at is not None and now >= stop_at)
                                        or dead.down()):
                stop_file.touch()
                drain_until = now + grace_s + 5.0
            if drain_until is not None and now > drain_until:
                if cutting:
                    return interrupted
                drain_until = _cut(stop_file)
                cutting = True
            time.sleep(0.05)
        except KeyboardInterrupt:
            presses += 1


def _cut(stop_file: Path) -> float:
    """Ask the senders to cut their requests in flight now (they record them as
    cancelled); returns how long to wait for them to say they are done."""
    stop_file.write_text("cut", encoding="utf-8")
    return time.monotonic() + CUT_S


def _done_count(out_dir: Path) -> int:
    """How many senders said their records are complete."""
    return len(list(out_dir.glob("done.*")))


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
            request = urllib.request.Request(f"{base}/{path}", headers=target.auth_headers())
            with urllib.request.urlopen(request, timeout=5) as response:
                (out_dir / name).write_bytes(response.read())
        except (OSError, ValueError):
            continue


#: what a CI job's timeout or a closed terminal sends: each stops a run as Ctrl-C does
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _stop_signals_as_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt while the run is supervised, so they stop
    it as Ctrl-C does (the senders drain and are stopped, every finished request is kept and
    summarised) instead of killing this process and leaving Locust, in its own session,
    sending on its own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGINT too: inside `_stop_signals_held` it would only be noted
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[list[int]]:
    """Ctrl-C, SIGTERM and SIGHUP are noted (in the list yielded), not raised: raised while
    the senders are being ended or their records joined, they would leave requests that
    were sent out of the records and the run unsummarised. What they hold up is bounded
    (the senders' exit, SIGKILL after 20 s; the join)."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def note(signum: int, frame: object) -> None:
        got.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        yield got
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_any(processes: list[subprocess.Popen[bytes]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(p.poll() is None for p in processes):
        time.sleep(0.05)


def _signal_all(processes: list[subprocess.Popen[bytes]], sig: int) -> None:
    for p in processes:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)


def target_down(rows: list[RequestRecord]) -> str | None:
    """Why the target is considered down, if it is: it never answered (every request failed
    to connect or timed out, or was still waiting for its first token at the stop), it
    finished nothing and its streams went quiet (every request cut at the stop, some
    mid-answer, no token for STALL_MIN_S), or it answered at first and then refused or reset
    to the end.
    Counts in the message are those of the records."""
    measured = [r for r in rows if r.error_class != "cancelled"]
    if not measured:
        if rows and all(r.ttft_ms is None for r in rows):
            return (f"target answered nothing: all {len(rows):,} requests were still waiting "
                    "for their first token when the run stopped (cancelled): the server took "
                    "them and sent nothing back (raise --duration if it is only slow)")
        # none finished and some began answering: a slow server still streaming at the
        # stop is not down, but one whose streams all went quiet long before it is (it
        # sent a few tokens and then nothing: no E2E, TPOT or goodput was measured)
        streaming = [r for r in rows if r.ttft_ms is not None]
        if streaming:
            last_s = max(_last_token_ts(r) for r in streaming)
            quiet_s = max(r.send_ts + (r.e2e_ms or 0.0) / 1000 for r in rows) - last_s
            if quiet_s > STALL_MIN_S:
                return (f"target stopped streaming after {_clock(last_s)}: no request "
                        f"finished, all {len(rows):,} were cut when the run stopped "
                        f"(cancelled), {len(streaming):,} of them mid-answer with no token "
                        f"for the last {quiet_s:,.1f} s (raise --duration if it is only "
                        f"slow)")
        return None
    if all(not r.ok for r in measured):
        counts = _counts(measured)
        unreachable = set(counts) <= {"connect", "timeout"}
        what = "target unreachable" if unreachable else "every request failed"
        statuses = sorted({r.status for r in measured if r.status})
        why = ""
        if statuses:
            why = f"; HTTP {', '.join(map(str, statuses))}"
            if set(statuses) & {401, 403}:
                why += ": the server refused the credentials (check the key api_key_env names)"
            elif 404 in statuses:
                # a 404 is also how OpenAI-compatible servers refuse an unknown model name:
                # the server's own words tell which
                said = next((r.error for r in measured if r.status == 404 and r.error), None)
                why += (f": the server said {said.strip()[:200]!r} (check the target's model "
                        f"and base_url)" if said
                        else ": no such endpoint (check base_url and the target's api)")
            elif set(counts) == {"protocol"} or any(s >= 500 for s in statuses):
                # an answer that is no OpenAI stream, or a server error: its words say why
                said = next((r.error for r in measured if r.error), None)
                if said:
                    why += f": {said.strip()[:200]!r}"
        return f"{what}: all {len(measured):,} requests failed ({_format(counts)}){why}"
    heard = [_last_token_ts(r) for r in rows if r.ttft_ms is not None]
    last_heard = max(heard, default=None)
    dead_classes = {"connect", "reset", "timeout"}
    tail: list[RequestRecord] = []
    for row in reversed(measured):
        if row.error_class not in dead_classes:
            break
        tail.append(row)
    if len(tail) >= 3:
        since = last_heard if last_heard is not None else tail[-1].send_ts
        return (f"target stopped answering after {_clock(since)}: the last {len(tail):,} "
                f"requests failed ({_format(_counts(tail))})")
    # a server that hangs: it takes the requests and sends nothing back, so they end
    # cancelled at the stop with no first token, long after its last answer
    # (some sent before it may have been waiting in the queue when it stopped)
    silent = [r for r in rows if r.error_class == "cancelled" and r.ttft_ms is None
              and r.send_ts > (last_heard or math.inf)]
    if last_heard is not None and len(silent) >= STALL_REQUESTS:
        longest_s = max(((r.e2e_ms or 0.0) / 1000 for r in measured if r.ok), default=0.0)
        quiet_s = max(r.send_ts for r in silent) - last_heard
        if quiet_s > max(STALL_MIN_S, 2 * longest_s):
            return (f"target stopped answering after {_clock(last_heard)}: it sent nothing "
                    f"back for at least {quiet_s:,.0f} s, and the {len(silent):,} requests "
                    f"sent from then on got no first token before the run stopped "
                    f"(cancelled); its longest finished request took {longest_s:,.1f} s")
    return None


#: A hung target: at least this many requests without a first token at the stop, all sent
#: after its last answer, over more than STALL_MIN_S and twice its longest finished request
STALL_REQUESTS = 3
STALL_MIN_S = 10.0


def _last_token_ts(row: RequestRecord) -> float:
    """When the last token of a request that got one arrived (Unix s); for a stream cut
    off with more tokens than it kept times of, when it ended (as late as it can be)."""
    assert row.ttft_ms is not None
    if row.chunks > len(row.itl_ms) + 1 and row.e2e_ms is not None:
        return row.send_ts + row.e2e_ms / 1000
    return row.send_ts + (row.ttft_ms + sum(row.itl_ms)) / 1000


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def _counts(rows: list[RequestRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        key = row.error_class or "ok"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _format(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}: {n:,}" for name, n in counts.items())
