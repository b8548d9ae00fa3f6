"""Text from models, tickets and commands, made safe to print on a terminal.

A ticket title or a tool's output may carry terminal control sequences
(``\\x1b[2J`` clears the screen, ``\\x1b]0;…\\x07`` retitles the window, ``\\r``
overwrites a line, bidi overrides reorder what is read). Every human-facing
output passes such text through ``visible``, which shows each control character
as an escape (``\\x1b``, ``\\u202e``) instead of sending it. JSON output is
not passed through it: it stays exact (``json.dumps`` escapes C0 itself).
"""

from __future__ import annotations

import re

# C0 (but newline and tab), DEL, C1, and the Unicode bidi controls.
_CONTROL = "\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069"
_IN_TEXT = re.compile(f"[{_CONTROL}]")
_IN_LINE = re.compile(f"[{_CONTROL}\\n\\t]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, one_line: bool = False) -> str:
    """``text`` with control characters shown as escapes; ``one_line`` escapes \\n, \\t too."""
    return (_IN_LINE if one_line else _IN_TEXT).sub(_escape, text)


__all__ = ["visible"]
