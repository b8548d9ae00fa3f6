"""RunStore and Run through real files: create, find, list, change status, set aside."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentctl.errors import (
    CorruptStateError,
    FutureStateError,
    NotFoundError,
    StateError,
    TransitionError,
    UsageError,
)
from agentctl.runs import Run, RunStore, process_start_token, read_journal

T0 = datetime(2026, 11, 25, 21, 24, 33, 482913, tzinfo=UTC)


class Clock:
    """Starts at T0 and moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> RunStore:
    return RunStore(tmp_path / "state", clock=clock)


def test_construction_writes_nothing(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "state")
    assert store.list() == []
    with pytest.raises(NotFoundError):
        store.get("abc")
    assert not (tmp_path / "state").exists()


def test_create_makes_the_whole_directory(store: RunStore) -> None:
    run = store.create("agent", input={"task": "fix it"}, role="dev", model="m1", ticket="T-1")
    names = sorted(p.name for p in run.dir.iterdir())
    assert names == ["children", "events.jsonl", "inbox", "input.json", "outbox", "run.json"]
    assert run.paths.events.read_bytes() == b""
    assert run.read_input() == {"task": "fix it"}
    record = run.load()
    assert record.status == "pending" and record.kind == "agent"
    assert record.root_id == run.id and record.parent_id is None
    assert record.role == "dev" and record.ticket == "T-1"
    assert record.created_at == record.updated_at == T0 + timedelta(seconds=1)
    assert run.id.startswith("20261125T212434.482913Z-agent-")
    # input.json was written before run.json (same directory, same clock)
    assert run.paths.input_json.stat().st_mtime_ns <= run.paths.run_json.stat().st_mtime_ns
    # nothing but the run (and the index of unfinished runs naming it) is left in runs/
    assert sorted(os.listdir(store.runs_dir)) == sorted([run.id, ".live"])
    assert os.listdir(store.runs_dir / ".live") == [run.id]
    [listing] = store.list()
    assert listing.id == run.id and listing.record == record and listing.problem is None


def test_child_inherits_root(store: RunStore) -> None:
    top = store.create("pipeline", input={})
    mid = store.create("step", input={}, parent=top)
    leaf = store.create("agent", input={}, parent=mid)
    assert mid.load().parent_id == top.id
    assert leaf.load().parent_id == mid.id
    assert leaf.load().root_id == top.id
    assert [item.id for item in store.list(parent_id=mid.id)] == [leaf.id]


def test_create_refuses_bad_kind_and_leaves_nothing(store: RunStore) -> None:
    with pytest.raises(ValueError):
        store.create("worker", input={})
    with pytest.raises(TypeError):
        store.create("agent", input={"x": object()})
    assert not store.runs_dir.exists() or os.listdir(store.runs_dir) == []


def test_get_by_id_prefix_suffix(store: RunStore, clock: Clock) -> None:
    first = store.create("agent", input={})
    clock.now += timedelta(days=1)
    second = store.create("chat", input={})
    assert store.get(first.id).id == first.id
    assert store.get(second.id[-6:]).id == second.id
    assert store.get("chat-" + second.id[-6:]).id == second.id
    assert store.get(first.id[:12]).id == first.id  # the day differs
    with pytest.raises(UsageError) as info:
        store.get("2026")
    assert first.id in str(info.value) and second.id in str(info.value)
    with pytest.raises(NotFoundError, match="agentctl runs list"):
        store.get("ffffffffffff")
    with pytest.raises(UsageError):
        store.get("")


def test_ambiguous_lists_at_most_five(store: RunStore) -> None:
    for _ in range(7):
        store.create("agent", input={})
    with pytest.raises(UsageError) as info:
        store.get("2026")
    message = str(info.value)
    assert "matches 7 runs" in message
    assert message.count("-agent-") == 5 and ", ..." in message


