"""A dev agent killed mid-step: resumed from its transcript by its pipeline, within bound.

Every test runs real pipelines, agents and git through the CLI or a real tick, with
a scripted model; the kills are ``AGENTCTL_FAILPOINT`` (``name@PATH`` fires once).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.agent.supervise import deaths
from agentctl.commands.demo import prepare
from agentctl.config import load_config
from agentctl.cost.ledger import Ledger
from agentctl.orchestrator.tick import Tick
from agentctl.runs import TERMINAL, RunStore, pid_alive, read_journal
from agentctl.testing.llm_server import LLMServer
from agentctl.trackers.local import LocalTracker
from agentctl.workspace import find_workspace
from tests.conftest import Invoke, git
from tests.test_orchestrator_tick import settle
from tests.test_pipeline_run import APPROVE, FIX, merged_once, pr_records, unittest_passes


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    demo = prepare(tmp_path / "project", server, scripted=False)
    monkeypatch.chdir(demo.root)
    return demo.root


def dev_agents(project: Path) -> list[str]:
    return [
        x.id
        for x in RunStore(project / ".agentctl").list(kind="agent")
        if x.record is not None and x.record.role == "dev"
    ]


def dead_and_running(project: Path) -> bool:
    """The dev agent's run says ``running`` but its process is gone."""
    agents = dev_agents(project)
    if not agents:
        return False
    record = RunStore(project / ".agentctl").get(agents[0]).load()
    return record.status == "running" and not pid_alive(record.pid or 0, record.pid_start)


def unfinished(project: Path) -> list[str]:
    return [
        f"{x.id} {x.record.status}"
        for x in RunStore(project / ".agentctl").list()
        if x.record is not None and x.record.status not in TERMINAL
    ]


# A tool call cut short is not run again on resume: the model hears that it was
# interrupted and asks again (after ``after_tool_run`` the edit is already there, so
# the repeat fails harmlessly). An answer not yet in the transcript is asked again.
AGAIN = [FIX[0], *FIX]


@pytest.mark.parametrize(
    "point", ["agent.after_tool_start", "agent.after_tool_run", "agent.after_llm_call"]
)
def test_a_dev_agent_killed_once_is_resumed_by_its_pipeline_which_merges_once(
    project: Path,
    server: LLMServer,
    cli: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    point: str,
) -> None:
    server.script("demo-coder", *AGAIN)
    server.script("demo-reviewer", *APPROVE)
    marker = tmp_path / "killed-once"
    monkeypatch.setenv("AGENTCTL_FAILPOINT", f"{point}@{marker}")  # the first hit only
    result = cli("pipeline", "run", "demo", "--ticket", "T-1")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert marker.exists()  # it did die
    assert merged_once(project) and unittest_passes(project)
    assert len(pr_records(project)) == 1
    (dev,) = dev_agents(project)
    run = RunStore(project / ".agentctl").get(dev)
    assert run.load().status == "succeeded"
    kinds = [e["type"] for e in read_journal(run.paths.events).events]
    assert kinds.count("resume.requested") == 1 and deaths(run) == 1
    assert unfinished(project) == []
    server.assert_complete()


