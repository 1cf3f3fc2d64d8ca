"""`llmplan import-usage` from CloudWatch (moto's server on 127.0.0.1) and from a CSV export."""

from __future__ import annotations

import csv
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml
from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.scenario import load_scenario_text

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# per minute: (invocations, input tokens, output tokens)
MINUTES = [(3, 3000, 600), (0, 0, 0), (5, 2500, 1000), (1, 800, 90), (12, 6000, 2400)]


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=url)
    for i, (calls, inp, out) in enumerate(MINUTES):
        when = START + timedelta(minutes=i)
        data = [{"MetricName": name, "Timestamp": when, "Value": float(value),
                 "Dimensions": [{"Name": "ModelId", "Value": "meta.llama3-1-8b"}]}
                for name, value in (("Invocations", calls), ("InputTokenCount", inp),
                                    ("OutputTokenCount", out))]
        client.put_metric_data(Namespace="AWS/Bedrock", MetricData=data)
    yield url
    server.stop()


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text().splitlines()))


def test_bedrock_cloudwatch_usage_becomes_a_replayable_trace(cloudwatch: str,
                                                             tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "import-usage", "--bedrock-model", "meta.llama3-1-8b", "--start", START.isoformat(),
        "--hours", "1", "--endpoint-url", cloudwatch, "--task", "chat",
        "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path / "usage-trace.csv")
    assert len(rows) == sum(m[0] for m in MINUTES)
    assert sum(int(r["prompt_tokens"]) for r in rows) == sum(m[1] for m in MINUTES)
    assert sum(int(r["output_tokens"]) for r in rows) == sum(m[2] for m in MINUTES)
    times = [float(r["timestamp"]) for r in rows]
    # each minute's calls lie inside that minute: 3 in minute 0, 5 in minute 2...
    per_minute = [sum(1 for t in times if k * 60 <= t < (k + 1) * 60) for k in range(5)]
    assert per_minute == [m[0] for m in MINUTES]
    sections = yaml.safe_load((tmp_path / "traffic.yaml").read_text())
    assert sections["diurnal"]["peak_hour"] == 9.0
    # CloudWatch leaves out the minutes without calls: the rate is over the hour asked for
    assert sections["diurnal"]["mean_rate_per_s"] == pytest.approx(
        sum(m[0] for m in MINUTES) / 3600, abs=1e-6)
    assert sections["recorded"]["hours"] == 1.0
    # the trace section loads as a scenario's traffic and replays every call
    loaded = load_scenario_text("""
duration: 600
traffic: {kind: trace, path: usage-trace.csv}
tasks: [{name: chat, prompt_tokens: {kind: fixed, tokens: 1},
          output_tokens: {kind: fixed, tokens: 1}}]
deployments: {d: {gpu: L4, model: SmolLM2-135M}}
""", base_dir=tmp_path)
    from llmplan.traffic import build_request_stream

    stream = build_request_stream(loaded.scenario)
    assert len(stream) == len(rows)
    assert stream.prompt_tokens.sum() == sum(m[1] for m in MINUTES)


def test_usage_export_csv(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text("start_time,num_model_requests,input_tokens,output_tokens,model\n"
                      "2026-11-02T10:00:00Z,120,240000,36000,gpt-4o-mini\n"
                      "2026-11-02T11:00:00Z,360,720000,108000,gpt-4o-mini\n"
                      "2026-11-02T12:00:00Z,60,90000,12000,gpt-4o-mini\n")
    result = CliRunner().invoke(app, ["import-usage", "--csv", str(export),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path / "out" / "usage-trace.csv")
    assert len(rows) == 540
    assert max(float(r["timestamp"]) for r in rows) < 3 * 3600
    sections = yaml.safe_load((tmp_path / "out" / "traffic.yaml").read_text())
    diurnal = sections["diurnal"]
    assert diurnal["mean_rate_per_s"] == pytest.approx(540 / (3 * 3600))
    assert diurnal["peak_to_mean"] == pytest.approx((360 / 3600) / (540 / 10800), rel=1e-3)
    assert diurnal["peak_hour"] == 11.0


def test_a_one_row_export_takes_its_period_from_its_end_time(tmp_path: Path) -> None:
    """OpenAI's daily usage export: one row from midnight to midnight is a day, 8,640
    requests 0.1 a second, not an hour of 2.4 a second."""
    export = tmp_path / "daily.csv"
    export.write_text("start_time,end_time,num_model_requests,input_tokens,output_tokens\n"
                      "1793836800,1793923200,8640,8640000,864000\n")
    result = CliRunner().invoke(app, ["import-usage", "--csv", str(export),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "over 24.0 h" in result.output
    sections = yaml.safe_load((tmp_path / "out" / "traffic.yaml").read_text())
    assert sections["diurnal"]["mean_rate_per_s"] == pytest.approx(0.1)
    alone = tmp_path / "alone.csv"         # one row and nothing to say how long it lasts
    alone.write_text("start_time,num_model_requests,input_tokens,output_tokens\n"
                     "1793836800,8640,8640000,864000\n")
    result = CliRunner().invoke(app, ["import-usage", "--csv", str(alone),
                                      "--out", str(tmp_path / "alone")])
    assert result.exit_code == 2 and "its length is unknown" in result.output


@pytest.mark.parametrize(("cell", "said"), [
    ("inf", "input_tokens: got 'inf'; expected a count"),
    ("nan", "input_tokens: got 'nan'; expected a count"),
    ("-5", "input_tokens: got '-5'; expected a count"),
    ("abc", "input_tokens: got 'abc'; expected a number"),
])
def test_a_bad_count_names_its_row_and_column(tmp_path: Path, cell: str, said: str) -> None:
    export = tmp_path / "export.csv"
    export.write_text("start_time,num_model_requests,input_tokens,output_tokens\n"
                      "2026-11-02T10:00:00Z,120,240000,36000\n"
                      f"2026-11-02T11:00:00Z,120,{cell},36000\n")
    result = CliRunner().invoke(app, ["import-usage", "--csv", str(export),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"export.csv:3: {said}" in " ".join(result.output.split())


def test_a_bad_export_is_a_clear_error(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text("when,calls\n2026-11-02T10:00:00Z,3\n")
    result = CliRunner().invoke(app, ["import-usage", "--csv", str(export)])
    assert result.exit_code == 2
    assert "no time column" in result.output and "Traceback" not in result.output


def test_cloudwatch_that_refuses_is_a_clear_error_without_the_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials, or an endpoint that does not answer: one line naming the option and
    botocore's cause, exit 2, no traceback and never the secret key."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {"AWS_CONFIG_FILE": str(tmp_path / "none"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    args = ["import-usage", "--bedrock-model", "meta.llama3-1-8b", "--start",
            START.isoformat(), "--hours", "1", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert "--bedrock-model: could not read meta.llama3-1-8b's metrics" in flat
    assert "Unable to locate credentials" in flat and "Traceback" not in result.output
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-do-not-print")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with socket.socket() as sock:            # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = CliRunner().invoke(app, [*args, "--endpoint-url", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert "Could not connect to the endpoint URL" in flat
    assert "s3cr3t-do-not-print" not in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, [*args, "--endpoint-url", "localhost:1234"])
    assert result.exit_code == 2, result.output
    assert "--endpoint-url: Invalid endpoint: localhost:1234" in " ".join(result.output.split())


def test_an_export_per_model_and_with_idle_hours_gives_the_days_rate(tmp_path: Path) -> None:
    """OpenAI's export has a row per model per period: they add up. Hours without rows had
    no traffic: two business days (09:00-17:00) of 1 request/s are 1/3 request/s over the
    two days, peaking at 3x that."""
    export = tmp_path / "export.csv"
    rows = ["start_time,end_time,model,num_model_requests,input_tokens,output_tokens"]
    for day in (1, 2):
        for hour in range(9, 17):
            start = datetime(2026, 11, day, hour, tzinfo=UTC)
            end = start + timedelta(hours=1)
            for model, share in (("gpt-4o", 0.25), ("gpt-4o-mini", 0.75)):
                rows.append(f"{start.isoformat()},{end.isoformat()},{model},"
                            f"{3600 * share:.0f},{3600 * share * 500:.0f},"
                            f"{3600 * share * 100:.0f}")
    export.write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(app, ["import-usage", "--csv", str(export),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert len(_rows(tmp_path / "out" / "usage-trace.csv")) == 2 * 8 * 3600
    sections = yaml.safe_load((tmp_path / "out" / "traffic.yaml").read_text())
    assert sections["recorded"]["hours"] == 48.0
    assert sections["diurnal"]["mean_rate_per_s"] == pytest.approx(1 / 3, abs=1e-6)
    assert sections["diurnal"]["peak_to_mean"] == pytest.approx(3.0)


def test_a_request_count_no_run_could_hold_is_refused_by_its_line(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text("start_time,end_time,requests,input_tokens,output_tokens\n"
                      "2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,1000000000000,2,4\n")
    result = CliRunner().invoke(app, ["import-usage", "--csv", str(export),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "export.csv:2: requests" in result.output and "at most 20,000,000" in result.output
    assert not (tmp_path / "out" / "usage-trace.csv").exists()
    named = CliRunner().invoke(app, ["import-usage", "--csv", str(export), "--task",
                                     "my chat/ü", "--out", str(tmp_path / "out")])
    assert named.exit_code != 0 and "--task" in named.output


def test_daily_rows_say_nothing_of_the_hours_within_a_day(tmp_path: Path) -> None:
    """A week of daily rows at a flat 1 request a second: each day's requests spread over
    its 24 hours, not all into midnight (which planned for 24 times the real peak)."""
    export = tmp_path / "daily.csv"
    days = [datetime(2026, 11, 2, tzinfo=UTC) + timedelta(days=d) for d in range(7)]
    export.write_text("start_time,end_time,num_model_requests,input_tokens,output_tokens\n"
                      + "".join(f"{d.isoformat()},{(d + timedelta(days=1)).isoformat()},"
                                f"86400,86400000,8640000\n" for d in days))
    result = CliRunner().invoke(app, ["import-usage", "--csv", str(export),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    diurnal = yaml.safe_load((tmp_path / "out" / "traffic.yaml").read_text())["diurnal"]
    assert diurnal["mean_rate_per_s"] == pytest.approx(1.0)
    assert diurnal["peak_to_mean"] < 1.05


@pytest.mark.parametrize(("url", "part"), [
    ("http://ci:url-pass-7d2a@127.0.0.1:1", "user:password@"),
    ("http://127.0.0.1:1/?X-Amz-Security-Token=url-pass-7d2a", "query or fragment"),
    ("127.0.0.1:1?api_key=url-pass-7d2a", "query or fragment"),
])
def test_an_endpoint_url_carrying_a_secret_is_refused_without_repeating_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, part: str) -> None:
    """botocore quoted the whole --endpoint-url ("Could not connect to the endpoint URL:
    ...", "Invalid endpoint: ...") and the message named it as given: its password or
    token went to stderr (a CI log)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-do-not-print")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = CliRunner().invoke(app, [
        "import-usage", "--bedrock-model", "meta.llama3-1-8b", "--start", START.isoformat(),
        "--hours", "1", "--out", str(tmp_path / "out"), "--endpoint-url", url])
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert f"--endpoint-url: the URL carries a {part} part" in flat
    assert "url-pass-7d2a" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
