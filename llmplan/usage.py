"""`llmplan import-usage`: plan from what a team already runs.

Reads per-period usage, from AWS Bedrock's CloudWatch metrics (namespace AWS/Bedrock:
Invocations, InputTokenCount, OutputTokenCount per ModelId, one-minute sums) or from a
provider's usage export (CSV with a time column and request/input/output counts per
period), and writes a request trace the scenario can replay (`traffic: {kind: trace}`):
each period's requests spread evenly over it, each carrying the period's mean prompt and
output length. It also summarises the daily shape (mean rate, peak-to-mean, peak hour) as a
`diurnal` traffic section, for planning beyond the recorded window.
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from llmplan.errors import InputError, Problem
from llmplan.traffic.stream import MAX_SIMULATED_REQUESTS
from llmplan.urls import secret_part

TIME_COLUMNS = ("start_time", "timestamp", "time", "date", "period_start")
END_COLUMNS = ("end_time", "period_end")
REQUEST_COLUMNS = ("num_model_requests", "requests", "n_requests", "invocations",
                   "request_count")
INPUT_COLUMNS = ("input_tokens", "n_context_tokens_total", "prompt_tokens", "input_token_count")
OUTPUT_COLUMNS = ("output_tokens", "n_generated_tokens_total", "completion_tokens",
                  "output_token_count")


@dataclass(frozen=True)
class Period:
    start: datetime
    seconds: float
    requests: int
    input_tokens: float
    output_tokens: float


def _parse_time(value: str) -> datetime:
    text = value.strip()
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _column(header: list[str], options: tuple[str, ...], what: str, file: str) -> str:
    lowered = {h.lower().strip(): h for h in header}
    for option in options:
        if option in lowered:
            return lowered[option]
    raise InputError([Problem(file, 1, what, f"no {what} column; expected one of: "
                              f"{', '.join(options)}")])


def _cell_count(file: str, number: int, row: dict[str, str], column: str) -> float:
    """A count cell: finite, 0 or more (empty: 0)."""
    try:
        value = float(row[column] or 0)
    except (ValueError, TypeError):
        raise InputError([Problem(file, number, column, f"got {row[column]!r}; expected a "
                                  "number")]) from None
    if not math.isfinite(value) or value < 0:
        raise InputError([Problem(file, number, column, f"got {row[column]!r}; expected a "
                                  "count, 0 or more")])
    return value


def _cell_time(file: str, number: int, row: dict[str, str], column: str) -> datetime:
    try:
        return _parse_time(row[column])
    except (ValueError, TypeError, OverflowError, OSError):
        raise InputError([Problem(file, number, column, f"got {row[column]!r}; expected a "
                                  "Unix time or an ISO date")]) from None


def read_usage_csv(path: Path, period_s: float | None = None) -> list[Period]:
    """Periods of a usage export; the period length is the spacing of its rows."""
    file = str(path)
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    except OSError as exc:
        raise InputError([Problem(file, None, "", f"cannot read: {exc}")]) from None
    if not rows:
        raise InputError([Problem(file, None, "", "no rows")])
    header = list(rows[0])
    t_col = _column(header, TIME_COLUMNS, "time", file)
    r_col = _column(header, REQUEST_COLUMNS, "requests", file)
    i_col = _column(header, INPUT_COLUMNS, "input tokens", file)
    o_col = _column(header, OUTPUT_COLUMNS, "output tokens", file)
    lowered = {h.lower().strip(): h for h in header}
    e_col = next((lowered[c] for c in END_COLUMNS if c in lowered), None)
    merged: dict[datetime, list[float]] = {}
    lengths = []
    for number, row in enumerate(rows, start=2):
        start = _cell_time(file, number, row, t_col)
        requests, prompt, output = (_cell_count(file, number, row, c)
                                    for c in (r_col, i_col, o_col))
        if requests > MAX_SIMULATED_REQUESTS:
            raise InputError([Problem(file, number, r_col, f"{requests:,.0f} requests in one "
                                      f"period; a trace holds at most "
                                      f"{MAX_SIMULATED_REQUESTS:,} (a run's limit): expected the "
                                      f"period's request count")])
        # rows of one period (one per model, as OpenAI's export has them) add up
        total = merged.setdefault(start, [0.0, 0.0, 0.0])
        total[0] += requests
        total[1] += prompt
        total[2] += output
        if e_col is not None and row.get(e_col):
            seconds = (_cell_time(file, number, row, e_col) - start).total_seconds()
            if seconds <= 0:
                raise InputError([Problem(file, number, e_col, "ends before it starts; "
                                          "expected a time after the start")])
            lengths.append(seconds)
    parsed = sorted((t, round(n), i, o) for t, (n, i, o) in merged.items())
    if not any(n for _, n, _, _ in parsed):
        raise InputError([Problem(file, None, r_col, "every period has 0 requests: nothing to "
                                  "replay; expected an export with traffic in it")])
    if sum(n for _, n, _, _ in parsed) > MAX_SIMULATED_REQUESTS:
        raise InputError([Problem(file, None, r_col, f"{sum(n for _, n, _, _ in parsed):,} "
                                  f"requests in all; a trace holds at most "
                                  f"{MAX_SIMULATED_REQUESTS:,} (a run's limit): expected a "
                                  f"shorter export")])
    if period_s is None:
        gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(parsed)
                if b[0] > a[0]]
        if lengths:
            period_s = float(min(lengths))      # the export says how long a period is
        elif gaps:
            period_s = float(min(gaps))
        else:
            raise InputError([Problem(file, None, t_col, "one period and no end column: its "
                                      "length is unknown; expected an end_time column or "
                                      "two or more periods")])
    return [Period(t, period_s, n, i, o) for t, n, i, o in parsed]


def read_cloudwatch(model_id: str, start: datetime, end: datetime, *, region: str,
                    endpoint_url: str | None = None) -> list[Period]:
    """One-minute periods of a Bedrock model's usage from CloudWatch (boto3). What AWS
    refuses (no credentials, no access, an endpoint that does not answer) is an InputError
    naming the option and the cause, as botocore words it (it quotes no secret)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if endpoint_url is not None and (hidden := secret_part(endpoint_url)) is not None:
        # said without the URL: botocore would repeat it in every error, secret and all
        raise InputError([Problem("<command line>", None, "--endpoint-url",
                                  f"the URL carries a {hidden} part, which may hold a secret "
                                  f"(and CloudWatch never reads one); expected the endpoint "
                                  f"alone, such as https://monitoring.{region}.amazonaws.com, "
                                  f"and the AWS credentials where boto3 finds them")])
    try:
        return _read_cloudwatch(model_id, start, end, region=region, endpoint_url=endpoint_url)
    except ValueError as exc:       # botocore's word for an endpoint URL it cannot use
        raise InputError([Problem("<command line>", None, "--endpoint-url",
                                  f"{exc}; expected a URL such as "
                                  f"https://monitoring.{region}.amazonaws.com")]) from None
    except (BotoCoreError, ClientError) as exc:
        where = endpoint_url or f"CloudWatch in {region}"
        raise InputError([Problem("<command line>", None, "--bedrock-model",
                                  f"could not read {model_id}'s metrics from {where}: "
                                  f"{exc}")]) from None


