"""A lock taken without waiting: the tick lock, a run's claim. The kernel drops an
``flock`` when its holder dies, however it dies (on NFSv4: when its lease lapses)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def try_lock(path: Path, mode: int = 0o644) -> Iterator[bool]:
    """Yield True while this process holds ``path``'s lock, False if another one does."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock
