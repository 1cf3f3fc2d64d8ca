"""Scrape a vLLM server's Prometheus /metrics during a load test (server_metrics.prom).

Every `interval_s` the whole exposition is appended to the file after a line

    # llmplan-scrape unix_ts=<seconds>

so calibration (`llmplan calibrate --source vllm-metrics`) can difference the counters and
histograms over each interval. Best effort: a failed scrape is skipped, never fails a run.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

from llmplan.loadtests.targets import Target

SCRAPE_MARK = "# llmplan-scrape unix_ts="
METRICS_FILE = "server_metrics.prom"


def scrape_once(base_url: str, timeout_s: float = 2.0, *,
                headers: dict[str, str] | None = None) -> bytes | None:
    request = urllib.request.Request(f"{base_url.rstrip('/')}/metrics", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body: bytes = response.read()
            return body
    except (OSError, ValueError):
        return None


class MetricsScraper:
    """A background thread appending /metrics snapshots to out_dir/server_metrics.prom."""

    def __init__(self, target: Target, out_dir: Path, interval_s: float = 1.0) -> None:
        self.enabled = target.kind == "vllm"
        self.base_url = target.base_url
        self.target = target
        self.path = out_dir / METRICS_FILE
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        if self.enabled:
            self.path.unlink(missing_ok=True)
            self._thread.start()

    def _run(self) -> None:
        with self.path.open("ab") as handle:
            while True:
                stamp = time.time()
                body = scrape_once(self.base_url, headers=self.target.auth_headers())
                if body is not None:
                    handle.write(f"{SCRAPE_MARK}{stamp:.3f}\n".encode() + body
                                 + (b"" if body.endswith(b"\n") else b"\n"))
                    handle.flush()
                if self._stop.wait(self.interval_s):
                    break
            # one last look after the run
            body = scrape_once(self.base_url, headers=self.target.auth_headers())
            if body is not None:
                handle.write(f"{SCRAPE_MARK}{time.time():.3f}\n".encode() + body
                             + (b"" if body.endswith(b"\n") else b"\n"))

    def stop(self) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join(timeout=10)
