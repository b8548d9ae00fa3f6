"""The plumbing under ``tools.mcp``: an asyncio loop in a daemon thread, and a server's stderr.

``Loop.run`` hands a coroutine to the loop and waits for it, never longer than its
timeout. The loop thread is the only one that starts MCP servers, so its children
are exactly the servers (``spawned_groups``), each killed by the kernel when that
thread ends (``dying_with_agent``). ``StderrTail`` is the pipe a stdio
server writes its stderr to: forwarded to ours (the run's process.log) up to a
limit, its last line kept for the error that says why a server did not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
FORWARD_LIMIT = 64 * 1024  # characters of one server's stderr copied to process.log

# Run first in a stdio server's process: be SIGKILLed when the thread that started it
# ends (the agent killed by any means, or its loop stopped), then become the server.
_DIE_WITH_AGENT = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    os._exit(1)  # the agent is gone already
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as exc:
    sys.stderr.write(f"{sys.argv[2]}: {exc.strerror}\\n")
    os._exit(127)
"""


def dying_with_agent(command: Sequence[str]) -> list[str]:
    """``command`` behind a few lines of Python that tie its life to this process's thread
    (Linux; elsewhere it only runs ``command``). The SDK starts a server in a session of
    its own, so the agent's process-group kill alone would not reach it."""
    return [sys.executable, "-I", "-c", _DIE_WITH_AGENT, str(os.getpid()), *command]


class Loop:
    """An asyncio event loop running in a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="agentctl-mcp", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """``coro``'s result; ``TimeoutError`` (and the coroutine cancelled) after ``timeout``."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def spawned_groups(self) -> list[int]:
        """The process groups of the servers this loop started that are still running
        (each leads its own); empty where /proc does not list a thread's children."""
        tid = self._thread.native_id
        try:
            with open(f"/proc/self/task/{tid}/children") as children:
                pids = [int(p) for p in children.read().split()]
        except (OSError, ValueError):
            return []
        groups = []
        for pid in pids:
            with contextlib.suppress(OSError):
                if os.getpgid(pid) == pid:
                    groups.append(pid)
        return groups

    def stop(self) -> None:
        """Stop the loop and its thread (tasks still pending are left behind)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=2.0)
        if not self._thread.is_alive():
            self.loop.close()


def kill_groups(pgids: Iterable[int]) -> None:
    """SIGKILL each process group; one already gone is no error."""
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


class StderrTail:
    """A pipe for one server's stderr, read by a daemon thread."""

    def __init__(self, server_id: str, redact: Callable[[str], str] = lambda s: s) -> None:
        read_fd, write_fd = os.pipe()
        self.writer = os.fdopen(write_fd, "w")  # what the server is started with as stderr
        self._prefix = f"mcp[{server_id}]: "
        self._redact = redact
        self._last = ""
        self._forwarded = 0
        self._thread = threading.Thread(target=self._read, args=(read_fd,), daemon=True)
        self._thread.start()

    def spawned(self) -> None:
        """The server has its own copy of the pipe: close ours, so its end is our EOF."""
        with contextlib.suppress(OSError):
            self.writer.close()

    def last_line(self, wait: float = 0.0) -> str:
        """The last non-empty line so far, after up to ``wait`` seconds for the pipe's end
        (a server that exited has written all it will)."""
        self._thread.join(wait)
        return self._last

    def _read(self, fd: int) -> None:
        with open(fd, "rb") as pipe:
            for raw in pipe:
                line = self._redact(raw.decode("utf-8", "replace").rstrip())
                if not line:
                    continue
                self._last = line[-500:]
                if self._forwarded < FORWARD_LIMIT:
                    self._forwarded += len(line)
                    with contextlib.suppress(OSError, ValueError):
                        sys.stderr.write(f"{self._prefix}{line}\n")
                        if self._forwarded >= FORWARD_LIMIT:
                            sys.stderr.write(f"{self._prefix}(the rest of its stderr is dropped)\n")
                        sys.stderr.flush()
