"""``agentctl status``: parked items with their last reason, and only live runs as active."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentctl.orchestrator.attempts import Attempts, branch_key, ticket_key
from agentctl.orchestrator.home import Home
from agentctl.runs import RunStore
from tests.conftest import Invoke

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PARKED_AT = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def status_json(cli: Invoke, workspace: Path) -> dict[str, Any]:
    result = cli("status", "--json", cwd=workspace)
    assert result.exit_code == 0, result.output
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def test_parked_items_are_listed_with_their_last_reason_and_when(
    workspace: Path, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agentctl.runs.timefmt.utc_now", lambda: NOW)
    home = Home.of(workspace / ".agentctl")
    home.make()
    state = home.load_state()
    attempts = Attempts(state, max_attempts=3, backoff=300.0)
    for _ in range(3):  # a transient failure, three times: the budget is spent
        attempts.started(branch_key("agentctl/docs"), "merge", PARKED_AT)
        attempts.failed(branch_key("agentctl/docs"), "merge conflict", PARKED_AT)
    attempts.started(ticket_key("T-1"), "review", PARKED_AT)
    attempts.failed(ticket_key("T-1"), "no verdict from the reviewer", NOW, "permanent")
    attempts.started(ticket_key("T-2"), "coding", PARKED_AT)  # trying: not parked
    home.save_state(state)

    parked = status_json(cli, workspace)["parked"]
    assert parked == [
        {
            "item": "branch:agentctl/docs",
            "ticket": None,
            "branch": "agentctl/docs",
            "reason": "merge conflict (3 attempts)",
            "at": "2026-11-25T03:00:00.000000Z",
            "failure": "transient",
            "attempts": 3,
            "retry_asked": False,
        },
        {
            "item": "ticket:T-1",
            "ticket": "T-1",
            "branch": None,
            "reason": "no verdict from the reviewer",
            "at": "2026-11-25T12:00:00.000000Z",
            "failure": "permanent",
            "attempts": 1,
            "retry_asked": False,
        },
    ]

    out = cli("status", cwd=workspace).stdout
    assert "parked       2 (agentctl tickets retry ID tries a ticket again)" in out
    rows = [line.split("  ") for line in out.splitlines() if line.startswith(("T-", "agentctl/"))]
    rows = [[cell.strip() for cell in row if cell.strip()] for row in rows]
    assert rows == [
        ["agentctl/docs", "2026-11-25 03:00:00 (9.0h ago)", "3", "merge conflict (3 attempts)"],
        ["T-1", "2026-11-25 12:00:00 (0s ago)", "1", "no verdict from the reviewer"],
    ]


def test_an_unreadable_orchestrator_state_is_a_problem_not_a_traceback(
    workspace: Path, cli: Invoke
) -> None:
    home = Home.of(workspace / ".agentctl")
    home.make()
    (home.dir / "state.json").write_text("{not json")
    view = status_json(cli, workspace)
    assert view["parked"] is None
    assert any(p.startswith("orchestrator state: ") for p in view["problems"])
    out = cli("status", cwd=workspace).stdout
    assert "parked       unreadable (see problems)" in out


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_only_runs_with_a_live_process_are_active(workspace: Path, cli: Invoke) -> None:
    store = RunStore(workspace / ".agentctl")
    gone = store.create("pipeline", input={}, pipeline="coding-pipeline", ticket="T-1")
    gone.mark_started(dead_pid(), os.getpgid(0))
    gone.heartbeat()
    waiting = store.create("agent", input={"task": "x"}, role="dev", model="sonnet")
    waiting.mark_started(os.getpid(), os.getpgid(0))
    waiting.transition("paused", reason="budget")

    view = status_json(cli, workspace)
    assert view["active_runs"] == []
    stopped = {run["id"]: run for run in view["stopped_runs"]}
    assert list(stopped) == [gone.id, waiting.id]
    assert stopped[gone.id]["display_status"] == "stale"
    assert "is gone" in stopped[gone.id]["stale"]
    assert stopped[waiting.id]["display_status"] == "paused"
    out = cli("status", cwd=workspace).stdout
    assert "active runs  none" in out
    assert "stopped runs 2 (process gone or paused; agentctl runs show ID)" in out

    alive = store.create("agent", input={"task": "y"}, role="dev", model="sonnet")
    alive.mark_started(os.getpid(), os.getpgid(0))
    alive.heartbeat()
    view = status_json(cli, workspace)
    assert [run["id"] for run in view["active_runs"]] == [alive.id]
    assert len(view["stopped_runs"]) == 2
    assert "active runs  1" in cli("status", cwd=workspace).stdout


def test_a_retry_not_yet_read_by_a_tick_is_shown(workspace: Path, cli: Invoke) -> None:
    from agentctl.trackers.local import LocalTracker

    state_dir = workspace / ".agentctl"
    tracker = LocalTracker(state_dir)
    tracker.block(tracker.add("a").id)
    home = Home.of(state_dir)
    home.make()
    home.inbox.post({"type": "retry", "ticket": "T-1"})  # an old one, already read
    state = home.load_state()
    state["inbox_seen"] = 1
    attempts = Attempts(state, max_attempts=3, backoff=300.0)
    attempts.started(ticket_key("T-1"), "review", PARKED_AT)
    attempts.failed(ticket_key("T-1"), "no verdict", PARKED_AT, "permanent")
    home.save_state(state)
    assert status_json(cli, workspace)["parked"][0]["retry_asked"] is False

    assert cli("tickets", "retry", "T-1", cwd=workspace).exit_code == 0
    assert status_json(cli, workspace)["parked"][0]["retry_asked"] is True
    out = cli("status", cwd=workspace).stdout
    assert "no verdict (retry asked: the next tick tries it)" in out