def _read_cloudwatch(model_id: str, start: datetime, end: datetime, *, region: str,
                     endpoint_url: str | None) -> list[Period]:
    import boto3

    # a session of its own: boto3's default one keeps the credentials it first found
    client = boto3.session.Session().client("cloudwatch", region_name=region,
                                            endpoint_url=endpoint_url)
    queries = [{"Id": key, "MetricStat": {"Metric": {
        "Namespace": "AWS/Bedrock", "MetricName": metric,
        "Dimensions": [{"Name": "ModelId", "Value": model_id}]},
        "Period": 60, "Stat": "Sum"}, "ReturnData": True}
        for key, metric in (("invocations", "Invocations"), ("input", "InputTokenCount"),
                            ("output", "OutputTokenCount"))]
    series: dict[str, dict[datetime, float]] = {"invocations": {}, "input": {}, "output": {}}
    token = None
    while True:
        kwargs: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start,
                                  "EndTime": end}
        if token:
            kwargs["NextToken"] = token
        page = client.get_metric_data(**kwargs)
        for result in page["MetricDataResults"]:
            for ts, value in zip(result["Timestamps"], result["Values"], strict=True):
                series[result["Id"]][ts.astimezone(UTC)] = float(value)
        token = page.get("NextToken")
        if not token:
            break
    return [Period(ts, 60.0, round(series["invocations"][ts]),
                   series["input"].get(ts, 0.0), series["output"].get(ts, 0.0))
            for ts in sorted(series["invocations"]) if series["invocations"][ts] > 0]


def write_trace(periods: list[Period], path: Path, task: str = "") -> int:
    """One row per request; returns how many. Timestamps are seconds from the first period."""
    if not periods:
        raise InputError([Problem(str(path), None, "", "no usage in the selected window")])
    origin = periods[0].start
    written = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["timestamp", "prompt_tokens", "output_tokens", "task"])
        for p in periods:
            if p.requests <= 0:
                continue
            offset = (p.start - origin).total_seconds()
            prompts = _split(p.input_tokens, p.requests)
            outputs = _split(p.output_tokens, p.requests)
            for k in range(p.requests):
                t = offset + (k + 0.5) * p.seconds / p.requests
                out.writerow([f"{t:.3f}", prompts[k], outputs[k], task])
                written += 1
    return written


def _split(total: float, n: int) -> list[int]:
    """n positive integers summing to round(total) (each at least 1)."""
    whole = max(n, round(total))
    base, extra = divmod(whole, n)
    return [base + (1 if k < extra else 0) for k in range(n)]


