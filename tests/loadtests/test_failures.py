"""Failures are named right: no connection (refused, unreachable, DNS) is `connect`, and a
run in which every request failed exits non-zero saying so, with counts from the records."""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lt_helpers import llmplan, read_jsonl, targets_file

from llmplan.loadtests.clients import ConnectFailedError, classify_exception
from llmplan.loadtests.records import RequestRecord
from llmplan.loadtests.runner import target_down


@pytest.mark.parametrize("exc", [
    OSError(errno.ENETUNREACH, "Network is unreachable"),
    OSError(errno.EHOSTUNREACH, "No route to host"),
    socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    ConnectFailedError("connect timed out"),
])
def test_no_connection_is_connect(exc: BaseException) -> None:
    assert classify_exception(exc) == "connect"


def test_broken_connections_and_timeouts_keep_their_class() -> None:
    assert classify_exception(ConnectionResetError(errno.ECONNRESET, "reset")) == "reset"
    assert classify_exception(TimeoutError("read timed out")) == "timeout"


def _row(i: int, error_class: str | None) -> RequestRecord:
    return RequestRecord(id=i, task="t", target="x", scheduled_ts=1000.0 + i, send_ts=1000.0 + i,
                         schedule_delay_ms=0.0, status=200 if error_class is None else 0,
                         error_class=error_class)  # type: ignore[arg-type]


def test_the_dead_target_message_counts_what_the_records_say() -> None:
    rows = [_row(i, None) for i in range(5)] + [_row(5, "reset"), _row(6, "reset")] + \
        [_row(7 + i, "connect") for i in range(60)]
    message = target_down(rows)
    assert message is not None
    assert "the last 62 requests failed (connect: 60, reset: 2)" in message
    assert target_down([_row(i, "connect") for i in range(4)]) == \
        "target unreachable: all 4 requests failed (connect: 4)"
    assert target_down([_row(0, None), _row(1, "connect")]) is None
    # refusals the server answered: their status says what to check
    refused = [r.model_copy(update={"status": 401}) for r in
               (_row(i, "http_4xx") for i in range(3))]
    assert target_down(refused) == (
        "every request failed: all 3 requests failed (http_4xx: 3); HTTP 401: the server "
        "refused the credentials (check the key api_key_env names)")
    # a 404 with the server's words (vLLM's unknown model) says them; a bare one, the path
    unknown = [r.model_copy(update={"status": 404, "error": '{"message": "The model '
                                    '`wrong-model` does not exist."}'})
               for r in (_row(i, "http_4xx") for i in range(2))]
    message = target_down(unknown)
    assert message is not None and "`wrong-model` does not exist" in message
    assert "check the target's model" in message
    bare = [r.model_copy(update={"status": 404}) for r in (_row(i, "http_4xx") for i in range(2))]
    assert (target_down(bare) or "").endswith(
        "no such endpoint (check base_url and the target's api)")


def test_a_target_that_took_every_request_and_answered_nothing_is_down() -> None:
    silent = [_row(i, "cancelled") for i in range(6)]
    message = target_down(silent)
    assert message is not None and message.startswith("target answered nothing: all 6")
    # a slow one that started answering some before the stop is not
    started = [*silent[:5], silent[5].model_copy(update={"ttft_ms": 900.0})]
    assert target_down(started) is None


def test_a_run_folder_of_other_files_is_refused_and_a_previous_run_is_cleared_by_name(
        tmp_path: Path) -> None:
    from llmplan.loadtests.runner import clear_previous_run, out_folder_problem
    assert out_folder_problem(tmp_path / "new") is None
    assert out_folder_problem(tmp_path) is None                      # empty
    mine = tmp_path / "project"
    mine.mkdir()
    for name in ("summary.md", "report.html", "locustfile.py", "config.json"):
        (mine / name).write_text("{}", encoding="utf-8")
    problem = out_folder_problem(mine)
    assert problem is not None and "not a load test's" in problem and "summary.md" in problem
    # a previous run: its own files go, by their exact names; the user's stay
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"target_name": "t", "stop_file": "x"}))
    for name in ("requests.jsonl", "summary.json", "summary.md", "locust_stats.csv",
                 "done.4242", "done.txt", "notes.txt"):
        (run / name).write_text("", encoding="utf-8")
    assert out_folder_problem(run) is None
    clear_previous_run(run)
    assert sorted(p.name for p in run.iterdir()) == ["done.txt", "notes.txt", "summary.md"]
    # a stopped run's unjoined records are their only copy: refused, in a sweep's level too
    level = tmp_path / "sweep" / "rate-2"
    level.mkdir(parents=True)
    (level / "config.json").write_text(json.dumps({"target_name": "t", "stop_file": "x"}))
    (level / "requests.4242.jsonl").write_text("", encoding="utf-8")
    problem = out_folder_problem(tmp_path / "sweep")
    assert problem is not None and "rate-2/requests.4242.jsonl" in problem


