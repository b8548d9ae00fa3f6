"""The toolchain directories a command needs to see: interpreters, virtualenvs, compilers.

In the sandbox ``/tmp`` is a fresh tmpfs and the user's home is hidden, so a project
virtualenv in a temporary folder or a toolchain installed per user (``~/.cargo``,
``~/.rustup``, ``~/.pyenv``, ``~/.nvm``) would vanish. These are found from ``PATH``,
``VIRTUAL_ENV``, ``RUSTUP_HOME`` and the absolute paths a configured command names
(the project's test command, a gate's command: never a model's own command line,
which could name any file), and bound read-only, so a gate and an agent's ``bash``
see the same toolchain.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping

# Folders of executables: they may stand for the installation above them.
_EXEC_DIRS = ("bin", "sbin")


def rustup_home(env: Mapping[str, str]) -> str | None:
    """Where rustup keeps its toolchains, when rustup is in use."""
    named = env.get("RUSTUP_HOME") or os.environ.get("RUSTUP_HOME")
    if named:
        return os.path.realpath(named) if os.path.isdir(named) else None
    for home in (env.get("HOME"), os.environ.get("HOME")):
        if home and os.path.isdir(os.path.join(home, ".rustup")):
            return os.path.realpath(os.path.join(home, ".rustup"))
    return None


def _prefixes(folder: str) -> list[str]:
    """What to bind for a folder of executables: its installation, when it is one.

    ``venv/bin`` stands for the venv, ``versions/3.12/bin`` for that Python, ``shims``
    for the version manager above; but ``~/.cargo/bin`` or ``~/go/bin`` only for
    themselves (``~/.cargo`` holds a registry token), and ``~/.local/bin`` for itself
    and the user's site-packages, not for ``~/.local/share``.
    """
    name, parent = os.path.basename(folder), os.path.dirname(folder)
    if name == "shims":
        return [parent]
    if name not in _EXEC_DIRS:
        return [folder]
    if os.path.basename(parent) == ".local":
        return [folder, os.path.join(parent, "lib")]
    installed = os.path.isfile(os.path.join(parent, "pyvenv.cfg")) or os.path.isdir(
        os.path.join(parent, "lib")
    )
    return [parent] if installed else [folder]


def _paths_in(command: str) -> list[str]:
    """The absolute paths a command line names (``/x/venv/bin/python -m pytest``)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    found = []
    for word in words:
        value = word.split("=", 1)[1] if "=" in word and not word.startswith("/") else word
        if value.startswith("/"):
            found.append(value)
    return found


def _venv_base(prefix: str) -> list[str]:
    """A virtualenv's base interpreter installation (``home`` in pyvenv.cfg)."""
    try:
        with open(os.path.join(prefix, "pyvenv.cfg"), encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            return [value.strip()]
    return []


def _interpreters(prefix: str) -> list[str]:
    """Where the ``python*`` links of an installation's ``bin`` really live."""
    folder = os.path.join(prefix, "bin")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [
        os.path.dirname(os.path.realpath(os.path.join(folder, n)))
        for n in names
        if n.startswith("python") and os.path.islink(os.path.join(folder, n))
    ]


def dirs(
    env: Mapping[str, str], commands: Iterable[str] = (), avoid: Iterable[str] = ()
) -> list[str]:
    """Toolchain installations (canonical folders) that ``env`` and ``commands`` resolve to.

    None is ``avoid`` or holds a path of it: ``~/bin`` stands for itself, not for the
    hidden home above it.
    """
    avoided = [a.rstrip("/") + "/" for a in avoid]
    seeds = [p for p in env.get("PATH", "").split(os.pathsep) if os.path.isabs(p)]
    seeds += [env[k] for k in ("VIRTUAL_ENV",) if env.get(k)]
    rustup = rustup_home(env)
    if rustup is not None:
        seeds.append(rustup)
    for command in commands:
        seeds += _paths_in(command)
    found: dict[str, None] = {}
    todo = list(seeds)
    while todo:
        path = todo.pop()
        if not os.path.exists(path):
            continue
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        for candidate in (folder, os.path.realpath(folder)):
            for wide in map(os.path.realpath, _prefixes(candidate)):
                prefix = wide
                if any(a.startswith(prefix.rstrip("/") + "/") for a in avoided):
                    prefix = os.path.realpath(candidate)  # never a hidden folder's parent
                if any(a.startswith(prefix.rstrip("/") + "/") for a in avoided):
                    continue
                if prefix in found or prefix == "/" or not os.path.isdir(prefix):
                    continue
                found[prefix] = None
                todo += _venv_base(prefix) + _interpreters(prefix)
        if not os.path.isdir(path):
            real = os.path.realpath(path)  # a linked executable: its installation too
            todo.append(os.path.dirname(real))
    return _outermost(found)


def _outermost(paths: Iterable[str]) -> list[str]:
    """Drop the folders that another in the list contains."""
    kept: list[str] = []
    for path in sorted(paths, key=len):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept
