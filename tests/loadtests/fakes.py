"""Loopback endpoints for tests and benchmarks (never stand-ins for the real llama.cpp target).

FakeOpenAI: an OpenAI-compatible streaming endpoint on asyncio, fast enough to measure the
load generator's own ceiling, with faults chosen by the request's model name:
  "ok" (default)       stream max_tokens tokens, `token_delay_s` apart
  "error-500"          HTTP 500
  "throttle"           HTTP 429 with retry-after: 2
  "echo-key"           HTTP 401 whose body repeats the Authorization header it got
  "reset"              abort the connection after two tokens
  "flaky"              like "reset" for every third request, else "ok"
  "slow"               wait 1.5 s before the first token
  "stall"              two tokens, then nothing more (the stream stays open)
  "drop"               take the request, wait 0.3 s, close the connection unanswered
  "one-shot"           like "ok", then close the kept-alive connection
  "sse-rich"           every SSE feature at once: comments, `event:`/`id:`/`retry:` lines, CRLF
                       line ends, each JSON object split over two `data:` lines
  "stream-error"       two tokens, then `data: {"error": {...}}` (as vLLM and OpenAI send)
  "event-error"        two tokens, then an `event: error` event

ClosesAfterReply: a blocking server that closes each connection after one streamed reply
without saying so, as llama.cpp does, racing with the client's next request on it.

FakeBedrock: AWS Bedrock's ConverseStream over the AWS event-stream binary protocol (what
boto3 parses), and ThrottlingException (HTTP 429) for model ids containing "throttle".
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
import zlib
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any


class _LoopServer(ABC):
    """An asyncio server on 127.0.0.1 running in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self.requests = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> _LoopServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024), self.loop)
        self._server = future.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            asyncio.run_coroutine_threadsafe(self._server.wait_closed(), self.loop).result(10)
        # answers still being written (a slow one the client gave up on) end here, with the
        # loop running, not destroyed pending when it closes
        asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def __enter__(self) -> _LoopServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in
                           (line.split(":", 1) for line in lines[1:] if ":" in line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests += 1
                keep = await self.respond(method, path, headers, body, writer)
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    @abstractmethod
    async def respond(self, method: str, path: str, headers: dict[str, str], body: bytes,
                      writer: asyncio.StreamWriter) -> bool:
        """Answer one request; return whether the connection stays open."""


async def _cancel_the_rest() -> None:
    """Cancel every other task of the running loop and wait for them to end."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()


async def _simple(writer: asyncio.StreamWriter, status: str, body: bytes,
                  extra: str = "") -> None:
    writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()


class FakeOpenAI(_LoopServer):
    """OpenAI-compatible chat/completions streaming with injectable faults."""

    def __init__(self, token_delay_s: float = 0.0) -> None:
        super().__init__()
        self.token_delay_s = token_delay_s
        self.bodies: list[dict[str, Any]] = []     # every request's JSON, in arrival order

    async def respond(self, method: str, path: str, headers: dict[str, str], body: bytes,
                      writer: asyncio.StreamWriter) -> bool:
        request = json.loads(body or b"{}")
        self.bodies.append(request)
        model = request.get("model", "ok")
        abort_after = 2 if model == "reset" or (model == "flaky" and self.requests % 3 == 0) \
            else None
        if model == "error-500":
            await _simple(writer, "500 Internal Server Error", b'{"error":"boom"}')
            return True
        if model == "echo-key":
            body = json.dumps({"error": f"invalid key: {headers.get('authorization', '')}"})
            await _simple(writer, "401 Unauthorized", body.encode())
            return True
        if model == "html-200":            # a web page where the API should be
            page = b"<html><body>Welcome to nginx!</body></html>"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(page) + page)
            await writer.drain()
            return True
        if model == "throttle":
            await _simple(writer, "429 Too Many Requests", b'{"error":"rate limited"}',
                          "Retry-After: 2\r\n")
            return True
        if model == "slow":
            await asyncio.sleep(1.5)
        if model == "drop":
            await asyncio.sleep(0.3)
            return False                   # took it, answered nothing, closed
        n = int(request.get("max_tokens", 16))
        chat = path.endswith("/chat/completions")
        if model in {"sse-rich", "stream-error", "event-error"}:
            await self._special(model, n, chat, writer)
            return True
        if model in {"reasoning", "reasoning-withheld"}:
            await self._reasoning(n, writer, streamed=model == "reasoning")
            return True
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(n):
            if self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
            if i == abort_after:
                writer.transport.abort()
                return False
            if i == 2 and model == "stall":
                try:
                    await asyncio.sleep(3600)      # until the client cuts it
                except asyncio.CancelledError:     # the fake stops
                    return False
            piece = f" t{i}"
            choice = {"index": 0, "delta": {"content": piece}} if chat else \
                {"index": 0, "text": piece}
            await _chunk(writer, b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n")
        usage = {"prompt_tokens": len(str(request.get("messages") or request.get("prompt"))
                                      .split()), "completion_tokens": n}
        await _chunk(writer, b"data: " + json.dumps({"choices": [], "usage": usage}).encode()
                     + b"\n\ndata: [DONE]\n\n")
        await _chunk(writer, b"")
        return model != "one-shot"     # one-shot: closes the keep-alive once idle


    async def _reasoning(self, n: int, writer: asyncio.StreamWriter, *,
                         streamed: bool) -> None:
        """A reasoning model behind vLLM's reasoning parser: `THINK` hidden tokens streamed
        as delta.reasoning_content (after a role-only chunk), then the answer as content,
        the hidden ones counted in usage.completion_tokens_details. Not `streamed`: as
        OpenAI's API, the hidden tokens take their time but send nothing."""
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
        await _chunk(writer, b"data: " + json.dumps(role).encode() + b"\n\n")
        for i in range(self.THINK + n):
            await asyncio.sleep(self.token_delay_s)
            delta = {"reasoning_content": f" r{i}"} if i < self.THINK else {"content": f" a{i}"}
            if i < self.THINK and not streamed:
                continue
            await _chunk(writer, b"data: " + json.dumps(
                {"choices": [{"index": 0, "delta": delta}]}).encode() + b"\n\n")
        usage = {"prompt_tokens": 8, "completion_tokens": self.THINK + n,
                 "completion_tokens_details": {"reasoning_tokens": self.THINK}}
        await _chunk(writer, b"data: " + json.dumps({"choices": [], "usage": usage}).encode()
                     + b"\n\ndata: [DONE]\n\n")
        await _chunk(writer, b"")

    THINK = 5

    async def _special(self, model: str, n: int, chat: bool,
                       writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        await _chunk(writer, b": keep-alive\r\nretry: 1000\r\n\r\n")
        for i in range(n):
            if self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
            if i == 2 and model == "stream-error":
                await _chunk(writer, b'data: {"error": {"message": "CUDA out of memory", '
                                     b'"type": "server_error", "code": 500}}\n\n')
                break
            if i == 2 and model == "event-error":
                await _chunk(writer, b'event: error\ndata: {"message": "engine overloaded"}\n\n')
                break
            choice = {"index": 0, "delta": {"content": f" t{i}"}} if chat else \
                {"index": 0, "text": f" t{i}"}
            body = json.dumps({"id": f"c{i}", "choices": [choice]})
            head, tail = body.split(", ", 1)          # one object over two data: lines
            event = (f"id: {i}\r\nevent: message\r\ndata: {head},\r\ndata: {tail}\r\n\r\n"
                     if model == "sse-rich" else f"data: {body}\n\n")
            await _chunk(writer, event.encode())
        else:
            usage = {"prompt_tokens": 7, "completion_tokens": n,
                     "prompt_tokens_details": {"cached_tokens": 3}}
            last: dict[str, Any] = {"choices": [], "usage": usage}
            if model == "sse-rich":     # llama.cpp's own clock beside the usage
                last["timings"] = {"prompt_n": 4, "prompt_ms": 12.5, "predicted_n": n}
            await _chunk(writer, b"data: " + json.dumps(last).encode()
                         + b"\r\n\r\n: done\r\ndata: [DONE]\r\n\r\n")
        await _chunk(writer, b"")


def event_message(event_type: str, payload: dict[str, Any],
                  message_type: str = "event") -> bytes:
    """One AWS event-stream message: prelude, string headers, JSON payload, CRC32s."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", message_type)):
        raw = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return head + struct.pack(">I", zlib.crc32(head))


class FakeBedrock(_LoopServer):
    """POST /model/{id}/converse-stream answered as Bedrock does (or throttled)."""

    THINK = 5

    def __init__(self, token_delay_s: float = 0.002) -> None:
        super().__init__()
        self.token_delay_s = token_delay_s
        #: the JSON body of each ConverseStream request received
        self.bodies: list[dict[str, Any]] = []

    async def respond(self, method: str, path: str, headers: dict[str, str], body: bytes,
                      writer: asyncio.StreamWriter) -> bool:
        self.bodies.append(json.loads(body or b"{}"))
        if "throttle" in path:
            await _simple(writer, "429 Too Many Requests",
                          b'{"message":"Too many requests, please wait before trying again."}',
                          "x-amzn-ErrorType: ThrottlingException\r\n")
            return True
        request = json.loads(body or b"{}")
        n = int(request.get("inferenceConfig", {}).get("maxTokens", 16))
        text = " ".join(c.get("text", "") for m in request.get("messages", [])
                        for c in m.get("content", []))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        start = time.perf_counter()
        await _chunk(writer, event_message("messageStart", {"role": "assistant"}))
        # a reasoning model ("r1" in its id) thinks first: THINK reasoningContent deltas
        # in block 0, closed by a signature (as Claude's thinking), the answer in block 1;
        # usage.outputTokens counts both, as Bedrock does
        think = self.THINK if "r1" in path else 0
        for i in range(think):
            await asyncio.sleep(self.token_delay_s)
            await _chunk(writer, event_message("contentBlockDelta", {
                "contentBlockIndex": 0, "delta": {"reasoningContent": {"text": f" r{i}"}}}))
        if think:
            await _chunk(writer, event_message("contentBlockDelta", {
                "contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "c2ln"}}}))
            await _chunk(writer, event_message("contentBlockStop", {"contentBlockIndex": 0}))
        for i in range(n - think):
            await asyncio.sleep(self.token_delay_s)
            await _chunk(writer, event_message("contentBlockDelta", {
                "contentBlockIndex": 1 if think else 0, "delta": {"text": f" w{i}"}}))
        await _chunk(writer, event_message("contentBlockStop",
                                           {"contentBlockIndex": 1 if think else 0}))
        await _chunk(writer, event_message("messageStop", {"stopReason": "max_tokens"}))
        await _chunk(writer, event_message("metadata", {
            "usage": {"inputTokens": len(text.split()), "outputTokens": n,
                      "totalTokens": len(text.split()) + n},
            "metrics": {"latencyMs": int((time.perf_counter() - start) * 1e3)}}))
        await _chunk(writer, b"")
        return True


class ClosesAfterReply:
    """A tiny blocking HTTP/1.1 server on 127.0.0.1 that, like llama.cpp, closes a connection
    after each streamed reply without a `Connection: close` header; to make the race with a
    client's next request certain, it closes only once that request is on the connection,
    unanswered. `mode` says how the kept-alive connection's next request ends:
      "eof"         read, then the connection closed (the client reads no answer at all)
      "rst"         closed unread (the server's kernel resets the connection)
      "mid-stream"  answered with two chunks, then reset: a real failure, never resent
      "gone"        the server stopped listening after its first reply, then closed
    Counts: `connections` accepted, `answered` replies finished, `dropped` requests closed
    unanswered, `cut` replies broken off."""

    def __init__(self, mode: str, tokens: int = 3) -> None:
        import socket

        self.mode, self.tokens = mode, tokens
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = self.answered = self.dropped = self.cut = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ClosesAfterReply:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop_listening()
        self._thread.join(timeout=10)

    def _stop_listening(self) -> None:
        import contextlib
        import socket

        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)     # wakes the accept() waiting on it
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:          # closed
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Any) -> None:
        import select
        import socket

        with conn:
            reader = conn.makefile("rb")
            if not self._read_request(reader):
                return
            self._reply(conn)
            self.answered += 1
            if self.mode == "gone":
                self._stop_listening()
            select.select([conn], [], [], 10)     # the next request arrives
            if self.mode == "rst" and conn.recv(1, socket.MSG_PEEK):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.dropped += 1
                return
            if not self._read_request(reader):
                return
            if self.mode == "mid-stream":
                self._reply(conn, cut_after=2)
                time.sleep(0.2)                   # the client reads them, then the reset
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.cut += 1
                return
            self.dropped += 1                     # "eof", "gone": closed unanswered

    @staticmethod
    def _read_request(reader: Any) -> bool:
        length = 0
        while True:
            line = reader.readline()
            if not line:
                return False
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        reader.read(length)
        return True

    def _reply(self, conn: Any, cut_after: int | None = None) -> None:
        def chunk(data: bytes) -> bytes:
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"

        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(self.tokens):
            if i == cut_after:
                return
            piece = {"choices": [{"index": 0, "text": f" t{i}"}]}
            conn.sendall(chunk(b"data: " + json.dumps(piece).encode() + b"\n\n"))
        usage = {"prompt_tokens": 2, "completion_tokens": self.tokens}
        conn.sendall(chunk(b"data: " + json.dumps({"choices": [], "usage": usage}).encode()
                           + b"\n\ndata: [DONE]\n\n") + chunk(b""))
