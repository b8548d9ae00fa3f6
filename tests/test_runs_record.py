"""run.json rules: the status machine, strict reading, and old files that must still load."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import agentctl.runs as runs
from agentctl.errors import CorruptStateError, FutureStateError, TransitionError
from agentctl.runs import (
    SCHEMA_VERSION,
    STATUSES,
    TERMINAL,
    RunRecord,
    RunStore,
    check_transition,
    read_journal,
)

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
SRC = Path(__file__).resolve().parents[1] / "src"
T0 = datetime(2026, 11, 25, 21, 24, 33, 482913, tzinfo=UTC)
ALLOWED = {
    ("pending", "running"),
    ("pending", "failed"),
    ("pending", "canceled"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "canceled"),
    ("running", "paused"),
    ("paused", "running"),
    ("paused", "canceled"),
    ("paused", "failed"),
    ("failed", "running"),
}


@pytest.mark.parametrize("old", STATUSES)
@pytest.mark.parametrize("new", STATUSES)
def test_transition_table(old: str, new: str) -> None:
    if (old, new) in ALLOWED:
        assert check_transition(old, new) == new  # type: ignore[arg-type]
    else:
        with pytest.raises(TransitionError) as info:
            check_transition(old, new)  # type: ignore[arg-type]
        assert old in str(info.value) and new in str(info.value)


def test_unknown_target_status() -> None:
    with pytest.raises(TransitionError, match="not a status"):
        check_transition("running", "done")


def test_terminal_set() -> None:
    assert frozenset({"succeeded", "failed", "canceled"}) == TERMINAL


def minimal(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "20261125T212433.482913Z-agent-7f3a9c",
        "kind": "agent",
        "status": "pending",
        "created_at": "2026-11-25T21:24:33.482913Z",
        "updated_at": "2026-11-25T21:24:33.482913Z",
        "root_id": "20261125T212433.482913Z-agent-7f3a9c",
        "schema_version": 1,
    }
    data.update(over)
    return data


def test_round_trip() -> None:
    record = RunRecord.from_json(minimal(pid=12, role="dev"), Path("run.json"))
    assert record.created_at == T0
    assert record.pid == 12 and record.parent_id is None
    again = RunRecord.from_json(json.loads(json.dumps(record.to_json())), Path("run.json"))
    assert again == record
    assert record.to_json()["created_at"] == "2026-11-25T21:24:33.482913Z"


def test_unknown_keys_of_same_version_are_ignored() -> None:
    record = RunRecord.from_json(minimal(cost_usd=1.5), Path("run.json"))
    assert record.status == "pending"


@pytest.mark.parametrize(
    ("data", "what"),
    [
        ([1, 2], "a list"),
        ("run", "a string"),
        (minimal(schema_version=None), "schema_version"),
        (minimal(schema_version="1"), "schema_version"),
        (minimal(schema_version=True), "schema_version"),
        ({k: v for k, v in minimal().items() if k != "status"}, "'status' is missing"),
        (minimal(root_id=None), "'root_id' is null"),
        (minimal(status="done"), "unknown status"),
        (minimal(pid="12"), "'pid' must be an integer"),
        (minimal(pid=True), "'pid' must be an integer"),
        (minimal(role=3), "'role' must be a string"),
        (minimal(created_at="yesterday"), "'created_at'"),
        (minimal(created_at="2026-11-25T21:24:33"), "no time zone"),
    ],
)
def test_bad_records_are_corrupt(data: object, what: str) -> None:
    with pytest.raises(CorruptStateError) as info:
        RunRecord.from_json(data, Path("/x/run.json"))
    assert "/x/run.json" in str(info.value)
    assert what in str(info.value)


def test_future_schema() -> None:
    with pytest.raises(FutureStateError, match=r"newer agentctl.*upgrade"):
        RunRecord.from_json(minimal(schema_version=SCHEMA_VERSION + 1, status="??"), Path("r"))


def copy_fixture_runs(version: str, state: Path) -> list[str]:
    source = FIXTURES / version
    (state / "runs").mkdir(parents=True)
    names = []
    for run_dir in sorted(source.iterdir()):
        shutil.copytree(run_dir, state / "runs" / run_dir.name)
        names.append(run_dir.name)
    return names


@pytest.mark.parametrize("version", sorted(p.name for p in FIXTURES.iterdir()))
def test_every_fixture_version_loads(version: str, tmp_path: Path) -> None:
    names = copy_fixture_runs(version, tmp_path)
    store = RunStore(tmp_path)
    listings = store.list()
    assert [listing.id for listing in listings] == sorted(names, reverse=True)
    for listing in listings:
        assert listing.problem is None, listing.problem
        run = store.get(listing.id)
        run.load()
        assert read_journal(run.paths.events).problems == []
        run.read_input()


def test_v1_fixture_contents(tmp_path: Path) -> None:
    copy_fixture_runs("v1", tmp_path)
    run = RunStore(tmp_path).get("7f3a9c")
    record = run.load()
    assert record.status == "succeeded" and record.kind == "agent"
    assert record.parent_id == record.root_id == "20261125T212401.000512Z-pipeline-0c1d2e"
    assert record.pid == 48211 and record.pid_start == "912345" and record.host == "devbox"
    assert record.started_at == datetime(2026, 11, 25, 21, 24, 33, 901220, tzinfo=UTC)
    assert record.schema_version == 1
    events = read_journal(run.paths.events).events
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert events[-1]["to"] == "succeeded"
    assert run.read_input()["ticket"]["id"] == "LOC-12"
    assert run.read_output() == {
        "summary": "Added --json to tickets list, with a test.",
        "commit": "3f1c2a9",
    }
    assert [m.body["type"] for m in run.inbox.read()] == ["instruction"]
    assert [m.seq for m in run.outbox.read()] == [1]
    # The next event continues the fixture's numbering.
    assert run.journal.append("note") == 5


def test_public_api_is_pinned() -> None:
    assert sorted(runs.__all__) == sorted(
        [
            "KINDS", "SCHEMA_VERSION", "STATUSES", "TERMINAL", "TRANSITIONS", "Journal",
            "JournalRead", "Listing", "Mailbox", "Message", "Run", "RunPaths", "RunRecord",
            "RunStore", "Status", "check_transition", "follow", "format_ts", "new_run_id",
            "parse_run_id", "parse_ts", "pid_alive", "process_start_token", "read_journal",
            "stale_reason", "this_host", "utc_now",
        ]
    )  # fmt: skip
    for name in runs.__all__:
        assert hasattr(runs, name)


def test_import_stays_light() -> None:
    code = (
        "import sys, agentctl.runs; "
        "heavy = {'typer', 'rich', 'anthropic', 'openai', 'git', 'httpx', 'gql'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
