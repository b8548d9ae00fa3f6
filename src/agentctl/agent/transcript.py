"""``transcript.jsonl``: the conversation of an agent, one message a line, enough to resume.

It is a journal (the same append-only, torn-tail-tolerant format as events.jsonl)
whose events are messages. Each message is appended the moment it exists, so a
process killed at any point leaves every finished turn on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentctl.llm.types import Message
from agentctl.runs import Journal, read_journal


class Transcript:
    def __init__(self, path: Path, redact: Callable[[Any], Any] | None = None) -> None:
        self.path = path
        self._journal = Journal(path)
        self._redact = redact or (lambda value: value)

    def load(self) -> list[Message]:
        return [
            Message.from_json(event)
            for event in read_journal(self.path).events
            if event.get("type") == "message"
        ]

    def append(self, message: Message) -> None:
        """Durably add ``message`` (secrets redacted before they reach the disk)."""
        self._journal.append("message", durable=True, **self._redact(message.to_json()))
