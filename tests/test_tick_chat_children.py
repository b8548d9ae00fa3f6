"""Runs a chat started are the tick's to reap and watch; the chat itself is never
canceled for being quiet (a person may leave it open for hours)."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

from agentctl.config import load_config
from agentctl.orchestrator.tick import Tick
from agentctl.runs import RunStore, utc_now
from agentctl.workspace import find_workspace
from tests.test_orchestrator_tick import project, server  # noqa: F401  (fixtures)


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
