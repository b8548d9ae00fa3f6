"""What a model answer costs, read off the bytes on their way through the proxy.

The proxy never parses an answer to use it, only to price it: ``Tap`` is fed the
response body as it streams (Server-Sent Events) or whole (JSON) and keeps the usage,
the answer's id and model, its stop reason and how many tool calls it made. Anthropic
reports cache tokens beside ``input_tokens``; the Responses API counts cached tokens
inside ``input_tokens``, which is split here the way ``llm/types.Usage`` bills them.
"""

from __future__ import annotations

import json
from typing import Any

from agentctl.llm.types import Usage

# The path each wire's CLI posts model calls to, and the one free call it may make.
CALL_PATHS = {"messages": ("/v1/messages",), "responses": ("/v1/responses", "/responses")}
FREE_PATHS = {"messages": ("/v1/messages/count_tokens",), "responses": ()}


class Tap:
    """Usage and facts of one answer of ``api`` (``messages`` or ``responses``)."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.usage: Usage | None = None
        self.model_id: str | None = None
        self.request_id: str | None = None
        self.stop_reason: str | None = None
        self.tool_calls = 0
        self._pending = b""
        self._tokens: dict[str, int] = {}

    def feed(self, chunk: bytes) -> None:
        """A piece of an event stream; whole ``data:`` lines are read as they complete."""
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                self._event(_json(line[5:].strip()))

    def body(self, whole: bytes) -> None:
        """A whole JSON answer (a request sent with ``stream: false``)."""
        data = _json(whole)
        if self.api == "messages":
            self._message(data)
            self._delta(data)
        else:
            self._response(data)

    def _event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if self.api == "messages":
            if kind == "message_start":
                self._message(_dict(event.get("message")))
            elif kind == "message_delta":
                self._delta(event)
            elif (
                kind == "content_block_start"
                and _dict(event.get("content_block")).get("type") == "tool_use"
            ):
                self.tool_calls += 1
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self._response(_dict(event.get("response")))
        elif kind == "response.output_item.done" and _dict(event.get("item")).get("type") in (
            "function_call",
            "custom_tool_call",
        ):
            self.tool_calls += 1

    def _message(self, message: dict[str, Any]) -> None:
        self.model_id = message.get("model") or self.model_id
        self.request_id = message.get("id") or self.request_id
        for content in message.get("content") or ():
            if isinstance(content, dict) and content.get("type") == "tool_use":
                self.tool_calls += 1
        self._anthropic_usage(_dict(message.get("usage")))

    def _delta(self, event: dict[str, Any]) -> None:
        stop = _dict(event.get("delta")).get("stop_reason") or event.get("stop_reason")
        self.stop_reason = stop or self.stop_reason
        self._anthropic_usage(_dict(event.get("usage")))

    def _anthropic_usage(self, usage: dict[str, Any]) -> None:
        if not usage:
            return
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ):
            if isinstance(usage.get(key), int):  # a later event's count replaces an earlier
                self._tokens[key] = usage[key]
        self.usage = Usage(
            input_tokens=self._tokens.get("input_tokens", 0),
            output_tokens=self._tokens.get("output_tokens", 0),
            cache_write_tokens=self._tokens.get("cache_creation_input_tokens", 0),
            cache_read_tokens=self._tokens.get("cache_read_input_tokens", 0),
        )

    def _response(self, response: dict[str, Any]) -> None:
        self.model_id = response.get("model") or self.model_id
        self.request_id = response.get("id") or self.request_id
        self.stop_reason = response.get("status") or self.stop_reason
        if not self.tool_calls:
            self.tool_calls = sum(
                1
                for item in response.get("output") or ()
                if isinstance(item, dict)
                and item.get("type") in ("function_call", "custom_tool_call")
            )
        usage = _dict(response.get("usage"))
        if not usage:
            return
        total = int(usage.get("input_tokens") or 0)
        cached = int(_dict(usage.get("input_tokens_details")).get("cached_tokens") or 0)
        self.usage = Usage(
            input_tokens=max(total - cached, 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cache_read_tokens=cached,
        )


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def error_body(api: str, message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    """An API error in the shape the CLI of ``api`` reads (and does not retry: a 400)."""
    if api == "messages":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": kind, "param": None}}
