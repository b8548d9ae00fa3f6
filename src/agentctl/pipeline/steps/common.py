"""What every kind of step shares: its child run, the forge, the tracker, the base, reviews."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.config.schema import Step
from agentctl.errors import (
    AgentctlError,
)
from agentctl.forges import Review
from agentctl.pipeline.engine import Engine
from agentctl.repo.gitops import head, is_ancestor
from agentctl.runs import Run, RunStore

if TYPE_CHECKING:
    from agentctl.forges import Forge
    from agentctl.trackers import Tracker


TAIL = 4000


def step_run(engine: Engine, step: Step, data: dict[str, Any]) -> Run:
    child = RunStore(engine.config.workspace.state_dir).create(
        "step",
        input={"step": step.id, **data},
        parent=engine.run,
        step=step.id,
        pipeline=engine.name,
        workspace=str(engine.config.workspace.root),
    )
    child.mark_started(os.getpid(), os.getpgid(0))
    engine.run.journal.append("step.child", durable=True, step=step.id, run_id=child.id)
    return child


def forge_of(engine: Engine) -> Forge:
    return engine.services.forge


def tracker_of(engine: Engine) -> Tracker:
    return engine.services.tracker


def base_of(engine: Engine) -> str:
    return str(engine.values["project"]["base_branch"])


def record_review(engine: Engine, number: int, found: dict[str, Any]) -> str:
    forge = forge_of(engine)
    pr = forge.get_pr(number)
    if not any(r.head_sha == pr.head_sha and r.verdict == found["verdict"] for r in pr.reviews):
        comments = tuple(
            {"body": line[2:]}
            for line in found.get("comments", "").splitlines()
            if line.startswith("- ")
        )
        forge.add_review(
            number,
            Review(
                verdict=found["verdict"],
                summary=found.get("output", ""),
                comments=comments,
                author="agentctl review",
                head_sha=pr.head_sha,
            ),
        )
    return str(found["verdict"])


def review_on_open_pr(engine: Engine, outputs: dict[str, Any]) -> None:
    """A verdict is recorded on the branch's open pull request the moment it exists."""
    branch = engine.values["run"].get("branch")
    if not branch:
        return
    forge = forge_of(engine)
    pr = forge.find_pr(branch)
    if pr is not None and pr.state == "open":
        record_review(engine, pr.number, outputs)


def merged_here(engine: Engine) -> int | None:
    """The branch's PR when it is merged with this run's work: a resume after the merge.

    The merge queue removed the worktree (and the branch) after the merge; a merged
    PR from an earlier run of the same branch name holds none of this run's commits.
    """
    pr = forge_of(engine).find_pr(engine.values["run"]["branch"])
    if pr is None or pr.state != "merged" or not pr.head_sha:
        return None
    worktree = Path(engine.values["run"]["worktree"])
    if not worktree.is_dir():
        return pr.number
    try:
        ours = head(worktree)
        taken = ours == pr.head_sha or is_ancestor(worktree, ours, pr.head_sha)
    except AgentctlError:
        return None
    return pr.number if taken else None
