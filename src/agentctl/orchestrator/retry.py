"""``agentctl tickets retry ID``: a person un-parks a ticket the orchestrator gave up on.

The orchestrator's ``state.json`` is only changed under the tick lock, so this does not
write it: the ticket goes back to the ready state through the tracker (``unblock``:
out of Blocked, or the ``agentctl-blocked`` label off), and ``{"type": "retry"}`` goes
to the orchestrator's inbox; the next tick reads it and gives the ticket a full attempt
budget again. Either one alone is enough for the tick to un-park the ticket, so a
failure between the two leaves nothing stuck.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from agentctl.config import Config
from agentctl.orchestrator.attempts import Attempts, Parked, ticket_key
from agentctl.orchestrator.home import Home
from agentctl.runs.timefmt import parse_ts
from agentctl.trackers import Ticket, Tracker, make_tracker

RETRY = "retry"  # the inbox message's type


@runtime_checkable
class KnowsBlocked(Protocol):
    """The local tracker (state Blocked) and Linear (blocked_state, or the label)."""

    def is_blocked(self, ticket: Ticket) -> bool: ...


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    ticket: str
    parked: Parked | None  # the orchestrator's record, when it had parked the ticket
    was_blocked: bool  # the tracker showed it parked (state or label)
    state_before: str
    state: str
    posted: bool  # a retry message went to the orchestrator's inbox
    message: str  # one line for a person

    def to_json(self) -> dict[str, Any]:
        parked = self.parked
        return {
            "ticket": self.ticket,
            "parked": None
            if parked is None
            else {"reason": parked.reason, "at": parked.at, "failure": parked.failure},
            "was_blocked": self.was_blocked,
            "state_before": self.state_before,
            "state": self.state,
            "retry_posted": self.posted,
            "message": self.message,
        }


def is_blocked(tracker: Tracker, ticket: Ticket) -> bool:
    return isinstance(tracker, KnowsBlocked) and tracker.is_blocked(ticket)


def retry_ticket(config: Config, ticket_id: str, tracker: Tracker | None = None) -> RetryOutcome:
    """Un-park ``ticket_id``: back to the ready state, and a retry asked of the next tick.

    A ticket that is not parked is left alone (and said so), except that one still
    Blocked goes back to ready all the same. An unknown ticket is ``NotFoundError``.
    """
    if tracker is None:
        tracker = make_tracker(config)
    ticket = tracker.get(ticket_id)
    orch = config.settings.orchestrator
    home = Home.of(config.workspace.state_dir)
    attempts = Attempts(home.load_state(), orch.max_attempts, orch.retry_backoff)
    parked = attempts.parked(ticket_key(ticket.id))
    blocked = is_blocked(tracker, ticket)
    if parked is None and not blocked:
        return RetryOutcome(
            ticket.id,
            None,
            False,
            ticket.state,
            ticket.state,
            False,
            f"{ticket.id} is not parked (state {ticket.state}): nothing to retry",
        )
    moved = tracker.unblock(ticket.id, orch.ready_state)
    home.make()
    home.inbox.post({"type": RETRY, "ticket": ticket.id})
    if ticket.state != moved.state:
        where = f"moved from {ticket.state} to {moved.state}"
    else:
        where = f"still {moved.state}" + (", label removed" if blocked else "")
    if parked is not None:
        message = (
            f"{ticket.id} will be tried again at the next tick "
            f"(parked {_short(parked.at)}: {parked.reason}; {where})"
        )
    else:
        message = (
            f"{ticket.id} was not parked by the orchestrator, but blocked: {where}; "
            "it will be tried at the next tick"
        )
    return RetryOutcome(ticket.id, parked, blocked, ticket.state, moved.state, True, message)


def _short(ts: str) -> str:
    """``2026-11-25T12:00:00.000000Z`` → ``2026-11-25 12:00 UTC`` (as it was, if odd)."""
    try:
        return f"{parse_ts(ts):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return ts
