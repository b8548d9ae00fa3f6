"""Bubblewrap around an agent's commands: no network, writes only in the workspace.

The whole file system is mounted read-only, the workspace read-write, its ``.git``
read-only again; ``/tmp`` and ``/run`` are fresh tmpfs (so a workspace under /tmp is
bound after them, and host sockets under /run stay out of reach); network and PID
namespaces are new, so there is no network at all and the command's processes die
with it. Works as root and, where user namespaces are allowed, as a normal user.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

INSTALL_HINT = (
    "install bubblewrap (apt-get install bubblewrap, dnf install bubblewrap) and allow "
    "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1), "
    "or set the role's sandbox to 'auto' or 'none'"
)

_NAMESPACES = ("--unshare-net", "--unshare-pid", "--die-with-parent")


def _base(bwrap: str) -> list[str]:
    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    if os.path.isdir("/run") and not os.path.islink("/run"):
        args += ["--tmpfs", "/run"]
    return args


@functools.cache
def bwrap_status() -> tuple[bool, str]:
    """Whether bubblewrap can build our sandbox here, and why not (cached per process).

    The probe runs the real mounts and namespaces: an installed bwrap that cannot
    create a user namespace (containers, hardened kernels) counts as absent.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bubblewrap (bwrap) is not installed"
    true = shutil.which("true") or "/bin/true"
    try:
        probe = subprocess.run(
            [*_base(bwrap), *_NAMESPACES, "--", true],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            # Its own group: bwrap's inner process can outlive the probe as a zombie
            # where init reaps slowly, and must not count as a member of our group.
            start_new_session=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"bwrap does not run: {exc}"
    if probe.returncode != 0:
        lines = probe.stderr.strip().splitlines()
        return False, f"bwrap cannot create a sandbox here: {lines[-1] if lines else 'no output'}"
    return True, f"bubblewrap works ({bwrap})"


def bwrap_available() -> bool:
    return bwrap_status()[0]


def _git_dirs(root: str) -> list[str]:
    """The git metadata the workspace uses: ``.git``, or a worktree's gitdir and commondir."""
    dot_git = os.path.join(root, ".git")
    if os.path.isdir(dot_git) and not os.path.islink(dot_git):
        return [dot_git]
    if not os.path.isfile(dot_git):
        return []
    found = [dot_git]
    try:
        with open(dot_git, encoding="utf-8") as fh:
            first = fh.readline().strip()
    except OSError:
        return found
    if not first.startswith("gitdir:"):
        return found
    gitdir = os.path.realpath(os.path.join(root, first.removeprefix("gitdir:").strip()))
    dirs = [gitdir]
    try:
        with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as fh:
            dirs.append(os.path.realpath(os.path.join(gitdir, fh.read().strip())))
    except OSError:
        pass
    # Parents before children: a later bind on a nested path must not be hidden.
    return found + sorted({d for d in dirs if os.path.isdir(d)}, key=len)


def wrap(root: str, argv: list[str]) -> list[str]:
    """``argv`` run inside the sandbox for the canonical workspace ``root``."""
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [*_base(bwrap), "--bind", root, root]
    for path in _git_dirs(root):
        args += ["--ro-bind", path, path]
    return [*args, *_NAMESPACES, "--chdir", root, "--", *argv]
