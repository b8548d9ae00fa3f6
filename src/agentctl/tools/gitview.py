"""git_diff and git_status: read-only looks at the workspace's repository.

With a base (a review, or any agent on a branch of its own), ``git_diff`` shows the
branch's whole change since its merge base with that base — commits and uncommitted
edits alike, new files included — stat first, then the patch, cut whole files at a
time to a size bound with a line that says what was left out. The pipeline commits
before it reviews, so the uncommitted diff alone would show the reviewer nothing.

``GIT_OPTIONAL_LOCKS=0`` keeps a status from taking the index lock (an agent's look
must not make a concurrent commit fail). ``git diff`` ignores that setting and
refreshes the index anyway (git 2.39), so it reads a private copy of the index.
External diff drivers, textconv filters and fsmonitor hooks are switched off so a
read runs no configured program.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from agentctl.tools import confine, shell
from agentctl.tools.result import Output, ToolError

GIT_TIMEOUT = 60.0
DIFF_LIMIT = 12_000  # characters of patch; under the toolbox's own cut, so this one speaks
_MAX_NEW = 2000  # new files a diff lists; beyond that a tree is not a reviewable change
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./@{}~^-]*")
_SAFE = ("-c", "core.fsmonitor=false", "-c", "core.pager=cat", "--no-pager")


def _git(root: str, env: Mapping[str, str], args: list[str], timeout: float) -> Output:
    git = shutil.which("git")
    if git is None:
        raise ToolError("git is not installed")
    quiet = {**env, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
    done = shell.run(
        [git, "-C", root, *_SAFE, *args], cwd=root, env=quiet, timeout=min(timeout, GIT_TIMEOUT)
    )
    meta = {"exit_code": done.exit_code, "timed_out": done.timed_out}
    if done.timed_out:
        return Output(f"git {args[0]} timed out\n{done.output}", meta, is_error=True)
    if done.exit_code != 0:
        return Output(f"git {args[0]} failed (exit {done.exit_code})\n{done.output}", meta, True)
    return Output(done.output, meta)


def git_diff(
    root: str,
    env: Mapping[str, str],
    staged: bool = False,
    path: str | None = None,
    timeout: float = GIT_TIMEOUT,
    *,
    base: str | None = None,
    default_base: str | None = None,
    limit: int = DIFF_LIMIT,
) -> Output:
    """The unstaged (or staged) diff, optionally of one path; with a base, the branch's change.

    ``base`` is what the model asked for (a bad one is an error); ``default_base`` is
    the one the agent was started with: when it does not resolve, the plain diff
    follows a line that says so.
    """
    meta: dict[str, str] = {}
    pathspec: list[str] = []
    if path is not None:
        target = confine.resolve(root, path)
        pathspec = ["--", target.rel]
        meta["path"] = target.path
    note = ""
    against: Against | None = None
    if base is not None:
        against = resolve_base(root, env, base, timeout)
    elif default_base is not None:
        try:
            against = resolve_base(root, env, default_base, timeout)
        except ToolError as exc:
            note = f"({exc.message}; showing uncommitted changes only)\n"
    with tempfile.TemporaryDirectory(prefix="agentctl-diff-") as scratch:
        index = _private_index(root, env, scratch, timeout)
        private = {**env, "GIT_INDEX_FILE": index} if index else dict(env)
        if against is not None:
            out = _branch_diff(root, private, against, staged, pathspec, timeout, limit, index)
            return Output(out.text, {**out.meta, **meta, "base": against.name}, out.is_error)
        args = ["diff", *_DIFF_FLAGS]
        if staged:
            args.append("--staged")
        out = _git(root, private, args + pathspec, timeout)
    text = out.text if out.text.strip() or out.is_error else "(no changes)"
    return Output(note + text, {**out.meta, **meta}, out.is_error)


_DIFF_FLAGS = ("--no-ext-diff", "--no-textconv", "--no-color")


@dataclass(frozen=True, slots=True)
class Against:
    """A base as asked for (``name``), the commit it names, and the merge base with HEAD."""

    name: str
    commit: str
    merge_base: str


def resolve_base(
    root: str, env: Mapping[str, str], base: str, timeout: float = GIT_TIMEOUT
) -> Against:
    """``base`` checked (a ref or commit, never an option) and its merge base with HEAD."""
    if not _REF.fullmatch(base) or ".." in base or base.endswith((".", "/", ".lock")):
        raise ToolError(f"base {base!r} is not a branch, tag or commit name")
    found = _git(root, env, ["rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], timeout)
    if found.is_error or not found.text.strip():
        raise ToolError(f"base {base!r} does not name a commit in this repository")
    commit = found.text.strip()
    merged = _git(root, env, ["merge-base", commit, "HEAD"], timeout)
    if merged.is_error or not merged.text.strip():
        raise ToolError(f"base {base!r} has no common history with HEAD")
    return Against(base, commit, merged.text.strip())


def branch_stat(root: str, env: Mapping[str, str], base: str, timeout: float = GIT_TIMEOUT) -> str:
    """``git diff --stat`` of the branch's whole change against ``base`` (for a prompt)."""
    against = resolve_base(root, env, base, timeout)
    with tempfile.TemporaryDirectory(prefix="agentctl-diff-") as scratch:
        index = _private_index(root, env, scratch, timeout)
        private = {**env, "GIT_INDEX_FILE": index} if index else dict(env)
        if index:
            _add_untracked(root, private, timeout)
        out = _git(root, private, ["diff", *_DIFF_FLAGS, "--stat", against.merge_base], timeout)
    if out.is_error:
        raise ToolError(out.text)
    return out.text.rstrip("\n") or "(no changes)"


