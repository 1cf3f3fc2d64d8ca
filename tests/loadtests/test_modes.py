"""Closed loop, stages, the saturation sweep, and the targets file's refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from fakes import FakeOpenAI
from lt_helpers import llmplan, read_jsonl, targets_file


def test_closed_loop_keeps_the_users_busy_until_the_duration(tmp_path: Path,
                                                              scenario_file: Path) -> None:
    with FakeOpenAI(token_delay_s=0.005) as fake:
        targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                               "model": "ok"})
        result = llmplan("loadtest", str(scenario_file), "--targets", str(targets), "--target",
                         "fake", "--duration", "4s", "--users", "4", "--closed",
                         "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(tmp_path / "out" / "requests.jsonl")
    # the plan replayed back to back: the scenario's 1 req/s would send about 4 requests in
    # 4 s; four users who send again as soon as an answer ends send tens (about a hundred on
    # a quiet machine, fewer when the CPU is slow), and keep the fake server busy
    assert len(rows) > 40
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["error_class"] is None for r in rows)
    first = min(r["send_ts"] for r in rows)
    last = max(r["send_ts"] for r in rows)
    assert last - first < 4.5                               # nothing sent after the stop
    assert last - first > 3.0                               # ... and sending until then
    in_flight_s = sum(min(r["e2e_ms"] / 1e3, last - r["send_ts"]) for r in rows)
    assert in_flight_s / (4 * (last - first)) > 0.5         # users busy, not idle
    # and they stop there: the load generator's own clock, from its first send to the
    # moment it marked itself done, not the command's wall time, which adds interpreter
    # start-up and the report (a slow CI host took 22.7 s for this command, 4.7 s of it
    # sending)
    out = tmp_path / "out"
    (started,) = (float(p.read_text()) for p in out.glob("started.*"))
    (done,) = (p.stat().st_mtime for p in out.glob("done.*"))
    assert 3.5 < done - started < 4.0 + 5.0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["mode"] == "closed" and summary["throughput"]["requested_rate_per_s"] is None
    req = summary["requests"]
    assert req["sent"] == len(rows) == req["finished"] + req["failed"] + req["cancelled"]


def test_closed_loop_request_count_stops_the_run(tmp_path: Path, scenario_file: Path) -> None:
    with FakeOpenAI(token_delay_s=0.005) as fake:
        targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                               "model": "ok"})
        result = llmplan("loadtest", str(scenario_file), "--targets", str(targets), "--target",
                         "fake", "--duration", "60s", "--concurrency", "4", "--requests", "25",
                         "--warmup", "3", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    # the count ended it, not the 60 s: on the load generator's own clock (see above)
    (started,) = (float(p.read_text()) for p in (tmp_path / "out").glob("started.*"))
    (done,) = (p.stat().st_mtime for p in (tmp_path / "out").glob("done.*"))
    assert done - started < 30
    rows = read_jsonl(tmp_path / "out" / "requests.jsonl")
    warm = read_jsonl(tmp_path / "out" / "warmup.jsonl")
    assert len(rows) + len(warm) == 28 and len(warm) == 3
    assert all(r["warmup"] for r in warm) and not any(r["warmup"] for r in rows)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["requests"]["sent"] == 25 and summary["requests"]["warmup"] == 3


def test_stages_change_the_number_of_users(tmp_path: Path, scenario_file: Path) -> None:
    with FakeOpenAI(token_delay_s=0.01) as fake:
        targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                               "model": "ok"})
        result = llmplan("loadtest", str(scenario_file), "--targets", str(targets), "--target",
                         "fake", "--duration", "30s", "--users", "8",
                         "--stages", "3:2:20,3:6:20", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    history = list(csv.DictReader((tmp_path / "out" / "locust_stats_history.csv")
                                  .read_text().splitlines()))
    users = [int(row["User Count"]) for row in history]
    assert 2 in users and max(users) == 6


def test_sweep_raises_the_rate_until_saturation(tmp_path: Path, scenario_file: Path) -> None:
    # 4 users x ~80 ms per answer: about 50 requests/s at most
    with FakeOpenAI(token_delay_s=0.01) as fake:
        targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                               "model": "ok"})
        result = llmplan("loadtest", str(scenario_file), "--targets", str(targets), "--target",
                         "fake", "--duration", "20s", "--users", "4", "--max-output-tokens", "8",
                         "--max-requests", "150", "--sweep", "5,20,400,800",
                         "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "saturated at 400" in result.stderr
    levels = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [lv["requested_rate_per_s"] for lv in levels] == [5, 20, 400]   # stopped there
    assert levels[0]["achieved_rate_per_s"] > 0.9 * levels[0]["offered_rate_per_s"]
    assert levels[-1]["achieved_rate_per_s"] < 0.9 * levels[-1]["offered_rate_per_s"]


def test_targets_outside_the_file_or_the_machine_are_refused(tmp_path: Path,
                                                              scenario_file: Path) -> None:
    targets = targets_file(tmp_path,
                           local={"kind": "llamacpp", "base_url": "http://127.0.0.1:9",
                                  "model": "m"},
                           remote={"kind": "vllm", "base_url": "http://10.1.2.3:8000",
                                   "model": "m"})
    common = ["loadtest", str(scenario_file), "--targets", str(targets), "--duration", "5s",
              "--users", "1", "--out", str(tmp_path / "out")]
    unknown = llmplan(*common, "--target", "elsewhere")
    assert unknown.returncode == 2 and "no target named 'elsewhere'" in unknown.stderr
    remote = llmplan(*common, "--target", "remote")
    assert remote.returncode == 2 and "is not on this machine" in remote.stderr
    assert not (tmp_path / "out").exists()                  # nothing was sent
    missing = llmplan("loadtest", "--targets", str(targets), "--target", "local")
    assert missing.returncode == 2 and "--prompt-tokens" in missing.stderr


def test_a_load_test_scenario_needs_no_deployments(tmp_path: Path) -> None:
    scenario = tmp_path / "traffic-only.yaml"
    scenario.write_text("seed: 1\nduration: 30\ntraffic: {kind: poisson, rate_per_s: 4}\n"
                        "tasks: [{name: chat, prompt_tokens: {kind: fixed, tokens: 20},\n"
                        "         output_tokens: {kind: fixed, tokens: 4}}]\n"
                        "slo: {ttft_ms: 2000}\n")
    with FakeOpenAI(token_delay_s=0.002) as fake:
        targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                               "model": "ok"})
        result = llmplan("loadtest", str(scenario), "--targets", str(targets), "--target",
                         "fake", "--max-requests", "8", "--time-scale", "0.1",
                         "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(tmp_path / "out" / "requests.jsonl")) == 8
    broken = tmp_path / "broken.yaml"
    broken.write_text(scenario.read_text().replace("rate_per_s: 4", "rate_per_s: -4"))
    bad = llmplan("loadtest", str(broken), "--targets", str(targets), "--target", "fake")
    assert bad.returncode == 2 and f"{broken}:3" in bad.stderr.replace("\n", "")
