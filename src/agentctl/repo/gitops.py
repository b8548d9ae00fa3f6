"""Git operations of the pipelines and the merge queue, through GitPython.

Work happens in worktrees under ``.agentctl/worktrees/`` so the user's checkout is never
touched by an agent. Branches are brought up to date by *merging* the base in, never by
rebasing: the SHA a reviewer approved stays in the branch's history. Commits use the
repository's identity, or agentctl's own when the machine has none, so a fresh CI box
or container still commits.

GitPython is imported inside the functions: ``agentctl --help`` must not pay for it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.errors import (
    ConflictMarkersError,
    GitError,
    NotFoundError,
    StateError,
    WorkspaceError,
)

if TYPE_CHECKING:
    import git

FALLBACK_NAME = "agentctl"
FALLBACK_EMAIL = "agentctl@localhost"
# agentctl's state folder never belongs in a commit, even where it is not git-ignored.
_NOT_STATE = ":(exclude).agentctl"
AGENT_BRANCHES = "agentctl/"  # the branches agentctl makes (and so may delete after a merge)


@dataclass(frozen=True, slots=True)
class Update:
    """The result of bringing a branch up to date with its base."""

    ok: bool
    sha: str  # the branch head afterwards (unchanged when not ok)
    conflicts: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Worktree:
    path: Path
    head: str
    branch: str | None  # short name; None when detached


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold ``flock`` on ``path`` (created); the kernel drops it if the holder dies."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StateError(f"cannot open lock {path}: {exc.strerror or exc}", path=path) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def open_repo(path: Path) -> git.Repo:
    import git

    try:
        return git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise WorkspaceError(
            f"{path} is not a git repository", hint="run agentctl inside a git repository"
        ) from exc


def run_git(repo: git.Repo, *args: str, env: Mapping[str, str] | None = None) -> str:
    """``git args`` in the repository's work tree; its stdout, or ``GitError`` with stderr."""
    import git

    try:
        out = repo.git.execute(["git", *args], env=dict(env) if env else None)
    except git.GitCommandError as exc:
        said = str(exc.stderr or exc.stdout or "").strip().removeprefix("stderr: ").strip("'\n ")
        raise GitError(f"git {' '.join(args[:2])} failed in {repo.working_dir}: {said}") from exc
    return str(out)


def identity_env(repo: git.Repo) -> dict[str, str]:
    """Author/committer variables for what git would otherwise refuse: a missing identity."""
    env: dict[str, str] = {}
    for key, variable, fallback in (
        ("user.name", "NAME", FALLBACK_NAME),
        ("user.email", "EMAIL", FALLBACK_EMAIL),
    ):
        try:
            configured = run_git(repo, "config", "--get", key)
        except GitError:
            configured = ""
        for who in ("AUTHOR", "COMMITTER"):
            name = f"GIT_{who}_{variable}"
            if not configured and not os.environ.get(name):
                env[name] = fallback
    return env


def head(repo_or_worktree: Path, ref: str = "HEAD") -> str:
    """The commit SHA ``ref`` names; ``NotFoundError`` when it names none."""
    repo = open_repo(repo_or_worktree)
    try:
        return run_git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitError as exc:
        raise NotFoundError(f"no commit {ref!r} in {repo_or_worktree}") from exc


def is_ancestor(path: Path, ancestor: str, descendant: str) -> bool:
    return _is_ancestor(open_repo(path), ancestor, descendant)


def _is_ancestor(repo: git.Repo, ancestor: str, descendant: str) -> bool:
    import git

    try:
        repo.git.execute(["git", "merge-base", "--is-ancestor", ancestor, descendant])
    except git.GitCommandError as exc:
        if exc.status == 1:
            return False
        raise GitError(f"git merge-base failed in {repo.working_dir}: {exc.stderr}") from exc
    return True


def is_clean(path: Path, *, untracked: bool = True) -> bool:
    """No staged or unstaged changes (and, with ``untracked``, no new files) outside .agentctl."""
    mode = "--untracked-files=normal" if untracked else "--untracked-files=no"
    out = run_git(open_repo(path), "status", "--porcelain", mode, "--", ".", _NOT_STATE)
    return not out.strip()


def changed_files(worktree: Path, base: str) -> list[str]:
    """Files the branch changed since it left ``base`` (committed work only)."""
    out = run_git(open_repo(worktree), "diff", "--name-only", f"{base}...HEAD")
    return sorted(line for line in out.splitlines() if line)


def current_branch(worktree: Path) -> str | None:
    """The checked-out branch (even before a first commit); None: detached, or no repo."""
    try:
        return run_git(open_repo(worktree), "symbolic-ref", "--short", "-q", "HEAD") or None
    except (GitError, WorkspaceError):
        return None


