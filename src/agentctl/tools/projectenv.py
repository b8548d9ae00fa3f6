"""What makes a worktree's own code win for the commands run in it.

A src-layout project installed editable (``pip install -e .``) has its venv point at
the MAIN checkout's ``src``; ``python -m pytest`` in a worktree would import that
copy and test the wrong code. So every command agentctl runs in a worktree (gates,
the merge queue's gate, an agent's ``bash``) gets ``[project] pythonpath`` first on
``PYTHONPATH``, as absolute folders of the worktree it runs in: ``PYTHONPATH``
comes before the venv's site-packages and its editable-install entries.

A project with compiled extensions also needs them built in the worktree:
``[project] setup_command`` (e.g. ``python setup.py build_ext --inplace``) runs under
the gate policy once per worktree and head; a marker in the worktree's own git
folder (gone with the worktree) says it ran, so a resume does not run it again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl import atomic
from agentctl.repo import gitops

if TYPE_CHECKING:
    from agentctl.tools.gate import GateRun, GateSandbox

MARKER = "agentctl-setup.json"


def repository_root(cwd: Path) -> Path:
    """The checkout (main or linked worktree) holding ``cwd``: the nearest ``.git``."""
    start = Path(os.path.realpath(cwd))
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def with_pythonpath(env: Mapping[str, str], pythonpath: Sequence[str], cwd: Path) -> dict[str, str]:
    """``env`` with ``pythonpath`` (relative to the checkout of ``cwd``) first on PYTHONPATH."""
    out = dict(env)
    if not pythonpath:
        return out
    root = repository_root(cwd)
    first = [str(root / entry) for entry in pythonpath]
    rest = [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p and p not in first]
    out["PYTHONPATH"] = os.pathsep.join([*first, *rest])
    return out


def _git_dir(tree: Path) -> Path | None:
    """The worktree's own git folder (``.git/worktrees/<name>`` for a linked one)."""
    dot = repository_root(tree) / ".git"
    if dot.is_dir():
        return dot
    try:
        line = dot.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not line.startswith("gitdir:"):
        return None
    path = Path(line[len("gitdir:") :].strip())
    return path if path.is_absolute() else (dot.parent / path).resolve()


def _head(tree: Path) -> str:
    return gitops.head(tree)


def setup_done(tree: Path, command: str) -> bool:
    """Whether ``command`` already ran (and passed) in ``tree`` at its current head."""
    git_dir = _git_dir(tree)
    if git_dir is None:
        return False
    try:
        seen = json.loads((git_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(seen, dict) and seen == {"command": command, "head": _head(tree)}


def ensure_setup(
    tree: Path, policy: GateSandbox, *, home: Path, timeout: float = 1800.0
) -> GateRun | None:
    """Run ``policy.setup_command`` in ``tree`` unless it ran there at this head.

    None when there is nothing to run; else how it ended (a refused or failing run
    leaves no marker, so it runs again next time).
    """
    from agentctl.tools.gate import run_gate  # lazy: tools.gate imports with_pythonpath from here

    command = (policy.setup_command or "").strip()
    if not command or setup_done(tree, command):
        return None
    head = _head(tree)
    done = run_gate(command, tree, home=home, timeout=timeout, policy=policy)
    git_dir = _git_dir(tree)
    if done.passed and git_dir is not None:
        atomic.write_text(git_dir / MARKER, json.dumps({"command": command, "head": head}))
    return done
