"""Parking on Linear: a blocked state when one is set, else the agentctl-blocked label.

Through the real gql client against the schema-faithful fake, whose label rules are
Linear's: one name per team, workspace labels for every team, a team's label only on
that team's issues.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.errors import ServiceRejectedError
from agentctl.testing.linear_server import LinearServer
from agentctl.trackers.linear import documents as doc
from agentctl.trackers.linear.tracker import BLOCKED_LABEL
from tests.test_tracker_linear import linear_config, tracker_for


@pytest.fixture
def server(linear_schema: Path) -> Iterator[LinearServer]:
    with LinearServer(linear_schema) as running:
        yield running
        assert running.failures == []


def operations(server: LinearServer) -> list[str | None]:
    return [request.operation for request in server.mutations]


def test_without_a_blocked_state_the_issue_keeps_its_state_and_gets_the_teams_label(
    workspace: Path, server: LinearServer
) -> None:
    server.add_issue("a", state="In Progress", labels=["bug"])
    server.add_issue("b")
    tracker = tracker_for(linear_config(workspace, server))

    ticket = tracker.block("eng-1")
    assert ticket.state == "In Progress" and set(ticket.labels) == {"bug", BLOCKED_LABEL}
    assert tracker.is_blocked(ticket) and tracker.is_blocked(tracker.get("ENG-1"))
    issue = server.issue("ENG-1")
    assert issue["state"] == "In Progress" and issue["labels"] == ["bug", BLOCKED_LABEL]
    (label,) = [lb for lb in server.labels() if lb["name"] == BLOCKED_LABEL]
    assert label["team"] == "ENG"  # made for the team
    assert operations(server) == ["AgentctlLabelCreate", "AgentctlAddLabel"]

    tracker.block("ENG-1")  # already labelled: nothing sent
    tracker.block("ENG-2")  # the label is made once
    assert operations(server) == ["AgentctlLabelCreate", "AgentctlAddLabel", "AgentctlAddLabel"]
    fresh = tracker_for(linear_config(workspace, server))  # another process finds it
    fresh.block("ENG-1")
    assert [lb["name"] for lb in server.labels()].count(BLOCKED_LABEL) == 1

    back = tracker.unblock("ENG-1", "todo")
    assert back.state == "Todo" and back.labels == ("bug",) and not tracker.is_blocked(back)
    assert server.issue("ENG-1")["labels"] == ["bug"]
    assert server.issue("ENG-1")["state"] == "Todo"
    sent = len(server.mutations)
    tracker.unblock("ENG-1", "todo")  # idempotent
    assert len(server.mutations) == sent


def test_a_workspace_label_is_used_and_another_teams_label_is_not(
    workspace: Path, server: LinearServer
) -> None:
    server.add_team("OPS", "Operations")
    server.add_label(BLOCKED_LABEL, team="OPS")
    server.add_issue("a")
    tracker = tracker_for(linear_config(workspace, server))
    tracker.block("ENG-1")
    teams = sorted(str(lb["team"]) for lb in server.labels() if lb["name"] == BLOCKED_LABEL)
    assert teams == ["ENG", "OPS"]  # OPS's label cannot go on an ENG issue
    assert server.issue("ENG-1")["labels"] == [BLOCKED_LABEL]


def test_an_existing_workspace_label_is_reused(workspace: Path, server: LinearServer) -> None:
    made = server.add_label(BLOCKED_LABEL)
    server.add_issue("a")
    tracker = tracker_for(linear_config(workspace, server))
    tracker.block("ENG-1")
    assert operations(server) == ["AgentctlAddLabel"]
    assert server.labels() == [made]
    assert server.issue("ENG-1")["labels"] == [BLOCKED_LABEL]


def test_with_a_blocked_state_the_issue_moves_there_and_back(
    workspace: Path, server: LinearServer
) -> None:
    server.add_issue("a", state="In Review")
    tracker = tracker_for(linear_config(workspace, server, 'blocked_state = "Backlog"\n'))
    ticket = tracker.block("ENG-1")
    assert ticket.state == "Backlog" and ticket.labels == () and tracker.is_blocked(ticket)
    assert server.issue("ENG-1")["state"] == "Backlog" and server.labels() == []
    assert [t.id for t in tracker.list(states=["blocked"])] == ["ENG-1"]  # agentctl's name
    back = tracker.unblock("ENG-1", "Todo")
    assert back.state == "Todo" and not tracker.is_blocked(back)
    assert server.issue("ENG-1")["state"] == "Todo"


def test_unblock_drops_a_label_left_from_before_a_blocked_state_was_set(
    workspace: Path, server: LinearServer
) -> None:
    server.add_issue("a")
    tracker_for(linear_config(workspace, server)).block("ENG-1")
    tracker = tracker_for(linear_config(workspace, server, 'blocked_state = "Backlog"\n'))
    assert tracker.is_blocked(tracker.get("ENG-1"))
    tracker.unblock("ENG-1", "Todo")
    assert server.issue("ENG-1")["labels"] == []


def test_the_fake_refuses_what_linear_refuses(workspace: Path, server: LinearServer) -> None:
    server.add_team("OPS", "Operations")
    theirs = server.add_label("ops-only", team="OPS")
    server.add_issue("a")
    tracker = tracker_for(linear_config(workspace, server))
    eng = server.team("ENG")["id"]
    with pytest.raises(ServiceRejectedError, match="Duplicate label name"):
        tracker.service.execute(doc.LABEL_CREATE, {"input": {"name": "OPS-ONLY"}})
    made = tracker.service.execute(doc.LABEL_CREATE, {"input": {"name": "x", "teamId": eng}})
    assert made["issueLabelCreate"]["issueLabel"]["team"] == {"id": eng}
    with pytest.raises(ServiceRejectedError, match="Duplicate label name"):
        tracker.service.execute(doc.LABEL_CREATE, {"input": {"name": "X", "teamId": eng}})
    uuid = server.issue("ENG-1")["id"]
    with pytest.raises(ServiceRejectedError, match="belongs to another team"):
        tracker.service.execute(doc.ADD_LABEL, {"id": uuid, "labelId": theirs["id"]})
    found = tracker.service.execute(doc.LABELS, {"name": "OPS-only"})["issueLabels"]["nodes"]
    assert [(n["name"], n["team"]) for n in found] == [
        ("ops-only", {"id": server.team("OPS")["id"]})
    ]
