"""What a tool call gives back: the model's (cut) view and the journal's whole text.

The model gets at most ``max_output`` characters, head and tail kept because a
command's first lines say what ran and its last lines say how it ended; the
journal gets everything so a person can see what the model did not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ToolResult:
    """One tool call's outcome; ``content`` is what the model sees, ``full`` what is kept."""

    content: str
    full: str
    is_error: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


class ToolError(Exception):
    """A tool-level problem the model can act on (bad path, not found, bad regex, ...).

    Raised inside a tool, turned into an error ``ToolResult`` by the ``Toolbox``: the
    agent loop never sees it as an exception.
    """

    def __init__(self, message: str, **meta: Any) -> None:
        super().__init__(message)
        self.message = message
        self.meta = meta


def cut(text: str, limit: int) -> tuple[str, bool]:
    """``text`` within ``limit`` characters: head, a ``[... N characters cut ...]`` line, tail."""
    if len(text) <= limit:
        return text, False
    marker_room = 40
    keep = max(limit - marker_room, 0)
    head_len = keep // 2
    tail_len = keep - head_len
    removed = len(text) - head_len - tail_len
    head = text[:head_len]
    tail = text[len(text) - tail_len :] if tail_len else ""
    sep_before = "" if not head or head.endswith("\n") else "\n"
    sep_after = "" if not tail or tail.startswith("\n") else "\n"
    return f"{head}{sep_before}[... {removed} characters cut ...]{sep_after}{tail}", True


@dataclass(frozen=True, slots=True)
class Output:
    """What a tool returns before the toolbox redacts and cuts it."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    is_error: bool = False
