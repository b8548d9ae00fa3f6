"""A scripted, wire-faithful model server on 127.0.0.1 for tests that use the real SDKs.

Providers are tested with their real adapter and SDK; only the network boundary is
faked. Each request consumes the next scripted ``Turn`` for its model (``"*"`` for
any model) and gets it rendered in the shape of the API its path names:
``/v1/messages`` (Anthropic), ``/v1/chat/completions`` and ``/v1/responses`` (OpenAI).
A request with no turn left answers 500 and makes ``assert_complete()`` fail, like
openai-agents' ScriptedModel.

Bytes go out as one ``write`` per body or per SSE event on a ``TCP_NODELAY`` socket,
with HTTP/1.1 keep-alive (``Content-Length`` bodies, chunked streams), so a call
costs about a millisecond and sequential calls reuse one connection.

Usage::

    with LLMServer() as server:
        server.script("claude-x", Turn.text("Hello"), Turn.tool_call("read", {"path": "a.py"}))
        client = anthropic.Anthropic(base_url=server.anthropic_url, api_key="k")
        ...
        server.assert_complete()
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agentctl.testing.llm_anthropic import AnthropicRenderer
from agentctl.testing.llm_chat import ChatRenderer
from agentctl.testing.llm_http import Handler
from agentctl.testing.llm_responses import ResponsesRenderer
from agentctl.testing.llm_script import ErrorSpec, Turn
from agentctl.testing.llm_tokens import (
    Api,
    Counts,
    PromptCache,
    count_request_tokens,
    count_tokens,
    output_tokens,
)
from agentctl.testing.llm_wire import Context, Event, Ids, Renderer
from agentctl.testing.loopback import LoopbackServer

__all__ = ["LLMServer", "Recorded", "Turn", "count_request_tokens", "count_tokens"]

ROUTES: dict[str, Api] = {
    "/v1/messages": "messages",
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
}
COUNT_TOKENS = "/v1/messages/count_tokens"
RENDERERS: dict[Api, Renderer] = {
    "messages": AnthropicRenderer(),
    "chat": ChatRenderer(),
    "responses": ResponsesRenderer(),
}
JSON_HEADERS = [("content-type", "application/json")]


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as the server saw it, and the usage it reported (None for errors)."""

    api: str  # "messages" | "chat" | "responses" | "count_tokens"
    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    stream: bool
    path: str
    usage: dict[str, int] | None


