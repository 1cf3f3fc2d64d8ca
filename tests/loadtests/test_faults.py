"""Dead, slow and erroring targets are measured, never crashed on; nothing finished is lost."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeOpenAI
from lt_helpers import llmplan, read_jsonl, targets_file

from llmplan.loadtests.llamacpp_server import LlamaCppServer
from llmplan.loadtests.plan import read_plan


def _lines(out: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in out.glob("requests*.jsonl"))


def _start(tmp_path: Path, scenario: Path, base_url: str, *extra: str) -> subprocess.Popen[str]:
    targets = targets_file(tmp_path, local={"kind": "llamacpp", "base_url": base_url,
                                            "model": "smollm2"})
    return subprocess.Popen(
        [sys.executable, "-c", "from llmplan.cli import app; app()", "loadtest", str(scenario),
         "--targets", str(targets), "--target", "local", "--duration", "60s", "--users", "4",
         "--time-scale", "0.25", "--max-requests", "60", "--max-output-tokens", "8",
         "--out", str(tmp_path / "out"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_lines(out: Path, n: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (seen := _lines(out)) >= n:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} requests finished in {timeout_s} s")


def test_server_dying_mid_run_keeps_finished_requests_and_fails_clearly(
        tmp_path: Path, scenario_file: Path) -> None:
    server = LlamaCppServer(parallel=2, ctx_per_slot=512).start()
    proc = _start(tmp_path, scenario_file, server.base_url)
    try:
        seen = _wait_for_lines(tmp_path / "out", 8)
    finally:
        server.stop()
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, stderr
    assert "target stopped answering" in stderr
    assert "Traceback" not in stderr
    rows = read_jsonl(tmp_path / "out" / "requests.jsonl")
    ok = [r for r in rows if r["error_class"] is None]
    assert len(ok) >= seen - 4          # at most the in-flight ones were cut off
    # the run stops after a streak of refused connections: what was in flight then (a
    # request between its connect attempts) is recorded cancelled, never lost
    failed = [r for r in rows if r["error_class"] not in (None, "cancelled")]
    assert failed and {r["error_class"] for r in failed} <= {"connect", "reset"}
    assert all(r["error_class"] == "connect" for r in failed[-3:])
    assert len(rows) - len(ok) - len(failed) <= 4
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["target_down"] and summary["requests"]["finished"] == len(ok)


def test_ctrl_c_keeps_partial_results(tmp_path: Path, scenario_file: Path,
                                      llamacpp: LlamaCppServer) -> None:
    proc = _start(tmp_path, scenario_file, llamacpp.base_url)
    seen = _wait_for_lines(tmp_path / "out", 5)
    os.kill(proc.pid, signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    rows = read_jsonl(tmp_path / "out" / "requests.jsonl")
    assert len(rows) >= seen
    assert len(rows) < 60
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["requests"]["sent"] == len(rows)


def _server_json(server: LlamaCppServer, path: str) -> Any:
    with urllib.request.urlopen(f"{server.base_url}/{path}", timeout=5) as response:
        return json.loads(response.read())


def _prompts_taken(server: LlamaCppServer) -> float:
    """Prompt tokens the server has taken in (computed or from its cache): each request
    that got past its prefill adds its whole prompt."""
    with urllib.request.urlopen(f"{server.base_url}/metrics", timeout=5) as response:
        values = dict(line.split() for line in response.read().decode().splitlines()
                      if line.startswith("llamacpp:"))
    return float(values["llamacpp:prompt_tokens_total"]) + \
        float(values["llamacpp:prompt_tokens_cached_total"])


def test_a_second_ctrl_c_cuts_the_grace_short_and_records_every_request_sent(
        tmp_path: Path, llamacpp: LlamaCppServer) -> None:
    """A second Ctrl-C ends the run at once, not after the grace, but every request sent is
    still recorded: those in flight as cancelled, with what they received. The server's own
    counters say how many requests reached it, and the plan says which were due before the
    first Ctrl-C; the records hold them all, and the summary's counts are theirs."""
    targets = targets_file(tmp_path, local={"kind": "llamacpp", "base_url": llamacpp.base_url,
                                            "model": "smollm2"})
    out = tmp_path / "out"
    taken_before = _prompts_taken(llamacpp)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from llmplan.cli import app; app()", "loadtest",
         "--targets", str(targets), "--target", "local", "--prompt-tokens", "100",
         "--output-tokens", "96", "--rate", "1", "--requests", "20", "--grace", "60s",
         "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lines(out, 1)               # one answer to read a prompt's length from
        deadline = time.monotonic() + 60
        # and a request streaming its answer (one in its prefill is not enough)
        while not any((s.get("next_token") or [{}])[0].get("n_decoded", 0) >= 3
                      for s in _server_json(llamacpp, "slots") if s.get("is_processing")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        first_at = time.time()
        os.kill(proc.pid, signal.SIGINT)
        time.sleep(0.5)
        second_at = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
        stopped_s = time.monotonic() - second_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "interrupted: every request sent is in" in " ".join((stdout + stderr).split())
    assert stopped_s < 15                     # the 60 s grace was cut short
    rows = read_jsonl(out / "requests.jsonl")
    finished = [r for r in rows if r["error_class"] is None]
    cancelled = [r for r in rows if r["error_class"] == "cancelled"]
    assert len(finished) + len(cancelled) == len(rows)
    assert any(r["chunks"] > 0 and r["ttft_ms"] is not None for r in cancelled)
    # every request due before the first Ctrl-C went out, and is in the records
    (start,) = (float(p.read_text()) for p in out.glob("started.*"))
    due = {p.index for p in read_plan(out / "plan.json") if start + p.send_s < first_at - 0.1}
    assert due and due <= {r["id"] for r in rows}
    # the server took in the whole prompt of at least as many requests as are
    # recorded past their first token, and of no more than are recorded at all
    deadline = time.monotonic() + 20
    while any(s.get("is_processing") for s in _server_json(llamacpp, "slots")) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    per_request = max(r["prompt_tokens"] for r in finished)
    reached = (_prompts_taken(llamacpp) - taken_before) / per_request
    assert sum(r["chunks"] > 0 for r in rows) <= round(reached) <= len(rows), (reached, rows)
    summary = json.loads((out / "summary.json").read_text())
    req = summary["requests"]
    assert summary["interrupted"] is True
    assert req["sent"] == len(rows) and req["cancelled"] == len(cancelled)
    assert req["not_sent"] == req["planned"] - len(rows) == 20 - len(rows)


def test_requests_locust_itself_stops_are_recorded_cancelled(tmp_path: Path,
                                                              scenario_file: Path) -> None:
    """Locust stopped from outside (SIGTERM) kills the users still in a request after its
    --stop-timeout (5 s): those requests are recorded cancelled, with what they received,
    never lost, and the records say they are complete."""
    with FakeOpenAI(token_delay_s=0.5) as fake:     # 16 tokens: 8 s per answer
        targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                               "model": "ok", "request_timeout_s": 30})
        out = tmp_path / "out"
        proc = subprocess.Popen(
            [sys.executable, "-c", "from llmplan.cli import app; app()", "loadtest",
             str(scenario_file), "--targets", str(targets), "--target", "fake",
             "--duration", "60s", "--time-scale", "0.2", "--max-output-tokens", "16",
             "--grace", "30s", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while fake.requests < 3:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.1)
            time.sleep(1.2)                           # a few tokens streamed
            (marker,) = out.glob("started.*")
            os.kill(int(marker.suffix[1:]), signal.SIGTERM)     # Locust, not llmplan
            _stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        sent = fake.requests
    assert proc.returncode == 0, stderr
    rows = read_jsonl(out / "requests.jsonl")
    assert len(rows) == sent
    cancelled = [r for r in rows if r["error_class"] == "cancelled"]
    # what each received is kept: the ones in flight for seconds hold tokens (a request a
    # user began in the stop's last instant, on a loaded host, may hold none yet)
    assert any(r["chunks"] > 0 for r in cancelled)
    assert all((r["ttft_ms"] is not None) == (r["chunks"] > 0) for r in cancelled)
    assert list(out.glob("done.*"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"]["sent"] == len(rows)
    assert summary["requests"]["cancelled"] == len(cancelled)


def _locust_count(out: Path) -> int:
    rows = list(csv.DictReader((out / "locust_stats.csv").read_text().splitlines()))
    return int(next(r for r in rows if r["Name"] == "Aggregated")["Request Count"])


@pytest.mark.parametrize("grace, outcome, sig", [
    ("0.3s", "cancelled", signal.SIGINT), ("10s", "finished", signal.SIGINT),
    ("0.3s", "cancelled", signal.SIGTERM)])       # a CI job's timeout stops it the same way
def test_stop_means_stop(tmp_path: Path, scenario_file: Path, grace: str, outcome: str,
                         sig: signal.Signals) -> None:
    """Ctrl-C (or SIGTERM): nothing is sent after it; in-flight requests finish within the
    grace period or are recorded as cancelled; every sent request is in the records and in
    Locust's CSV."""
    with FakeOpenAI(token_delay_s=0.1) as fake:     # 16 tokens: 1.6 s per answer
        targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                               "model": "ok", "request_timeout_s": 30})
        proc = subprocess.Popen(
            [sys.executable, "-c", "from llmplan.cli import app; app()", "loadtest",
             str(scenario_file), "--targets", str(targets), "--target", "fake",
             "--duration", "60s", "--time-scale", "0.1", "--max-output-tokens", "16",
             "--grace", grace, "--out", str(tmp_path / "out")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for_lines(tmp_path / "out", 3)
        interrupted_at = time.time()
        os.kill(proc.pid, sig)
        _stdout, stderr = proc.communicate(timeout=60)
        stopped_at = time.time()
    assert proc.returncode == 130, stderr
    rows = read_jsonl(tmp_path / "out" / "requests.jsonl")
    assert max(r["send_ts"] for r in rows) < interrupted_at + 0.3      # stop sends at once
    late = [r for r in rows if r["send_ts"] + (r["e2e_ms"] or 0) / 1e3 > interrupted_at]
    assert late, "the test needs requests in flight at the interrupt"
    if outcome == "cancelled":
        # finished inside the grace period (plus the 50 ms the stop takes to be seen), or cut
        ends = {r["id"]: r["send_ts"] + (r["e2e_ms"] or 0) / 1e3 for r in late}
        assert all(r["error_class"] == "cancelled" or ends[r["id"]] < interrupted_at + 0.6
                   for r in late)
        assert any(r["error_class"] == "cancelled" for r in late)
        assert stopped_at - interrupted_at < 8
    else:
        assert all(r["error_class"] is None for r in late)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    req = summary["requests"]
    assert req["sent"] == len(rows) == req["finished"] + req["failed"] + req["cancelled"]
    assert req["cancelled"] == sum(r["error_class"] == "cancelled" for r in rows)
    assert req["not_sent"] == req["planned"] - len(rows) > 0
    assert _locust_count(tmp_path / "out") == len(rows)


def test_duration_is_a_hard_stop(tmp_path: Path, scenario_file: Path) -> None:
    with FakeOpenAI(token_delay_s=0.1) as fake:
        targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                               "model": "ok", "request_timeout_s": 30})
        started = time.time()
        result = llmplan("loadtest", str(scenario_file), "--targets", str(targets), "--target",
                         "fake", "--duration", "3s", "--time-scale", "0.1",
                         "--max-output-tokens", "16", "--grace", "0.5s",
                         "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(tmp_path / "out" / "requests.jsonl")
    first = min(r["send_ts"] for r in rows)
    assert max(r["send_ts"] for r in rows) - first < 3.0     # the clock starts before Locust
    assert time.time() - started < 25
    assert any(r["error_class"] == "cancelled" for r in rows)       # cut at the stop
    assert _locust_count(tmp_path / "out") == len(rows)


def _fake_run(tmp_path: Path, scenario: Path, fake: FakeOpenAI, model: str,
              name: str, key: str | None = None
              ) -> tuple[int, str, list[dict[str, object]], dict[str, object]]:
    targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                           "model": model, "request_timeout_s": 10,
                                           **({"api_key_env": "LLMPLAN_KEY"} if key else {})})
    out = tmp_path / name
    result = llmplan("loadtest", str(scenario), "--targets", str(targets), "--target", "fake",
                     "--duration", "30s", "--users", "4", "--time-scale", "0.1",
                     "--max-requests", "12", "--out", str(out),
                     env={"LLMPLAN_KEY": key} if key else None)
    rows = read_jsonl(out / "requests.jsonl")
    return result.returncode, result.stderr, rows, json.loads((out / "summary.json").read_text())


