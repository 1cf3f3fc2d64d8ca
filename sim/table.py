"""Per-request columns of a finished run, with the latencies derived from them.

Definitions (the ones the load tests use too):
  TTFT = first token - arrival;  E2E = finish - arrival;  TPOT = (E2E - TTFT) / (n_out - 1)
Requests that finish after the horizon count as unfinished; a local client sees every token
later by the calibrated client-server overhead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmplan.scenario.goodput import within_slo
from llmplan.scenario.models import Scenario
from llmplan.sim.engine import DeploymentRun
from llmplan.sim.records import OK, REJECTED, SERVED_CLOUD, SERVED_LOCAL
from llmplan.traffic import RequestStream


@dataclass(frozen=True)
class RequestTable:
    """One row per request (NaN where a time does not apply); times in seconds."""

    arrival_s: np.ndarray
    start_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    e2e_s: np.ndarray
    queue_wait_s: np.ndarray
    refused_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    task_index: np.ndarray
    replica: np.ndarray
    preemptions: np.ndarray
    outcome: np.ndarray
    served_by: np.ndarray
    attempts: np.ndarray
    throttles: np.ndarray
    fallbacks: np.ndarray
    #: reasoning tasks: first visible token - arrival (NaN without hidden reasoning tokens)
    ttft_visible_s: np.ndarray | None = None

    @property
    def ok(self) -> np.ndarray:
        done: np.ndarray = self.outcome == OK
        return done


def request_table(run: DeploymentRun, stream: RequestStream) -> RequestTable:
    """The run's records as columns, latencies derived."""
    rec = run.records
    sent = run.arrival_s
    arrival = stream.arrival_s if sent is None else np.asarray(sent)
    outcome = np.asarray(rec.outcome, dtype=np.int64)
    finish_raw = np.asarray(rec.finish_s)
    first_raw = np.asarray(rec.first_token_s)
    start_raw = np.asarray(rec.start_s)
    served_by = np.asarray(rec.served_by, dtype=np.int64)
    late = (outcome == OK) & (finish_raw > run.horizon_s)
    outcome[late] = 0  # finished after the horizon: unfinished
    ok = outcome == OK
    overhead = run.step_time.client_overhead_s if run.step_time is not None else 0.0
    shift = np.where(served_by == SERVED_LOCAL, overhead, 0.0)
    first = np.where((first_raw >= 0) & (first_raw <= run.horizon_s), first_raw + shift, np.nan)
    finish = np.where(ok, finish_raw + shift, np.nan)
    n_out = stream.output_tokens
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(ok & (n_out > 1), (finish - first) / (n_out - 1), np.nan)
    start = np.where(start_raw >= 0, start_raw, np.nan)
    visible = None
    if stream.reasoning_tokens is not None:
        # the visible answer starts after the hidden tokens, at the request's own pace
        r = stream.reasoning_tokens
        first_visible = np.where(r > 0, first + r * np.nan_to_num(tpot), first)
        visible = first_visible - arrival
        if run.cloud is not None and not run.cloud.model.streams_reasoning:
            # an API that withholds the reasoning sends its first token with the answer:
            # that is the first token the client sees (the pace between tokens is the same)
            withheld = served_by == SERVED_CLOUD
            first = np.where(withheld, first_visible, first)
    return RequestTable(
        arrival_s=arrival, start_s=start, first_token_s=first, finish_s=finish,
        ttft_s=first - arrival, tpot_s=tpot, e2e_s=finish - arrival,
        queue_wait_s=start - arrival,
        refused_s=np.where(outcome >= REJECTED, finish_raw, np.nan),
        prompt_tokens=(stream.prompt_tokens if run.engine_prompt_tokens is None
                       else run.engine_prompt_tokens),
        output_tokens=n_out, task_index=stream.task_index,
        replica=np.asarray(rec.replica, dtype=np.int64),
        preemptions=np.asarray(rec.preemptions, dtype=np.int64), outcome=outcome,
        served_by=served_by, attempts=np.asarray(rec.attempts, dtype=np.int64),
        throttles=np.asarray(rec.throttles, dtype=np.int64),
        fallbacks=np.asarray(rec.fallbacks, dtype=np.int64), ttft_visible_s=visible)


def slo_met(table: RequestTable, scenario: Scenario) -> np.ndarray:
    """Per request: finished and inside every SLO bound of its task (the goodput rule)."""
    return within_slo([scenario.slo_for(task) for task in scenario.tasks], table.task_index,
                      table.ok, ttft_ms=table.ttft_s * 1e3, tpot_ms=table.tpot_s * 1e3,
                      e2e_ms=table.e2e_s * 1e3,
                      ttft_visible_ms=None if table.ttft_visible_s is None
                      else table.ttft_visible_s * 1e3)
