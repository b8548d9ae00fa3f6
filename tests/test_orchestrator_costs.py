"""The orchestrator's own model calls count under the chat that started it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.commands.demo import prepare
from agentctl.config import load_config
from agentctl.cost.report import build_report
from agentctl.orchestrator.tick import Tick
from agentctl.orchestrator.triage import triage
from agentctl.runs import TERMINAL, RunStore
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.trackers.local import LocalTracker
from agentctl.workspace import find_workspace
from tests.conftest import git

MODEL = "demo-reviewer"


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = prepare(tmp_path / "project", server, scripted=False).root
    roles = root / "roles" / "orchestrator.toml"
    roles.write_text(
        roles.read_text()
        .replace('model = "sonnet"', f'model = "{MODEL}"')
        .replace('fallback = ["haiku"]', "fallback = []")
    )
    git(root, "commit", "-qam", "the orchestrator on a scripted model")
    monkeypatch.chdir(root)
    return root


def roles_under(root: Path, run_id: str) -> dict[str, int]:
    report = build_report(root / ".agentctl", by="role", since=None, run=run_id)
    return {row.key: row.calls for row in report.rows}


def test_a_triage_call_is_the_chats_child(project: Path, server: LLMServer) -> None:
    config = load_config(find_workspace(project))
    chat = RunStore(project / ".agentctl").create("chat", input={}, role="main")
    server.script(
        MODEL, Turn.tool_call("decide", {"decisions": [{"ticket": "T-1", "action": "skip"}]})
    )
    ticket = LocalTracker(project / ".agentctl").get("T-1")
    decisions, problem = triage(config, [ticket], [], parent_id=chat.id)
    assert problem is None and [d.action for d in decisions] == ["skip"]
    assert roles_under(project, chat.id) == {"orchestrator": 1}


def test_a_triage_whose_chat_is_gone_is_still_recorded(project: Path, server: LLMServer) -> None:
    config = load_config(find_workspace(project))
    server.script(MODEL, Turn.tool_call("decide", {"decisions": []}))
    ticket = LocalTracker(project / ".agentctl").get("T-1")
    assert triage(config, [ticket], [], parent_id="20261205T000000Z-chat-gone")[1] is None
    (run,) = RunStore(project / ".agentctl").list(kind="orchestrator")
    assert run.record is not None and run.record.parent_id is None
    assert roles_under(project, run.id) == {"orchestrator": 1}


def test_a_heartbeat_duty_of_a_chat_started_tick_is_the_chats_child(
    project: Path, server: LLMServer
) -> None:
    (project / "HEARTBEAT.md").write_text("# Duties\n\n- every 30m: Check that main is green\n")
    LocalTracker(project / ".agentctl").set_state("T-1", "Canceled")
    store = RunStore(project / ".agentctl")
    chat = store.create("chat", input={}, role="main")
    server.script(MODEL, Turn.text("main is green"))
    config = load_config(find_workspace(project))
    assert Tick(config, parent_id=chat.id).run().duties == ["Check that main is green"]
    deadline = time.monotonic() + 30
    while not any(x.record and x.record.status in TERMINAL for x in store.list(kind="agent")):
        assert time.monotonic() < deadline, "the duty's agent did not finish"
        time.sleep(0.1)
    assert roles_under(project, chat.id) == {"orchestrator": 1}
