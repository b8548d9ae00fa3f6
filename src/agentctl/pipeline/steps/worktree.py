"""The ``git.*`` actions: the pipeline's worktree, its update from the base, the commit.

Each looks at the world first (an existing worktree, a merge already made, a commit
a crash cut short), which is what makes a resumed pipeline safe.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from agentctl.errors import AgentctlError, NotFoundError
from agentctl.pipeline.engine import Engine, StepFailed
from agentctl.pipeline.steps.common import base_of, forge_of, merged_here
from agentctl.pipeline.steps.gate import setup_worktree
from agentctl.repo.gitops import commit_all, ensure_worktree, head, merge_in
from agentctl.runs import read_journal


def git_worktree(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    ticket = engine.values.get("ticket") or {}
    branch = args.get("branch") or f"agentctl/{ticket.get('id') or engine.run.id[-6:]}"
    base = args.get("base") or base_of(engine)
    # A named branch (a review of an existing PR) starts where the forge has it; a new
    # one from the forge's base as it is now.
    forge = forge_of(engine)
    start = forge.fetch(args["branch"] if args.get("branch") else base)
    if not args.get("branch") and not _local_branch(engine.repo_root(), branch):
        # An earlier round pushed it from another checkout (a Celery worker): go on
        # from there, or its next push could not be a fast-forward.
        with contextlib.suppress(AgentctlError):  # none there: it starts from the base
            pushed = forge.fetch(branch)
            head(engine.repo_root(), pushed)
            start = pushed
    path = ensure_worktree(engine.repo_root(), engine.config.worktree_home, branch, start)
    engine.values["run"].update(branch=branch, worktree=str(path))
    engine.run.update(worktree=str(path))
    # A fresh checkout of the base: a failing setup is the environment's, not an agent's.
    setup_worktree(engine, path, retry=False)
    # Where it was made: a pipeline resumed in another checkout starts over (``Engine``).
    return {"branch": branch, "path": str(path), "checkout": str(engine.repo_root())}


def _local_branch(root: Path, branch: str) -> bool:
    try:
        head(root, f"refs/heads/{branch}")
    except NotFoundError:
        return False
    return True


CONFLICT_NOTE = (
    "Merging {base} into this branch conflicted in: {files}. Those files hold "
    "<<<<<<< / ======= / >>>>>>> blocks: resolve every one, keeping what both sides "
    "need, and remove the markers. The merge is committed for you afterwards."
)


def git_update(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    """Bring the branch up to date before the dev step; conflicts become its task.

    ``output`` is empty when the merge was clean, else the note a prompt template
    (``{steps.<id>.output}``) hands to the agent; it is in the journal, so a resumed
    pipeline tells the agent the same.
    """
    base = args.get("base") or base_of(engine)
    worktree = Path(engine.values["run"]["worktree"])
    if merged_here(engine) is not None:  # a resume after the merge: main is not merged in
        return {
            "output": "",
            "detail": "its pull request is merged: left as it is",
            "conflicts": [],
        }
    update = merge_in(worktree, forge_of(engine).fetch(base))
    if update.ok:
        return {"output": "", "detail": update.detail, "conflicts": []}
    note = CONFLICT_NOTE.format(base=base, files=", ".join(update.conflicts))
    return {"output": note, "detail": update.detail, "conflicts": list(update.conflicts)}


def git_commit(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    """Commit the agent's change; a crash after the commit is found, not committed twice."""
    worktree = Path(engine.values["run"]["worktree"])
    message = args.get("message") or f"agentctl: {engine.values['inputs'].get('task', '')}"
    subject = message.strip().splitlines()[0][:72] if message.strip() else "agentctl change"
    done = _this_attempt(engine, "git.commit")
    if done is not None:
        return {"sha": done}
    engine.run.journal.append(
        "effect.intent", durable=True, action="git.commit", base=head(worktree)
    )
    sha = commit_all(worktree, f"{subject}\n\n{message}".strip())
    if sha is None:
        raise StepFailed("the agent changed nothing: an empty change is not a passing step")
    engine.run.journal.append("effect.result", durable=True, action="git.commit", sha=sha)
    return {"sha": sha}


def _this_attempt(engine: Engine, action: str) -> str | None:
    """The result of ``action`` from an attempt of this step that a crash cut short.

    When the step's previous start has neither a finish nor a goto after it, the
    pipeline died inside it: a journaled result is reused, and an intent without a
    result is checked against the world (did HEAD move past the intent's base?).
    """
    step = engine.current_step
    events = read_journal(engine.run.paths.events).events
    starts = [
        i for i, e in enumerate(events) if e.get("type") == "step.start" and e.get("step") == step
    ]
    if len(starts) < 2:
        return None
    window = events[starts[-2] : starts[-1]]
    if any(e.get("type") in ("step.finish", "step.goto") and e.get("step") == step for e in window):
        return None  # the previous attempt ended properly: this is a new attempt
    intent = None
    for event in window:
        if event.get("action") != action:
            continue
        if event.get("type") == "effect.result":
            return str(event["sha"])
        intent = event
    if intent is not None:
        now = head(Path(engine.values["run"]["worktree"]))
        if now != intent.get("base"):
            engine.run.journal.append(
                "effect.result", durable=True, action=action, sha=now, found=True
            )
            return now
    return None
