"""The merge queue: the only code in agentctl that merges.

One queue per repository, a ``flock`` held for the whole of one merge, so two merges
never race for the base branch. Each merge brings the branch up to date with the base
(a merge commit, no rebase), runs the project's test command on exactly that result,
and asks the forge to merge *that* SHA and nothing else. A model's words never reach
this far: the gates are an approval recorded on the pull request and a green command.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from agentctl import failpoints
from agentctl.errors import AgentctlError, MergeRefusedError
from agentctl.forges import Forge, PullRequest
from agentctl.repo import gitops
from agentctl.repo.protected import Rules, describe, protected_changes
from agentctl.runs.journal import Journal
from agentctl.tools.feedback import gate_feedback
from agentctl.tools.gate import GateSandbox, run_gate
from agentctl.tools.programs import cannot_run
from agentctl.tools.projectenv import ensure_setup

Status = Literal["merged", "conflict", "gate_failed", "already_merged", "not_approved", "protected"]
GATE_TAIL = 4000  # characters of a green gate's output kept in the outcome
GATE_FEEDBACK = 3000  # characters of a red gate's feedback (the orchestrator keeps 3000)
NO_GATE = "no test command configured: set [project] test_command"


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    status: Status
    sha: str | None = None  # merged: the new base head; otherwise the branch head seen
    detail: str = ""
    gate_output: str = ""
    kept: tuple[str, ...] = ()  # after a merge: what was left in place, and why

    @property
    def merged(self) -> bool:
        return self.status in ("merged", "already_merged")

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "sha": self.sha,
            "detail": self.detail,
            "gate_output": self.gate_output,
            "kept": list(self.kept),
        }


def queue_lock(state_dir: Path) -> Path:
    return state_dir / "locks" / "merge-queue.lock"


def merge_pr(
    forge: Forge,
    pr_number: int,
    *,
    repo_root: Path,
    state_dir: Path,
    gate: str | None,
    timeout: float = 1800,
    journal: Journal | None = None,
    env: Mapping[str, str] | None = None,
    protected: Rules | None = None,
    sandbox: GateSandbox | None = None,
    gate_home: Path | None = None,
) -> MergeOutcome:
    """Merge one approved pull request if its up-to-date head passes ``gate``.

    ``env`` is the gate's environment (default: the basic allowlist of a tool, never
    the orchestrator's tracker or forge tokens: the gate runs code an agent wrote).
    A change that touches a protected path (``protected``: the workspace's rules; the
    built-in ones at the repository and workspace roots when not given) is never
    merged here, approved or not: the PR is marked as waiting for a person and the
    outcome is ``protected``.
    ``sandbox`` is the gate policy (default: ``auto``, no network, the state folder
    hidden); ``gate_home`` the gate's own home, inside the caller's run directory
    (default: a fresh folder under the state folder), removed after the gate.
    """
    if sandbox is None:
        sandbox = GateSandbox(state_dir=state_dir, workspace=repo_root)
    if gate_home is None:
        gate_home = state_dir / "gates" / f"{os.getpid()}-{secrets.token_hex(4)}"
    with gitops.locked(queue_lock(state_dir)):
        pr = forge.get_pr(pr_number)
        if pr.state == "merged":  # a crash may have come before the clean-up: finish it
            kept = remove_merged(repo_root, state_dir, pr.branch, pr.head_sha)
            return MergeOutcome(
                "already_merged", pr.merge_sha, f"#{pr.number} is already merged", kept=kept
            )
        if pr.state != "open":
            return MergeOutcome("not_approved", pr.head_sha, f"#{pr.number} is {pr.state}")
        base_ref = forge.fetch(pr.base)
        branch_ref = forge.fetch(pr.branch)  # the head's commits are here from now on
        rules = protected or _default_rules(repo_root, state_dir)
        touched = protected_changes(repo_root, base_ref, branch_ref, rules=rules)
        if touched:
            reason = describe(touched)
            if not pr.needs_person:
                forge.mark_needs_person(pr.number, reason)
            return MergeOutcome("protected", pr.head_sha, f"#{pr.number}: {reason}")
        if pr.needs_person:  # marked earlier: it waits for a person whatever it holds now
            return MergeOutcome("protected", pr.head_sha, f"#{pr.number}: {pr.needs_person}")
        if not _approved(pr, repo_root, base_ref):
            return MergeOutcome(
                "not_approved",
                pr.head_sha,
                f"#{pr.number} has no approval of its head {pr.head_sha[:12]} "
                f"(review: {pr.review_state})",
            )
        if not gate:
            return MergeOutcome("gate_failed", pr.head_sha, NO_GATE)
        if pr.checks in ("failure", "error"):
            return MergeOutcome(
                "gate_failed", pr.head_sha, f"the forge's checks on {pr.head_sha[:12]}: {pr.checks}"
            )
        tree = gitops.ensure_worktree(repo_root, state_dir, pr.branch, branch_ref)
        caught_up = _catch_up(tree, pr)
        if caught_up is not None:
            return caught_up
        update = gitops.update_from_base(tree, base_ref)
        if not update.ok:
            return MergeOutcome("conflict", update.sha, update.detail)
        built = _setup(tree, timeout, sandbox, gate_home)
        if built is not None:
            return MergeOutcome("gate_failed", update.sha, built[0], built[1])
        passed, output = _run_gate(gate, tree, timeout, env, sandbox, gate_home)
        if not passed:
            return MergeOutcome("gate_failed", update.sha, f"`{gate}` failed", output)
        if update.sha != pr.head_sha:
            forge.publish(pr.branch)  # the forge merges what it has: the gated SHA
        outcome = _merge(forge, pr, update.sha, journal, output)
        failpoints.hit("mergequeue.before_cleanup")
        return replace(outcome, kept=remove_merged(repo_root, state_dir, pr.branch, update.sha))


def remove_merged(repo_root: Path, state_dir: Path, branch: str, sha: str) -> tuple[str, ...]:
    """The merged branch's worktree and local branch go (only after the merge is journaled).

    The forge's own branch stays: a forge that deletes merged branches does it itself.
    """
    if not sha:
        return ()
    return tuple(gitops.remove_merged(repo_root, state_dir, branch, sha))


def _default_rules(repo_root: Path, state_dir: Path) -> Rules:
    """The built-in rules at the repository root and the workspace (the state dir's parent)."""
    try:
        rel = state_dir.resolve().parent.relative_to(repo_root.resolve()).as_posix()
    except ValueError:
        rel = "."
    return Rules(roots=("",) if rel == "." else ("", rel.casefold() + "/"))


def _catch_up(tree: Path, pr: PullRequest) -> MergeOutcome | None:
    """Bring the local branch to the pull request's head; None when it is there (or ahead).

    A remote forge's branch may have moved (a push by hand); a local branch ahead of
    it holds a merge of the base an interrupted queue made. Diverged is a conflict.
    """
    local = gitops.head(tree)
    if local == pr.head_sha or not pr.head_sha:
        return None
    repo = gitops.open_repo(tree)
    if gitops.is_ancestor(tree, local, pr.head_sha):
        gitops.run_git(repo, "merge", "--ff-only", "--quiet", pr.head_sha)
        return None
    if gitops.is_ancestor(tree, pr.head_sha, local):
        return None
    return MergeOutcome(
        "conflict",
        local,
        f"the local branch {pr.branch} ({local[:12]}) and the pull request's head "
        f"({pr.head_sha[:12]}) have diverged",
    )


def _merge(
    forge: Forge, pr: PullRequest, sha: str, journal: Journal | None, output: str
) -> MergeOutcome:
    """Intent (durable) → forge merge → result: a crash between is settled by SHA later."""
    if journal is not None:
        journal.append(
            "merge.intent", durable=True, pr=pr.number, branch=pr.branch, base=pr.base, sha=sha
        )
    try:
        merged = forge.merge(pr.number, expected_head=sha)
    except AgentctlError as exc:
        if journal is not None:
            journal.append("merge.result", durable=True, pr=pr.number, sha=sha, error=str(exc))
        raise
    if journal is not None:
        journal.append(
            "merge.result", durable=True, pr=pr.number, sha=sha, merge_sha=merged.merge_sha
        )
    detail = f"#{pr.number} ({pr.branch}) merged into {pr.base} at {merged.merge_sha}"
    return MergeOutcome("merged", merged.merge_sha, detail, output)


def _approved(pr: PullRequest, repo_root: Path, base_ref: str) -> bool:
    """Approved on its head, or on a head it reached only by merging its base in.

    Bringing a branch up to date adds a merge commit of already-merged code; an approval
    survives that (so a queue interrupted after the update can finish), not new work.
    """
    if pr.review_state != "none":
        return pr.review_state == "approved"
    heads = _base_merge_chain(repo_root, pr.head_sha, base_ref)
    for review in reversed(pr.reviews):
        if review.head_sha in heads:
            return review.verdict == "approve"
    return False


def _base_merge_chain(repo_root: Path, sha: str, base: str, limit: int = 20) -> set[str]:
    """``sha`` and the first parents it reached through merges whose other side is ``base``'s."""
    repo = gitops.open_repo(repo_root)
    base_sha = gitops.head(repo_root, base)
    chain = {sha}
    for _ in range(limit):
        parents = gitops.run_git(repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]
        if len(parents) != 2 or not gitops.is_ancestor(repo_root, parents[1], base_sha):
            break
        sha = parents[0]
        chain.add(sha)
    return chain


def _setup(tree: Path, timeout: float, sandbox: GateSandbox, home: Path) -> tuple[str, str] | None:
    """``[project] setup_command`` in the tree at the head it will gate, unless done there.

    None when it passed (or had nothing to do); else the detail and the output.
    """
    done = ensure_setup(tree, sandbox, home=home, timeout=timeout)
    if done is None or done.passed:
        return None
    if done.refused:
        raise MergeRefusedError(f"the merge queue's setup command cannot run: {done.output}")
    detail = f"the setup command `{sandbox.setup_command}` exited {done.exit_code}"
    return detail, done.output[-GATE_TAIL:]


def _run_gate(
    gate: str,
    tree: Path,
    timeout: float,
    env: Mapping[str, str] | None,
    sandbox: GateSandbox,
    home: Path,
) -> tuple[bool, str]:
    """Run the test command under the gate policy, in its own process group.

    A gate the policy refuses to run (strict, or root under ``auto``, without a
    working bubblewrap), or whose program is missing (exit 126/127), raises
    ``MergeRefusedError``: nothing merges, the PR stays.
    """
    done = run_gate(gate, tree, home=home, timeout=timeout, policy=sandbox, env=env)
    if done.refused:  # the machine's problem, not the branch's: nothing for a dev agent to fix
        raise MergeRefusedError(f"the merge queue's gate cannot run: {done.output}")
    setting = "[project] test_command"
    broken = None if done.timed_out else cannot_run(gate, done.exit_code, done.output, setting)
    if broken:  # 126/127: a missing program is the machine's problem too
        raise MergeRefusedError(f"the merge queue's gate cannot run: {broken}")
    if done.passed:
        return True, done.output[-GATE_TAIL:]
    # what goes back to a dev round: the command, its exit, the first failure, the summary
    feedback = gate_feedback(
        gate, done.exit_code, done.output, timed_out=done.timed_out, limit=GATE_FEEDBACK
    )
    return False, feedback
