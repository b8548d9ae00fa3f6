"""Scripted turns for the fake model server: what the "model" says next, API-neutral.

A ``Turn`` is written once in Anthropic terms and rendered in the wire shape of
whichever API consumes it (Messages, Chat Completions, Responses), so one script
drives every provider's tests. Turns are frozen values; build them with the
classmethods, never by hand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

TurnKind = Literal["reply", "error", "stall", "drop", "stream_error", "garbled", "raw"]
StopReason = Literal["end_turn", "max_tokens", "refusal", "stop_sequence"]
STOP_REASONS: tuple[str, ...] = ("end_turn", "max_tokens", "refusal", "stop_sequence")
USAGE_KEYS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "cache_write_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
)

Arguments = Mapping[str, Any] | str


def _no_headers() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call. ``arguments`` is the JSON text sent on the wire, verbatim."""

    name: str
    arguments: str
    id: str | None = None
    # Responses API only: a freeform ``custom`` tool's call (``arguments`` is its raw
    # input, e.g. Codex's ``apply_patch``), and the ``namespace`` of a namespaced tool
    # (Codex offers MCP tools in one per server).
    custom: bool = False
    namespace: str | None = None

    def input_object(self) -> dict[str, Any]:
        """The arguments as an object, or ``{}`` when they are not a JSON object.

        Non-streaming Anthropic responses must carry an object, so malformed or
        truncated arguments become ``{}`` there (streams send the text as-is).
        """
        try:
            value = json.loads(self.arguments)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """An HTTP error, rendered in the error shape of the API that was hit.

    ``type``/``code``/``message`` default per status and API. ``quota`` picks the
    API's own way of saying "out of credit" (OpenAI 429 insufficient_quota,
    Anthropic 402 billing_error), so ``status`` is only a fallback then.
    """

    status: int
    type: str | None = None
    message: str | None = None
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=_no_headers)
    body: str | None = None
    quota: bool = False


