"""A loopback HTTP server replaying recorded Kubernetes API responses.

Each route is a request path (no query string) and the recorded answer; the server keeps
every request it got (method, path, query, authorization) so tests can check what the
client asked. Unknown paths answer 404 with a Kubernetes `Status`, as the API server does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

RECORDED = Path(__file__).parent / "k8s_recorded"


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


class Replay:
    def __init__(self, routes: dict[str, tuple[int, Any]]) -> None:
        self.routes = routes
        self.requests: list[dict[str, Any]] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                path = unquote(url.path)     # as the API server decodes it
                replay.requests.append({"path": path, "query": parse_qs(url.query),
                                        "authorization": self.headers.get("Authorization")})
                status, body = replay.routes.get(path, (404, {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": f"the server could not find the requested resource ({path})",
                    "reason": "NotFound", "code": 404}))
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, folder: Path, token: str = "replay-token") -> Path:
        path = folder / "kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "replay",
            "clusters": [{"name": "replay", "cluster": {"server": self.url}}],
            "users": [{"name": "ci", "user": {"token": token}}],
            "contexts": [{"name": "replay", "context": {"cluster": "replay", "user": "ci"}}]}))
        return path


@contextmanager
def replaying(routes: dict[str, tuple[int, Any]]) -> Iterator[Replay]:
    replay = Replay(routes)
    thread = threading.Thread(target=replay.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield replay
    finally:
        replay.server.shutdown()
        replay.server.server_close()
        thread.join(timeout=10)
