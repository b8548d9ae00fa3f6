"""What ``runs list|show|tail`` show: JSON-ready views of runs, with staleness derived.

Staleness is computed here from pid, process start time and heartbeat age, never
stored or guessed; a run whose ``run.json`` cannot be read is shown as ``corrupt``
with its problem, never as "pending".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agentctl.errors import StateError, UsageError
from agentctl.runs.ids import KINDS
from agentctl.runs.journal import follow, read_journal
from agentctl.runs.liveness import stale_reason, this_host
from agentctl.runs.record import STATUSES, TERMINAL, RunRecord
from agentctl.runs.run import Run
from agentctl.runs.store import Listing, RunStore
from agentctl.runs.timefmt import format_ts, utc_now

# How old a running run's heartbeat may be before listings call it stale. The
# orchestrator's reaper uses [orchestrator] stale_after; listings do not load config.
DEFAULT_STALE_AFTER = timedelta(seconds=120)

_EVENT_KEYS_FIRST = ("seq", "ts", "type")

# Statuses a listing derives rather than reads: a running run whose process is gone is
# shown "stale", an unreadable one "corrupt"; filtering by them filters what is shown.
DERIVED: tuple[str, ...] = ("running", "stale", "corrupt")
DISPLAY_STATUSES: tuple[str, ...] = (*STATUSES, "stale", "corrupt")
UNFINISHED: tuple[str, ...] = ("pending", "running", "paused", "stale")


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def row(listing: Listing, now: datetime, host: str) -> dict[str, Any]:
    """One run as a flat, JSON-ready dict (``display_status`` adds stale/corrupt)."""
    record = listing.record
    base: dict[str, Any] = {"id": listing.id, "dir": str(listing.dir), "problem": listing.problem}
    if record is None:
        return {
            **base,
            "kind": None,
            "status": None,
            "display_status": "corrupt",
            "stale": None,
            "age_s": None,
            "duration_s": None,
            **dict.fromkeys(("role", "model", "pipeline", "step", "ticket", "parent_id", "reason")),
        }
    stale = stale_reason(
        record, listing.heartbeat_at, now, host=host, heartbeat_timeout=DEFAULT_STALE_AFTER
    )
    return {
        **base,
        **record.to_json(),
        "display_status": "stale" if stale else record.status,
        "stale": stale,
        "heartbeat_at": format_ts(listing.heartbeat_at) if listing.heartbeat_at else None,
        "age_s": _seconds(record.created_at, now),
        "duration_s": _seconds(record.started_at, record.finished_at or now)
        if record.started_at
        else None,
    }


def list_rows(
    state_dir: Path,
    *,
    kind: str | None = None,
    status: str | None = None,
    parent: str | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The rows for ``runs list`` (newest first, at most ``limit``) and the total matching."""
    if status is not None and status not in DISPLAY_STATUSES:
        raise UsageError(
            f"unknown status {status!r}; expected one of {', '.join(DISPLAY_STATUSES)}"
        )
    store = RunStore(state_dir)
    parent_id = store.get(parent).id if parent else None
    now = now or utc_now()
    host = this_host()
    if status in UNFINISHED:  # every such run is in the live index: the rest stay unread
        if kind is not None and kind not in KINDS:
            raise UsageError(f"unknown run kind {kind!r}; expected one of {', '.join(KINDS)}")
        live = (
            listing
            for listing in store.live()
            if listing.record is not None
            and (kind is None or listing.record.kind == kind)
            and (parent_id is None or listing.record.parent_id == parent_id)
        )
        rows = [r for r in (row(x, now, host) for x in live) if r["display_status"] == status]
        return (rows if limit is None else rows[:limit]), len(rows)
    if status is None or status not in DERIVED:
        listings, total = store.page(kind=kind, status=status, parent_id=parent_id, limit=limit)
        return [row(listing, now, host) for listing in listings], total
    # The shown status is derived: filter on it, so "stale" and "running" never overlap.
    stored = {"running": "running", "stale": "running", "corrupt": None}[status]
    listings, _ = store.page(kind=kind, status=stored, parent_id=parent_id)
    shown = (row(listing, now, host) for listing in listings)
    rows = [r for r in shown if r["display_status"] == status]
    return (rows if limit is None else rows[:limit]), len(rows)


def detail(run: Run, *, recent: int = 10, now: datetime | None = None) -> dict[str, Any]:
    """Everything ``runs show`` prints: record, input, output, children, recent events."""
    now = now or utc_now()
    children = [c.id for c in RunStore(run.dir.parent.parent).children(run.id)]
    record: RunRecord | None = None
    problem: str | None = None
    try:
        record = run.load()
    except StateError as exc:  # corrupt or future: shown, never hidden
        problem = str(exc)
    journal = read_journal(run.paths.events)
    heartbeat_at = run.heartbeat_at()
    stale = (
        stale_reason(
            record,
            heartbeat_at,
            now,
            host=this_host(),
            heartbeat_timeout=DEFAULT_STALE_AFTER,
        )
        if record
        else None
    )
    return {
        "id": run.id,
        "dir": str(run.dir),
        "record": record.to_json() if record else None,
        "problem": problem,
        "stale": stale,
        "heartbeat_at": format_ts(heartbeat_at) if heartbeat_at else None,
        "input": _read_optional(run.read_input),
        "output": _read_optional(run.read_output),
        "children": children,
        "events": len(journal.events),
        "journal_problems": journal.problems,
        "recent_events": journal.events[-recent:] if recent else [],
    }


def _read_optional(reader: Callable[[], Any]) -> Any:
    try:
        return reader()
    except (StateError, OSError, ValueError) as exc:  # unreadable: shown as such
        return {"error": str(exc)}


def format_event(event: dict[str, Any]) -> str:
    """``seq  time  type  key=value ...`` — one line a human can scan."""
    ts = str(event.get("ts", ""))
    clock = ts[11:23] if len(ts) >= 23 else ts
    rest = " ".join(
        f"{key}={json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value}"
        for key, value in event.items()
        if key not in _EVENT_KEYS_FIRST and value is not None  # an absent value says nothing
    )
    return f"{event.get('seq', '?'):>5}  {clock}  {event.get('type', '?'):<18} {rest}".rstrip()


def tail_events(
    run: Run, *, lines: int = 20, follow_: bool = False, poll: float = 0.2
) -> Iterator[dict[str, Any]]:
    """The last ``lines`` events, then (with ``follow_``) new ones until the run ends."""
    if not follow_:
        events = read_journal(run.paths.events).events
        yield from events[-lines:] if lines else []
        return
    events = read_journal(run.paths.events).events
    skip = max(0, len(events) - lines)

    def finished() -> bool:
        try:
            return run.load().status in TERMINAL
        except StateError:
            return True  # a run that cannot be read will not write more

    for index, event in enumerate(follow(run.paths.events, poll=poll, stop=finished)):
        if index >= skip:
            yield event
