"""Runs a chat started are the tick's to reap and watch; the chat itself is never
canceled for being quiet (a person may leave it open for hours)."""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

from agentctl.agent.supervise import latest_worker
from agentctl.config import load_config
from agentctl.orchestrator.tick import Tick
from agentctl.pipeline.process import start_pipeline
from agentctl.runs import RunStore, pid_alive, utc_now
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.trackers.local import LocalTracker
from agentctl.workspace import find_workspace
from tests.test_orchestrator_tick import APPROVE, project, server, settle  # noqa: F401


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


def test_a_quiet_chat_stays_but_its_silent_agent_is_canceled(project: Path) -> None:  # noqa: F811
    later = utc_now() + timedelta(hours=2)
    store = RunStore(project / ".agentctl", clock=lambda: later)
    chat_proc, agent_proc = _sleeper(), _sleeper()
    try:
        chat = store.create("chat", input={})
        chat.mark_started(chat_proc.pid, chat_proc.pid)
        chat.heartbeat()
        agent = store.create("agent", input={}, parent=chat)
        agent.mark_started(agent_proc.pid, agent_proc.pid)
        agent.heartbeat()
        report = Tick(load_config(find_workspace(project)), clock=lambda: later).run()
        assert [line.split(":")[0] for line in report.canceled] == [agent.id]
        assert agent_proc.wait(timeout=5) in (-15, -9)
        assert chat_proc.poll() is None
        assert RunStore(project / ".agentctl").get(chat.id).load().status == "running"
    finally:
        for proc in (chat_proc, agent_proc):
            proc.kill()
            proc.wait()


def test_a_dead_agent_a_chat_started_is_reaped(project: Path) -> None:  # noqa: F811
    chat_proc, gone = _sleeper(), subprocess.Popen(["true"], start_new_session=True)
    gone.wait()
    try:
        store = RunStore(project / ".agentctl")
        chat = store.create("chat", input={})
        chat.mark_started(chat_proc.pid, chat_proc.pid)
        chat.heartbeat()
        agent = store.create("agent", input={}, parent=chat)
        agent.mark_started(gone.pid, gone.pid)
        report = Tick(load_config(find_workspace(project))).run()
        assert any(line.startswith(agent.id) for line in report.reaped), report
        assert store.get(agent.id).load().status == "failed"
        assert store.get(chat.id).load().status == "running"
    finally:
        chat_proc.kill()
        chat_proc.wait()


def test_a_pipeline_whose_worker_died_before_it_began_is_started_again(
    project: Path,  # noqa: F811
    server: LLMServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Found by the 100-ticket soak: a review-pr left `pending` forever held its PR."""
    for ticket in LocalTracker(project / ".agentctl").list():
        LocalTracker(project / ".agentctl").set_state(ticket.id, "Canceled")
    config = load_config(find_workspace(project))
    server.script(
        "demo-coder",
        Turn.tool_call("write", {"path": "feature_x.py", "content": "FEATURE = 1\n"}),
        Turn.text("Added."),
    )
    server.script("demo-reviewer", APPROVE)
    monkeypatch.setenv("AGENTCTL_FAILPOINT", f"worker.before_start@{tmp_path / 'once'}")
    run = start_pipeline(config, "feature", inputs={"task": "Add a feature"}, preflight=False)
    deadline = time.monotonic() + 20
    while latest_worker(run) is None or pid_alive(latest_worker(run) or 0, None):
        assert time.monotonic() < deadline, "the worker did not die at its fail point"
        time.sleep(0.05)
    monkeypatch.delenv("AGENTCTL_FAILPOINT")
    assert run.load().status == "pending"
    soon = Tick(load_config(find_workspace(project))).run()  # a worker may be slow to start
    assert not any(line.startswith(run.id) for line in soon.reaped), soon.reaped
    later = utc_now() + timedelta(minutes=5)
    report = Tick(load_config(find_workspace(project)), clock=lambda: later).run()
    assert f"{run.id}: its worker died before it began; started again" in report.reaped
    settle(project)
    assert run.load().status == "succeeded", run.load().reason
