"""Trackers: where tickets come from. The protocol, its values, and the registry.

``[tracker] kind`` picks the implementation (``local``: a folder of TOML tickets;
``linear``: Linear's GraphQL API), imported only when asked for, so ``gql`` is not
loaded for a local tracker, nor for ``--help``. The pipeline engine and the
orchestrator speak only this protocol. Implementations inherit nothing; the values
are frozen and serialise to plain JSON (records, ``--json``). A new tracker is a
module with a class that has ``from_config`` and these methods, named in ``TRACKERS``.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agentctl.registry import load, optional

if TYPE_CHECKING:
    from agentctl.checks import Check
    from agentctl.config import Config


TRACKERS = {
    "local": "agentctl.trackers.local:LocalTracker",
    "linear": "agentctl.trackers.linear.tracker:LinearTracker",
}
CHECKS = {"linear": "agentctl.trackers.linear.checks:checks"}  # ``doctor``: account, team


@dataclass(frozen=True, slots=True)
class Ticket:
    """One unit of work; ``key`` is what a person types (``T-3``, ``ENG-42``)."""

    id: str
    title: str
    description: str = ""
    state: str = "Todo"
    labels: tuple[str, ...] = ()
    url: str = ""
    key: str = ""  # human key; the id when a tracker has no separate one
    comments: tuple[str, ...] = ()
    closed: bool = False  # done or canceled, whatever the tracker calls those states

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "title": self.title,
            "description": self.description,
            "state": self.state,
            "labels": list(self.labels),
            "url": self.url,
            "comments": list(self.comments),
            "closed": self.closed,
        }


@runtime_checkable
class Tracker(Protocol):
    def list(
        self, *, states: Sequence[str] | None = None, labels: Sequence[str] = ()
    ) -> builtins.list[Ticket]:
        """Open tickets (or those in ``states``) carrying every label in ``labels``."""
        ...

    def get(self, ticket_id: str) -> Ticket:
        """``NotFoundError`` when there is no such ticket."""
        ...

    def set_state(self, ticket_id: str, state: str) -> Ticket:
        """Idempotent; an unknown state is a ``UsageError``."""
        ...

    def block(self, ticket_id: str) -> Ticket:
        """Mark the ticket parked (a blocked state, or a label where the tracker has
        no such state); idempotent."""
        ...

    def unblock(self, ticket_id: str, state: str) -> Ticket:
        """Undo ``block``: move the ticket to ``state`` and drop the parked mark."""
        ...

    def comment(self, ticket_id: str, body: str) -> None:
        """Milestones only (started, PR opened, merged, failed): people get notified."""
        ...

    def link(self, ticket_id: str, url: str, title: str) -> None:
        """Attach ``url`` (a pull request) to the ticket; linking it again changes nothing."""
        ...

    def add(self, title: str, description: str = "", labels: Sequence[str] = ()) -> Ticket:
        """A new ticket in the ready state."""
        ...

    def record(self, ticket_id: str) -> dict[str, Any]:
        """For people: ``comments`` and ``links`` (with times where known), ``created``."""
        ...


def make_tracker(config: Config, **kwargs: Any) -> Tracker:
    tracker: Tracker = load(TRACKERS, config.settings.tracker.kind, "tracker").from_config(
        config, **kwargs
    )
    return tracker


def tracker_checks(config: Config, environ: Mapping[str, str] | None = None) -> list[Check]:
    """``doctor``'s checks of the configured tracker (none for a local one)."""
    run = optional(CHECKS, config.settings.tracker.kind)
    checks: list[Check] = run(config, environ) if run is not None else []
    return checks