def test_a_run_where_every_request_failed_exits_non_zero(tmp_path: Path,
                                                         scenario_file: Path) -> None:
    # loopback only (nothing listens on port 9); DNS failures are covered above
    targets = targets_file(tmp_path, down={"kind": "openai", "base_url": "http://127.0.0.1:9",
                                           "model": "m", "request_timeout_s": 5})
    result = llmplan("loadtest", str(scenario_file), "--targets", str(targets), "--target",
                     "down", "--duration", "30s", "--time-scale", "0.05", "--max-requests", "6",
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 3, result.stderr
    assert "target unreachable: all 6 requests failed (connect: 6)" in result.stderr
    assert "Traceback" not in result.stderr
    rows = read_jsonl(tmp_path / "out" / "requests.jsonl")
    assert [r["error_class"] for r in rows] == ["connect"] * 6
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["requests"]["failed"] == 6 and summary["requests"]["finished"] == 0


def test_a_load_generator_that_dies_before_sending_is_an_error(tmp_path: Path,
                                                               scenario_file: Path) -> None:
    """Locust failing to start (here its gevent made unimportable, which only the load
    generator's own process imports) sends nothing: an error naming its log, not a pass."""
    broken = tmp_path / "broken"
    (broken / "gevent").mkdir(parents=True)
    (broken / "gevent" / "__init__.py").write_text("raise ImportError('broken for the test')\n")
    targets = targets_file(tmp_path, down={"kind": "openai", "base_url": "http://127.0.0.1:9",
                                           "model": "m", "request_timeout_s": 5})
    result = llmplan("loadtest", str(scenario_file), "--targets", str(targets), "--target",
                     "down", "--duration", "30s", "--time-scale", "0.05", "--max-requests", "4",
                     "--out", str(tmp_path / "out"), env={"PYTHONPATH": str(broken)})
    assert result.returncode == 3, (result.returncode, result.stdout, result.stderr)
    said = " ".join(result.stderr.split())
    assert "the load generator sent nothing: Locust exited with code" in said
    # the path as printed, whatever width the console wrapped it at
    assert str(tmp_path / "out" / "locust.log") in "".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert "broken for the test" in (tmp_path / "out" / "locust.log").read_text()


def test_a_reused_output_folder_forgets_the_previous_runs_clock(tmp_path: Path) -> None:
    """A run into a folder an earlier run used: that run's start marker would start this
    run's duration clock long ago (it stopped before sending anything, and exited 0)."""
    import time

    from llmplan.loadtests.runner import _stop_at, clear_previous_run

    (tmp_path / "started.4242").write_text(repr(time.time() - 900.0), encoding="utf-8")
    (tmp_path / "requests.4242.jsonl").write_text("{}\n", encoding="utf-8")
    (tmp_path / "summary.json").write_text("{}", encoding="utf-8")
    # what the previous server said about itself: another server's slots, not this one's
    (tmp_path / "server_props.json").write_text('{"total_slots": 4}', encoding="utf-8")
    (tmp_path / "server_metrics_start.txt").write_text("", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")      # the user's: kept
    assert _stop_at(tmp_path, time.monotonic(), 600.0) < time.monotonic()   # already over
    clear_previous_run(tmp_path)
    assert not list(tmp_path.glob("started.*")) and not list(tmp_path.glob("requests*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    # with no marker yet, the clock waits for the new run's own start
    stop = _stop_at(tmp_path, time.monotonic(), 600.0)
    assert stop is None or stop > time.monotonic() + 500.0


@pytest.mark.parametrize(("field", "value", "said"), [
    ("api_key_env", "sk-literal-key-abc123", "looks like an API key itself"),
    ("api_key_env", "ghp0123456789abcdefSECRETTOKEN", "looks like an API key itself"),
    ("base_url", "http://user:sk-urlsecret-777@127.0.0.1:8080", "carries credentials"),
    ("base_url", "http://127.0.0.1:8080/v1?api_key=sk-urlsecret-777", "carries a query"),
    # no scheme: urlparse finds no user in it, and the scheme's error repeated the URL
    ("base_url", "user:sk-urlsecret-777@127.0.0.1:8080", "carries credentials"),
])
def test_a_secret_in_the_wrong_field_is_refused_without_being_repeated(
        tmp_path: Path, field: str, value: str, said: str) -> None:
    """A key pasted where a variable's NAME belongs, or a password inside the URL, is an
    error that never repeats it (it went to stderr and, in the URL's case, config.json)."""
    from llmplan.errors import InputError
    from llmplan.loadtests.targets import load_target

    target = {"kind": "llamacpp", "base_url": "http://127.0.0.1:8080", "model": "m",
              field: value}
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump({"targets": {"local": target}}))
    with pytest.raises(InputError) as caught:
        load_target(path, "local")
    text = caught.value.render()
    assert said in text and f"targets.local.{field}" in text
    secret = "sk-urlsecret-777" if field == "base_url" else value
    assert secret not in text


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://127.0.0.1:0"])
def test_a_port_no_socket_can_have_is_refused_in_the_targets_file(tmp_path: Path,
                                                                  url: str) -> None:
    """It reached Locust, whose ValueError went to its log while the run exited 0."""
    from llmplan.errors import InputError
    from llmplan.loadtests.targets import load_target

    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump({"targets": {"x": {"kind": "openai", "base_url": url,
                                                      "model": "m"}}}))
    with pytest.raises(InputError) as caught:
        load_target(path, "x")
    assert "targets.x.base_url: the port must be 1-65535" in caught.value.render()


def test_a_target_dead_from_the_start_stops_the_run_early(tmp_path: Path,
                                                          scenario_file: Path) -> None:
    """Nothing listening: after ten refused connections in a row the run stops, instead of
    sending the whole plan (here 60 requests over 60 s) to nobody; the refusals are on
    disk and the run says the target is unreachable."""
    import time

    targets = targets_file(tmp_path, down={"kind": "openai", "base_url": "http://127.0.0.1:9",
                                           "model": "m", "request_timeout_s": 5})
    start = time.monotonic()
    result = llmplan("loadtest", str(scenario_file), "--targets", str(targets), "--target",
                     "down", "--duration", "60s", "--time-scale", "1", "--max-requests", "60",
                     "--out", str(tmp_path / "out"))
    took = time.monotonic() - start
    assert result.returncode == 3, result.stderr
    assert "target unreachable" in result.stderr
    rows = read_jsonl(tmp_path / "out" / "requests.jsonl")
    assert 10 <= len(rows) < 60 and {r["error_class"] for r in rows} == {"connect"}
    assert took < 55


def test_only_fields_named_like_secrets_hide_their_values() -> None:
    from llmplan.yamlio.values import _may_be_secret

    assert _may_be_secret(("targets", "t", "api_key_env"), "OPENAI_API_KEY")
    assert _may_be_secret(("x", "hf_token"), "abc")
    assert _may_be_secret(("targets", "t", "base_url"), "http://u:p@127.0.0.1:1")
    # counts of tokens are no secrets: their errors keep the value given
    for field in ("prompt_tokens", "max_tokens", "tokens", "tokens_per_min"):
        assert not _may_be_secret(("tasks", 0, field), -5)
    assert not _may_be_secret(("targets", "t", "base_url"), "http://127.0.0.1:1")


def test_a_request_is_sent_once_and_an_idle_connection_the_server_closed_is_replaced() -> None:
    """A request the server took and dropped is recorded as failed, never sent again
    behind the record's back; a keep-alive connection the server closed while idle is
    replaced before the next request goes out, so that one is not lost either."""
    import time

    from fakes import FakeOpenAI

    from llmplan.loadtests.clients import OpenAIStream
    from llmplan.loadtests.plan import PlanItem
    from llmplan.loadtests.targets import Target

    def item(i: int) -> PlanItem:
        return PlanItem(index=i, send_s=0.0, task="t", prompt="hello", planned_prompt_tokens=1,
                        max_tokens=3, fixed_length=False, check=None)

    def record(i: int) -> RequestRecord:
        return RequestRecord(id=i, task="t", target="x", scheduled_ts=time.time(),
                             send_ts=time.time(), schedule_delay_ms=0.0, status=0)

    with FakeOpenAI() as server:
        dropped = OpenAIStream(Target(kind="openai", base_url=server.base_url, model="drop",
                                      api="completions"))
        got = dropped.send(item(0), record(0))
        assert got.error_class == "reset" and server.requests == 1
        closing = OpenAIStream(Target(kind="openai", base_url=server.base_url,
                                      model="one-shot", api="completions"))
        for i in range(3):
            assert closing.send(item(i), record(i)).error_class is None
            time.sleep(0.05)                     # the server's close arrives meanwhile
        closing.cancel()
        closing._reset()
        assert server.requests == 4


def test_a_stream_that_ends_before_done_says_so() -> None:
    """An answer cut after two tokens reads as a clean end of the body without `[DONE]`:
    once recorded as "IncompleteRead(0 bytes read)", now said in words, with what came."""
    import time

    from fakes import FakeOpenAI

    from llmplan.loadtests.clients import OpenAIStream
    from llmplan.loadtests.plan import PlanItem
    from llmplan.loadtests.targets import Target

    item = PlanItem(index=0, send_s=0.0, task="t", prompt="hello", planned_prompt_tokens=1,
                    max_tokens=6, fixed_length=False, check=None)
    with FakeOpenAI() as server:
        stream = OpenAIStream(Target(kind="openai", base_url=server.base_url, model="reset"))
        got = stream.send(item, RequestRecord(id=0, task="t", target="x",
                                              scheduled_ts=time.time(), send_ts=time.time(),
                                              schedule_delay_ms=0.0, status=0))
    assert got.error_class == "reset" and got.status == 200
    assert got.error is not None and "stream ended before [DONE], after 2 chunks" in got.error
    assert "IncompleteRead" not in got.error
    assert got.chunks == 2 and got.ttft_ms is not None and got.e2e_ms is not None


def _stream_and_records(base_url: str) -> tuple[Any, Callable[[int], Any], Callable[[int], Any]]:
    import time

    from llmplan.loadtests.clients import OpenAIStream
    from llmplan.loadtests.plan import PlanItem
    from llmplan.loadtests.targets import Target

    def item(i: int) -> PlanItem:
        return PlanItem(index=i, send_s=0.0, task="t", prompt="hello", planned_prompt_tokens=1,
                        max_tokens=3, fixed_length=False, check=None)

    def record(i: int) -> RequestRecord:
        now = time.time()
        return RequestRecord(id=i, task="t", target="x", scheduled_ts=now, send_ts=now,
                             schedule_delay_ms=0.0, status=0)

    stream = OpenAIStream(Target(kind="llamacpp", base_url=base_url, model="m",
                                 api="completions", request_timeout_s=10))
    return stream, item, record


@pytest.mark.parametrize("mode", ["eof", "rst"])
def test_a_request_on_a_connection_the_server_closed_as_it_went_out_is_sent_again(
        mode: str) -> None:
    """llama.cpp closes the connection after each streamed answer without saying so; a
    request sent back to back on it meets that close before any byte comes back (the
    server's end reads as no answer at all, or resets). It never reached the model: it is
    sent once more on a new connection, timed from there, and no false `reset` is kept."""
    from fakes import ClosesAfterReply

    with ClosesAfterReply(mode) as server:
        stream, item, record = _stream_and_records(server.base_url)
        rows = []
        for i in range(4):                       # back to back, as a closed loop sends
            sent = record(i)
            before = sent.send_ts
            rows.append(stream.send(item(i), sent))
            assert sent.send_ts >= before
        stream._reset()
    assert [r.error_class for r in rows] == [None] * 4, [r.error for r in rows]
    assert all(r.output_tokens == 3 and r.chunks == 3 for r in rows)
    # each later request met the close once, and went out once more on a new connection
    assert server.answered == 4 and server.dropped == 3 and server.connections == 4
    assert all(r.e2e_ms is not None and r.e2e_ms < 2000 for r in rows)


@pytest.mark.parametrize("mode, error_class", [("mid-stream", "reset"), ("gone", "connect")])
def test_real_failures_on_a_reused_connection_are_recorded_as_they_were(
        mode: str, error_class: str) -> None:
    """What is no stale connection keeps its record: an answer broken off after it began is
    `reset` and never sent again; a server gone (its port refusing) is `connect`; and a
    request dropped on a new connection is `reset`, sent once (the test above)."""
    from fakes import ClosesAfterReply

    with ClosesAfterReply(mode) as server:
        stream, item, record = _stream_and_records(server.base_url)
        first = stream.send(item(0), record(0))
        second = stream.send(item(1), record(1))
        stream._reset()
    assert first.error_class is None
    assert second.error_class == error_class, second.error
    assert server.connections == 1 and server.answered == 1
    if mode == "mid-stream":
        assert server.cut == 1 and second.chunks == 2 and second.ttft_ms is not None
    else:
        assert server.dropped == 1


def test_a_test_set_naming_no_task_of_the_run_is_refused_before_anything_is_sent(
        tmp_path: Path, scenario_file: Path) -> None:
    # nothing listens on port 9: the check comes before any request
    targets = targets_file(tmp_path, down={"kind": "openai", "base_url": "http://127.0.0.1:9",
                                           "model": "m"})
    items = tmp_path / "tests.jsonl"
    items.write_text(json.dumps({"task": "clasify", "prompt": "2+2?",
                                 "check": {"kind": "contains", "value": "4"}}) + "\n")
    result = llmplan("loadtest", str(scenario_file), "--targets", str(targets), "--target",
                     "down", "--test-set", str(items), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    said = " ".join(result.stderr.split())
    assert "'clasify' not a task of" in said and "expected one of:" in said
    assert not (tmp_path / "out").exists()


def test_a_target_that_hangs_after_answering_is_down() -> None:
    """Six answers in the first seconds, then the server takes requests and sends nothing:
    they end cancelled at the stop with no first token, long after its last answer."""
    answered = [_row(i, None).model_copy(update={"ttft_ms": 200.0, "itl_ms": [50.0] * 9,
                                                 "e2e_ms": 650.0, "chunks": 10})
                for i in range(6)]
    hung = [_row(20 + 2 * i, "cancelled") for i in range(9)]     # sent at 1020 s to 1036 s
    message = target_down(answered + hung)
    assert message is not None and "stopped answering after" in message
    assert "the 9 requests sent from then on got no first token" in message
    # under steady load one request was queued behind the last answers when it hung
    queued = _row(19, "cancelled").model_copy(update={"send_ts": 1005.5})
    message = target_down([*answered, queued, *hung])
    assert message is not None and "the 9 requests sent from then on" in message
    # still streaming a long answer while they queue (one slot): not down
    streaming = answered[5].model_copy(update={"error_class": "cancelled", "e2e_ms": 40_000.0,
                                               "itl_ms": [50.0] * 700, "chunks": 701})
    assert target_down([*answered[:5], streaming, *hung]) is None
    # a short quiet spell at the run's end (a slow first token) is not either
    assert target_down(answered + hung[:2]) is None
    assert target_down(answered + [_row(7 + i, "cancelled") for i in range(3)]) is None


def test_the_servers_own_endpoints_get_the_key_its_requests_carry(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """llama.cpp started with --api-key guards /props and /metrics too (401 without it): the
    load test sends them the key, so the slot check and the scrapes still happen."""
    import http.server
    import threading

    from llmplan.loadtests.scrape import scrape_once
    from llmplan.loadtests.server_props import fetch_props
    from llmplan.loadtests.targets import Target

    secret = "sk-planted-props-key"

    class Guarded(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {secret}":
                self.send_response(401)
                self.end_headers()
                return
            body = (b'{"total_slots": 3, "default_generation_settings": {"n_ctx": 512}}'
                    if self.path == "/props" else b"llamacpp:requests_processing 0\n")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Guarded)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        target = Target(kind="llamacpp", base_url=base, model="m", api_key_env="LLMPLAN_KEY")
        assert fetch_props(base) is None and scrape_once(base) is None      # refused
        monkeypatch.setenv("LLMPLAN_KEY", secret)
        fetched = fetch_props(base, headers=target.auth_headers())
        assert fetched is not None and fetched[0].total_slots == 3
        assert scrape_once(base, headers=target.auth_headers()) == \
            b"llamacpp:requests_processing 0\n"
    finally:
        server.shutdown()
        server.server_close()


def test_a_target_whose_streams_all_went_quiet_is_down() -> None:
    """Every request cut at the stop after a first token and then nothing: no E2E, TPOT or
    goodput was measured, and the run once exited 0 under a note that the target was
    saturated. The quiet is the stop (each record's send + E2E: 1000 + 17 s here) less the
    last token heard (send + TTFT + its gaps: 1005 + 0.2 + 0.1), 11.7 s, over STALL_MIN_S."""
    cut = [_row(i, "cancelled").model_copy(update={
        "ttft_ms": 200.0, "itl_ms": [100.0], "chunks": 2, "e2e_ms": 17_000.0 - 1000.0 * i})
        for i in range(6)]
    message = target_down(cut)
    assert message is not None and message.startswith("target stopped streaming after"), \
        message
    assert "all 6 were cut" in message and "6 of them mid-answer" in message
    assert "no token for the last 11.7 s" in message
    # streams still going 9.7 s before the stop: a slow server, not down
    assert target_down([r.model_copy(update={"e2e_ms": (r.e2e_ms or 0.0) - 2000.0})
                        for r in cut]) is None
    # one finished: measured, not down
    done = cut[0].model_copy(update={"error_class": None, "status": 200})
    assert target_down([done, *cut[1:]]) is None