def recorded_window(periods: list[Period]) -> tuple[datetime, datetime]:
    """The time a CSV export covers: from its first period's start to its last's end
    (periods without rows in between had no traffic); an export of a day or more covers
    whole UTC days (an export leaves out the idle night hours at its ends too)."""
    begin = periods[0].start
    end = max(p.start + timedelta(seconds=p.seconds) for p in periods)
    if end - begin >= timedelta(hours=20):
        midnight = begin.replace(hour=0, minute=0, second=0, microsecond=0)
        days = math.ceil((end - midnight) / timedelta(days=1))
        begin, end = midnight, midnight + timedelta(days=days)
    return begin, end


def _seconds_by_hour(begin: datetime, end: datetime) -> np.ndarray:
    """Seconds of [begin, end) in each clock hour of the day (UTC)."""
    seconds = np.zeros(24)
    t = begin
    while t < end:
        following = (t.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
        step = min(following, end)
        seconds[t.hour] += (step - t).total_seconds()
        t = step
    return seconds


def daily_shape(periods: list[Period],
                window: tuple[datetime, datetime] | None = None) -> dict[str, float]:
    """Mean rate, peak-to-mean of the hourly profile, and the peak hour (UTC), over the
    whole window recorded (idle minutes count as time without requests: CloudWatch and
    usage exports leave them out)."""
    begin, end = window or recorded_window(periods)
    hours = np.zeros(24)
    for p in periods:
        # a period's requests spread over the clock hours it covers (a day's row says
        # nothing of its hours: it adds evenly to each, not all to its first)
        if p.seconds > 3600:
            covered_s = _seconds_by_hour(p.start, p.start + timedelta(seconds=p.seconds))
            hours += p.requests * covered_s / covered_s.sum()
        else:
            hours[p.start.hour] += p.requests
    seconds = _seconds_by_hour(begin, end)
    covered = seconds > 0
    rates = np.divide(hours, seconds, out=np.zeros(24), where=covered)
    total_s = (end - begin).total_seconds()
    mean = sum(p.requests for p in periods) / total_s if total_s > 0 else 0.0
    peak = float(rates.max()) if covered.any() else 0.0
    return {"mean_rate_per_s": mean,
            "peak_to_mean": max(1.01, peak / mean) if mean else 1.01,
            "peak_hour": float(int(np.argmax(rates)))}


def traffic_sections(trace: Path, periods: list[Period],
                     window: tuple[datetime, datetime] | None = None) -> dict[str, Any]:
    begin, end = window or recorded_window(periods)
    shape = daily_shape(periods, (begin, end))
    requests = sum(p.requests for p in periods)
    return {
        "trace": {"kind": "trace", "path": trace.name},
        "diurnal": {"kind": "diurnal", "mean_rate_per_s": round(shape["mean_rate_per_s"], 6),
                    "peak_to_mean": round(shape["peak_to_mean"], 3),
                    "peak_hour": shape["peak_hour"]},
        "recorded": {"requests": requests,
                     "hours": (end - begin).total_seconds() / 3600.0,
                     "mean_prompt_tokens": sum(p.input_tokens for p in periods) / max(1, requests),
                     "mean_output_tokens": sum(p.output_tokens for p in periods)
                     / max(1, requests)},
    }


def parse_window(start: str, end: str | None, hours: float | None) -> tuple[datetime, datetime]:
    begin = _parse_time(start)
    finish = _parse_time(end) if end else begin + timedelta(hours=hours or 24.0)
    if finish <= begin:
        raise ValueError("the end must come after the start")
    if math.isinf((finish - begin).total_seconds()):
        raise ValueError("window too long")
    return begin, finish


@dataclass(frozen=True)
class ImportedUsage:
    """What `llmplan import-usage` wrote."""

    trace: Path
    snippet: Path
    requests: int
    hours: float
    mean_prompt_tokens: float
    mean_output_tokens: float


def import_usage(periods: list[Period], out_dir: Path, task: str = "",
                 window: tuple[datetime, datetime] | None = None) -> ImportedUsage:
    """Write the replayable trace and the traffic snippet (trace and fitted diurnal);
    `window`: the time the periods were read from (default: the first period's start to
    the last one's end)."""
    import yaml

    if not periods:
        raise InputError([Problem(str(out_dir), None, "", "no usage in the selected window")])
    if sum(p.requests for p in periods) > MAX_SIMULATED_REQUESTS:
        raise InputError([Problem(str(out_dir), None, "", f"more than {MAX_SIMULATED_REQUESTS:,} "
                                  f"requests in the window (a run's limit): expected a "
                                  f"shorter window")])
    out_dir.mkdir(parents=True, exist_ok=True)
    trace = out_dir / "usage-trace.csv"
    count = write_trace(periods, trace, task)
    sections = traffic_sections(trace, periods, window)
    snippet = out_dir / "traffic.yaml"
    snippet.write_text(
        "# Paste one of these as the scenario's traffic (trace: replay; diurnal: plan ahead)\n"
        + yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")
    rec = sections["recorded"]
    return ImportedUsage(trace, snippet, count, rec["hours"], rec["mean_prompt_tokens"],
                         rec["mean_output_tokens"])
