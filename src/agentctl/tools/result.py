"""What a tool call gives back: the model's (cut) view, and the size and hash of the whole.

The model gets at most ``max_output`` characters, head and tail kept because a
command's first lines say what ran and its last lines say how it ended. The journal
keeps the same bounded view plus the whole text's size and sha256, never the whole
text: a tool result of 100 MB must not become a 100 MB journal line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ToolResult:
    """One tool call's outcome; ``content`` is what the model sees, ``full`` the whole
    (redacted) text, which stays in memory: journal ``content``, ``size`` and ``sha256``."""

    content: str
    full: str
    is_error: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """The whole text's length in characters."""
        return len(self.full)

    @property
    def sha256(self) -> str:
        """The hash of the whole text (UTF-8), to check it against what the tool saw."""
        return hashlib.sha256(self.full.encode("utf-8", errors="surrogatepass")).hexdigest()


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
