"""Keep every path an agent names inside its workspace, and off agentctl's own files.

Two layers. ``resolve`` decides from the path text and the file system as it is now
(NUL, ``~``, ``..`` escapes, absolute paths, symlinks anywhere in the path, protected
files) before any I/O on the target. Then ``open_read`` and ``write_atomic`` walk the
canonical path again one component at a time from a directory fd with ``O_NOFOLLOW``:
a symlink planted or swapped in between the two (the classic bypass of agent
sandboxes) makes the operation fail instead of writing through it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from agentctl import atomic
from agentctl.errors import StateError
from agentctl.tools.result import ToolError

# Deeper paths are refused on write and not entered by searches: a 1,500-level tree
# breaks recursive walkers (git's, Python's os.walk) for every later agent.
MAX_DEPTH = 64
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PROC_FD = Path("/proc/self/fd")


@dataclass(frozen=True, slots=True)
class Target:
    """A checked path: canonical absolute text and its components below the root."""

    path: str
    parts: tuple[str, ...]

    @property
    def rel(self) -> str:
        return "/".join(self.parts) or "."


def canonical_root(root: str | os.PathLike[str]) -> str:
    """The workspace as a real path; it must be an existing directory."""
    real = os.path.realpath(root)
    if not os.path.isdir(real):
        raise ToolError(f"workspace {real} is not a directory")
    return real


def inside(path: str, root: str) -> bool:
    return root in (os.sep, path) or path.startswith(root + os.sep)


def protected(parts: tuple[str, ...]) -> str | None:
    """Why a write to these workspace-relative parts is refused, or None.

    Compared case-insensitively so a case-folding file system gives no way round.
    """
    low = tuple(p.casefold() for p in parts)
    if ".git" in low:
        return "git metadata (.git) is read-only for agents"
    if low and low[0] == ".agentctl":
        return "agentctl's state folder (.agentctl) is read-only for agents"
    if low == ("agentctl.toml",):
        return "agentctl's configuration (agentctl.toml) is read-only for agents"
    if low == ("heartbeat.md",):
        return "the orchestrator's checklist (HEARTBEAT.md) is read-only for agents"
    if len(low) == 2 and low[0] in ("roles", "pipelines") and low[1].endswith(".toml"):
        return f"agentctl's configuration ({parts[0]}/*.toml) is read-only for agents"
    return None


def resolve(root: str, raw: str, *, write: bool = False) -> Target:
    """Check ``raw`` (relative to the canonical ``root``, or absolute) before any I/O on it.

    Raises ``ToolError`` naming the canonical path and the reason when it is refused.
    """
    if "\x00" in raw:
        shown = os.path.join(root, raw).replace("\x00", "\\x00")
        raise ToolError(f"refused: {shown}: the path contains a NUL character", path=shown)
    if not raw.strip():
        raise ToolError("refused: an empty path", path="")
    if raw.startswith("~"):
        home = os.path.expanduser(raw)
        raise ToolError(f"refused: {home}: '~' paths point outside the workspace {root}", path=home)
    joined = raw if os.path.isabs(raw) else os.path.join(root, raw)
    canon = os.path.realpath(joined)
    if not os.path.isabs(raw) and _climbs_out(raw):
        raise ToolError(f"refused: {canon}: '..' escapes the workspace {root}", path=canon)
    if not inside(canon, root):
        lexical = os.path.normpath(joined)
        why = (
            "a symlink in the path leads outside the workspace"
            if inside(lexical, root)
            else "it is outside the workspace"
        )
        raise ToolError(f"refused: {canon}: {why} {root}", path=canon)
    parts = tuple(Path(canon).relative_to(root).parts) if canon != root else ()
    if write:
        if not parts:
            raise ToolError(f"refused: {canon}: that is the workspace directory", path=canon)
        reason = protected(parts)
        if reason:
            raise ToolError(f"refused: {canon}: {reason}", path=canon)
        if len(parts) > MAX_DEPTH:
            shown = canon if len(canon) <= 200 else canon[:100] + "…" + canon[-60:]
            raise ToolError(
                f"refused: {shown}: the path is {len(parts)} levels deep; at most "
                f"{MAX_DEPTH} are allowed",
                path=canon,
            )
    return Target(canon, parts)


def _climbs_out(raw: str) -> bool:
    depth = 0
    for part in raw.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


@contextmanager
def _fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def _changed(target: Target, what: str) -> ToolError:
    return ToolError(
        f"refused: {target.path}: {what} changed into a symlink or non-directory after "
        "the path was checked",
        path=target.path,
    )


def _open_dir_chain(root: str, target: Target, parts: tuple[str, ...], *, create: bool) -> int:
    """An fd of ``root/parts`` reached without following any symlink (made if ``create``)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                st = os.lstat(part, dir_fd=fd)
                if stat.S_ISLNK(st.st_mode):
                    raise _changed(target, f"the component {part!r}") from exc
                raise ToolError(
                    f"{target.path}: the component {part!r} is not a directory",
                    path=target.path,
                ) from exc
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_read(root: str, target: Target) -> int:
    """An fd of the regular file ``target``, opened with no symlink anywhere on the way."""
    if not target.parts:
        raise ToolError(f"{target.path} is a directory", path=target.path)
    try:
        with _fd(_open_dir_chain(root, target, target.parts[:-1], create=False)) as dirfd:
            name = target.parts[-1]
            try:
                # O_NONBLOCK: opening a FIFO must not hang the agent.
                fd = os.open(
                    name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dirfd
                )
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise _changed(target, "the file") from exc
                raise
    except FileNotFoundError as exc:
        raise ToolError(f"{target.path} does not exist", path=target.path) from exc
    except IsADirectoryError as exc:
        raise ToolError(f"{target.path} is a directory", path=target.path) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise ToolError(f"{target.path} is {kind}", path=target.path)
    os.set_blocking(fd, True)
    return fd


