"""``agentctl tickets add|list|show`` through the CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentctl.trackers.local import LocalTracker
from tests.conftest import Invoke


def test_add_list_show(repo: Path, cli: Invoke) -> None:
    result = cli("tickets", "add", "Fix login", "--description", "500 on submit", cwd=repo)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "added T-1: Fix login"
    result = cli("tickets", "add", "Docs", "--label", "docs", "--label", "agent", "--json")
    assert json.loads(result.output)["labels"] == ["docs", "agent"]

    listed = cli("tickets", "list")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].split() == ["id", "state", "labels", "title"]
    assert "T-1" in lines[1] and "Fix login" in lines[1]
    assert "docs,agent" in lines[2]

    LocalTracker(repo / ".agentctl").comment("T-1", "PR #1 opened")
    shown = cli("tickets", "show", "T-1")
    assert shown.exit_code == 0
    assert "500 on submit" in shown.output and "PR #1 opened" in shown.output
    data = json.loads(cli("tickets", "show", "t-1", "--json").output)
    assert data["id"] == "T-1" and data["state"] == "Todo"
    assert data["comments"][0]["body"] == "PR #1 opened" and data["comments"][0]["at"]


def test_list_states(repo: Path, cli: Invoke) -> None:
    tracker = LocalTracker(repo / ".agentctl")
    tracker.add("a")
    tracker.add("b")
    tracker.set_state("T-2", "Done")
    assert [t["id"] for t in json.loads(cli("tickets", "list", "--json", cwd=repo).output)] == [
        "T-1"
    ]
    done = json.loads(cli("tickets", "list", "--state", "done", "--json").output)
    assert [t["id"] for t in done] == ["T-2"]
    both = json.loads(cli("tickets", "list", "-s", "todo", "-s", "DONE", "--json").output)
    assert [t["id"] for t in both] == ["T-1", "T-2"]
    assert cli("tickets", "list", "--state", "in_review").output.strip() == "no tickets match"


def test_empty_and_errors(repo: Path, cli: Invoke) -> None:
    assert cli("tickets", "list", cwd=repo).output.strip() == "no tickets open"
    missing = cli("tickets", "show", "T-4")
    assert missing.exit_code == 2 and "no ticket 'T-4'" in missing.output
    bad = cli("tickets", "list", "--state", "shipped")
    assert bad.exit_code == 2 and "unknown ticket state 'shipped'" in bad.output


def test_linear_without_its_key_is_one_line_naming_the_variable(
    repo: Path, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LINEAR_API_KEY", raising=False)
    (repo / "agentctl.toml").write_text(
        '[tracker]\nkind = "linear"\n[tracker.linear]\nteam = "E"\n'
    )
    result = cli("tickets", "list", cwd=repo)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "LINEAR_API_KEY is not set" in lines[0] and "export LINEAR_API_KEY=" in lines[0]