def list_worktrees(repo_root: Path) -> list[Worktree]:
    """Every worktree of the repository, the main one first."""
    out = run_git(open_repo(repo_root), "worktree", "list", "--porcelain")
    found: list[Worktree] = []
    for block in out.strip().split("\n\n"):
        fields = dict(line.partition(" ")[::2] for line in block.splitlines() if line)
        if "worktree" not in fields:
            continue
        branch = fields.get("branch")
        found.append(
            Worktree(
                Path(fields["worktree"]),
                fields.get("HEAD", ""),
                branch.removeprefix("refs/heads/") if branch else None,
            )
        )
    return found


def worktree_path(state_dir: Path, branch: str) -> Path:
    return state_dir / "worktrees" / branch.replace("/", "-")


def ensure_worktree(repo_root: Path, state_dir: Path, branch: str, base: str) -> Path:
    """The worktree of ``branch`` (made from ``base`` if the branch is new); idempotent."""
    with locked(state_dir / "locks" / "worktrees.lock"):
        repo = open_repo(repo_root)
        run_git(repo, "worktree", "prune")
        for tree in list_worktrees(repo_root):
            if tree.branch == branch:
                return tree.path
        path = worktree_path(state_dir, branch)
        if path.exists():
            if any(path.iterdir()):
                raise GitError(
                    f"{path} exists but is not a worktree of {branch}",
                    hint="move it away or run `agentctl runs gc`",
                )
            path.rmdir()
        path.parent.mkdir(parents=True, exist_ok=True)
        if _branch_exists(repo, branch):
            run_git(repo, "worktree", "add", "--quiet", str(path), branch)
        else:
            start = head(repo_root, base)
            run_git(repo, "worktree", "add", "--quiet", "-b", branch, str(path), start)
        return path.resolve()  # as `git worktree list` spells it, so a reuse returns the same


def _branch_exists(repo: git.Repo, branch: str) -> bool:
    try:
        run_git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
    except GitError:
        return False
    return True


def commit_all(worktree: Path, message: str) -> str | None:
    """Stage everything (.gitignore respected) and commit; None when nothing changed.

    A merge in progress (``merge_in``) is concluded, changed or not, unless a file
    still holds conflict markers: that is a ``ConflictMarkersError`` naming them.
    """
    repo = open_repo(worktree)
    merging = _merging(repo)
    run_git(repo, "add", "--all", "--", ".", _NOT_STATE)
    if merging:
        marked = _conflict_markers(repo)
        if marked:
            raise ConflictMarkersError(
                f"conflict markers are still in {', '.join(marked)}",
                hint="resolve each <<<<<<< ... >>>>>>> block, keeping what both sides need",
            )
    elif not run_git(repo, "diff", "--cached", "--name-only").strip():
        return None
    run_git(repo, "commit", "--quiet", "--no-edit", "-m", message, env=identity_env(repo))
    return head(worktree)


def _conflict_markers(repo: git.Repo) -> list[str]:
    """Staged files with leftover conflict markers (``git diff --check`` finds them)."""
    _, out, _ = repo.git.execute(
        ["git", "diff", "--cached", "--check", "HEAD"],
        with_extended_output=True,
        with_exceptions=False,
    )
    lines = str(out).splitlines()
    return sorted({line.split(":", 1)[0] for line in lines if "conflict marker" in line})


def update_from_base(worktree: Path, base: str) -> Update:
    """Merge ``base`` into the checked-out branch (a merge commit); on conflict, abort cleanly."""
    repo = open_repo(worktree)
    if _merging(repo):
        raise GitError(
            f"{worktree} has a merge in progress; cannot bring it up to date with {base}",
            hint="commit or abort it first",
        )
    update = merge_in(worktree, base)
    if not update.ok:
        run_git(repo, "merge", "--abort")  # the branch stays exactly as it was
    return update


def merge_in(worktree: Path, base: str) -> Update:
    """Merge ``base`` into the branch, *leaving* any conflicts for someone to resolve.

    Unlike ``update_from_base`` (the merge queue's, which aborts), this is for the
    pipeline before its dev step: the conflicted files keep their markers, the merge
    stays in progress, and the next ``commit_all`` concludes it. Run again while a
    merge is in progress (a resumed pipeline), it reports the same conflicts.
    """
    repo = open_repo(worktree)
    if _merging(repo):
        return Update(False, head(worktree), _unmerged(repo), f"merging {base} in progress")
    if not is_clean(worktree, untracked=False):
        raise GitError(
            f"{worktree} has uncommitted changes; cannot merge {base} into it",
            hint="commit or discard them first",
        )
    current = head(worktree)
    base_sha = head(worktree, base)
    if _is_ancestor(repo, base_sha, current):
        return Update(True, current, (), f"already up to date with {base} ({base_sha[:12]})")
    branch = current_branch(worktree) or "HEAD"
    message = f"Merge {base} ({base_sha[:12]}) into {branch}"
    try:
        run_git(
            repo, "merge", "--no-ff", "--no-edit", "-m", message, base_sha, env=identity_env(repo)
        )
    except GitError:
        conflicts = _unmerged(repo)
        if not conflicts:
            raise
        return Update(False, current, conflicts, f"conflicts with {base} in {', '.join(conflicts)}")
    return Update(True, head(worktree), (), message)


