"""Name → import path registries: a seam's implementations, imported only when used.

``[tracker] kind = "linear"`` names ``agentctl.trackers.linear.tracker:LinearTracker``;
nothing of it (nor ``gql``) is imported until a process asks for that tracker. The
trackers, forges and their doctor checks share this one loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

from agentctl.errors import UsageError


def load(table: Mapping[str, str], kind: str, what: str) -> Any:
    """The object ``table`` names for ``kind`` ("module:attribute"), imported now."""
    if kind not in table:
        raise UsageError(f"unknown {what} kind {kind!r}: use one of {', '.join(table)}")
    module, _, name = table[kind].partition(":")
    return getattr(import_module(module), name)


def optional(table: Mapping[str, str], kind: str) -> Any | None:
    """What ``table`` names for ``kind``, or None where the kind has none (a local
    tracker has no account for ``doctor`` to check)."""
    return load(table, kind, "") if kind in table else None