def test_erroring_targets_are_classified(tmp_path: Path, scenario_file: Path) -> None:
    with FakeOpenAI(token_delay_s=0.002) as fake:
        code, err, rows, summary = _fake_run(tmp_path, scenario_file, fake, "throttle", "t")
        assert code == 3, err                      # nothing succeeded: the run failed
        assert "every request failed: all 12 requests failed (http_429: 12)" in err
        assert len(rows) == 12 and all(r["error_class"] == "http_429" for r in rows)
        assert all(r["status"] == 429 and r["retry_after_s"] == 2.0 for r in rows)
        assert summary["requests"]["errors_by_class"]["http_429"] == 12  # type: ignore[index]

        code, err, rows, summary = _fake_run(tmp_path, scenario_file, fake, "error-500", "e")
        assert code == 3, err
        assert {r["error_class"] for r in rows} == {"http_5xx"}
        assert summary["requests"]["errors_by_status"] == {"500": 12}  # type: ignore[index]

        code, err, rows, summary = _fake_run(tmp_path, scenario_file, fake, "flaky", "f")
        assert code == 0, err
        classes = [r["error_class"] for r in rows]
        assert 2 <= classes.count("reset") <= 6 and classes.count(None) >= 6
        cut = [r for r in rows if r["error_class"] == "reset"]
        assert all(r["chunks"] == 2 for r in cut)     # two tokens arrived before the reset
        assert all("stream ended before [DONE], after 2 chunks" in r["error"] for r in cut)

        # a 200 that is no event stream: the server's words, not a connection reset
        code, err, rows, summary = _fake_run(tmp_path, scenario_file, fake, "html-200", "h")
        assert code == 3, err
        assert {r["error_class"] for r in rows} == {"protocol"}
        assert "not an OpenAI event stream: HTTP 200 text/html" in rows[0]["error"]
        assert "Welcome to nginx" in err

        # streams that stall after two tokens: every request cut at the stop, none
        # finished, nothing heard for over STALL_MIN_S (10 s); said, and a failure
        targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                               "model": "stall"})
        result = llmplan("loadtest", "--targets", str(targets), "--target", "fake",
                         "--prompt-tokens", "8", "--output-tokens", "8", "--rate", "4",
                         "--requests", "4", "--duration", "12s", "--grace", "0.5s",
                         "--out", str(tmp_path / "stall"))
        assert result.returncode == 3, result.stderr
        said = " ".join(result.stderr.split())
        assert "target stopped streaming after" in said and "all 4 were cut" in said, said
        rows = read_jsonl(tmp_path / "stall" / "requests.jsonl")
        assert len(rows) == 4 and all(r["error_class"] == "cancelled" and r["chunks"] == 2
                                      for r in rows)

        code, err, rows, summary = _fake_run(tmp_path, scenario_file, fake, "slow", "s")
        assert code == 0, err
        assert all(r["error_class"] is None and r["ttft_ms"] > 1400 for r in rows)
        # four users of 1.5 s answers finish under 2.7 of the requests/s offered: said
        throughput = summary["throughput"]
        assert throughput["achieved_rate_per_s"] < 0.9 * throughput["requested_rate_per_s"]  # type: ignore[index]
        assert "it was saturated" in " ".join(err.split())


