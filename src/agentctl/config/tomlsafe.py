"""TOML from files a user (or a model, through a merge) may have written: bounded.

``tomllib`` parses nested arrays and inline tables by recursion, so ``a = [[[[…``
ends in a ``RecursionError`` traceback, and a value nested a few hundred levels
deep parses but breaks whatever walks it next. ``loads`` refuses both with a
``TOMLDepthError`` (a ``ValueError``): nothing agentctl reads needs more than
``MAX_DEPTH`` levels.
"""

from __future__ import annotations

import tomllib
from typing import Any

MAX_DEPTH = 50


class TOMLDepthError(ValueError):
    """The document nests arrays or tables more deeply than ``MAX_DEPTH``."""

    def __init__(self) -> None:
        super().__init__(f"arrays or tables nested more than {MAX_DEPTH} levels deep")


def _too_deep(data: dict[str, Any]) -> bool:
    todo: list[tuple[object, int]] = [(data, 1)]
    while todo:  # no recursion: the check itself must not overflow
        value, depth = todo.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(value, dict):
            todo.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            todo.extend((item, depth + 1) for item in value)
    return False


def loads(text: str) -> dict[str, Any]:
    """``tomllib.loads``, but a document nested too deeply raises ``TOMLDepthError``."""
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise TOMLDepthError() from None
    if _too_deep(data):
        raise TOMLDepthError()
    return data


__all__ = ["MAX_DEPTH", "TOMLDepthError", "loads"]
