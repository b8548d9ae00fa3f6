"""The role's deadline, enforced from outside the agent by a supervisor process.

The loop checks the deadline between turns and caps every tool call by the time
left, but a model call, or C code that holds the GIL (a regex), can run past it and
no thread of the same process can stop that. So before any thread exists the worker
splits: the parent stays behind as the run's supervisor (its pid is the run's pid)
and the child becomes the agent. Both are child subreapers, so whatever the agent's
commands leave behind (``setsid`` included) is adopted below them and can be killed.

The supervisor waits for the agent. At the deadline plus a short grace (the agent
ends itself cleanly when it can) it kills the agent and every process below it and
ends the run ``failed`` with ending ``deadline``. When the agent ends by itself it
kills whatever is left. On SIGTERM (a cancel) it kills the agent's tool processes at
once, so the agent notices and ends ``canceled`` without waiting for a long command.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from agentctl.cost.ledger import Ledger
from agentctl.errors import TransitionError
from agentctl.runs import Run, RunStore, read_journal, utc_now
from agentctl.tools import reaper

GRACE = 2.0  # seconds past the deadline the agent gets to end itself

# Split at spawn (a zygote's child): (the supervisor's pid, the pipe to tell it what to
# supervise). ``split`` then only tells it; the run's pid is the supervisor's.
_EARLY: list[tuple[int, int]] = []


def run_pid() -> int:
    """The pid a worker records for its run: its supervisor's (which is this process
    until ``split``, unless the split came first, at spawn)."""
    return _EARLY[0][0] if _EARLY else os.getpid()


def split_at_spawn(keep: set[int]) -> None:
    """Fork the supervisor now, before the worker's start-up writes to memory it shares
    with a zygote (what both processes then copy is what was written before the
    split). Returns in the child, which goes on as the worker; the parent waits for
    ``split`` to say what to supervise, supervises, and never returns. A worker that
    ends before it got that far ends the parent with its own exit code. ``keep``:
    the descriptors the supervisor keeps (its stdout and stderr)."""
    read_fd, write_fd = os.pipe()
    supervisor = os.getpid()
    try:
        child = _fork()
    except OSError:  # no memory or pids left: split later, as an exec'd worker does
        os.close(read_fd)
        os.close(write_fd)
        return
    if child == 0:
        os.close(read_fd)
        _EARLY.append((supervisor, write_fd))
        return
    os.close(write_fd)
    close_all_but(keep | {read_fd})
    chunks = []
    while chunk := os.read(read_fd, 4096):
        chunks.append(chunk)
    os.close(read_fd)
    if not chunks:  # it ended, or died, before it was an agent: end as it did
        _, status = os.waitpid(child, 0)
        reaper.kill_left(())
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)
    told = json.loads(b"".join(chunks))
    state_dir = Path(told["state_dir"])
    run = RunStore(state_dir).get(told["run"])
    code = _supervise(run, child, float(told["left"]), float(told["deadline"]), state_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fork() -> int:
    """Fork below this process made a subreaper; in the child (0 returned) it follows
    its parent's death and adopts its own orphans. Raises ``OSError`` (no fork)."""
    sys.stdout.flush()
    sys.stderr.flush()
    reaper.become_subreaper()
    supervisor = os.getpid()
    child = os.fork()
    if child == 0:
        reaper.die_with_parent()
        if os.getppid() != supervisor:  # the supervisor died before we asked to follow it
            os._exit(1)
        reaper.become_subreaper()
    return child


def close_all_but(keep: set[int]) -> None:
    """Close every descriptor of this process not in ``keep`` (a forked child sheds what
    its parent had open)."""
    try:
        open_fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        open_fds = list(range(3, 1024))
    for fd in open_fds:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def split(run: Run, deadline: float, state_dir: Path, *, grace: float = GRACE) -> None:
    """Fork; return in the child (the agent). The parent supervises it and never returns.

    After ``split_at_spawn`` the supervisor exists already: it is told what to watch."""
    record = run.load()
    started = record.started_at or record.created_at
    # A run resumed past its deadline still gets the grace to end itself cleanly.
    left = max(deadline + grace - (utc_now() - started).total_seconds(), grace)
    if _EARLY:
        _, told = _EARLY.pop()
        data = {"run": run.id, "state_dir": str(state_dir), "deadline": deadline, "left": left}
        try:
            os.write(told, json.dumps(data).encode())  # far below PIPE_BUF: one write
        finally:
            os.close(told)
        return
    try:
        child = _fork()
    except OSError as exc:  # no memory or pids left: run unsupervised rather than not at all
        sys.stderr.write(f"agentctl: no deadline supervisor ({exc}); the loop checks it alone\n")
        return
    if child == 0:
        return
    code = _supervise(run, child, left, deadline, state_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _supervise(run: Run, child: int, left: float, deadline: float, state_dir: Path) -> int:
    def on_term(signum: int, frame: FrameType | None) -> None:
        reaper.kill_left((), spare={child})  # the tool processes; the agent ends itself

    signal.signal(signal.SIGTERM, on_term)
    status = _wait(child, left)
    if status is None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        _, status = os.waitpid(child, 0)
        killed = reaper.kill_left(())
        _end_at_deadline(run, deadline, state_dir, killed)
        return 1
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    reaper.kill_left(())  # whatever the agent's commands left behind
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _wait(pid: int, timeout: float) -> int | None:
    """The wait status of ``pid`` once it ends, or None if it outlives ``timeout``."""
    end = time.monotonic() + timeout
    fd: int | None = None
    with contextlib.suppress(OSError, AttributeError):
        fd = os.pidfd_open(pid)
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            if fd is not None:
                select.select([fd], [], [], remaining)
            else:
                time.sleep(min(remaining, 0.05))
    finally:
        if fd is not None:
            os.close(fd)


def _end_at_deadline(run: Run, deadline: float, state_dir: Path, killed: list[int]) -> None:
    """Record the ending the agent could not: failed, ``deadline``, with what it spent."""
    if run.load().status != "running":
        return  # the agent recorded its own ending just before it was stopped
    reason = f"deadline of {deadline:g} s passed (stopped by the supervisor mid-step)"
    events = read_journal(run.paths.events).events
    run.journal.append("deadline.kill", durable=True, processes=len(killed) + 1)
    models = [e["to"] for e in events if e.get("type") == "model.switch" and e.get("to")]
    model = models[-1] if models else (run.read_input().get("models") or [None])[0]
    spent = Ledger(state_dir).spent(since=None, run_ids={run.id})
    run.write_output(
        {"ending": "deadline", "reason": reason, "cost_usd": str(spent), "model": model}
    )
    with contextlib.suppress(TransitionError):
        run.transition("failed", reason=reason)
