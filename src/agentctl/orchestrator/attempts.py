"""The orchestrator's memory of what it tried: a bounded, backed-off budget per item.

An *item* is a ticket (``ticket:T-3``) or, for a pull request with no ticket, its
branch (``branch:agentctl/x``). Every automatic action the orchestrator takes for an
item — a coding pipeline, a review, a fix round, a merge attempt, a resume of a dead
run — counts against ``[orchestrator] max_attempts`` in all. After a failure the next
attempt waits ``retry_backoff``, doubling each time, in wall time (so it works from
cron). A permanent failure, or the budget spent, *parks* the item: reported once,
never touched again until a person acts (``agentctl tickets retry``, or the ticket
moved back to the ready state by hand).

The records live in the orchestrator's ``state.json`` under ``items`` and are only
changed under the tick lock; ``tickets retry`` asks through the inbox instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from agentctl.runs.timefmt import format_ts, parse_ts

FailureClass = Literal["transient", "permanent"]
ITEMS_KEPT = 2000  # settled items forgotten oldest first past this many


def ticket_key(ticket: str) -> str:
    return f"ticket:{ticket}"


def branch_key(branch: str) -> str:
    return f"branch:{branch}"


def item_key(ticket: str | None, branch: str) -> str:
    """A PR counts against its ticket's budget; one without a ticket against its branch."""
    return ticket_key(ticket) if ticket else branch_key(branch)


@dataclass(frozen=True, slots=True)
class Parked:
    key: str
    reason: str
    at: str
    failure: FailureClass
    state: str | None  # the ticket's state when parked (a person moving it away un-parks)

    @property
    def ticket(self) -> str | None:
        return self.key.removeprefix("ticket:") if self.key.startswith("ticket:") else None


@dataclass
class Attempts:
    """A view over ``state["items"]``; every change is made in that dict, saved with it."""

    state: dict[str, Any]
    max_attempts: int
    backoff: float  # seconds before the second attempt; doubles after each failure

    @property
    def _items(self) -> dict[str, dict[str, Any]]:
        items: dict[str, dict[str, Any]] = self.state.setdefault("items", {})
        return items

    def record(self, key: str) -> dict[str, Any]:
        return dict(self._items.get(key, {}))

    def count(self, key: str) -> int:
        return int(self._items.get(key, {}).get("attempts", 0))

    def parked(self, key: str) -> Parked | None:
        data = self._items.get(key, {}).get("parked")
        if not data:
            return None
        return Parked(key, data["reason"], data["at"], data["failure"], data.get("state"))

    def all_parked(self) -> list[Parked]:
        found = [self.parked(key) for key in self._items]
        return sorted((p for p in found if p is not None), key=lambda p: p.at)

    def wait_reason(self, key: str, now: datetime) -> str | None:
        """None when an attempt may start now; else why not (parked, backing off, spent)."""
        item = self._items.get(key, {})
        if item.get("parked"):
            return f"parked: {item['parked']['reason']}"
        if self.count(key) >= self.max_attempts:
            return f"no attempts left ({self.max_attempts} used)"
        due = item.get("next_at")
        if due and parse_ts(due) > now:
            return f"backing off until {due} (after attempt {self.count(key)})"
        return None

    def started(self, key: str, what: str, now: datetime) -> None:
        """One attempt begins (``what``: coding, review, fix round, merge, resume)."""
        item = self._items.setdefault(key, {})
        item["attempts"] = int(item.get("attempts", 0)) + 1
        item["last_action"] = what
        item["last_at"] = format_ts(now)
        item.pop("pending", None)  # this attempt is what was owed
        self._trim()

    def failed(
        self, key: str, reason: str, now: datetime, failure: FailureClass = "transient"
    ) -> bool:
        """Record a failed attempt; True when this parks the item (say it once, then)."""
        item = self._items.setdefault(key, {})
        item["last_reason"] = reason
        if item.get("parked"):
            return False
        attempts = int(item.get("attempts", 0))
        if failure == "permanent" or attempts >= self.max_attempts:
            item["parked"] = {
                "reason": reason if failure == "permanent" else f"{reason} ({attempts} attempts)",
                "at": format_ts(now),
                "failure": failure,
            }
            return True
        wait = self.backoff * (2 ** max(attempts - 1, 0))
        item["next_at"] = format_ts(now + timedelta(seconds=wait))
        return False

    def park(self, key: str, reason: str, now: datetime, failure: FailureClass) -> bool:
        """Park at once (a permanent failure found outside an attempt); True if new."""
        item = self._items.setdefault(key, {})
        item["last_reason"] = reason
        if item.get("parked"):
            return False
        item["parked"] = {"reason": reason, "at": format_ts(now), "failure": failure}
        return True

    def retry_later(self, key: str, what: str, **details: str) -> None:
        """After a failure: what the orchestrator owes the item once the backoff passed
        (``coding``: the ticket's pipeline again; ``fix``: a fix round with ``feedback``)."""
        self._items.setdefault(key, {})["pending"] = {"what": what, **details}

    def pending(self, key: str) -> dict[str, str] | None:
        found = self._items.get(key, {}).get("pending")
        return dict(found) if found else None

    def clear_pending(self, key: str) -> None:
        self._items.get(key, {}).pop("pending", None)

    def all_keys(self) -> list[str]:
        return list(self._items)

    def note_state(self, key: str, state: str) -> None:
        """The ticket's state right after parking: moving it elsewhere is a person acting."""
        parked = self._items.get(key, {}).get("parked")
        if parked is not None:
            parked["state"] = state

    def succeeded(self, key: str) -> None:
        """The item is settled (merged, or the ticket closed): forget its record."""
        self._items.pop(key, None)

    def reset(self, key: str) -> bool:
        """A person acted: a full budget again. True if there was anything to reset."""
        return self._items.pop(key, None) is not None

    def _trim(self) -> None:
        items = self._items
        if len(items) > ITEMS_KEPT:
            oldest = sorted(items, key=lambda k: str(items[k].get("last_at", "")))
            for key in oldest[: len(items) - ITEMS_KEPT]:
                if not items[key].get("parked"):
                    items.pop(key)
