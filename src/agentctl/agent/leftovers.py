"""What a removed run leaves outside its directory: its worktree, its branch, homes.

A merged pipeline's worktree and branch are removed by the merge queue; a failed one's
are kept for inspection until ``agentctl runs gc`` removes the run. Homes of agents and
gates are removed by their process when it ends; a killed one leaves its home behind,
and gc removes that too. Never touched: a worktree outside the state folder, a worktree
or branch a kept run still names, a branch agentctl did not make (not ``agentctl/*``),
a branch that is an open local pull request, a worktree with uncommitted changes to
tracked files (said, not removed).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from agentctl.errors import AgentctlError
from agentctl.repo import gitops
from agentctl.runs.record import TERMINAL, RunRecord
from agentctl.runs.store import RunStore
from agentctl.runs.timefmt import utc_now
from agentctl.tools.sandbox import remove_home
from agentctl.workspace import git_root_of

QUEUE_LOCK = ("locks", "merge-queue.lock")  # as mergequeue.queue_lock: gate homes live under it


def remove_leftovers(
    state_dir: Path,
    removed: Iterable[RunRecord],
    kept: Iterable[RunRecord],
    cutoff: datetime,
    *,
    dry_run: bool = False,
) -> list[str]:
    """Remove what the ``removed`` runs left; one line per thing removed or kept."""
    removed = list(removed)
    notes = _worktrees(state_dir, removed, kept, dry_run)
    gone = {r.id for r in removed}
    notes += _homes(state_dir / "homes", gone, cutoff, dry_run)
    notes += _gate_homes(state_dir, cutoff, dry_run)
    return notes


def _worktrees(
    state_dir: Path, removed: list[RunRecord], kept: Iterable[RunRecord], dry_run: bool
) -> list[str]:
    own = (state_dir / "worktrees").resolve()
    in_use = {Path(r.worktree).resolve() for r in kept if r.worktree}
    paths = {Path(r.worktree).resolve() for r in removed if r.worktree} - in_use
    paths = {p for p in paths if p.parent == own}
    root = git_root_of(state_dir.parent)
    if not paths or root is None:
        return []
    notes: list[str] = []
    trees = {t.path.resolve(): t for t in gitops.list_worktrees(root)}
    open_prs = _open_local_prs(state_dir)
    for path in sorted(paths):
        tree = trees.get(path)
        branch = tree.branch if tree else None
        if branch in open_prs:
            notes.append(f"kept {path}: branch {branch} is open pull request #{open_prs[branch]}")
            continue
        try:
            if tree is not None and path.is_dir() and not gitops.is_clean(path, untracked=False):
                notes.append(
                    f"kept {path}: it has uncommitted changes "
                    f"(remove it by hand: git worktree remove --force {path})"
                )
                continue
            if dry_run:
                ours = branch and branch.startswith(gitops.AGENT_BRANCHES)
                notes.append(
                    f"would remove worktree {path}" + (f" and branch {branch}" if ours else "")
                )
                continue
            if tree is not None or path.exists():
                gitops.remove_worktree(root, path)
                notes.append(f"removed worktree {path}")
            if branch and branch.startswith(gitops.AGENT_BRANCHES):  # a person's stays theirs
                why = gitops.delete_branch(root, branch)
                notes.append(why or f"removed branch {branch}")
        except AgentctlError as exc:
            notes.append(f"kept {path}: {exc}")
    return notes


def _open_local_prs(state_dir: Path) -> dict[str, int]:
    """Branches that are open pull requests of the local forge (the branch *is* the PR)."""
    found: dict[str, int] = {}
    for path in sorted((state_dir / "prs").glob("*.json")):
        try:
            record = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("state") == "open":
            found[str(record.get("branch"))] = int(record.get("number", 0))
    return found


def _homes(folder: Path, gone: set[str], cutoff: datetime, dry_run: bool) -> list[str]:
    """Agents' homes of removed runs, and old ones whose run no longer exists."""
    if not folder.is_dir():
        return []
    runs = {listing.id for listing in RunStore(folder.parent).list()} - gone
    notes = []
    for home in sorted(folder.iterdir()):
        if home.name in runs or (home.name not in gone and not _older(home, cutoff)):
            continue  # its run is still there: the home goes with it
        notes += _remove(home, "home", dry_run)
    return notes


def _gate_homes(state_dir: Path, cutoff: datetime, dry_run: bool) -> list[str]:
    """Homes of merge-queue gates a killed process left; only while no gate can run."""
    folders = [state_dir / "gates", state_dir / "orchestrator" / "gates"]
    homes = [h for f in folders if f.is_dir() for h in sorted(f.iterdir()) if _older(h, cutoff)]
    if not homes:
        return []
    lock = state_dir.joinpath(*QUEUE_LOCK)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return ["gate homes kept: the merge queue is running a gate"]
        notes: list[str] = []
        for home in homes:
            notes += _remove(home, "gate home", dry_run)
        return notes
    finally:
        os.close(fd)


def _older(path: Path, cutoff: datetime) -> bool:
    try:
        return path.stat().st_mtime <= cutoff.timestamp()
    except OSError:
        return False


def _remove(path: Path, what: str, dry_run: bool) -> list[str]:
    if dry_run:
        return [f"would remove {what} {path}"]
    remove_home(path)
    return [f"removed {what} {path}"]


def gc_runs(
    state_dir: Path,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    leftovers: list[str] | None = None,
) -> list[str]:
    """Remove finished runs (succeeded, failed, canceled) older than ``older_than``.

    What they left outside their directories goes with them (a failed pipeline's
    worktree and branch, a killed agent's or gate's home); ``leftovers`` hears one
    line per thing removed, or kept and why.
    """
    cutoff = utc_now() - older_than
    removed, gone, kept = [], [], []
    for listing in RunStore(state_dir).list():
        record = listing.record
        if record is None:
            continue
        if record.status not in TERMINAL or (record.finished_at or record.updated_at) > cutoff:
            kept.append(record)
            continue
        removed.append(listing.id)
        gone.append(record)
        if not dry_run:
            shutil.rmtree(listing.dir, ignore_errors=True)
    notes = remove_leftovers(state_dir, gone, kept, cutoff, dry_run=dry_run)
    if leftovers is not None:
        leftovers.extend(notes)
    return removed
