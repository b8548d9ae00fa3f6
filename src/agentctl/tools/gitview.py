"""git_diff and git_status: read-only looks at the workspace's repository.

``GIT_OPTIONAL_LOCKS=0`` keeps a status from taking the index lock (an agent's look
must not make a concurrent commit fail). ``git diff`` ignores that setting and
refreshes the index anyway (git 2.39), so it reads a private copy of the index.
External diff drivers, textconv filters and fsmonitor hooks are switched off so a
read runs no configured program.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping

from agentctl.tools import confine, shell
from agentctl.tools.result import Output, ToolError

GIT_TIMEOUT = 60.0
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
) -> Output:
    """The unstaged (or staged) diff, optionally of one path."""
    args = ["diff", "--no-ext-diff", "--no-textconv", "--no-color"]
    if staged:
        args.append("--staged")
    meta: dict[str, str] = {}
    if path is not None:
        target = confine.resolve(root, path)
        args += ["--", target.rel]
        meta["path"] = target.path
    with tempfile.TemporaryDirectory(prefix="agentctl-diff-") as scratch:
        index = _private_index(root, env, scratch, timeout)
        out = _git(root, {**env, "GIT_INDEX_FILE": index} if index else env, args, timeout)
    text = out.text if out.text.strip() or out.is_error else "(no changes)"
    return Output(text, {**out.meta, **meta}, out.is_error)


def git_status(root: str, env: Mapping[str, str], timeout: float = GIT_TIMEOUT) -> Output:
    """Branch and short status, untracked files included."""
    return _git(root, env, ["status", "--short", "--branch"], timeout)


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
