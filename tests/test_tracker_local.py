"""LocalTracker: TOML tickets, ids under a lock, states by any spelling, comments with times."""

from __future__ import annotations

import tomllib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentctl.errors import CorruptStateError, NotFoundError, UsageError
from agentctl.trackers import Ticket, Tracker
from agentctl.trackers.local import LocalTracker, normalize_state


@pytest.fixture
def tracker(tmp_path: Path) -> LocalTracker:
    return LocalTracker(tmp_path / ".agentctl")


def test_is_a_tracker(tracker: LocalTracker) -> None:
    assert isinstance(tracker, Tracker)


def test_add_writes_toml_and_allocates_ids(tracker: LocalTracker, tmp_path: Path) -> None:
    first = tracker.add("Fix login", "It 500s.\nSee logs.", labels=("bug", "agent"))
    second = tracker.add("Docs")
    assert (first.id, first.key, second.id) == ("T-1", "T-1", "T-2")
    assert first == Ticket("T-1", "Fix login", "It 500s.\nSee logs.", "Todo", ("bug", "agent"))
    data = tomllib.loads((tmp_path / ".agentctl" / "tickets" / "T-1.toml").read_text())
    assert data["title"] == "Fix login" and data["state"] == "Todo"
    assert data["labels"] == ["bug", "agent"] and data["schema_version"] == 1
    assert tracker.get("t-1") == first
    assert tracker.get("2") == second
    with pytest.raises(UsageError):
        tracker.add("   ")


def test_ids_are_unique_under_concurrency(tracker: LocalTracker) -> None:
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda n: tracker.add(f"ticket {n}"), range(40)))
    assert sorted(int(t.id[2:]) for t in made) == list(range(1, 41))
    assert [t.id for t in tracker.list()] == [f"T-{n}" for n in range(1, 41)]  # oldest first


def test_list_open_by_default_and_filters(tracker: LocalTracker) -> None:
    a = tracker.add("a", labels=("agent",))
    b = tracker.add("b", labels=("agent", "backend"))
    c = tracker.add("c")
    d = tracker.add("d")
    tracker.set_state(c.id, "done")
    tracker.set_state(d.id, "CANCELED")
    assert [t.id for t in tracker.list()] == [a.id, b.id]
    assert [t.id for t in tracker.list(labels=["Agent"])] == [a.id, b.id]
    assert [t.id for t in tracker.list(labels=["agent", "backend"])] == [b.id]
    assert [t.id for t in tracker.list(states=["done", "Canceled"])] == [c.id, d.id]
    assert [t.id for t in tracker.list(states=["in_progress"])] == []
    assert [t.id for t in tracker.list(states=["blocked"])] == []  # parked tickets' state
    with pytest.raises(UsageError, match="shipped"):
        tracker.list(states=["shipped"])


@pytest.mark.parametrize(
    ("spelling", "state"),
    [
        ("todo", "Todo"),
        ("in_progress", "In Progress"),
        ("In Progress", "In Progress"),
        ("IN REVIEW", "In Review"),
        ("in_review", "In Review"),
        ("Done", "Done"),
        ("canceled", "Canceled"),
    ],
)
def test_state_spellings(spelling: str, state: str) -> None:
    assert normalize_state(spelling) == state


def test_set_state_is_idempotent(tracker: LocalTracker, tmp_path: Path) -> None:
    ticket = tracker.add("a")
    moved = tracker.set_state(ticket.id, "in_progress")
    assert moved.state == "In Progress"
    path = tmp_path / ".agentctl" / "tickets" / "T-1.toml"
    before = path.read_bytes()
    assert tracker.set_state(ticket.id, "In Progress") == moved
    assert path.read_bytes() == before  # nothing rewritten
    with pytest.raises(UsageError, match="Todo, In Progress"):
        tracker.set_state(ticket.id, "shipped")
    with pytest.raises(NotFoundError):
        tracker.set_state("T-9", "done")


def test_comments_are_appended_with_a_utc_time(tmp_path: Path) -> None:
    times = iter(datetime(2026, 1, 1, 12, n, tzinfo=UTC) for n in range(10))
    tracker = LocalTracker(tmp_path / ".agentctl", clock=lambda: next(times))
    ticket = tracker.add("a")
    tracker.comment(ticket.id, "started")
    tracker.comment(ticket.id, 'PR #1 opened: "quotes" and\nlines')
    assert tracker.get(ticket.id).comments == ("started", 'PR #1 opened: "quotes" and\nlines')
    log = tracker.comment_log(ticket.id)
    assert [c["at"] for c in log] == ["2026-01-01T12:01:00.000000Z", "2026-01-01T12:02:00.000000Z"]


def test_missing_and_corrupt_tickets(tracker: LocalTracker, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        tracker.get("T-1")
    with pytest.raises(NotFoundError):
        tracker.get("../etc/passwd")
    tracker.add("ok")
    (tmp_path / ".agentctl" / "tickets" / "T-2.toml").write_text('title = "unterminated\n')
    with pytest.raises(CorruptStateError, match=r"T-2\.toml"):
        tracker.get("T-2")
    with pytest.raises(CorruptStateError):
        tracker.list()


def test_a_hand_edited_ticket_is_read(tracker: LocalTracker, tmp_path: Path) -> None:
    folder = tmp_path / ".agentctl" / "tickets"
    folder.mkdir(parents=True)
    (folder / "T-7.toml").write_text('title = "by hand"\nstate = "in review"\n')
    [ticket] = tracker.list()
    assert (ticket.id, ticket.state, ticket.labels) == ("T-7", "In Review", ())
    assert tracker.add("next").id == "T-8"


def test_custom_tickets_dir(tmp_path: Path) -> None:
    tracker = LocalTracker(tmp_path / "state", tickets_dir=tmp_path / "elsewhere")
    tracker.add("x")
    assert (tmp_path / "elsewhere" / "T-1.toml").is_file()
