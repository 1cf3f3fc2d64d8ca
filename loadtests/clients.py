"""One streamed request to an endpoint, timed token by token.

Locust's own clock stops at the response headers when streaming, so every figure here is
measured directly: TTFT at the first chunk that carries text, every gap between text chunks
(ITL), E2E at the end of the stream, token counts from the server's usage (OpenAI
`stream_options.include_usage`, Bedrock `metadata.usage`) with the chunk count as fallback
and a mismatch flag, and the prompt tokens the server took from its cache
(`usage.prompt_tokens_details.cached_tokens`, llama.cpp's `timings.cache_n`). Errors are
classified (records.ERROR_MEANINGS) and never raised: no connection at all (refused,
unreachable, DNS) is `connect`, an error object inside the stream is `stream_error`, a
request the run stopped is `cancelled`.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import itertools
import json
import select
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from llmplan.loadtests.checks import check_from_dict
from llmplan.loadtests.plan import PlanItem
from llmplan.loadtests.records import ErrorClass, RequestRecord
from llmplan.loadtests.sse import EventParser
from llmplan.loadtests.targets import Target

#: one chat message: {"role": "user" | "assistant" | "tool", "content": text}, an agent
#: step's answer with its streamed reasoning and tool call (`sent_back`), its result with
#: the call's id (`new_message`)
Message = dict[str, Any]
#: the function an agent step's answer calls in the history a load test sends back: the
#: next step's message is its result (`sent_back`)
AGENT_STEP_TOOL = "next_step"

#: errno values that mean "no connection could be made" (not a broken one).
_NO_CONNECTION = {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH,
                  errno.EADDRNOTAVAIL, errno.ENETDOWN, errno.EHOSTDOWN}


class ConnectFailedError(OSError):
    """The TCP (or TLS) connection could not be made; wraps the cause."""


class StreamError(Exception):
    """The server sent an error object inside a stream that had started."""


class EndedBeforeDoneError(ConnectionError):
    """The stream stopped before its `data: [DONE]`: the server closed the connection (or
    ended the response) mid-answer. http.client reads either as a clean end of the body."""


@dataclass
class Timing:
    """Stopwatch of one request (perf_counter seconds)."""

    start: float = field(default_factory=time.perf_counter)
    tokens: list[float] = field(default_factory=list)
    end: float | None = None
    text: list[str] = field(default_factory=list)
    reasoning: int = 0                      # chunks of hidden reasoning
    thinking: list[str] = field(default_factory=list)   # their text
    first_visible: float | None = None      # when the answer itself began, after reasoning

    def token(self, piece: str) -> None:
        if piece:
            now = time.perf_counter()
            self.tokens.append(now)
            self.text.append(piece)
            if self.first_visible is None and self.reasoning:
                self.first_visible = now

    def answer(self, hidden_tokens: int = 0) -> str:
        """The visible answer, what a conversation sends back. A server that streamed no
        reasoning of its own (a plain model told to ignore EOS) wrote the `hidden_tokens`
        the plan has the model think as the answer's first chunks, a token each: they are
        not the answer (a chat's simulated history holds the visible part alone, as chat
        templates drop the reasoning; an agent loop's keeps it: pass 0). Reasoning a server
        streamed apart is never sent back."""
        skip = 0 if self.reasoning else hidden_tokens
        return "".join(self.text[skip:])

    def thought(self, piece: str) -> None:
        """A chunk of hidden reasoning: a generated token, timed, not part of the answer."""
        if piece:
            self.tokens.append(time.perf_counter())
            self.reasoning += 1
            self.thinking.append(piece)


def new_message(history: Sequence[Message], prompt: str) -> Message:
    """A turn's new message: the result of the tool call the history's last answer made
    (an agent step that kept its streamed reasoning, `sent_back`), else a user message."""
    calls = history[-1].get("tool_calls") if history else None
    if calls:
        return {"role": "tool", "tool_call_id": calls[0]["id"], "content": prompt}
    return {"role": "user", "content": prompt}


def sent_back(timing: Timing, item: PlanItem, *, chat: bool = True) -> Message:
    """The assistant message a conversation's next turn sends back for `item`'s answer.

    A chat's turn: the visible answer alone (`Timing.answer`), as the simulation has it.
    An agent step keeps its reasoning: what a plain server wrote in its place stays in the
    text; reasoning a server streamed apart goes back in the fields the engines read on an
    assistant message, llama.cpp `reasoning_content` (common/chat.cpp,
    common_chat_msgs_parse_oaicompat; for gpt-oss copied to the template's `thinking`) and
    vLLM `reasoning` (entrypoints/chat_utils.py, _parse_chat_message_content, which hands
    the template both `reasoning` and `reasoning_content`; its gpt-oss path,
    harmony_utils.parse_chat_input_to_harmony_message, makes it the analysis channel), with
    the answer as the arguments of a call of AGENT_STEP_TOOL whose result is the next
    step's message (`new_message`): the templates render an earlier answer's reasoning only
    inside a tool-call chain (Qwen3's after the last user message, gpt-oss's on a message
    with tool calls), so sent after a user message it would be dropped; and gpt-oss's
    template refuses a tool-call message with both content and thinking ("Cannot pass both
    content and thinking"), so the content stays empty. Chat API only (`chat`)."""
    if not item.keeps_reasoning:
        return {"role": "assistant", "content": timing.answer(item.reasoning_tokens)}
    answer = timing.answer(0)
    if not (timing.thinking and chat):
        return {"role": "assistant", "content": answer}
    thought = "".join(timing.thinking)
    call = {"name": AGENT_STEP_TOOL, "arguments": json.dumps({"answer": answer})}
    return {"role": "assistant", "content": "", "reasoning_content": thought,
            "reasoning": thought,
            "tool_calls": [{"id": f"call_{item.index}", "type": "function", "function": call}]}


def history_note(target: Target, plan: Sequence[PlanItem]) -> str | None:
    """Why an agent session's later steps sent to `target` cannot carry the hidden reasoning
    the simulation keeps in their history (None: they can, or the plan has none to keep).
    OpenAI's and Azure OpenAI's chat API return no reasoning to send back (their Responses
    API passes reasoning items back); Converse takes a Claude's thinking back only with its
    signature, which the load test does not keep, so a Bedrock session sends each step's
    text alone back, whatever the model (DeepSeek-R1 streams its reasoning there without
    bedrock_thinking, and a Claude without it does not think at all)."""
    if target.openai_chat:
        where = ("OpenAI's chat API returns no reasoning to send back (the Responses API "
                 "passes reasoning items back)")
        steps = [p for p in plan if p.keeps_reasoning and p.session >= 0
                 and (p.reasoning_tokens > 0 or target.plain_hidden_tokens > 0)]
    elif target.kind == "bedrock":
        where = ("Bedrock's Converse takes a Claude's thinking back only with its signature, "
                 "so the load test sends each step's text alone back")
        steps = [p for p in plan if p.keeps_reasoning and p.session >= 0
                 and p.reasoning_tokens > 0]
    else:
        return None
    if not steps:
        return None
    return (f"{len(steps):,} agent-step requests think, and the simulation keeps that "
            f"thinking in the next step's history; {where}, so the later steps were sent "
            f"without it: their prompts are shorter than simulated by the earlier steps' "
            f"reasoning tokens (compare prompt_tokens with the plan's planned_prompt_tokens)")


def _gaps_ms(stamps: list[float]) -> list[float]:
    """The times between consecutive streamed tokens, ms (perf_counter stamps)."""
    return [(b - a) * 1e3 for a, b in itertools.pairwise(stamps)]


def keep_received(record: RequestRecord, timing: Timing) -> RequestRecord:
    """What a request that did not finish received before it ended: its streamed chunks,
    their times (TTFT, ITL), and its time from the send to now."""
    record.chunks = len(timing.tokens)
    if timing.tokens:
        record.ttft_ms = (timing.tokens[0] - timing.start) * 1e3
        record.itl_ms = _gaps_ms(timing.tokens)
    record.e2e_ms = (time.perf_counter() - timing.start) * 1e3
    return record


def finish_record(record: RequestRecord, timing: Timing, usage_prompt: int | None,
                  usage_output: int | None, item: PlanItem, *,
                  cached_prompt: int | None = None,
                  usage_reasoning: int | None = None,
                  server_prefill_ms: float | None = None) -> RequestRecord:
    """Fill latencies and token counts from a stopwatch (successful stream)."""
    end = timing.end if timing.end is not None else time.perf_counter()
    stamps = timing.tokens
    record.chunks = len(stamps)
    record.e2e_ms = (end - timing.start) * 1e3
    if stamps:
        record.ttft_ms = (stamps[0] - timing.start) * 1e3
        record.itl_ms = _gaps_ms(stamps)
    if timing.reasoning or usage_reasoning:
        record.reasoning_tokens = usage_reasoning if usage_reasoning is not None \
            else timing.reasoning
        if timing.first_visible is not None:
            record.ttft_visible_ms = (timing.first_visible - timing.start) * 1e3
        elif not timing.reasoning and record.ttft_ms is not None:
            # counted by the server, never streamed (OpenAI, Gemini): the first chunk
            # is the answer's
            record.ttft_visible_ms = record.ttft_ms
    # reasoning the server counted but never streamed (OpenAI, Gemini): not a chunk
    withheld = (usage_reasoning or 0) if not timing.reasoning else 0
    if usage_output is not None:
        record.output_tokens, record.token_source = usage_output, "server"
        record.token_mismatch = usage_output - withheld != len(stamps)
    else:
        record.output_tokens, record.token_source = len(stamps), "chunks"
    record.prompt_tokens = usage_prompt
    record.cached_prompt_tokens = cached_prompt
    record.server_prefill_ms = server_prefill_ms
    # the pace between streamed tokens: reasoning the API withheld came before the first
    n = (record.output_tokens or 0) - withheld
    if n > 1 and record.ttft_ms is not None:
        record.tpot_ms = (record.e2e_ms - record.ttft_ms) / (n - 1)
    if item.check is not None:
        record.correct = check_from_dict(item.check).passes("".join(timing.text))
    return record


def classify_exception(exc: BaseException) -> ErrorClass:
    if isinstance(exc, StreamError):
        return "stream_error"
    if isinstance(exc, ConnectFailedError | ConnectionRefusedError | socket.gaierror):
        return "connect"
    if isinstance(exc, OSError) and exc.errno in _NO_CONNECTION:
        return "connect"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError
                  | http.client.IncompleteRead | EndedBeforeDoneError):
        return "reset"   # the peer went away in the middle of an answer
    if isinstance(exc, TimeoutError | socket.timeout) or "timeout" in type(exc).__name__.lower():
        return "timeout"
    if isinstance(exc, OSError) and "refused" in str(exc).lower():
        return "connect"
    return "protocol"


def classify_status(status: int) -> ErrorClass:
    if status == 429:
        return "http_429"
    return "http_5xx" if status >= 500 else "http_4xx"


def _retry_after_s(headers: Any) -> float | None:
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                return None
    return None


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle keep-alive connection was closed by the server: between requests it
    has nothing to read unless the server sent its end (urllib3 checks the same before
    reusing a pooled connection)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        # poll takes any descriptor (select's stop at 1024); gevent patches both
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


#: how a kept-alive connection the server closed shows when a request is sent on it: the
#: server's end of it reads as no answer at all (http.client's RemoteDisconnected, itself a
#: ConnectionResetError), a reset, or a broken pipe
STALE_CONNECTION = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class OpenAIStream:
    """OpenAI-compatible streaming over a keep-alive connection (http.client, gevent-friendly).

    http.client hands back each server-sent line as it arrives (geventhttpclient buffers
    chunked bodies whole). A connection the server closed after the last response is
    replaced before the next request is sent on it. A request that fails on a reused
    connection before any byte came back is sent once more on a new one: the server closed
    that kept-alive connection as the request went out (llama.cpp closes it after a streamed
    answer without a `Connection: close`), so it never reached the model (urllib3 and httpx
    do the same for a stale pooled connection). Any other failure is recorded, never sent
    again.
    """

    def __init__(self, target: Target) -> None:
        url = urlparse(target.base_url)
        self.target = target
        self.host, self.port = url.hostname or "127.0.0.1", url.port
        self.https = url.scheme == "https"
        prefix = url.path.rstrip("/")
        self.path = prefix + ("/v1/chat/completions" if target.api == "chat"
                              else "/v1/completions")
        self.conn: http.client.HTTPConnection | None = None
        self.conn_uses = 0               # requests sent on self.conn before this one
        self.cancelled = False
        self.timing = Timing()           # of the last request

    def answer(self, hidden_tokens: int = 0) -> str:
        """The visible answer of the last request (what a conversation sends back; see
        `Timing.answer`)."""
        return self.timing.answer(hidden_tokens)

    def sent_back(self, item: PlanItem) -> Message:
        """The last request's answer as the next turn's history holds it (`sent_back`)."""
        return sent_back(self.timing, item, chat=self.target.api == "chat")

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is not None and _closed_by_peer(self.conn):
            self._reset()      # a keep-alive the server closed while idle: a new one
        if self.conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=self.target.request_timeout_s)
            try:
                conn.connect()       # a failure here is "no connection", whatever its errno
            except TimeoutError as exc:
                raise ConnectFailedError(f"connect timed out: {exc}") from exc
            except OSError as exc:
                raise ConnectFailedError(f"{type(exc).__name__}: {exc}") from exc
            self.conn, self.conn_uses = conn, 0
        return self.conn

    def _reset(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def cancel(self) -> None:
        """Stop the request in flight now (the run is stopping): it records `cancelled`."""
        self.cancelled = True
        conn = self.conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    def body(self, item: PlanItem, history: Sequence[Message] = ()) -> bytes:
        t = self.target
        # a plain task's answer on a model that cannot answer without reasoning: its cap
        # (OpenAI counts the reasoning in max_completion_tokens) holds the hidden tokens the
        # simulation gives it too
        cap = item.max_tokens + (t.plain_hidden_tokens if item.reasoning_tokens == 0 else 0)
        payload: dict[str, Any] = {"model": t.model, t.output_cap_field: cap,
                                   "stream": True, "stream_options": {"include_usage": True}}
        if not t.openai_chat:     # greedy where the server allows it (Target.openai_chat)
            payload["temperature"] = 0
        if t.api == "chat":
            payload["messages"] = [*history, new_message(history, item.prompt)]
        else:   # a completion endpoint gets the conversation as one text
            payload["prompt"] = "\n".join([*(m["content"] for m in history), item.prompt])
        if (effort := t.effort_for(item.reasoning_tokens)) is not None:
            # the thinking the plan gives this request, or a plain one's lowest
            payload["reasoning_effort"] = effort
        if item.fixed_length and t.fixed_output_length:
            if t.kind in {"llamacpp", "vllm"}:
                payload["ignore_eos"] = True
            if t.kind == "vllm":
                payload["min_tokens"] = item.max_tokens
        return json.dumps(payload).encode()

    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Accept": "text/event-stream",
                **self.target.auth_headers()}

    def _open(self, body: bytes, headers: dict[str, str],
              record: RequestRecord) -> http.client.HTTPResponse:
        """Send the request and read the response's head. Sent once more, on a new
        connection, only when a reused connection fails before any byte came back: the
        server had closed it as the request went out, so the request never reached the
        model. It is then timed from the second send (`self.timing`, `record.send_ts`): the
        stale attempt took a millisecond and was no request to the server. Anything else,
        and anything that fails the second time, is recorded as it is, never sent again (a
        second send would be load the plan does not have)."""
        conn = self._connection()
        reused = self.conn_uses > 0
        self.conn_uses += 1
        try:
            conn.request("POST", self.path, body=body, headers=headers)
            return conn.getresponse()
        except STALE_CONNECTION:
            if not reused or self.cancelled:
                raise
        self._reset()
        self.timing = Timing()
        record.send_ts = time.time()
        record.schedule_delay_ms = max(0.0, record.send_ts - record.scheduled_ts) * 1e3
        conn = self._connection()
        self.conn_uses += 1
        conn.request("POST", self.path, body=body, headers=headers)
        return conn.getresponse()

    def send(self, item: PlanItem, record: RequestRecord,
             history: Sequence[Message] = ()) -> RequestRecord:
        """Stream one request (a conversation's turn after its `history`) into `record`."""
        body, headers = self.body(item, history), self.headers()
        self.cancelled = False
        self.timing = Timing()
        try:
            response = self._open(body, headers, record)
        except Exception as exc:  # classified, never raised: the run goes on
            self._reset()
            return self._failed(record, exc, self.timing)
        timing = self.timing
        record.status = response.status
        if response.status >= 400:
            record.error_class = classify_status(response.status)
            record.retry_after_s = _retry_after_s(response.headers)
            try:
                # redacted before it is cut: a key echoed across the cut leaves no part
                text = self.target.redact(response.read(4096).decode("utf-8", "replace"))
                record.error = text[:500] if text is not None else None
            except Exception as exc:
                record.error = type(exc).__name__
            self._reset()
            record.e2e_ms = (time.perf_counter() - timing.start) * 1e3
            return record
        usage: dict[str, Any] = {}
        cached: int | None = None
        prefill_ms: float | None = None
        chat = self.target.api == "chat"
        done = False
        parser = EventParser()
        events, opening = 0, b""    # the body's first bytes, until an event comes
        try:
            while not done:
                line = response.readline()
                if not events and len(opening) < 300:
                    opening += line
                event = parser.feed(line) if line else parser.close()
                if event is not None:
                    events += 1
                    if event.data.strip() == "[DONE]":
                        done = True
                        break
                    chunk = _chunk(event.event, event.data)
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        # reasoning servers (vLLM's reasoning parsers, llama.cpp's
                        # --reasoning-format) stream the hidden thinking apart from the answer
                        timing.thought(str(delta.get("reasoning_content")
                                           or delta.get("reasoning") or ""))
                        piece = delta.get("content") if chat else choice.get("text")
                        timing.token(piece or "")
                    usage = chunk.get("usage") or usage
                    timings = chunk.get("timings")
                    if isinstance(timings, dict):
                        if timings.get("cache_n") is not None:
                            cached = int(timings["cache_n"])
                        if timings.get("prompt_ms") is not None:
                            prefill_ms = float(timings["prompt_ms"])
                if not line:
                    break
            timing.end = time.perf_counter()
            stray = [line for line in opening.splitlines() if line.strip()
                     and not line.startswith((b":", b"data:", b"event:", b"id:", b"retry:"))]
            if not done and not events and stray:
                # a whole answer that is no event stream (an HTML page, a server that
                # ignores stream: true): the server's words say what it is
                kind = response.headers.get("Content-Type") or "no Content-Type"
                text = opening.decode("utf-8", "replace").strip()
                raise ValueError(f"not an OpenAI event stream: HTTP {response.status} "
                                 f"{kind}: {text[:200]!r}")
            if not done:   # the connection closed mid-answer: chunked EOF reads as b""
                raise EndedBeforeDoneError(
                    f"stream ended before [DONE], after {len(timing.tokens)} chunks "
                    "(the server closed it mid-answer)")
            response.read()   # drain what follows [DONE] so the connection can be reused
        except Exception as exc:
            self._reset()
            return self._failed(record, exc, timing)
        details = usage.get("prompt_tokens_details") or {}
        if details.get("cached_tokens") is not None:
            cached = int(details["cached_tokens"])
        reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
        return finish_record(record, timing, usage.get("prompt_tokens"),
                             usage.get("completion_tokens"), item, cached_prompt=cached,
                             usage_reasoning=int(reasoning) if reasoning is not None else None,
                             server_prefill_ms=prefill_ms)

    def _failed(self, record: RequestRecord, exc: BaseException, timing: Timing) -> RequestRecord:
        failed = _failed(record, exc)
        failed.error = self.target.redact(failed.error)
        if self.cancelled:
            failed.error_class = "cancelled"
        return keep_received(failed, timing)


def _chunk(event: str, data: str) -> dict[str, Any]:
    """One streamed JSON object; an error object (or `event: error`) raises StreamError."""
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        if event == "error":
            raise StreamError(data[:300]) from None
        raise ValueError(f"not JSON in the stream: {data[:100]!r}") from exc
    if not isinstance(chunk, dict):
        raise ValueError(f"expected a JSON object in the stream, got {data[:100]!r}")
    if event == "error" or chunk.get("error") is not None:
        error = chunk.get("error", chunk)
        message = error.get("message", error) if isinstance(error, dict) else error
        raise StreamError(str(message)[:300])
    return chunk


#: the smallest thinking budget Anthropic's models take (docs.anthropic.com, extended
#: thinking: "The minimum budget is 1,024 tokens"); Bedrock passes the thinking config on
ANTHROPIC_MIN_THINKING_BUDGET = 1024


class BedrockStream:
    """AWS Bedrock ConverseStream through boto3 (no client retries: a 429 is measured)."""

    def __init__(self, target: Target) -> None:
        import boto3
        from botocore.config import Config

        self.target = target
        self.client = boto3.client(
            "bedrock-runtime", region_name=target.region, endpoint_url=target.base_url,
            config=Config(retries={"max_attempts": 1, "mode": "standard"},
                          read_timeout=target.request_timeout_s, connect_timeout=10))
        self.cancelled = False
        self.timing = Timing()           # of the last request

    def answer(self, hidden_tokens: int = 0) -> str:
        """The visible answer of the last request (what a conversation sends back; see
        `Timing.answer`)."""
        return self.timing.answer(hidden_tokens)

    def sent_back(self, item: PlanItem) -> Message:
        """The last request's answer as the next turn's history holds it: the text alone
        (Converse's history takes no reasoning back without its signature)."""
        return sent_back(self.timing, item, chat=False)

    def cancel(self) -> None:
        """botocore cannot be interrupted mid-read: the run records it cancelled itself."""
        self.cancelled = True

    def request(self, item: PlanItem, messages: list[Any]) -> dict[str, Any]:
        """ConverseStream's arguments for `item`. Greedy, unless the request asks Claude for
        extended thinking (`Target.bedrock_thinking`, an item the plan gives hidden
        reasoning): then its budget is the planned reasoning, at least Anthropic's minimum
        (ANTHROPIC_MIN_THINKING_BUDGET), the answer's cap that budget plus the visible
        tokens (Anthropic: max_tokens above budget_tokens), and no temperature (thinking
        "isn't compatible with temperature ... modifications")."""
        if not (self.target.bedrock_thinking and item.reasoning_tokens > 0):
            return {"modelId": self.target.model, "messages": messages,
                    "inferenceConfig": {"maxTokens": item.max_tokens, "temperature": 0}}
        budget = max(item.reasoning_tokens, ANTHROPIC_MIN_THINKING_BUDGET)
        # at least one token past the budget (a cap at or under it is refused), where
        # --max-output-tokens left the plan no visible answer
        visible = max(item.max_tokens - item.reasoning_tokens, 1)
        return {"modelId": self.target.model, "messages": messages,
                "inferenceConfig": {"maxTokens": budget + visible},
                "additionalModelRequestFields": {
                    "thinking": {"type": "enabled", "budget_tokens": budget}}}

    def send(self, item: PlanItem, record: RequestRecord,
             history: Sequence[Message] = ()) -> RequestRecord:
        from botocore.exceptions import ClientError, EventStreamError

        timing = self.timing = Timing()
        usage_prompt = usage_output = None
        turns = [*history, {"role": "user", "content": item.prompt}]
        messages: list[Any] = [{"role": m["role"], "content": [{"text": m["content"]}]}
                               for m in turns]
        try:
            response = self.client.converse_stream(**self.request(item, messages))
            record.status = int(response["ResponseMetadata"]["HTTPStatusCode"])
            for event in response["stream"]:
                if "contentBlockDelta" in event:
                    delta = event["contentBlockDelta"]["delta"]
                    # a reasoning model's thinking (DeepSeek-R1, Claude with thinking on)
                    # streams as reasoningContent deltas before the answer's text: timed
                    # tokens, not the answer (a signature delta carries no token)
                    timing.thought(str((delta.get("reasoningContent") or {}).get("text")
                                       or ""))
                    timing.token(delta.get("text", ""))
                elif "metadata" in event:
                    usage = event["metadata"].get("usage", {})
                    usage_prompt = usage.get("inputTokens")
                    usage_output = usage.get("outputTokens")
            timing.end = time.perf_counter()
        except (ClientError, EventStreamError) as exc:
            error = exc.response.get("Error", {})
            meta = exc.response.get("ResponseMetadata", {})
            record.status = int(meta.get("HTTPStatusCode") or 0)
            throttled = error.get("Code") in {"ThrottlingException", "TooManyRequestsException"}
            if throttled:
                record.status = 429
            record.error_class = "http_429" if throttled else classify_status(record.status or 500)
            record.error = f"{error.get('Code')}: {error.get('Message', '')}"[:500]
            headers = meta.get("HTTPHeaders", {})
            record.retry_after_s = _retry_after_s(headers)
            record.e2e_ms = (time.perf_counter() - timing.start) * 1e3
            return record
        except Exception as exc:
            return _failed(record, exc)
        return finish_record(record, timing, usage_prompt, usage_output, item)


def _failed(record: RequestRecord, exc: BaseException) -> RequestRecord:
    cause: BaseException = exc
    # botocore wraps socket errors: classify the root cause
    while cause.__context__ is not None and not isinstance(cause, OSError):
        cause = cause.__context__
    record.error_class = classify_exception(cause if isinstance(cause, OSError) else exc)
    record.error = f"{type(exc).__name__}: {exc}"[:500]
    return record
