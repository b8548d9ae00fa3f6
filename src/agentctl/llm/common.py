"""Pieces every provider shares: error classification by status, waits, deadlines.

Vendors differ in exception classes but agree on HTTP semantics, so a provider
extracts (status, type/code, message, request id, headers) from its SDK's error
and ``classify`` decides what kind of ``ProviderError`` it is.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from agentctl.errors import (
    AuthError,
    BadRequestError,
    ProviderError,
    QuotaError,
    RateLimitedError,
    TransientError,
)

_QUOTA_MARKERS = ("insufficient_quota", "billing", "credit", "quota")


def retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def classify(
    model: str,
    status: int | None,
    message: str,
    *,
    kind: str | None = None,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProviderError:
    """The agentctl error for an HTTP failure (``kind`` is the body's error type or code)."""
    what = f"{kind}: {message}" if kind and kind not in message else message
    marker = (kind or "").lower() + " " + message.lower()
    hint: str | None = None
    cls: type[ProviderError]
    if status == 402 or (status in (403, 429) and any(m in marker for m in _QUOTA_MARKERS)):
        cls, text = QuotaError, f"spend limit or quota reached: {what}"
        hint = "add credit or raise the provider's limit; the run is paused, not failed"
    elif status in (401, 403):
        cls, text = AuthError, f"the API key was refused: {what}"
        hint = "check the key and its permissions"
    elif status == 429:
        cls, text = RateLimitedError, f"rate limited: {what}"
    elif status in (400, 404, 413, 422):
        cls, text = BadRequestError, f"the request was refused: {what}"
    elif status is None or status in (408, 409) or status >= 500 or status == 200:
        cls, text = TransientError, f"{'stream' if status == 200 else 'server'} error: {what}"
    else:
        cls, text = ProviderError, f"unexpected HTTP {status}: {what}"
    if issubclass(cls, TransientError):
        return cls(
            text,
            model=model,
            status=status,
            request_id=request_id,
            retry_after=retry_after(headers),
        )
    return cls(text, model=model, status=status, request_id=request_id, hint=hint)


# Bytes that are no answer: what the SDKs raise parsing a torn body or SSE event.
GARBLED = (json.JSONDecodeError, UnicodeDecodeError)


def garbled(model: str, exc: ValueError) -> TransientError:
    """A stream or body cut into garbage (a proxy, a torn connection): retryable, like a reset.

    Raised only around the SDK's own parsing; tool arguments are parsed elsewhere.
    """
    return TransientError(
        f"garbled answer from the server (not valid JSON: {exc})", model=model, status=200
    )


@dataclass
class Deadline:
    """A wall-clock limit for one call, checked between stream events."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def check(self, model: str) -> None:
        if time.monotonic() - self.started > self.seconds:
            raise TransientError(
                f"no complete answer within the {self.seconds:g} s deadline", model=model
            )


@dataclass
class ToolBuffer:
    """Tool-call fragments from a stream, assembled by index."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    @property
    def raw(self) -> str:
        return "".join(self.arguments)
