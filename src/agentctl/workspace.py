"""Where agentctl works: the workspace root, its git repository and its state folder.

Discovery is pure path walking (no git process, no GitPython) because every
command does it, ``runs list`` included, and it must be fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agentctl.errors import WorkspaceError

CONFIG_NAME = "agentctl.toml"
STATE_NAME = ".agentctl"


@dataclass(frozen=True, slots=True)
class Workspace:
    """``root`` holds agentctl.toml (or stands in for it); state lives in ``state_dir``."""

    root: Path
    config_file: Path | None
    git_root: Path | None
    state_dir: Path

    @property
    def roles_dir(self) -> Path:
        return self.root / "roles"

    @property
    def pipelines_dir(self) -> Path:
        return self.root / "pipelines"


def git_root_of(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` holding ``.git`` (a dir or a worktree file)."""
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def _outside_agentctl_worktree(path: Path) -> Path:
    """A worktree agentctl made lives in <ws>/.agentctl/worktrees/<x>: its workspace is <ws>."""
    parts = path.parts
    for i in range(len(parts) - 1):
        if parts[i] == STATE_NAME and parts[i + 1] == "worktrees":
            return Path(*parts[:i])
    return path


def find_workspace(cwd: Path | None = None, explicit: Path | None = None) -> Workspace:
    """Find the workspace for ``cwd`` (or the ``--workspace`` directory).

    Walks up from ``cwd`` to the git root (or the filesystem root outside git) for
    ``agentctl.toml``. Without one, the shipped defaults apply and state lives at
    the git root, else in ``cwd``.
    """
    if explicit is not None:
        root = explicit.expanduser().resolve()
        if not root.is_dir():
            raise WorkspaceError(
                f"--workspace {explicit}: no such directory", hint="give an existing directory"
            )
        config = root / CONFIG_NAME
        return Workspace(
            root, config if config.is_file() else None, git_root_of(root), root / STATE_NAME
        )
    here = _outside_agentctl_worktree(Path(cwd or os.getcwd()).resolve())
    git_root = git_root_of(here)
    stop = git_root or Path(here.anchor)
    for directory in (here, *here.parents):
        config = directory / CONFIG_NAME
        if config.is_file():
            return Workspace(directory, config, git_root_of(directory), directory / STATE_NAME)
        if directory == stop:
            break
    root = git_root or here
    return Workspace(root, None, git_root, root / STATE_NAME)


def user_config_dir() -> Path:
    """``$AGENTCTL_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/agentctl``, else ``~/.config/agentctl``."""
    explicit = os.environ.get("AGENTCTL_CONFIG_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "agentctl"


def shipped_dir(name: str) -> Path:
    """The shipped ``roles`` or ``pipelines`` folder: in the wheel, or the source checkout."""
    package = Path(__file__).resolve().parent
    packaged = package / "_shipped" / name
    if packaged.is_dir():
        return packaged
    return package.parents[1] / name  # an editable install runs from the repository


def shipped_defaults() -> Path:
    return Path(__file__).resolve().parent / "defaults.toml"