def test_every_allowed_transition_through_run(store: RunStore) -> None:
    run = store.create("agent", input={})
    path = [
        ("running", None),
        ("paused", "budget reached"),
        ("running", None),
        ("failed", "tests red"),
        ("running", None),
        ("succeeded", None),
    ]
    for status, reason in path:
        record = run.transition(status, reason=reason)
        assert record.status == status and record.reason == reason
        if status == "running":
            assert record.finished_at is None
        if status in ("failed", "succeeded"):
            assert record.finished_at == record.updated_at
    record = run.load()
    assert record.started_at is not None and record.started_at < record.finished_at  # type: ignore[operator]
    events = read_journal(run.paths.events).events
    assert [(e["type"], e["from"], e["to"], e["reason"]) for e in events] == [
        ("status", "pending", "running", None),
        ("status", "running", "paused", "budget reached"),
        ("status", "paused", "running", None),
        ("status", "running", "failed", "tests red"),
        ("status", "failed", "running", None),
        ("status", "running", "succeeded", None),
    ]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]


def test_started_at_is_the_first_start(store: RunStore) -> None:
    run = store.create("agent", input={})
    first = run.transition("running").started_at
    run.transition("failed")
    assert run.transition("running").started_at == first


@pytest.mark.parametrize(
    ("steps", "bad"),
    [
        ([], "succeeded"),
        ([], "paused"),
        (["running", "succeeded"], "running"),
        (["canceled"], "running"),
        (["running", "paused"], "succeeded"),
        (["running"], "pending"),
    ],
)
def test_illegal_transitions(store: RunStore, steps: list[str], bad: str) -> None:
    run = store.create("agent", input={})
    for status in steps:
        run.transition(status)
    before = run.load()
    with pytest.raises(TransitionError) as info:
        run.transition(bad)
    assert before.status in str(info.value) and bad in str(info.value)
    assert run.load() == before
    assert len(read_journal(run.paths.events).events) == len(steps)


def test_other_terminal_paths(store: RunStore) -> None:
    for steps in (
        ["failed"],
        ["canceled"],
        ["running", "canceled"],
        ["running", "paused", "canceled"],
    ):
        run = store.create("agent", input={})
        for status in steps:
            run.transition(status, reason="because")
        assert run.load().status == steps[-1]
        assert run.load().finished_at is not None
    run = store.create("agent", input={})
    run.transition("running")
    run.transition("paused")
    assert run.transition("failed").status == "failed"


def test_mark_started_records_the_process(store: RunStore) -> None:
    run = store.create("agent", input={})
    record = run.mark_started(os.getpid(), os.getpgid(0))
    assert record.status == "running"
    assert record.pid == os.getpid() and record.pgid == os.getpgid(0)
    assert record.pid_start == process_start_token(os.getpid())
    assert record.host == socket.gethostname()
    assert run.load() == record


def test_update(store: RunStore, clock: Clock) -> None:
    run = store.create("agent", input={})
    record = run.update(step="review", worktree="/w")
    assert record.step == "review" and record.worktree == "/w"
    assert record.updated_at > record.created_at
    assert run.load() == record
    with pytest.raises(ValueError, match="transition"):
        run.update(status="succeeded")
    with pytest.raises(TypeError):
        run.update(pid="12")
    with pytest.raises(TypeError):
        run.update(colour="red")
    assert run.load() == record


def test_output_and_heartbeat(store: RunStore, clock: Clock) -> None:
    run = store.create("agent", input={})
    assert run.read_output() is None
    run.write_output({"summary": "ok"})
    assert run.read_output() == {"summary": "ok"}
    assert run.heartbeat_at() is None
    run.heartbeat()
    beat = clock.now
    assert run.heartbeat_at() == beat
    [listing] = store.list()
    assert listing.heartbeat_at == beat  # from the file's mtime: same instant
    run.paths.heartbeat.write_text("garbage")
    os.utime(run.paths.heartbeat, (beat.timestamp(), beat.timestamp()))
    assert run.heartbeat_at() == beat


def test_run_handle_on_missing_directory(tmp_path: Path) -> None:
    run = Run(tmp_path / "nope")
    with pytest.raises(CorruptStateError, match="missing"):
        run.load()
    with pytest.raises(StateError, match="no run directory"):
        run.transition("running")