@dataclass(frozen=True, slots=True)
class Turn:
    """One scripted answer. See the classmethods for what each kind does.

    Every kind takes ``delay`` (seconds before the response headers) and ``usage``,
    which overrides the computed counts: ``input_tokens`` (uncached),
    ``output_tokens``, ``cache_write_tokens``, ``cache_read_tokens``,
    ``reasoning_tokens``. Kinds that report no usage (errors, raw, drops) ignore it.
    """

    kind: TurnKind
    content: str = ""  # the answer's text
    reasoning: str = ""  # thinking / reasoning text
    calls: tuple[Call, ...] = ()
    stop: StopReason = "end_turn"
    truncated: bool = False
    delay: float = 0.0
    usage: Mapping[str, int] | None = None
    failure: ErrorSpec | None = None
    after: int = 0
    seconds: float = 0.0
    raw_status: int = 200
    raw_headers: Mapping[str, str] = field(default_factory=_no_headers)
    raw_body: bytes = b""

    # -- answers ----------------------------------------------------------------

    @classmethod
    def text(
        cls,
        text: str,
        *,
        stop: StopReason = "end_turn",
        delay: float = 0,
        usage: Mapping[str, int] | None = None,
    ) -> Turn:
        """A text answer; ``stop`` (Anthropic terms) is mapped per API."""
        if stop not in STOP_REASONS:
            raise ValueError(f"stop must be one of {', '.join(STOP_REASONS)}, not {stop!r}")
        return cls("reply", content=text, stop=stop, delay=delay, usage=_usage(usage))

    @classmethod
    def tool_call(
        cls,
        name: str,
        arguments: Arguments,
        *,
        text: str = "",
        id: str | None = None,
        delay: float = 0,
        usage: Mapping[str, int] | None = None,
    ) -> Turn:
        """One tool call; a ``str`` ``arguments`` is sent verbatim (may be malformed)."""
        call = Call(name, _arguments_text(arguments), id)
        return cls("reply", content=text, calls=(call,), delay=delay, usage=_usage(usage))

    @classmethod
    def custom_call(cls, name: str, input: str, *, text: str = "", id: str | None = None) -> Turn:
        """A call of a freeform ``custom`` tool (Responses API: a ``custom_tool_call``)."""
        return cls("reply", content=text, calls=(Call(name, input, id, custom=True),))

    @classmethod
    def namespaced_call(
        cls, namespace: str, name: str, arguments: Arguments, *, id: str | None = None
    ) -> Turn:
        """A function call of a tool offered inside a ``namespace`` (Responses API)."""
        call = Call(name, _arguments_text(arguments), id, namespace=namespace)
        return cls("reply", calls=(call,))

    @classmethod
    def tool_calls(
        cls,
        calls: Sequence[tuple[str, Arguments] | tuple[str, Arguments, str]],
        *,
        text: str = "",
        delay: float = 0,
        usage: Mapping[str, int] | None = None,
    ) -> Turn:
        """Several tool calls in one turn: ``(name, arguments)`` or ``(name, arguments, id)``."""
        if not calls:
            raise ValueError("tool_calls needs at least one (name, arguments) pair")
        built = tuple(_call(*entry) for entry in calls)
        return cls("reply", content=text, calls=built, delay=delay, usage=_usage(usage))

    @classmethod
    def thinking(
        cls,
        thinking: str,
        text: str,
        *,
        delay: float = 0,
        usage: Mapping[str, int] | None = None,
    ) -> Turn:
        """Reasoning then text: a signed thinking block / a reasoning item / reasoning_content."""
        return cls("reply", content=text, reasoning=thinking, delay=delay, usage=_usage(usage))

    @classmethod
    def truncated_tool_call(
        cls,
        name: str,
        partial_arguments: str,
        *,
        text: str = "",
        id: str | None = None,
        delay: float = 0,
        usage: Mapping[str, int] | None = None,
    ) -> Turn:
        """The output limit is hit inside a tool call's arguments."""
        call = Call(name, partial_arguments, id)
        return cls(
            "reply",
            content=text,
            calls=(call,),
            stop="max_tokens",
            truncated=True,
            delay=delay,
            usage=_usage(usage),
        )

    @classmethod
    def empty(cls, *, delay: float = 0, usage: Mapping[str, int] | None = None) -> Turn:
        """No content at all, a normal stop."""
        return cls("reply", delay=delay, usage=_usage(usage))

    # -- failures ---------------------------------------------------------------

    @classmethod
    def error(
        cls,
        status: int,
        *,
        type: str | None = None,
        message: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: str | Mapping[str, Any] | None = None,
        delay: float = 0,
        usage: Mapping[str, int] | None = None,
    ) -> Turn:
        """An HTTP error in the API's error shape; ``body`` replaces it verbatim."""
        text_body = body if body is None or isinstance(body, str) else json.dumps(body)
        spec = ErrorSpec(
            status, type, message, code, MappingProxyType(dict(headers or {})), text_body
        )
        return cls("error", failure=spec, delay=delay, usage=_usage(usage))

    @classmethod
    def rate_limited(
        cls, retry_after_ms: int = 20, *, delay: float = 0, usage: Mapping[str, int] | None = None
    ) -> Turn:
        """429 with ``retry-after-ms`` (and ``retry-after`` in seconds)."""
        headers = {"retry-after-ms": str(retry_after_ms), "retry-after": str(retry_after_ms / 1000)}
        return cls.error(429, headers=headers, delay=delay, usage=usage)

    @classmethod
    def overloaded(cls, *, delay: float = 0, usage: Mapping[str, int] | None = None) -> Turn:
        """529 overloaded_error (OpenAI APIs: a 529 server_error)."""
        return cls.error(529, delay=delay, usage=usage)

    @classmethod
    def quota_exceeded(cls, *, delay: float = 0, usage: Mapping[str, int] | None = None) -> Turn:
        """Out of credit: OpenAI 429 insufficient_quota, Anthropic 402 billing_error."""
        spec = ErrorSpec(429, quota=True)
        return cls("error", failure=spec, delay=delay, usage=_usage(usage))

    @classmethod
    def stall(
        cls,
        after: int = 0,
        seconds: float = 30.0,
        text: str = "partial",
        *,
        delay: float = 0,
        usage: Mapping[str, int] | None = None,
    ) -> Turn:
        """Go silent: streams send ``after`` text deltas first; see ``LLMServer``.

        After ``seconds`` (if the client is still there) the rest of ``text`` is sent
        and the response completes normally, so a slow-but-alive model is testable.
        """
        return cls(
            "stall", content=text, after=after, seconds=seconds, delay=delay, usage=_usage(usage)
        )

    @classmethod
    def drop(
        cls, after: int = 0, *, delay: float = 0, usage: Mapping[str, int] | None = None
    ) -> Turn:
        """Reset the TCP connection (RST) after ``after`` stream deltas, or before any reply.

        A non-streaming request is always reset before any reply.
        """
        return cls("drop", after=after, delay=delay, usage=_usage(usage))

    @classmethod
    def stream_error(
        cls,
        after: int = 1,
        type: str = "overloaded_error",
        message: str = "Overloaded",
        *,
        text: str = "partial",
        delay: float = 0,
        usage: Mapping[str, int] | None = None,
    ) -> Turn:
        """HTTP 200 stream, ``after`` text deltas, then the API's mid-stream error.

        A non-streaming request gets the matching HTTP error instead.
        """
        spec = ErrorSpec(_status_for_type(type), type, message)
        return cls(
            "stream_error",
            content=text,
            after=after,
            failure=spec,
            delay=delay,
            usage=_usage(usage),
        )

    @classmethod
    def garbled(
        cls,
        after: int = 1,
        *,
        text: str = "partial",
        delay: float = 0,
        usage: Mapping[str, int] | None = None,
    ) -> Turn:
        """HTTP 200 stream, ``after`` text deltas, then the next event cut in half (bad JSON).

        What a proxy or a broken connection that garbles bytes looks like; the stream
        then ends. A non-streaming request gets a JSON body cut in half.
        """
        return cls("garbled", content=text, after=after, delay=delay, usage=_usage(usage))

    @classmethod
    def raw(
        cls,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        delay: float = 0,
        usage: Mapping[str, int] | None = None,
    ) -> Turn:
        """Escape hatch: exactly this status, headers and body (Content-Length added)."""
        return cls(
            "raw",
            raw_status=status,
            raw_headers=MappingProxyType(dict(headers)),
            raw_body=body,
            delay=delay,
            usage=_usage(usage),
        )


def _call(name: str, arguments: Arguments, id: str | None = None) -> Call:
    return Call(name, _arguments_text(arguments), id)


def _arguments_text(arguments: Arguments) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(dict(arguments))


def _usage(usage: Mapping[str, int] | None) -> Mapping[str, int] | None:
    """Validate a usage override now, so a typo fails where the script is written."""
    if usage is None:
        return None
    unknown = sorted(set(usage) - set(USAGE_KEYS))
    if unknown:
        raise ValueError(f"unknown usage keys {unknown}; allowed: {', '.join(USAGE_KEYS)}")
    return MappingProxyType({key: int(value) for key, value in usage.items()})


_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "api_error": 500,
    "server_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _status_for_type(error_type: str) -> int:
    return _TYPE_STATUS.get(error_type, 500)
