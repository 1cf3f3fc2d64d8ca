"""Helpers for load-test tests: targets files, the CLI in a child process, JSONL reading.

Locust is never imported here: `llmplan loadtest` runs it as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

SCENARIO = """
    name: loadtest-check
    seed: 5
    duration: 60
    traffic: {kind: poisson, rate_per_s: 1.0}
    tasks:
      - name: chat
        weight: 3
        prompt_tokens: {kind: uniform, min_tokens: 16, max_tokens: 48}
        output_tokens: {kind: uniform, min_tokens: 6, max_tokens: 16}
      - name: classify
        prompt_tokens: {kind: fixed, tokens: 24}
        output_tokens: {kind: fixed, tokens: 4}
    slo: {ttft_ms: 5000, tpot_ms: 500}
    deployments:
      staging: {gpu: L4, model: SmolLM2-135M}
"""


def targets_file(tmp_path: Path, **targets: dict[str, Any]) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump({"targets": targets}))
    return path


def llmplan(*args: str, env: dict[str, str] | None = None,
            timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process (Locust never enters the pytest process)."""
    return subprocess.run([sys.executable, "-c", "from llmplan.cli import app; app()", *args],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
