"""``tickets list --state all`` lists every state; an unknown state names the real ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.testing.linear_server import LinearServer
from agentctl.trackers import states as ticket_states
from agentctl.trackers.linear.tracker import BLOCKED_LABEL
from agentctl.trackers.local import LocalTracker
from tests.conftest import Invoke
from tests.test_tracker_linear import linear_config


def ids(cli: Invoke, *args: str, cwd: Path | None = None) -> list[str]:
    result = cli("tickets", "list", *args, "--json", cwd=cwd)
    assert result.exit_code == 0, result.output
    return [t["id"] for t in json.loads(result.stdout)]


def test_local_all_lists_blocked_done_and_canceled_too(repo: Path, cli: Invoke) -> None:
    tracker = LocalTracker(repo / ".agentctl")
    for title, state in (("a", "Todo"), ("b", "Blocked"), ("c", "Done"), ("d", "Canceled")):
        tracker.set_state(tracker.add(title).id, state)
    assert ids(cli, cwd=repo) == ["T-1", "T-2"]  # open: not Done or Canceled
    assert ids(cli, "--state", "all") == ["T-1", "T-2", "T-3", "T-4"]
    assert ids(cli, "-s", "ALL", "-s", "done") == ["T-1", "T-2", "T-3", "T-4"]
    assert ids(cli, "--state", "blocked") == ["T-2"]
    table = cli("tickets", "list", "--state", "all").stdout
    assert "Blocked" in table and "Canceled" in table


def test_local_unknown_state_lists_the_states_and_all(repo: Path, cli: Invoke) -> None:
    result = cli("tickets", "list", "--state", "shipping", cwd=repo)
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert (
        "unknown ticket state 'shipping': use one of Todo, In Progress, In Review, Blocked, "
        "Done, Canceled, or all" in line
    )


@pytest.fixture
def linear(
    workspace: Path, linear_schema: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LinearServer]:
    with LinearServer(linear_schema) as server:
        monkeypatch.setenv("LINEAR_API_KEY", "lin_api_test")
        linear_config(workspace, server)
        yield server
        assert server.failures == []


def test_linear_all_lists_every_state_of_the_team(
    workspace: Path, cli: Invoke, linear: LinearServer
) -> None:
    for title, state in (("a", "Todo"), ("b", "Done"), ("c", "Canceled"), ("d", "Backlog")):
        linear.add_issue(title, state=state)
    linear.add_team("OPS", "Operations")
    linear.add_issue("elsewhere", team="OPS")
    assert ids(cli, cwd=workspace) == ["ENG-1", "ENG-4"]
    assert ids(cli, "--state", "all") == ["ENG-1", "ENG-2", "ENG-3", "ENG-4"]
    assert ids(cli, "--state", "done", "--state", "Canceled") == ["ENG-2", "ENG-3"]


def test_linear_unknown_state_lists_the_teams_states_and_all(
    workspace: Path, cli: Invoke, linear: LinearServer
) -> None:
    result = cli("tickets", "list", "--state", "Shipping", cwd=workspace)
    assert result.exit_code == 2
    assert (
        "unknown ticket state 'Shipping': use one of Backlog, Todo, In Progress, In Review, "
        "Done, Canceled, Duplicate, or all" in result.output
    )


def test_linear_without_a_blocked_state_points_at_the_label(
    workspace: Path, cli: Invoke, linear: LinearServer
) -> None:
    result = cli("tickets", "list", "--state", "blocked", cwd=workspace)
    assert result.exit_code == 2
    assert "--label agentctl-blocked" in result.output
    assert ticket_states.LABEL == BLOCKED_LABEL
