"""What every API renderer shares: the render context, SSE framing, ids, text splitting.

Renderers (``llm_anthropic``, ``llm_chat``, ``llm_responses``) turn a ``Turn`` into
either a JSON body or a list of SSE events; the HTTP layer decides how and when the
bytes go out (delays, stalls, drops), so renderers stay pure.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agentctl.testing.llm_script import Call, ErrorSpec, Turn
from agentctl.testing.llm_tokens import Counts

MAX_PIECES = 16
PIECE_CHARS = 48

DEFAULT_MESSAGES = {
    400: "Invalid request",
    401: "Invalid API key",
    402: "Your credit balance is too low to access the API",
    403: "Permission denied",
    404: "Not found",
    408: "Request timed out",
    413: "Request too large",
    429: "Rate limit exceeded",
    500: "Internal server error",
    503: "Service unavailable",
    504: "Gateway timeout",
    529: "Overloaded",
}


@dataclass(frozen=True, slots=True)
class Event:
    """One SSE event, already framed. ``delta`` marks content deltas (what ``after`` counts)."""

    data: bytes
    delta: bool = False


class Ids:
    """Deterministic ids: ``toolu_1``, ``call_1``, ``msg_1``… counted per prefix."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, itertools.count[int]] = {}

    def next(self, prefix: str) -> str:
        with self._lock:
            counter = self._counters.setdefault(prefix, itertools.count(1))
            return f"{prefix}_{next(counter)}"


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a renderer may read about the request being answered."""

    model: str
    body: Mapping[str, Any]
    counts: Counts
    ids: Ids
    request_id: str
    serial: int  # the request's number: response ids are built from it
    created: int
    chat_done: bool = True
    sse_comments: bool = False
    min_pieces: int = 2


class Renderer(Protocol):
    """One API's wire shapes."""

    request_id_header: str

    def body(self, turn: Turn, ctx: Context) -> dict[str, Any]:
        """The non-streaming JSON body of a reply turn."""
        ...

    def events(self, turn: Turn, ctx: Context) -> list[Event]:
        """The SSE events of a reply turn, in wire order."""
        ...

    def error(self, spec: ErrorSpec, request_id: str) -> tuple[int, dict[str, Any]]:
        """Status and JSON body of an HTTP error."""
        ...

    def stream_error(self, spec: ErrorSpec, ctx: Context, sequence: int) -> list[Event]:
        """The events that end a stream with an error; ``sequence`` = events already sent."""
        ...


def dumps(value: Any) -> bytes:
    """Compact JSON, as the real APIs send it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def sse(event: str | None, payload: Any) -> bytes:
    """``event: name`` (optional) plus ``data: json``, blank-line terminated."""
    data = payload if isinstance(payload, bytes) else dumps(payload)
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + data + b"\n\n"


def split_text(text: str, parts: int) -> list[str]:
    """``text`` in exactly ``parts`` pieces (padded with "" when it is too short)."""
    parts = max(1, parts)
    if len(text) < parts:
        return list(text) + [""] * (parts - len(text))
    size, extra = divmod(len(text), parts)
    out, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def pieces(text: str, minimum: int = 2) -> list[str]:
    """Stream fragments of ``text``: at least ``minimum`` (2 shows the client merges them).

    Short text is padded with "" pieces only when more than 2 are asked for: a stall
    needs exactly that many deltas; an ordinary reply never sends empty ones.
    """
    if minimum <= 2:
        minimum = min(minimum, max(1, len(text)))
    natural = min(MAX_PIECES, math.ceil(len(text) / PIECE_CHARS))
    return split_text(text, max(minimum, natural, 1))


def call_ids(calls: tuple[Call, ...], ids: Ids, prefix: str) -> list[str]:
    return [call.id or ids.next(prefix) for call in calls]


def default_message(status: int) -> str:
    if status in DEFAULT_MESSAGES:
        return DEFAULT_MESSAGES[status]
    return "Internal server error" if status >= 500 else "Request failed"