def _merging(repo: git.Repo) -> bool:
    return (Path(repo.git_dir) / "MERGE_HEAD").exists()


def _unmerged(repo: git.Repo) -> tuple[str, ...]:
    out = run_git(repo, "diff", "--name-only", "--diff-filter=U")
    return tuple(sorted({line for line in out.splitlines() if line}))


def remove_worktree(repo_root: Path, path: Path) -> None:
    """Remove a worktree (for gc), changes and all; a missing one is already removed."""
    repo = open_repo(repo_root)
    target = path.resolve()
    if any(tree.path.resolve() == target for tree in list_worktrees(repo_root)):
        if target == Path(repo.working_dir).resolve():
            raise GitError(f"{path} is the main worktree; it is never removed")
        run_git(repo, "worktree", "remove", "--force", str(path))
    elif path.exists():
        if not (path / ".git").is_file():
            raise GitError(f"{path} is not a worktree of {repo_root}; left in place")
        shutil.rmtree(path)  # a worktree git already forgot: only its files are left
    run_git(repo, "worktree", "prune")


def delete_branch(repo_root: Path, branch: str, *, merged_head: str | None = None) -> str:
    """Delete the local ``branch``; '' when done (or already gone), else why it was kept.

    Kept while a worktree has it checked out, and, with ``merged_head`` (the head a
    forge merged), when it holds commits beyond that head: work the merge did not take.
    """
    repo = open_repo(repo_root)
    if not _branch_exists(repo, branch):
        return ""
    for tree in list_worktrees(repo_root):
        if tree.branch == branch:
            return f"branch {branch} kept: it is checked out in {tree.path}"
    if merged_head is not None and not _merged_into(repo, branch, merged_head):
        return f"branch {branch} kept: it has commits beyond the merged {merged_head[:12]}"
    run_git(repo, "branch", "--quiet", "-D", branch)
    return ""


def _merged_into(repo: git.Repo, branch: str, merged_head: str) -> bool:
    """The branch's tip is ``merged_head`` or before it (the merge took all its work)."""
    try:
        tip = run_git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}")
        return tip == merged_head or _is_ancestor(repo, tip, merged_head)
    except GitError:
        return False  # the merged head is not here: nothing proves the work is safe


def remove_merged(repo_root: Path, state_dir: Path, branch: str, merged_head: str) -> list[str]:
    """After its merge: ``branch``'s worktree and the local branch go; what was kept, and why.

    Only what agentctl made: a worktree under ``<state_dir>/worktrees`` and an
    ``agentctl/*`` branch (a person's own branch, reviewed and merged, stays theirs).
    A worktree with uncommitted changes to tracked files is kept (untracked files are
    what a gate leaves: caches, build output; the pipeline committed everything
    before), and so is its branch. Idempotent: run again after a crash, it finishes.
    """
    kept: list[str] = []
    ours = (state_dir / "worktrees").resolve()
    with locked(state_dir / "locks" / "worktrees.lock"):  # as ensure_worktree: never a race
        repo = open_repo(repo_root)
        run_git(repo, "worktree", "prune")
        if _branch_exists(repo, branch) and not _merged_into(repo, branch, merged_head):
            return []  # it moved on since (the same name, new work): not a leftover
        for tree in list_worktrees(repo_root):
            if tree.branch != branch or tree.path.resolve().parent != ours:
                continue
            if not is_clean(tree.path, untracked=False) or _merging(open_repo(tree.path)):
                kept.append(f"worktree {tree.path} kept: it has uncommitted changes")
            else:
                remove_worktree(repo_root, tree.path)
        if not kept and branch.startswith(AGENT_BRANCHES):
            why = delete_branch(repo_root, branch, merged_head=merged_head)
            if why:
                kept.append(why)
    return kept


def local_branches(repo_root: Path, prefix: str) -> set[str]:
    """The local branches under ``prefix`` (e.g. ``agentctl/``), in one git call.

    A plain ``git for-each-ref``, not GitPython: every idle orchestrator tick asks, and
    importing GitPython alone costs it some 50 ms.
    """
    import subprocess

    try:
        done = subprocess.run(
            ["git", "for-each-ref", "--format=%(refname:short)", f"refs/heads/{prefix}"],
            cwd=repo_root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitError(f"git for-each-ref in {repo_root}: {exc}") from exc
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise GitError(f"git for-each-ref in {repo_root} failed: {said[0]}")
    return {line for line in done.stdout.splitlines() if line}
