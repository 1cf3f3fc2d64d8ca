"""What a load test measured (summary.json), typed. Built by llmplan.loadtests.summary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Stats(_Model):
    """Mean, percentiles and maximum of one measure; None when nothing was measured."""

    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None


class RequestOutcomes(_Model):
    planned: int
    sent: int
    ok: int
    failed: int
    errors_by_class: dict[str, int]
    errors_by_status: dict[str, int]
    token_mismatches: int


class MeasuredLatency(_Model):
    ttft_ms: Stats
    tpot_ms: Stats
    itl_ms: Stats
    e2e_ms: Stats


class MeasuredThroughput(_Model):
    requested_rate_per_s: float | None
    send_rate_per_s: float | None
    achieved_rate_per_s: float
    output_tokens_per_s: float
    window_s: float


class MeasuredSlo(_Model):
    goodput_fraction: float | None
    goodput_requests_per_s: float


class TaskMeasurement(_Model):
    requests: int
    ok: int
    checked: int
    correct_fraction: float | None
    goodput_fraction: float


class LoadTestSummary(_Model):
    """summary.json of a load test."""

    mode: str
    requests: RequestOutcomes
    latency: MeasuredLatency
    throughput: MeasuredThroughput
    schedule_delay_ms: Stats
    slo: MeasuredSlo
    tasks: dict[str, TaskMeasurement]
    interrupted: bool = False
    target_down: str | None = None
