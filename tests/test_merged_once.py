"""A branch whose PR is merged is never opened, updated or moved backwards again."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentctl.config import load_config
from agentctl.forges.local import LocalForge
from agentctl.pipeline.mergequeue import merge_pr
from agentctl.runs import RunStore
from agentctl.testing.llm_server import LLMServer
from agentctl.tools.gate import GateSandbox
from agentctl.trackers.local import LocalTracker
from agentctl.workspace import find_workspace
from tests import test_orchestrator_tick as ticks
from tests.conftest import Invoke, git
from tests.test_orchestrator_tick import script_features
from tests.test_pipeline_run import pr_records

server = ticks.server  # the same fixtures as the tick tests
project = ticks.project


def test_a_pipeline_killed_through_its_pr_then_resumed_after_the_merge_stays_done(
    project: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = LocalTracker(project / ".agentctl")
    tracker.set_state("T-2", "Canceled")
    tracker.set_state("T-3", "Canceled")
    script_features(server, 1)
    deaths = [
        "pipeline.after_gate",  # worktree, start, update, implement, commit, gate done
        "pipeline.after_action",  # after forge.open_pr
        "pipeline.after_child_start",  # the PR step again, then the review agent starts
        "pipeline.after_action",  # after forge.review: approved, not yet In Review
    ]
    monkeypatch.setenv("AGENTCTL_FAILPOINT", deaths[0])
    assert cli("pipeline", "run", "coding-pipeline", "--ticket", "T-1").exit_code != 0
    (listing,) = RunStore(project / ".agentctl").list(kind="pipeline")
    for point in deaths[1:]:
        monkeypatch.setenv("AGENTCTL_FAILPOINT", point)
        assert cli("runs", "resume", listing.id).exit_code != 0, point
    monkeypatch.delenv("AGENTCTL_FAILPOINT")
    (pr,) = pr_records(project)  # after_child_start redid the PR step: still one PR
    assert pr["state"] == "open"
    # Meanwhile the PR is merged (as a tick would) and the ticket moved to Done.
    forge = LocalForge(project, project / ".agentctl")
    outcome = merge_pr(
        forge,
        int(str(pr["number"])),
        repo_root=project,
        state_dir=project / ".agentctl",
        gate="python -m unittest -q",
        sandbox=GateSandbox.of(load_config(find_workspace(project))),
    )
    assert outcome.merged
    tracker.set_state("T-1", "Done")
    main_before = git(project, "rev-parse", "main")
    cli("runs", "resume", listing.id)  # the pipeline comes back after its merge
    assert tracker.get("T-1").state == "Done"  # never back to In Review
    assert len(pr_records(project)) == 1
    assert git(project, "rev-parse", "main") == main_before  # no second merge
    # The same branch seen again (a crash left it): no second PR, main not merged in.
    git(project, "branch", "-f", "agentctl/T-1", str(pr["head_sha"]))
    again = forge.open_pr(branch="agentctl/T-1", base="main", title="again", body="", ticket=None)
    assert again.number == pr["number"] and again.state == "merged"
    assert len(pr_records(project)) == 1
