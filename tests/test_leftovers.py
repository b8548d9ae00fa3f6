"""Nothing left behind: a merge removes its worktree and branch, gc removes a failed run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.commands.demo import prepare
from agentctl.config import load_config
from agentctl.orchestrator.tick import Tick
from agentctl.repo import gitops
from agentctl.runs import TERMINAL, RunStore, read_journal
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.trackers.local import LocalTracker
from agentctl.workspace import find_workspace
from tests.conftest import Invoke, git

FIX = [
    Turn.tool_call("edit", {"path": "calc.py", "old": "return a - b", "new": "return a + b"}),
    Turn.text("Fixed."),
]
APPROVE = [Turn.tool_call("finish", {"verdict": "approve", "summary": "Good.", "comments": []})]


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo's project and config, without the demo's script."""
    demo = prepare(tmp_path / "project", server, scripted=False)
    monkeypatch.chdir(demo.root)
    return demo.root


def worktrees(repo: Path) -> list[str]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def agent_branches(repo: Path) -> list[str]:
    return git(repo, "branch", "--list", "--format=%(refname:short)", "agentctl/*").split()


def nothing_left(repo: Path) -> bool:
    return worktrees(repo) == [str(repo.resolve())] and agent_branches(repo) == []


def merges(repo: Path) -> list[dict[str, object]]:
    prs = [json.loads(p.read_text()) for p in (repo / ".agentctl" / "prs").glob("*.json")]
    return [pr for pr in prs if pr["state"] == "merged"]


