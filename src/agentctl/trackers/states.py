"""Which states ``tickets list --state`` means: open (default), named ones, or ``all``.

Each tracker knows its own states (the local tracker's fixed six, a Linear team's
workflow), so ``all`` lists Blocked, Done and Canceled too, and a name that is no state
is refused with the list of those that are, instead of quietly matching nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from agentctl.errors import UsageError

ALL = "all"
LABEL = "agentctl-blocked"  # linear.tracker.BLOCKED_LABEL, without importing Linear


@runtime_checkable
class KnowsStates(Protocol):
    """What the local and the Linear tracker add to the Tracker protocol for this."""

    def state_names(self) -> list[str]: ...

    def state_name(self, state: str) -> str: ...


def resolve_states(tracker: object, states: Sequence[str] | None) -> list[str] | None:
    """None (open tickets) when no state is given; every state for ``all``; else each
    given state by the tracker's own name for it, an unknown one refused."""
    if not states:
        return None
    if not isinstance(tracker, KnowsStates):
        return list(states)  # a tracker that cannot say: it checks names itself
    names = tracker.state_names()
    if any(given.strip().lower() == ALL for given in states):
        return names
    by_lower = {name.lower(): name for name in names}
    resolved: list[str] = []
    for given in states:
        name = by_lower.get(tracker.state_name(given).lower())
        if name is None:
            hint = "e.g. agentctl tickets list --state all"
            if given.strip().lower() == "blocked":  # Linear without blocked_state: a label
                hint = "parked tickets keep their state here and carry a label: --label " + LABEL
            raise UsageError(
                f"unknown ticket state {given!r}: use one of {', '.join(names)}, or {ALL}",
                hint=hint,
            )
        if name not in resolved:
            resolved.append(name)
    return resolved
