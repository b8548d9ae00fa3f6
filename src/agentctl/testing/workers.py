"""A real redis-server on a random loopback port, and real ``agentctl worker`` processes.

For the Celery executor's tests and ``benchmarks/executor.py``: the broker is Redis
itself (no stand-in), started with no persistence so that a kill and a start is a
broker that lost its queue; each worker runs in its own session (a test kills its
whole process group) with its own clone and ``--hostname``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REDIS = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """``redis-server`` on 127.0.0.1; ``kill`` and ``start`` again keep the port."""

    home: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        if REDIS is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        argv = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.home)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


@dataclass
class WorkerProcess:
    """``agentctl --workspace HEAD --set executor.celery.workspace=CLONE worker ...``."""

    head: Path
    clone: Path
    name: str
    log: Path
    concurrency: int = 2
    env: Mapping[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        argv = [sys.executable, "-m", "agentctl", "--workspace", str(self.head)]
        argv += ["--set", f"executor.celery.workspace={self.clone}", "worker"]
        argv += ["--hostname", self.name, "--concurrency", str(self.concurrency)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=self.clone,
                env=dict(os.environ if self.env is None else self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """``kill -9`` of the worker's whole process group."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 15.0) -> None:
        """A warm stop (SIGTERM), then SIGKILL for the group if it does not end in time."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        self.kill()  # and pool processes left behind


def clone(bare: Path, path: Path, *, remote: str | None = None, name: str = "worker") -> Path:
    """A worker's clone of ``bare``, its ``origin`` set to ``remote`` (the forge's URL)."""
    subprocess.run(["git", "clone", "-q", str(bare), str(path)], check=True)
    for args in (
        ["config", "user.name", name],
        ["config", "user.email", f"{name}@agentctl.invalid"],
        *([["remote", "set-url", "origin", remote]] if remote else []),
    ):
        subprocess.run(["git", *args], cwd=path, check=True)
    return path
