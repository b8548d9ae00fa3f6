"""The schema of ``[notify]``: where reports reach a person who is not in a chat.

Kept beside ``schema.py`` (which imports it) so each stays a few hundred lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

Duration = Annotated[float, "duration"]  # as in schema.py: 90, "90s", "5m"
Event = Literal["failed", "parked", "merged", "fallback", "digest", "budget"]
Format = Literal["json", "slack"]


def doc(text: str, **extra: object) -> dict[str, object]:
    return {"doc": text, **extra}


@dataclass(frozen=True, slots=True)
class Notify:
    """Reports sent out after a tick's work: a webhook, a command, or both."""

    webhook_url_env: str | None = field(
        default=None,
        metadata=doc("env var holding the webhook URL (a secret: kept and redacted like keys)"),
    )
    format: Format = field(
        default="json", metadata=doc("json (agentctl's own) | slack (incoming-webhook body)")
    )
    command: tuple[str, ...] = field(
        default=(), metadata=doc("a program and its arguments, given the report as JSON on stdin")
    )
    on: tuple[Event, ...] = field(
        default=("failed", "parked", "fallback", "budget"),
        metadata=doc("which events: failed, parked, merged, fallback, digest, budget"),
    )
    digest_at: str = field(
        default="09:00", metadata=doc("the daily digest's time, HH:MM UTC (when on has digest)")
    )
    timeout: Duration = field(default=10.0, metadata=doc("seconds one delivery may take", min=1))
    max_attempts: int = field(
        default=5, metadata=doc("deliveries of one report before it is given up", min=1)
    )
