"""Running a CLI backend's process: its own group, its events as they come, stopped whole.

The CLI runs in a new session (so its group and what it starts can be killed as one),
stdin from /dev/null, stdout read line by line as JSON events, stderr to a file in the
run directory. While it runs, ``should_stop`` is asked about ten times a second; a
reason (a cancel, the budget refused, a call limit) ends it: SIGTERM to the group,
SIGKILL after ``grace``, then whatever left the group and was adopted by this process
(a subreaper) is killed too.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentctl.tools import reaper

GRACE = 2.0
MAX_LINE = 16 * 1024 * 1024  # a longer event line is cut and read as not JSON


@dataclass(frozen=True, slots=True)
class Exited:
    """How the CLI process ended: its exit code, and why we stopped it (None: by itself)."""

    code: int
    stopped: str | None
    stderr_tail: str


def run_cli(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    log: Path,
    on_event: Callable[[dict[str, Any]], object],
    should_stop: Callable[[], str | None],
    on_process: Callable[[int], object] | None = None,
    grace: float = GRACE,
) -> Exited:
    """Run ``argv`` to its end (or ours); each stdout line that is a JSON object goes to
    ``on_event``, others are written to ``log`` beside stderr."""
    before = reaper.snapshot()
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
    assert proc.stdout is not None
    if on_process is not None:
        on_process(proc.pid)  # start_new_session: the CLI leads its own group
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    pending = b""
    stopped: str | None = None
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = _read(fd)
                if chunk is None:
                    break  # EOF: the CLI closed its output (it is ending)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    _deliver(line, on_event, log)
                if len(pending) > MAX_LINE:
                    _deliver(pending[:MAX_LINE], on_event, log)
                    pending = b""
            if stopped is None:
                stopped = should_stop()
                if stopped is not None:
                    _stop(proc, grace)
                    break
        if pending.strip():
            _deliver(pending, on_event, log)
        code = proc.wait(timeout=None if stopped else grace * 5)
    except subprocess.TimeoutExpired:  # it closed its output but does not exit
        _stop(proc, 0)
        code = proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # nothing of the group outlives the step
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reaper.kill_left(before)
        proc.stdout.close()
    return Exited(code, stopped, _tail(log))


def _read(fd: int) -> bytes | None:
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return b""
    return chunk or None


def _deliver(line: bytes, on_event: Callable[[dict[str, Any]], object], log: Path) -> None:
    line = line.strip()
    if not line:
        return
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    if isinstance(event, dict):
        on_event(event)
        return
    with open(log, "ab") as out:  # a CLI's plain-text line: kept beside its stderr
        out.write(line[:4096] + b"\n")


def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while proc.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(log: Path, lines: int = 3) -> str:
    try:
        with open(log, "rb") as file:
            file.seek(max(0, os.fstat(file.fileno()).st_size - 4096))
            text = file.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())