def _branch_diff(
    root: str,
    env: Mapping[str, str],
    against: Against,
    staged: bool,
    pathspec: list[str],
    timeout: float,
    limit: int,
    index: str | None,
) -> Output:
    """Stat, then the patch since the merge base, whole files kept until ``limit``."""
    if index and not staged:
        _add_untracked(root, env, timeout)  # only into the private index: new files show
    args = ["diff", *_DIFF_FLAGS, *(["--staged"] if staged else []), against.merge_base]
    stat = _git(root, env, [*args, "--stat", *pathspec], timeout)
    if stat.is_error:
        return stat
    if not stat.text.strip():
        return Output(f"(no changes against {against.name})", stat.meta)
    patch = _git(root, env, [*args, *pathspec], timeout)
    if patch.is_error:
        return patch
    kept, cut_note = bound_patch(patch.text, limit)
    head = f"Change against {against.name} (merge base {against.merge_base[:12]}):\n"
    meta = {**patch.meta, "truncated": bool(cut_note)}
    return Output(f"{head}{stat.text.rstrip()}\n\n{kept}{cut_note}", meta)


def bound_patch(patch: str, limit: int) -> tuple[str, str]:
    """``patch`` cut to ``limit`` characters whole files at a time, and the line saying so.

    Files are kept in order; one too big to fit is left out and smaller ones after it
    still come, so a huge generated file does not hide the code. When no file fits,
    the first is kept in part, cut at a line end.
    """
    if len(patch) <= limit:
        return patch, ""
    files = [f for f in re.split(r"(?m)^(?=diff --git )", patch) if f]
    kept: list[int] = []
    size = 0
    for i, chunk in enumerate(files):
        if size + len(chunk) <= limit:
            kept.append(i)
            size += len(chunk)
    partial = ""
    if not kept:
        head = files[0][:limit]
        partial = head[: head.rfind("\n") + 1]
    body = "".join(files[i] for i in kept) + partial
    skipped = [i for i in range(len(files)) if i not in kept and not (partial and i == 0)]
    left = [_file_name(files[i]) for i in skipped]
    total = len(patch.encode())
    parts = [f"{total - len(body.encode())} of {total} bytes of the patch not shown"]
    if partial:
        parts.append(f"{_file_name(files[0])} cut after {len(partial.encode())} bytes")
    if left:
        shown = ", ".join(left[:10]) + (f" and {len(left) - 10} more" if len(left) > 10 else "")
        parts.append(f"{len(left)} of {len(files)} files left out: {shown}")
    line = f"[diff cut: {'; '.join(parts)}. Ask git_diff for one path to see more.]\n"
    return body, ("" if body.endswith("\n") or not body else "\n") + line


def _file_name(chunk: str) -> str:
    first = chunk.split("\n", 1)[0]
    match = re.match(r"diff --git a/(.*) b/", first)
    return match.group(1) if match else first[:80]


def _add_untracked(root: str, env: Mapping[str, str], timeout: float) -> None:
    """Mark new (not ignored) files as intended, in the private index, so a diff shows them."""
    listed = _git(root, env, ["ls-files", "-z", "--others", "--exclude-standard"], timeout)
    new = [p for p in listed.text.split("\0") if p][:_MAX_NEW] if not listed.is_error else []
    if new:  # named one by one: ``add -A`` would also write blobs of the modified files
        _git(root, env, ["add", "--intent-to-add", "--", *new], timeout)


def git_status(root: str, env: Mapping[str, str], timeout: float = GIT_TIMEOUT) -> Output:
    """Branch and short status, untracked files included."""
    return _git(root, env, ["status", "--short", "--branch"], timeout)


def current_branch(root: str, env: Mapping[str, str], timeout: float = GIT_TIMEOUT) -> str | None:
    """The branch checked out in ``root``; None when detached or not in a repository."""
    try:
        out = _git(root, env, ["symbolic-ref", "--short", "-q", "HEAD"], timeout)
    except ToolError:
        return None
    if out.is_error:
        return None
    return out.text.strip() or None


def _private_index(root: str, env: Mapping[str, str], scratch: str, timeout: float) -> str | None:
    """A copy of the repository's index in ``scratch``, or None when there is none."""
    where = _git(root, env, ["rev-parse", "--git-path", "index"], timeout)
    if where.is_error:
        return None
    source = os.path.join(root, where.text.strip())
    copy = os.path.join(scratch, "index")
    try:
        shutil.copyfile(source, copy)
    except OSError:
        return None
    return copy
