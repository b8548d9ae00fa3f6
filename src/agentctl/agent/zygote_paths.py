"""Where a workspace's zygote lives: ``<state>/zygote/<key>.{sock,token,pid,lock,log}``.

The key is a digest of the Python executable and agentctl's version, so two
interpreters or two versions never share a zygote, and two workspaces never do
either (each has its own state directory, hidden from sandboxed agents).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agentctl import __version__
from agentctl.runs.liveness import this_host

MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; longer paths are reached through /proc


@dataclass(frozen=True, slots=True)
class ZygotePaths:
    dir: Path
    key: str

    @classmethod
    def of(cls, state_dir: Path) -> ZygotePaths:
        # The host too: a state folder shared by several machines (Celery workers) holds
        # one zygote per host, and a Unix socket never reaches across machines.
        seed = f"{sys.executable}\0{__version__}\0{this_host()}"
        digest = hashlib.sha256(seed.encode()).hexdigest()
        return cls(state_dir / "zygote", digest[:12])

    def _named(self, suffix: str) -> Path:
        return self.dir / f"{self.key}.{suffix}"

    @property
    def socket(self) -> Path:
        return self._named("sock")

    @property
    def token(self) -> Path:
        return self._named("token")

    @property
    def pid(self) -> Path:
        return self._named("pid")

    @property
    def lock(self) -> Path:
        return self._named("lock")

    @property
    def log(self) -> Path:
        return self._named("log")

    def running_pid(self) -> int | None:
        """The zygote's pid while it is alive, else None."""
        try:
            pid = int(self.pid.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid


@contextmanager
def address(path: Path) -> Iterator[str]:
    """``path`` as a Unix socket address; a long one through its directory's descriptor."""
    text = str(path)
    if len(text.encode()) <= MAX_SOCKET_PATH:
        yield text
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)