def test_a_dev_agent_killed_every_time_fails_its_pipeline_after_max_resumes(
    project: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (project / "agentctl.toml").open("a") as config:
        config.write('\n[orchestrator]\ntriage = "none"\nmax_resumes = 2\n')
    git(project, "commit", "-qam", "orchestrator settings")
    tracker = LocalTracker(project / ".agentctl")
    for ticket in tracker.list():
        if ticket.id != "T-1":
            tracker.set_state(ticket.id, "Canceled")
    server.script("demo-coder", *[FIX[0]] * 3)  # each worker asks for the edit, and dies
    monkeypatch.setenv("AGENTCTL_FAILPOINT", "agent.after_tool_run")
    tick = Tick(load_config(find_workspace(project)))
    assert tick.run().started
    settle(project)
    (pipeline,) = RunStore(project / ".agentctl").list(kind="pipeline")
    assert pipeline.record is not None and pipeline.record.status == "failed"
    assert "the dev agent was killed 3 times (max_resumes 2)" in str(pipeline.record.reason)
    (dev,) = dev_agents(project)
    run = RunStore(project / ".agentctl").get(dev)
    assert run.load().status == "failed" and "killed 3 times" in str(run.load().reason)
    # Three paid calls, none reported by the agent itself: its output says what the
    # ledger does (the 100-ticket soak found this gap).
    spent = Ledger(project / ".agentctl").spent(since=None, run_ids={dev})
    assert spent > 0 and run.read_output() == {
        "ending": "killed",
        "reason": run.load().reason,
        "cost_usd": str(spent),
    }
    report = Tick(load_config(find_workspace(project))).run()
    assert [f for f in report.failed if f.startswith("T-1: pipeline ")], report.failed
    assert "killed 3 times" in tracker.get("T-1").comments[-1]
    assert unfinished(project) == []
    assert pr_records(project) == []
    server.assert_complete()


def test_a_pipeline_failed_by_the_reaper_ends_its_dead_child_with_it(
    project: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (project / "agentctl.toml").open("a") as config:
        config.write('\n[orchestrator]\ntriage = "none"\nmax_resumes = 0\n')
    git(project, "commit", "-qam", "orchestrator settings")
    tracker = LocalTracker(project / ".agentctl")
    for ticket in tracker.list():
        if ticket.id != "T-1":
            tracker.set_state(ticket.id, "Canceled")
    server.script("demo-coder", *FIX)
    # The pipeline dies once its agent is started; the agent dies in its first tool.
    monkeypatch.setenv("AGENTCTL_FAILPOINT", "pipeline.after_child_start,agent.after_tool_run")
    assert Tick(load_config(find_workspace(project))).run().started
    store = RunStore(project / ".agentctl")
    (pipeline,) = store.list(kind="pipeline")
    deadline = time.monotonic() + 30
    while not dead_and_running(project):  # the agent died mid-tool, its pipeline before it
        assert time.monotonic() < deadline, unfinished(project)
        time.sleep(0.05)
    (dev,) = dev_agents(project)
    child = store.get(dev)
    monkeypatch.delenv("AGENTCTL_FAILPOINT")
    report = Tick(load_config(find_workspace(project))).run()
    assert any("marked failed" in line for line in report.reaped), report.reaped
    assert store.get(pipeline.id).load().status == "failed"
    assert child.load().status == "failed"
    assert f"its pipeline {pipeline.id} failed" in str(child.load().reason)
    assert unfinished(project) == []
    # The agent paid for its first call and died before saying so: its output says it now.
    spent = Ledger(project / ".agentctl").spent(since=None, run_ids={dev})
    assert spent > 0
    assert child.read_output()["cost_usd"] == str(spent)


def test_a_pipeline_killed_between_its_agents_death_and_its_resume_leaves_the_spend_said(
    project: Path,
    server: LLMServer,
    cli: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The agent dies; its pipeline marks it failed, and dies too before resuming it.
    The agent's output says what the ledger says it spent (the soak once found it
    without one), and a resume of the pipeline still continues it and merges once."""
    server.script("demo-coder", *AGAIN)
    server.script("demo-reviewer", *APPROVE)
    points = f"agent.after_tool_run@{tmp_path / 'a'},pipeline.after_agent_died@{tmp_path / 'p'}"
    monkeypatch.setenv("AGENTCTL_FAILPOINT", points)
    assert cli("pipeline", "run", "demo", "--ticket", "T-1").exit_code != 0
    (dev,) = dev_agents(project)
    run = RunStore(project / ".agentctl").get(dev)
    output = run.read_output()
    spent = Ledger(project / ".agentctl").spent(since=None, run_ids={dev})
    assert run.load().status == "failed" and spent > 0
    assert output is not None and output["ending"] == "killed"
    assert output["cost_usd"] == str(spent)
    monkeypatch.delenv("AGENTCTL_FAILPOINT")
    (pipeline,) = RunStore(project / ".agentctl").list(kind="pipeline")
    result = cli("runs", "resume", pipeline.id)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert merged_once(project) and dev_agents(project) == [dev]
    assert run.load().status == "succeeded" and (run.read_output() or {})["ending"] != "killed"
