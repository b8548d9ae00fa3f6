"""The tracker and the forge a workspace is configured for: a name → import-path registry.

``[tracker] kind`` and ``[forge] kind`` pick the implementation; each is imported
only when asked for (``gql`` is not loaded for a local tracker, nor for ``--help``).
Only orchestrator and pipeline processes call these: they alone hold the tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from importlib import import_module
from typing import TYPE_CHECKING, Any

from agentctl.errors import UsageError

if TYPE_CHECKING:
    from agentctl.config import Config
    from agentctl.seams import Forge, Tracker

TRACKERS = {
    "local": "agentctl.tracker_local:LocalTracker",
    "linear": "agentctl.linear.tracker:LinearTracker",
}
FORGES = {
    "local": "agentctl.forge_local:LocalForge",
    "github": "agentctl.github.forge:GithubForge",
}


def _load(table: Mapping[str, str], kind: str, what: str) -> Any:
    if kind not in table:
        raise UsageError(f"unknown {what} kind {kind!r}: use one of {', '.join(table)}")
    module, _, name = table[kind].partition(":")
    return getattr(import_module(module), name)


def make_tracker(config: Config, **kwargs: Any) -> Tracker:
    kind = config.settings.tracker.kind
    tracker: Tracker = _load(TRACKERS, kind, "tracker").from_config(config, **kwargs)
    return tracker


def make_forge(config: Config, **kwargs: Any) -> Forge:
    kind = config.settings.forge.kind
    forge: Forge = _load(FORGES, kind, "forge").from_config(config, **kwargs)
    return forge


def service_keys(config: Config) -> list[str]:
    """The token variables an orchestrator or pipeline process needs (agents get none)."""
    keys = []
    settings = config.settings
    if settings.tracker.kind == "linear":
        keys.append(settings.tracker.linear.api_key_env)
    if settings.forge.kind == "github":
        keys.append(settings.forge.github.token_env)
    return keys


class Services:
    """The workspace's tracker and forge, each made on first use and then kept.

    A local run never needs a token, and a tick that only reaps never imports gql.
    """

    def __init__(self, config: Config) -> None:
        self.config = config

    @cached_property
    def tracker(self) -> Tracker:
        return make_tracker(self.config)

    @cached_property
    def forge(self) -> Forge:
        return make_forge(self.config)
