"""``[executor] max_processes``: agents and pipelines past the limit wait, visibly.

Real worker processes started by separate CLI invocations, a scripted model and
real kill -9: the slot of a killed worker frees itself (flock), nothing leaks.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentctl.commands.demo import prepare
from agentctl.runs import TERMINAL, RunRecord, RunStore, read_journal
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke, git
from tests.test_pipeline_run import APPROVE, FIX


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = prepare(tmp_path / "project", server, scripted=False).root
    with (root / "agentctl.toml").open("a") as config:
        config.write("\n[executor]\nmax_processes = 1\n")
    git(root, "commit", "-qam", "one process at a time")
    monkeypatch.chdir(root)
    return root


def record(project: Path, run_id: str) -> RunRecord:
    return RunStore(project / ".agentctl").get(run_id).load()


def until(what: Callable[[], bool], why: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def test_an_agent_past_the_limit_waits_visibly_and_starts_when_a_killed_one_frees_its_slot(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script_for("demo-coder", "first task", Turn.text("never heard", delay=60))
    server.script_for("demo-coder", "second task", Turn.text("Done second."))
    first = cli("agent", "run", "dev", "first task", "--detach").stdout.strip()
    until(lambda: record(project, first).status == "running", "the first agent did not start")
    second = cli("agent", "run", "dev", "second task", "--detach").stdout.strip()
    third = cli("agent", "run", "dev", "third task", "--detach").stdout.strip()
    waiting = "waiting for a process slot (1/1 running)"
    for run_id in (second, third):
        until(lambda r=run_id: record(project, r).reason == waiting, f"{run_id} did not say why")
    listed = cli("runs", "list")
    assert listed.stdout.count(waiting) == 2, listed.stdout
    assert record(project, second).status == "pending"

    assert cli("runs", "cancel", third).exit_code == 0  # canceled while it waited
    holder = record(project, first)
    assert holder.pgid is not None
    os.killpg(holder.pgid, signal.SIGKILL)  # no goodbye: only the kernel frees the slot

    until(lambda: record(project, second).status == "succeeded", "the second never started")
    assert record(project, third).status == "canceled"
    until(
        lambda: (
            not any(
                e.get("type") == "process.spawned" and _alive(int(e["pid"]))
                for e in read_journal(
                    RunStore(project / ".agentctl").get(third).paths.events
                ).events
            )
        ),
        "the canceled waiter did not leave",
    )
    asked = [r for r in server.requests if r.model == "demo-coder"]
    assert not any("third task" in str(r.body) for r in asked)  # it never ran


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_a_pipeline_and_its_step_agents_share_one_slot(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    """With room for one process, a whole pipeline still runs: no deadlock on its agents."""
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", *APPROVE)
    result = cli("pipeline", "run", "demo", "--ticket", "T-1")
    assert result.exit_code == 0, result.output
    (pipeline,) = RunStore(project / ".agentctl").list(kind="pipeline")
    assert pipeline.record is not None and pipeline.record.status == "succeeded"
    agents = RunStore(project / ".agentctl").list(kind="agent")
    assert agents and all(a.record and a.record.status in TERMINAL for a in agents)


def test_the_live_table_and_the_progress_lines_say_why_a_run_waits() -> None:
    from agentctl.cli.agent import describe
    from agentctl.cli.pipeline_view import PipelineView

    waited = {"type": "process.waiting", "running": 8, "limit": 8}
    assert describe(waited) == "… waiting for a process slot (8/8 running)"
    view = PipelineView("pipeline demo · run R", [("implement", "role")])
    view.apply(waited)
    assert view.table().caption == "waiting for a process slot (8/8 running)"
    view.apply(
        {"type": "step.start", "step": "implement", "kind": "role", "ts": "2026-12-05T16:00:00Z"}
    )
    assert view.table().caption is None