def test_a_key_the_server_echoes_back_is_redacted_everywhere(tmp_path: Path,
                                                              scenario_file: Path) -> None:
    """A 401 whose body repeats the Authorization header: the error is kept (with the
    variable's name in place of the key) in requests.jsonl and Locust's outputs, and the key
    appears in no file of the run."""
    secret = "sk-echoed-7d2b41-DO-NOT-LEAK"
    with FakeOpenAI(token_delay_s=0.002) as fake:
        code, err, rows, _ = _fake_run(tmp_path, scenario_file, fake, "echo-key", "k", secret)
    assert code == 3, err
    assert rows and all(r["status"] == 401 for r in rows)
    assert all("Bearer <LLMPLAN_KEY>" in str(r["error"]) for r in rows)
    assert secret not in err
    files = [p for p in (tmp_path / "k").rglob("*") if p.is_file()]
    assert len(files) >= 6
    for path in files:
        assert secret.encode() not in path.read_bytes(), path


def test_a_key_echoed_in_another_spelling_is_redacted_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server may echo the key lower-cased, URL- or JSON-escaped: each spelling is taken
    out, not only the exact one."""
    from llmplan.loadtests.targets import Target

    secret = "sk-Echo/7d+b41=DO-NOT-LEAK"
    monkeypatch.setenv("LLMPLAN_KEY", secret)
    target = Target(kind="openai", base_url="http://127.0.0.1:9", model="m",
                    api_key_env="LLMPLAN_KEY")
    body = (f"bad key {secret.lower()}; in a URL {urllib.parse.quote(secret, safe='')}; "
            f"as JSON {json.dumps({'k': secret})}; upper {secret.upper()}")
    cleaned = target.redact(body)
    assert cleaned is not None and cleaned.count("<LLMPLAN_KEY>") == 4
    for spelling in (secret, secret.lower(), urllib.parse.quote(secret, safe="")):
        assert spelling.lower() not in cleaned.lower()


def test_a_text_cut_inside_the_key_keeps_no_part_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error body or stream message read up to a size may end in the middle of an echoed
    key: the start of the key that is left is taken out as well."""
    from llmplan.loadtests.targets import Target

    secret = "Zq7secretKEYvalue4242abcdefXYZ"
    monkeypatch.setenv("LLMPLAN_KEY", secret)
    target = Target(kind="openai", base_url="http://127.0.0.1:9", model="m",
                    api_key_env="LLMPLAN_KEY")
    for cut in (4, 8, len(secret) - 1):
        cleaned = target.redact("x" * 480 + "got Bearer " + secret[:cut])
        assert cleaned == "x" * 480 + "got Bearer <LLMPLAN_KEY>", cut
    # an ordinary ending is left alone
    assert target.redact("unauthorized: Zq7") == "unauthorized: Zq7"


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet has stopped)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


def test_a_killed_launcher_leaves_no_sender_running_and_its_records_readable(
        tmp_path: Path, scenario_file: Path, llamacpp: LlamaCppServer) -> None:
    """SIGKILL (the OOM killer, a CI job's hard stop) gives llmplan no chance to stop
    Locust: the senders see their parent gone, stop sending and cut what is in flight, and
    the records they wrote are joined when the folder is read (calibrate, validate)."""
    from llmplan.loadtests.records import read_records, records_file

    # the plan at its own pace: a minute of sending left when the launcher dies
    proc = _start(tmp_path, scenario_file, llamacpp.base_url, "--time-scale", "1")
    out = tmp_path / "out"
    seen = _wait_for_lines(out, 5)
    senders = [int(p.suffix[1:]) for p in out.glob("started.*")]
    assert senders
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    # the grace for in-flight requests (5 s by default), then the run ends
    deadline = time.monotonic() + 25
    while any(_alive(pid) for pid in senders) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in senders)
    rows = read_records(records_file(out))
    assert seen <= len(rows) < 60
    assert (out / "requests.jsonl").exists() and not list(out.glob("requests.*.jsonl"))