class LLMServer(LoopbackServer):
    """Serves scripted turns in a background thread; use as a context manager.

    ``api_key`` makes requests without a matching ``Authorization: Bearer`` or
    ``x-api-key`` fail with 401. ``chat_done=False`` omits Chat's ``data: [DONE]``;
    ``sse_comments=True`` puts ``: keep-alive`` comments between Chat chunks
    (OpenRouter does).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        chat_done: bool = True,
        sse_comments: bool = False,
    ) -> None:
        super().__init__()
        self._api_key = api_key
        self._chat_done = chat_done
        self._sse_comments = sse_comments
        self._turns: dict[str, deque[Turn]] = {}
        self._requests: list[Recorded] = []
        self._failures: list[str] = []
        self._in_flight: dict[str, int] = {}
        self._max_in_flight: dict[str, int] = {}
        self._serial = 0
        self._ids = Ids()
        self._cache = PromptCache()

    # -- the public surface (``start``, ``close``, ``url``, ``connections``: LoopbackServer)

    @property
    def anthropic_url(self) -> str:
        """Anthropic SDK ``base_url`` (no ``/v1``: the SDK adds it)."""
        return self.url

    @property
    def openai_url(self) -> str:
        """OpenAI SDK ``base_url`` (with ``/v1``)."""
        return self.url + "/v1"

    def script(self, model: str, *turns: Turn) -> None:
        """Queue ``turns`` for ``model`` (``"*"``: any model without its own queue)."""
        for turn in turns:
            if not isinstance(turn, Turn):
                raise TypeError(f"script() takes Turn values, got {type(turn).__name__}")
        with self._lock:
            self._turns.setdefault(model, deque()).extend(turns)

    def script_for(self, model: str, marker: str, *turns: Turn) -> None:
        """Turns for the conversations of ``model`` whose first user message has ``marker``.

        Concurrent agents on one model each get their own script this way, whatever
        order their requests arrive in; a request matching no marker takes the
        model's plain queue.
        """
        self.script(f"{model}\x00{marker}", *turns)

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def max_in_flight(self, model: str) -> int:
        """The most requests for ``model`` that were being answered at the same time."""
        with self._lock:
            return self._max_in_flight.get(model, 0)

    def assert_complete(self) -> None:
        """Fail on unexpected requests and on scripted turns nobody consumed."""
        with self._lock:
            problems = list(self._failures)
            for model, queue in self._turns.items():
                if queue:
                    problems.append(f"{len(queue)} scripted turn(s) not consumed for model {model}")
        if problems:
            raise AssertionError("LLMServer: " + "; ".join(problems))

    # -- request handling (called from handler threads) -------------------------

    def _dispatch(self, handler: Handler) -> None:
        try:
            self._answer(handler)
        except OSError:
            handler.close_connection = True  # the client went away mid-answer
        except Exception as exc:
            with self._lock:
                self._failures.append(f"server error answering {handler.path}: {exc!r}")
            handler.close_connection = True
            raise

    def _answer(self, handler: Handler) -> None:
        path = handler.path.split("?", 1)[0]
        raw = handler.read_body()
        headers = {key.lower(): value for key, value in handler.headers.items()}
        api = ROUTES.get(path)
        if api is None and path != COUNT_TOKENS:
            self._fail(f"unexpected request {handler.command} {path}")
            message = f"llm_server: no route for {handler.command} {path}"
            error = {"message": message, "type": "not_found_error"}
            handler.send_whole(404, JSON_HEADERS, json.dumps({"error": error}).encode())
            return
        renderer = RENDERERS[api or "messages"]
        serial = self._next_serial()
        request_id = f"req_{serial}"
        id_header = [(renderer.request_id_header, request_id)]
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError as exc:
            self._fail(f"unparsable request body on {path}: {exc}")
            _send_error(handler, renderer, ErrorSpec(400, message=str(exc)), id_header)
            return
        model = str(body.get("model", ""))
        stream = body.get("stream") is True
        record = Recorded(api or "count_tokens", model, body, headers, stream, path, None)
        if self._api_key is not None and not self._authorised(headers):
            self._record(record)
            _send_error(handler, renderer, ErrorSpec(401), id_header)
            return
        if api is None:
            self._record(record)
            tokens = {"input_tokens": count_request_tokens("messages", body)}
            handler.send_whole(200, JSON_HEADERS + id_header, _json(tokens))
            return
        turn = self._take(model, _first_user_text(body))
        if turn is None:
            self._record(record)
            message = f"unexpected extra request for model {model}"
            self._fail(message)
            # x-should-retry: false, so SDK retries do not bury the failure under copies.
            spec = ErrorSpec(
                500,
                message=f"llm_server: {message} (no scripted turn left)",
                headers={"x-should-retry": "false"},
            )
            _send_error(handler, renderer, spec, id_header)
            return
        counts = self._counts(api, model, body, turn)
        reported = counts.to_dict() if turn.kind in ("reply", "stall", "stream_error") else None
        self._record(dataclasses.replace(record, usage=reported))
        ctx = Context(
            model=model,
            body=body,
            counts=counts,
            ids=self._ids,
            request_id=request_id,
            serial=serial,
            created=int(time.time()),
            chat_done=self._chat_done,
            sse_comments=self._sse_comments,
        )
        with self._counting(model):
            if turn.delay and self._closing.wait(turn.delay):
                handler.reset()
                return
            _play(handler, turn, renderer, ctx, stream, id_header, self._closing)

    def _authorised(self, headers: Mapping[str, str]) -> bool:
        bearer = headers.get("authorization", "")
        return bearer == f"Bearer {self._api_key}" or headers.get("x-api-key") == self._api_key

    def _take(self, model: str, first: str = "") -> Turn | None:
        with self._lock:
            prefix = f"{model}\x00"
            for key, keyed in self._turns.items():
                if key.startswith(prefix) and keyed and key[len(prefix) :] in first:
                    return keyed.popleft()
            for key in (model, "*"):
                queue = self._turns.get(key)
                if queue:
                    return queue.popleft()
        return None

    def _counts(self, api: Api, model: str, body: dict[str, Any], turn: Turn) -> Counts:
        if turn.kind in ("error", "raw") or (turn.kind == "drop" and turn.after == 0):
            return Counts()
        counts = self._cache.usage(api, model, body)
        arguments = [call.arguments for call in turn.calls]
        override = turn.usage or {}
        return dataclasses.replace(
            counts,
            input_tokens=override.get("input_tokens", counts.input_tokens),
            output_tokens=override.get(
                "output_tokens", output_tokens(turn.content, arguments, turn.reasoning)
            ),
            cache_write_tokens=override.get("cache_write_tokens", counts.cache_write_tokens),
            cache_read_tokens=override.get("cache_read_tokens", counts.cache_read_tokens),
            reasoning_tokens=override.get("reasoning_tokens", count_tokens(turn.reasoning)),
        )

    @contextmanager
    def _counting(self, model: str) -> Iterator[None]:
        with self._lock:
            now = self._in_flight.get(model, 0) + 1
            self._in_flight[model] = now
            self._max_in_flight[model] = max(now, self._max_in_flight.get(model, 0))
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[model] -= 1

    def _next_serial(self) -> int:
        with self._lock:
            self._serial += 1
            return self._serial

    def _record(self, record: Recorded) -> None:
        with self._lock:
            self._requests.append(record)

    def _fail(self, message: str) -> None:
        with self._lock:
            self._failures.append(message)


def _play(
    handler: Handler,
    turn: Turn,
    renderer: Renderer,
    ctx: Context,
    stream: bool,
    id_header: list[tuple[str, str]],
    closing: threading.Event,
) -> None:
    """Send ``turn`` the way its kind says: whole, streamed, stalled, cut or reset."""
    if turn.kind == "raw":
        handler.send_whole(turn.raw_status, list(turn.raw_headers.items()), turn.raw_body)
        return
    if turn.kind == "error" or (turn.kind == "stream_error" and not stream):
        assert turn.failure is not None
        _send_error(handler, renderer, turn.failure, id_header)
        return
    if turn.kind == "drop" and (turn.after == 0 or not stream):
        handler.reset()
        return
    if turn.kind == "reply":
        if stream:
            handler.send_stream(id_header, renderer.events(turn, ctx))
        else:
            handler.send_whole(200, JSON_HEADERS + id_header, _json(renderer.body(turn, ctx)))
        return
    # stall, drop, garbled and stream_error play a text answer, cut after `after` deltas.
    text = Turn("reply", content=turn.content or "partial", delay=turn.delay)
    if turn.kind == "garbled" and not stream:
        whole = _json(renderer.body(text, ctx))
        handler.send_whole(200, JSON_HEADERS + id_header, whole[: len(whole) // 2])
        return
    if turn.kind == "stall" and not stream:
        if handler.wait_silent(turn.seconds, closing):
            handler.send_whole(200, JSON_HEADERS + id_header, _json(renderer.body(text, ctx)))
        return
    minimum = turn.after + 1 if turn.kind != "stream_error" else max(turn.after, 1)
    events = renderer.events(text, dataclasses.replace(ctx, min_pieces=minimum))
    cut = _cut(events, turn.after, turn.kind == "stream_error")
    if turn.kind == "garbled":
        torn = events[cut].data if cut < len(events) else events[-1].data
        half = torn.rstrip(b"\n")[: max(len(torn) // 2, 8)]
        handler.send_stream(id_header, [*events[:cut], Event(half + b"\n\n")])
        return
    if turn.kind == "stream_error":
        assert turn.failure is not None
        tail = renderer.stream_error(turn.failure, ctx, cut)
        handler.send_stream(id_header, events[:cut] + tail)
        return
    handler.start_stream(id_header)
    for event in events[:cut]:
        handler.send_event(event.data)
    if turn.kind == "drop":
        handler.reset()
    elif handler.wait_silent(turn.seconds, closing):
        for event in events[cut:]:
            handler.send_event(event.data)
        handler.end_stream()
    else:
        handler.reset()


def _cut(events: list[Event], after: int, keep_preamble: bool) -> int:
    """Index just past the ``after``-th content delta (the first delta's index for 0).

    With ``after == 0`` a stall or drop sends no event at all; a stream error still
    sends the preamble so the client has an open message to fail.
    """
    seen = 0
    for index, event in enumerate(events):
        if event.delta:
            if after == 0:
                return index if keep_preamble else 0
            seen += 1
            if seen == after:
                return index + 1
    return len(events)


def _send_error(
    handler: Handler, renderer: Renderer, spec: ErrorSpec, id_header: list[tuple[str, str]]
) -> None:
    """An HTTP error in the renderer's shape (or ``spec.body`` verbatim) plus its headers."""
    status, payload = renderer.error(spec, id_header[0][1])
    body = spec.body.encode() if spec.body is not None else _json(payload)
    handler.send_whole(status, JSON_HEADERS + id_header + list(spec.headers.items()), body)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _first_user_text(body: dict[str, Any]) -> str:
    """The text of a request's first user message, whichever API shape it has."""
    items = body.get("messages") or body.get("input") or []
    if isinstance(items, str):
        return items
    for item in items:
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content", "")
            if isinstance(content, list):
                return " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
            return str(content)
    return ""