GARBAGE: dict[str, bytes | None] = {
    "garbage": b"\x00\xff\xfe not json",
    "empty": b"",
    "list": b"[1, 2, 3]\n",
    "missing_field": None,  # filled below
    "truncated": b'{"id": "x", "kind": ',
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_corrupt_run_json(store: RunStore, case: str) -> None:
    good = store.create("agent", input={})
    bad = store.create("pipeline", input={})
    if case == "missing_field":
        data = json.loads(bad.paths.run_json.read_bytes())
        del data["status"]
        raw = json.dumps(data).encode()
    else:
        raw = GARBAGE[case] or b""
    bad.paths.run_json.write_bytes(raw)

    listings = {item.id: item for item in store.list()}
    assert listings[good.id].problem is None
    assert listings[bad.id].record is None
    assert str(bad.paths.run_json) in (listings[bad.id].problem or "")
    assert store.list(status="pending") == [listings[good.id]]
    with pytest.raises(CorruptStateError):
        store.get(bad.id).load()
    with pytest.raises(CorruptStateError):
        bad.transition("running")  # never read as "not started"

    problem = listings[bad.id].problem or ""
    record = bad.quarantine(problem)
    assert record.status == "failed" and record.kind == "pipeline"
    assert record.reason == f"corrupt state set aside: {problem}"
    [kept] = [p for p in bad.dir.iterdir() if p.name.startswith("run.json.corrupt-")]
    assert kept.read_bytes() == raw
    assert bad.load() == record
    assert store.list(status="failed")[0].id == bad.id
    last = read_journal(bad.paths.events).events[-1]
    assert last["type"] == "run.quarantined" and last["kept_as"] == kept.name
    with pytest.raises(TransitionError):
        bad.transition("succeeded")


def test_id_mismatch_is_corrupt(store: RunStore) -> None:
    one = store.create("agent", input={})
    two = store.create("agent", input={})
    two.paths.run_json.write_bytes(one.paths.run_json.read_bytes())
    with pytest.raises(CorruptStateError, match="does not match its directory"):
        two.load()


def test_quarantine_refuses_readable_and_future(store: RunStore) -> None:
    run = store.create("agent", input={})
    with pytest.raises(StateError, match="readable"):
        run.quarantine("nothing")
    data = json.loads(run.paths.run_json.read_bytes())
    data["schema_version"] = 99
    future = json.dumps(data).encode()
    run.paths.run_json.write_bytes(future)
    with pytest.raises(FutureStateError, match="upgrade"):
        run.load()
    with pytest.raises(FutureStateError):
        run.quarantine("newer")
    assert run.paths.run_json.read_bytes() == future
    [listing] = store.list()
    assert listing.record is None and "newer agentctl" in (listing.problem or "")


def test_quarantine_of_missing_run_json(store: RunStore) -> None:
    run = store.create("agent", input={})
    run.paths.run_json.unlink()
    record = run.quarantine("run.json missing")
    assert record.status == "failed"
    assert read_journal(run.paths.events).events[-1]["kept_as"] is None


def test_listing_skips_non_runs(store: RunStore) -> None:
    run = store.create("agent", input={})
    (store.runs_dir / "notes.txt").write_text("hi")
    (store.runs_dir / "20261125T212433.482913Z-agent-aaaaaa").write_text("a file, not a dir")
    (store.runs_dir / f".{run.id}.tmp.123").mkdir()
    (store.runs_dir / "lost+found").mkdir()
    assert [item.id for item in store.list()] == [run.id]
    assert store.get(run.id[-6:]).id == run.id


def test_list_filter_validation(store: RunStore) -> None:
    with pytest.raises(UsageError):
        store.list(status="done")
    with pytest.raises(UsageError):
        store.list(kind="worker")


def test_concurrent_updates_do_not_lose_changes(store: RunStore) -> None:
    """Two handles on one run (as parent and child would have) each change a field."""
    run = store.create("agent", input={})
    other = Run(run.dir)
    run.update(step="a")
    other.update(model="m")
    run.transition("running")
    record = other.load()
    assert (record.step, record.model, record.status) == ("a", "m", "running")
