"""Run one command in its own process group and leave nothing of it behind.

Its output is redacted here, at the source, by the process-global redactor (every
key value this process knows, in its common encodings): whatever runs a command —
an agent's ``bash``, a gate, a ``run`` step, the merge queue — never sees a key.

The group is killed when the command times out and also when it exits normally, so
``sleep 1000 &`` dies with it. The output pipe is read while waiting (a full pipe
must not stall the command) and drained for a short grace after the kill: a process
that escaped the group (``setsid``) and still holds the pipe cannot make us hang.
In a child subreaper (the agent worker, the pipeline process) such escapees are
adopted by us, and killed too (``reaper.kill_left``).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from agentctl import keystore
from agentctl.tools import reaper

MAX_KEEP = 2 * 1024 * 1024  # bytes of output kept for the journal (head and tail)
DRAIN_GRACE = 0.5  # seconds to finish reading the pipe once the group is dead
_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class Finished:
    """How a command ended; ``exit_code`` is negative when a signal ended it."""

    output: str
    exit_code: int
    timed_out: bool
    pgid: int
    dropped: int  # bytes of output not kept (the middle of a huge output)
    pipe_held: bool  # something outside the group still held the pipe when we stopped


class _Sink:
    """Keeps the first and the last ``keep / 2`` bytes and counts what falls between."""

    def __init__(self, keep: int) -> None:
        self.half = keep // 2
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_len = 0
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self.tail.append(chunk)
        self.tail_len += len(chunk)
        while self.tail_len > self.half:
            extra = self.tail_len - self.half
            first = self.tail[0]
            if len(first) <= extra:
                self.tail.popleft()
                self.tail_len -= len(first)
                self.dropped += len(first)
            else:
                self.tail[0] = first[extra:]
                self.tail_len -= extra
                self.dropped += extra

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = b"".join(self.tail).decode("utf-8", errors="replace")
        if not self.dropped:
            return head + tail
        return f"{head}\n[... {self.dropped} bytes of output not kept ...]\n{tail}"


def run(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout: float,
    on_process: Callable[[int], object] | None = None,
    keep: int = MAX_KEEP,
    grace: float = DRAIN_GRACE,
) -> Finished:
    """Run ``argv`` with exactly ``env``, stdin from /dev/null, stdout and stderr together."""
    before = reaper.snapshot()
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
    )
    assert proc.stdout is not None
    pgid = proc.pid  # start_new_session: the child leads its own group
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    sink = _Sink(keep)
    timed_out = False
    held = False
    try:
        if on_process is not None:
            on_process(pgid)
        timed_out = _pump(proc, fd, sink, time.monotonic() + timeout)
    finally:
        _killpg(pgid)
        proc.wait()
        reaper.kill_left(before)  # what left the group (setsid) and we adopted
        try:
            held = _drain(fd, sink, grace)
        finally:
            proc.stdout.close()
    output = keystore.redact(sink.text())
    return Finished(output, proc.returncode, timed_out, pgid, sink.dropped, held)


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read(fd: int, sink: _Sink) -> bool:
    """Read what is there; False at end of file."""
    try:
        chunk = os.read(fd, _CHUNK)
    except BlockingIOError:
        return True
    if not chunk:
        return False
    sink.add(chunk)
    return True


def _pump(proc: subprocess.Popen[bytes], fd: int, sink: _Sink, deadline: float) -> bool:
    """Read output until the command exits (False) or the deadline passes (True)."""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ, "out")
        pidfd = _pidfd(proc.pid)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ, "exit")
        try:
            while proc.poll() is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                wait = remaining if pidfd is not None else min(remaining, 0.02)
                for key, _ in sel.select(wait):
                    if key.data == "out" and not _read(fd, sink):
                        sel.unregister(fd)  # closed its output; still wait for the exit
            return False
        finally:
            if pidfd is not None:
                os.close(pidfd)


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux ≥ 5.3), else None."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    return fd


def _drain(fd: int, sink: _Sink, grace: float) -> bool:
    """Read the rest of the pipe; True if it was still open after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if sel.select(remaining) and not _read(fd, sink):
                return False
