"""``agentctl tickets retry ID``: a person un-parks a ticket, locally and on Linear.

The orchestrator's record of a parked ticket is written here as a tick writes it
(``Attempts`` over ``state.json``, the ticket blocked through the tracker); the command
moves the ticket back to the ready state and asks the next tick, through the
orchestrator's inbox, for a full attempt budget.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentctl.orchestrator.attempts import Attempts, ticket_key
from agentctl.orchestrator.home import Home
from agentctl.testing.linear_server import LinearServer
from agentctl.trackers.linear.tracker import BLOCKED_LABEL
from agentctl.trackers.local import LocalTracker
from tests.conftest import Invoke
from tests.test_tracker_linear import linear_config

PARKED_AT = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
REASON = "the reviewer never submitted a verdict"


def park(state_dir: Path, ticket: str, reason: str = REASON, attempts: int = 1) -> None:
    """What a tick records when it gives up on ``ticket``."""
    home = Home.of(state_dir)
    home.make()
    state = home.load_state()
    record = Attempts(state, max_attempts=3, backoff=300.0)
    for _ in range(attempts):
        record.started(ticket_key(ticket), "review", PARKED_AT)
    assert record.failed(ticket_key(ticket), reason, PARKED_AT, "permanent")
    home.save_state(state)


def inbox(state_dir: Path) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in m.body.items() if k not in ("seq", "ts")}
        for m in Home.of(state_dir).inbox.read()
    ]


def one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


# -- the local tracker ----------------------------------------------------------------


def test_a_parked_ticket_goes_back_to_ready_and_the_next_tick_is_asked(
    workspace: Path, cli: Invoke
) -> None:
    state_dir = workspace / ".agentctl"
    tracker = LocalTracker(state_dir)
    ticket = tracker.add("Fix the login page")
    tracker.block(ticket.id)
    park(state_dir, ticket.id)

    result = cli("tickets", "retry", "t-1", cwd=workspace)
    assert result.exit_code == 0, result.output
    assert one_line(result.stdout) == (
        "T-1 will be tried again at the next tick (parked 2026-11-25 03:00 UTC: "
        f"{REASON}; moved from Blocked to Todo)"
    )
    assert tracker.get("T-1").state == "Todo"
    assert inbox(state_dir) == [{"type": "retry", "ticket": "T-1"}]
    # the record itself is the tick's to change, under its lock
    assert Home.of(state_dir).load_state()["items"][ticket_key("T-1")]["parked"]


def test_retry_json_says_what_was_done(workspace: Path, cli: Invoke) -> None:
    state_dir = workspace / ".agentctl"
    tracker = LocalTracker(state_dir)
    tracker.block(tracker.add("a").id)
    park(state_dir, "T-1", attempts=3)
    result = cli("tickets", "retry", "T-1", "--json", cwd=workspace)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["parked"] == {"reason": REASON, "at": "2026-11-25T03:00:00.000000Z",
                              "failure": "permanent"}  # fmt: skip
    assert (data["state_before"], data["state"], data["retry_posted"]) == ("Blocked", "Todo", True)


def test_a_ticket_that_is_not_parked_is_left_alone_and_said_so(
    workspace: Path, cli: Invoke
) -> None:
    state_dir = workspace / ".agentctl"
    tracker = LocalTracker(state_dir)
    tracker.set_state(tracker.add("busy").id, "In Progress")
    result = cli("tickets", "retry", "T-1", cwd=workspace)
    assert result.exit_code == 0, result.output
    assert one_line(result.stdout) == "T-1 is not parked (state In Progress): nothing to retry"
    assert tracker.get("T-1").state == "In Progress"
    assert inbox(state_dir) == []


def test_a_blocked_ticket_without_a_record_still_goes_back_to_ready(
    workspace: Path, cli: Invoke
) -> None:
    state_dir = workspace / ".agentctl"
    tracker = LocalTracker(state_dir)
    tracker.block(tracker.add("set Blocked by hand").id)
    result = cli("tickets", "retry", "T-1", cwd=workspace)
    assert result.exit_code == 0, result.output
    assert "T-1 was not parked by the orchestrator" in one_line(result.stdout)
    assert "moved from Blocked to Todo" in result.stdout
    assert tracker.get("T-1").state == "Todo"
    assert inbox(state_dir) == [{"type": "retry", "ticket": "T-1"}]


def test_the_configured_ready_state_is_where_it_goes(workspace: Path, cli: Invoke) -> None:
    state_dir = workspace / ".agentctl"
    tracker = LocalTracker(state_dir)
    tracker.block(tracker.add("a").id)
    park(state_dir, "T-1")
    result = cli("--set", "orchestrator.ready_state=In Progress", "tickets", "retry", "T-1",
                 cwd=workspace)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert tracker.get("T-1").state == "In Progress"


def test_an_unknown_ticket_is_one_line_and_exit_2(workspace: Path, cli: Invoke) -> None:
    result = cli("tickets", "retry", "T-9", cwd=workspace)
    assert result.exit_code == 2
    assert "no ticket 'T-9'" in one_line(result.output)
    assert "Traceback" not in result.output
    assert inbox(workspace / ".agentctl") == []


# -- Linear ---------------------------------------------------------------------------


@pytest.fixture
def linear(
    workspace: Path, linear_schema: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LinearServer]:
    with LinearServer(linear_schema) as server:
        monkeypatch.setenv("LINEAR_API_KEY", "lin_api_test")
        yield server
        assert server.failures == []


def test_linear_retry_moves_the_issue_to_ready_and_removes_the_label(
    workspace: Path, cli: Invoke, linear: LinearServer
) -> None:
    config = linear_config(workspace, linear)
    linear.add_issue("Fix the login page", state="In Review", labels=["bug"])
    from agentctl.trackers import make_tracker

    make_tracker(config, environ={"LINEAR_API_KEY": "lin_api_test"}).block("ENG-1")
    assert linear.issue("ENG-1")["labels"] == ["bug", BLOCKED_LABEL]
    park(workspace / ".agentctl", "ENG-1")

    result = cli("tickets", "retry", "eng-1", cwd=workspace)
    assert result.exit_code == 0, result.output
    assert one_line(result.stdout).startswith("ENG-1 will be tried again at the next tick")
    assert "moved from In Review to Todo" in result.stdout
    issue = linear.issue("ENG-1")
    assert (issue["state"], issue["labels"]) == ("Todo", ["bug"])
    assert inbox(workspace / ".agentctl") == [{"type": "retry", "ticket": "ENG-1"}]


def test_linear_retry_with_a_blocked_state(
    workspace: Path, cli: Invoke, linear: LinearServer
) -> None:
    linear_config(workspace, linear, 'blocked_state = "Backlog"\n')
    linear.add_issue("a", state="Backlog")  # where the orchestrator parked it
    result = cli("tickets", "retry", "ENG-1", cwd=workspace)
    assert result.exit_code == 0, result.output
    assert "was not parked by the orchestrator" in result.stdout
    assert linear.issue("ENG-1")["state"] == "Todo"

    linear.add_issue("b", state="In Progress")
    result = cli("tickets", "retry", "ENG-2", cwd=workspace)
    assert one_line(result.stdout) == "ENG-2 is not parked (state In Progress): nothing to retry"
    assert linear.issue("ENG-2")["state"] == "In Progress"


def test_linear_unknown_issue_is_one_line_and_exit_2(
    workspace: Path, cli: Invoke, linear: LinearServer
) -> None:
    linear_config(workspace, linear)
    result = cli("tickets", "retry", "ENG-9", cwd=workspace)
    assert result.exit_code == 2
    assert "no Linear issue 'ENG-9'" in one_line(result.output)


def test_linear_retry_of_a_labelled_issue_already_in_ready_removes_the_label(
    workspace: Path, cli: Invoke, linear: LinearServer
) -> None:
    linear_config(workspace, linear)
    linear.add_issue("a", labels=[BLOCKED_LABEL])  # parked while it was still Todo
    park(workspace / ".agentctl", "ENG-1")
    result = cli("tickets", "retry", "ENG-1", cwd=workspace)
    assert result.exit_code == 0, result.output
    assert one_line(result.stdout).endswith("; still Todo, label removed)")
    assert (linear.issue("ENG-1")["state"], linear.issue("ENG-1")["labels"]) == ("Todo", [])