def test_a_merged_feature_pipeline_leaves_no_worktree_and_no_branch(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", *APPROVE)
    result = cli("pipeline", "run", "demo", "--ticket", "T-1")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert len(merges(project)) == 1
    assert nothing_left(project), (worktrees(project), agent_branches(project))
    server.assert_complete()


def test_kill_9_between_the_merge_and_the_clean_up_then_resume_cleans_up(
    project: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", *APPROVE)
    monkeypatch.setenv("AGENTCTL_FAILPOINT", "mergequeue.before_cleanup")
    first = cli("pipeline", "run", "demo", "--ticket", "T-1")
    monkeypatch.delenv("AGENTCTL_FAILPOINT")
    (listing,) = RunStore(project / ".agentctl").list(kind="pipeline")
    assert first.exit_code == 1 and listing.record and listing.record.status == "running"
    assert len(merges(project)) == 1 and agent_branches(project) == ["agentctl/T-1"]
    resumed = cli("runs", "resume", listing.id)
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    assert len(merges(project)) == 1 and len(list((project / ".agentctl" / "prs").iterdir())) == 1
    events = read_journal(listing.dir / "events.jsonl").events
    assert sum(e["type"] == "merge.result" for e in events) == 1
    assert nothing_left(project), (worktrees(project), agent_branches(project))
    assert LocalTracker(project / ".agentctl").get("T-1").state == "Done"
    server.assert_complete()


def test_a_failed_run_keeps_its_worktree_until_gc_removes_it_with_the_run(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    attempts = [
        Turn.tool_call("write", {"path": f"note{i}.txt", "content": "not a fix"}) for i in range(3)
    ]
    server.script("demo-coder", *[t for a in attempts for t in (a, Turn.text("done?"))])
    result = cli("pipeline", "run", "feature", "--task", "Fix add()")
    assert result.exit_code == 1
    (tree,) = worktrees(project)[1:]  # kept for inspection, with the branch
    assert (Path(tree) / "note0.txt").is_file() and len(agent_branches(project)) == 1
    state = project / ".agentctl"
    (state / "homes" / "20260101-000000-dead01").mkdir(parents=True)  # a killed agent's
    (state / "orchestrator" / "gates" / "pr-7").mkdir(parents=True)  # a killed tick's gate
    (state / "gates" / "123-abcd").mkdir(parents=True)
    gc = cli("runs", "gc", "--older-than", "0s")
    assert gc.exit_code == 0, gc.stdout + gc.stderr
    assert f"removed worktree {tree}" in gc.stdout
    assert nothing_left(project), (worktrees(project), agent_branches(project))
    assert RunStore(state).list() == []
    for folder in ("homes", "gates", "orchestrator/gates"):
        assert list((state / folder).iterdir()) == [], folder
    server.assert_complete()


def test_gc_keeps_a_worktree_a_newer_run_or_an_open_pr_still_needs(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", *APPROVE)
    result = cli("pipeline", "run", "coding-pipeline", "--ticket", "T-1")
    assert result.exit_code == 0, result.stdout + result.stderr
    gc = cli("runs", "gc", "--older-than", "0s")
    assert gc.exit_code == 0
    assert "branch agentctl/T-1 is open pull request #1" in gc.stdout
    assert agent_branches(project) == ["agentctl/T-1"] and len(worktrees(project)) == 2


# -- the orchestrator's merge queue ---------------------------------------------------


@pytest.fixture
def orchestrated(project: Path, server: LLMServer) -> Path:
    calc = project / "calc.py"
    calc.write_text(calc.read_text().replace("return a - b", "return a + b"))
    git(project, "commit", "-qam", "fix add() on main")
    with (project / "agentctl.toml").open("a") as config:
        config.write('\n[orchestrator]\ntriage = "none"\nmax_parallel = 1\n')
    git(project, "commit", "-qam", "orchestrator settings")
    server.script_for(
        "demo-coder",
        "T-1:",
        Turn.tool_call("write", {"path": "feature.py", "content": "FEATURE = 1\n"}),
        Turn.text("Added."),
    )
    server.script_for("demo-reviewer", "T-1:", *APPROVE)
    return project


def tick(root: Path):  # type: ignore[no-untyped-def]
    return Tick(load_config(find_workspace(root))).run()


def settle(root: Path, timeout: float = 90.0) -> None:
    store = RunStore(root / ".agentctl")
    deadline = time.monotonic() + timeout
    while any(
        x.record and x.record.kind == "pipeline" and x.record.status not in TERMINAL
        for x in store.list()
    ):
        assert time.monotonic() < deadline, "pipelines did not finish"
        time.sleep(0.1)


def test_a_ticket_merged_by_the_orchestrator_leaves_nothing_behind(
    orchestrated: Path, server: LLMServer
) -> None:
    tick(orchestrated)
    settle(orchestrated)
    assert agent_branches(orchestrated) == ["agentctl/T-1"]  # the PR waits for the queue
    report = tick(orchestrated)
    assert len(report.merged) == 1, report
    assert (orchestrated / "feature.py").is_file()
    assert nothing_left(orchestrated), (worktrees(orchestrated), agent_branches(orchestrated))
    server.assert_complete()


def test_kill_9_in_the_tick_between_merge_and_clean_up_the_next_tick_cleans_up(
    orchestrated: Path, server: LLMServer
) -> None:
    tick(orchestrated)
    settle(orchestrated)
    killed = subprocess.run(
        [sys.executable, "-m", "agentctl", "orchestrate", "--once"],
        cwd=orchestrated,
        env={**os.environ, "AGENTCTL_FAILPOINT": "mergequeue.before_cleanup"},
        capture_output=True,
    )
    assert killed.returncode == -9
    assert len(merges(orchestrated)) == 1 and agent_branches(orchestrated) == ["agentctl/T-1"]
    report = tick(orchestrated)
    assert len(report.merged) == 1  # the ticket moved to Done; no second merge
    assert len(merges(orchestrated)) == 1
    assert LocalTracker(orchestrated / ".agentctl").get("T-1").state == "Done"
    assert nothing_left(orchestrated), (worktrees(orchestrated), agent_branches(orchestrated))
    server.assert_complete()


# -- the git helpers ----------------------------------------------------------------


def test_remove_merged_keeps_a_dirty_worktree_and_a_branch_checked_out_elsewhere(
    repo: Path,
) -> None:
    state = repo / ".agentctl"
    tree = gitops.ensure_worktree(repo, state, "agentctl/T-1", "main")
    (tree / "README.md").write_text("changed by hand\n")
    sha = gitops.head(tree)
    kept = gitops.remove_merged(repo, state, "agentctl/T-1", sha)
    assert kept and "uncommitted changes" in kept[0]
    assert tree.is_dir() and agent_branches(repo) == ["agentctl/T-1"]
    git(tree, "checkout", "-q", "--", "README.md")
    (tree / "build.log").write_text("a gate's leftover, untracked\n")
    assert gitops.remove_merged(repo, state, "agentctl/T-1", sha) == []
    assert not tree.exists() and agent_branches(repo) == []
    assert gitops.remove_merged(repo, state, "agentctl/T-1", sha) == []  # again: nothing to do
    git(repo, "branch", "agentctl/T-2")
    git(repo, "checkout", "-q", "agentctl/T-2")
    why = gitops.delete_branch(repo, "agentctl/T-2")
    assert "checked out in" in why and agent_branches(repo) == ["agentctl/T-2"]


def test_a_branch_with_new_work_since_its_merge_is_not_a_leftover(repo: Path) -> None:
    state = repo / ".agentctl"
    merged = gitops.head(repo)
    tree = gitops.ensure_worktree(repo, state, "agentctl/T-1", "main")
    (tree / "new.txt").write_text("new work\n")
    gitops.commit_all(tree, "new work on the same branch name")
    assert gitops.remove_merged(repo, state, "agentctl/T-1", merged) == []
    assert tree.is_dir() and agent_branches(repo) == ["agentctl/T-1"]
    gitops.remove_worktree(repo, tree)
    assert "commits beyond" in gitops.delete_branch(repo, "agentctl/T-1", merged_head=merged)
