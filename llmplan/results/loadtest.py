"""What a load test measured (summary.json), typed. Built by llmplan.loadtests.summary.

Latency statistics carry what peers report (AIPerf, GuideLLM): count, mean, std, min,
p1-p99.9 and max; names follow the README's "Names across tools" table.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Stats(_Model):
    """Distribution of one measure; None where nothing was measured."""

    count: int = 0
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    p1: float | None = None
    p5: float | None = None
    p10: float | None = None
    p25: float | None = None
    p50: float | None = None
    p75: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p99_9: float | None = None
    max: float | None = None


class RequestOutcomes(_Model):
    """Every planned request is one of: not sent, finished, failed, cancelled.

    `finished` was `ok` in summary.json files of 0.2 and earlier; both names are read."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    planned: int
    sent: int = Field(description="Requests that left the generator (records written).")
    finished: int = Field(validation_alias=AliasChoices("finished", "ok"),
                          description="Answered in full.")
    failed: int = Field(description="Ended by an error (cancelled ones not included).")
    cancelled: int = Field(default=0, description="In flight when the run stopped.")
    not_sent: int = Field(default=0, description="Planned but never sent (the run stopped).")
    warmup: int = Field(default=0, description="Warm-up requests (kept out of every figure).")
    errors_by_class: dict[str, int]
    errors_by_status: dict[str, int]
    token_mismatches: int


class MeasuredLatency(_Model):
    ttft_ms: Stats
    tpot_ms: Stats
    itl_ms: Stats
    e2e_ms: Stats
    ttft_visible_ms: Stats | None = Field(
        default=None, description="Send to the first visible token, for requests whose "
                                  "server streamed hidden reasoning first.")


class MeasuredThroughput(_Model):
    requested_rate_per_s: float | None = Field(
        description="The rate the schedule offered (open loop): its planned arrivals over "
                    "their span. A Poisson draw of N arrivals varies around the nominal rate "
                    "asked for (40 at 0.3/s offer 0.24-0.40/s nine times in ten); tables "
                    "call it 'offered'. None in closed loop.")
    send_rate_per_s: float | None
    achieved_rate_per_s: float
    output_tokens_per_s: float
    input_tokens_per_s: float = 0.0
    output_tokens_per_s_per_user: Stats = Field(
        default_factory=Stats, description="Per request: tokens after the first / (E2E - TTFT)"
                                            " (AIPerf's output_token_throughput_per_user).")
    window_s: float


class MeasuredCache(_Model):
    """Prompt tokens the server answered from its prompt cache (where it reports them)."""

    prompt_tokens: int
    cached_prompt_tokens: int | None
    hit_rate: float | None = Field(description="cached / prompt tokens, of reporting requests.")
    beyond_shared_prefix_rate: float | None = Field(
        description="Hit rate above the prefix every prompt shares (chat template, salt): what "
                    "a run with unshared prompts should not see.")
    warning: str | None = None


class MeasuredSlo(_Model):
    goodput_fraction: float | None
    goodput_requests_per_s: float
    bounded: bool = Field(
        default=True, description="Whether any task had a latency bound; without one, "
                                  "goodput is just the share of requests that finished.")


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
    cache: MeasuredCache | None = None
    interrupted: bool = False
    target_down: str | None = None
    #: why the run's agent sessions sent back less history than simulated (their hidden
    #: reasoning; loadtests.clients.history_note), None: they sent what it has
    history_note: str | None = None
