"""Crash-safe file writes: temp file, fsync, rename, fsync the directory.

A reader sees either the old file whole or the new file whole, whatever kills the
writer and wherever. Temp files are named ``.<name>.tmp.<pid>.<random>`` beside the
target so the rename stays within one filesystem; readers ignore them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Any

from agentctl import failpoints
from agentctl.errors import StateError

TEMP_MARK = ".tmp."


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically; ``durable`` also survives power loss."""
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}.{os.urandom(4).hex()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            failpoints.hit("atomic.after_temp_write")
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        failpoints.hit("atomic.before_rename")
        os.replace(tmp, path)
        failpoints.hit("atomic.after_rename")
        if durable:
            fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _state_error(exc, path) from exc


def write_text(path: Path, text: str, *, durable: bool = True) -> None:
    write_bytes(path, text.encode("utf-8"), durable=durable)


def write_json(path: Path, value: Any, *, durable: bool = True) -> None:
    """Write ``value`` as indented JSON (humans ``cat`` these files) atomically."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    write_text(path, text, durable=durable)


def _state_error(exc: OSError, path: Path) -> StateError:
    if exc.errno == errno.ENOSPC:
        return StateError(
            f"disk full: {path} (while writing it; the previous version is intact)",
            path=path,
            hint="free some space and run the command again",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StateError(f"cannot write {path}: {exc.strerror}", path=path)
    return StateError(f"cannot write {path}: {exc.strerror or exc}", path=path)


def is_temp(name: str) -> bool:
    """True for the temp files ``write_bytes`` leaves behind when killed mid-write."""
    return name.startswith(".") and TEMP_MARK in name


def disk_full(exc: BaseException | None) -> str | None:
    """The path a full disk was met at, if ``exc`` (or what caused it) is ENOSPC."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return str(exc.filename or "?")
        if isinstance(exc, StateError) and str(exc).startswith("disk full"):
            return str(exc.path or "?")
        exc = exc.__cause__ or exc.__context__
    return None


RESERVE = ".reserve"  # a run's ballast: freed on a full disk so its ending can still be written


def reserve(path: Path, size: int = 256 * 1024) -> None:
    """Set ``size`` bytes aside at ``path`` (best effort: a full disk already, then none)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
    except OSError:
        path.unlink(missing_ok=True)


def release(path: Path) -> None:
    """Give the space set aside by ``reserve`` back (nothing if there is none)."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
