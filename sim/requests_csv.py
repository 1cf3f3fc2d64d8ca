"""The per-request CSV (`llmplan simulate --requests`): one row per simulated request."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from llmplan.sim.engine import DeploymentRun
from llmplan.sim.records import OUTCOME_NAMES, SERVED_CLOUD, SERVED_LOCAL
from llmplan.sim.table import request_table
from llmplan.traffic import RequestStream

REQUEST_COLUMNS = ("arrival_s", "start_s", "first_token_s", "finish_s", "ttft_s", "tpot_s",
                   "e2e_s", "prompt_tokens", "output_tokens", "replica", "preemptions",
                   "served_by", "attempts", "throttles", "fallbacks")


def write_requests_csv(run: DeploymentRun, stream: RequestStream, path: Path) -> Path:
    """One row per request: its times, tokens, where it ran and how it ended."""
    table = request_table(run, run.served(stream))
    names = stream.task_names
    served = {SERVED_LOCAL: "local", SERVED_CLOUD: "cloud"}
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "task", *REQUEST_COLUMNS, "outcome"])
        columns = [getattr(table, c) for c in REQUEST_COLUMNS]
        for i in range(len(stream)):
            row: list[object] = [i, names[int(table.task_index[i])]]
            for name, column in zip(REQUEST_COLUMNS, columns, strict=True):
                value = column[i]
                if name == "served_by":
                    row.append(served.get(int(value), ""))
                elif isinstance(value, float | np.floating):
                    row.append("" if math.isnan(value) else f"{value:.6f}")
                else:
                    row.append(int(value))
            row.append(OUTCOME_NAMES[int(table.outcome[i])])
            out.writerow(row)
    return path