@contextmanager
def opened(root: str, target: Target) -> Iterator[BinaryIO]:
    """``target`` open for reading in binary (see ``open_read``), closed on leaving."""
    with os.fdopen(open_read(root, target), "rb") as fh:
        yield fh


def read_bytes(root: str, target: Target) -> bytes:
    with _fd(open_read(root, target)) as fd, os.fdopen(fd, "rb", closefd=False) as fh:
        return fh.read()


def write_atomic(root: str, target: Target, data: bytes) -> bool:
    """Replace ``target`` with ``data`` atomically, creating parents; True if it was new.

    The parent is reached through an ``O_NOFOLLOW`` directory chain and written through
    ``/proc/self/fd/N`` so a swapped parent cannot redirect the write; the final name
    is replaced by rename, which never writes through a symlink, and a symlink found
    there is refused. An existing file keeps its permission bits.
    """
    if protected(target.parts) or not target.parts:
        raise ToolError(f"refused: {target.path}: protected", path=target.path)
    name = target.parts[-1]
    dirfd = _open_dir_chain(root, target, target.parts[:-1], create=True)
    with _fd(dirfd):
        where = os.path.realpath(_PROC_FD / str(dirfd)) if _PROC_FD.is_dir() else None
        if where is not None and not inside(where, root):
            raise _changed(target, "a parent directory")
        try:
            old = os.lstat(name, dir_fd=dirfd)
        except FileNotFoundError:
            old = None
        if old is not None:
            if stat.S_ISLNK(old.st_mode):
                raise _changed(target, "the file")
            if stat.S_ISDIR(old.st_mode):
                raise ToolError(f"{target.path} is a directory", path=target.path)
            if not stat.S_ISREG(old.st_mode):
                raise ToolError(f"{target.path} is not a regular file", path=target.path)
        dest = _PROC_FD / str(dirfd) / name if where is not None else Path(target.path)
        try:
            atomic.write_bytes(dest, data)
        except StateError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
                why = "the disk is full (the previous version is intact)"
            else:
                why = (cause.strerror if isinstance(cause, OSError) else None) or str(exc)
            raise ToolError(f"cannot write {target.path}: {why}", path=target.path) from exc
        if old is not None:
            _keep_mode(dirfd, name, old.st_mode)
    return old is None


def _keep_mode(dirfd: int, name: str, mode: int) -> None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    except OSError:
        return
    with _fd(fd):
        os.fchmod(fd, stat.S_IMODE(mode))
