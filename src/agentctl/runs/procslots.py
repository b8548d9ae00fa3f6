"""``[executor] max_processes``: at most N agent and pipeline processes in a workspace.

Each worker holds one of N slot files under ``<state>/locks/`` with ``flock`` for
as long as it lives. The kernel drops the lock when its holder dies, even on
``kill -9``, so a slot is never leaked and no pid file goes stale; counting the
held slots counts the live processes, whichever agentctl process started them.

A worker that finds every slot taken stays ``pending`` with the reason said in its
run ("waiting for a process slot (8/8 running)", shown by ``runs list`` and
``status``) and starts when one frees. A pipeline's step agents run inside their
pipeline's slot (the pipeline sleeps while its step runs): a pipeline that held a
slot while waiting for another one for its agent could deadlock the workspace.
"""

from __future__ import annotations

import fcntl
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentctl.errors import AgentctlError
from agentctl.runs.record import TERMINAL
from agentctl.runs.run import Run

PREFIX = "process."
POLL = 0.25  # seconds between looks while waiting (with jitter): a slot frees rarely
SAY_AGAIN = 60.0  # a long wait is journaled again: waiting is not wedged (the watchdog)


@dataclass(frozen=True, slots=True)
class Slot:
    """A held slot: its lock lives as long as ``fd`` is open (or this process lives)."""

    number: int
    fd: int

    def release(self) -> None:
        os.close(self.fd)


def _path(lock_dir: Path, number: int) -> Path:
    return lock_dir / f"{PREFIX}{number}.lock"


def try_take(lock_dir: Path, capacity: int) -> Slot | None:
    """One free slot of ``capacity``, held by this process; None when all are taken."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    for number in random.sample(range(capacity), capacity):  # no herd on slot 0
        fd = os.open(_path(lock_dir, number), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return Slot(number, fd)
    return None


def running(lock_dir: Path) -> int:
    """How many slots live processes hold now (a slot file left by a lowered limit too)."""
    count = 0
    for path in lock_dir.glob(f"{PREFIX}*.lock"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            count += 1
        finally:
            os.close(fd)
    return count


def waiting_text(busy: object, capacity: object) -> str:
    """The one wording of a wait, for the run's reason and every view of its journal."""
    return f"waiting for a process slot ({busy}/{capacity} running)"


def needs_slot(run: Run) -> bool:
    """Agents and pipelines take a slot, except an agent that is its pipeline's step."""
    record = run.load()
    if record.kind not in ("agent", "pipeline"):
        return False
    if record.kind == "agent" and record.parent_id is not None:
        try:
            parent = Run(run.dir.parent / record.parent_id).load()
        except AgentctlError:  # its parent is gone: count it on its own
            return True
        return parent.kind != "pipeline"
    return True


def wait_for_slot(
    run: Run,
    lock_dir: Path,
    capacity: int,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Slot | None:
    """Hold a slot for ``run``'s worker, waiting visibly while all are taken.

    Returns None when the run was ended (canceled) while it waited: the worker then
    leaves without starting. A pending run says why it waits in its ``reason``; a
    resumed one (failed or paused until it starts) keeps its reason and journals it.
    """
    said: int | None = None
    said_at = 0.0
    while True:
        slot = try_take(lock_dir, capacity)
        if slot is not None:
            if said is not None:
                run.journal.append("process.slot", durable=True, waited=True)
            return slot
        record = run.load()
        if record.status in TERMINAL and record.status != "failed":
            return None  # canceled (or finished by someone else) while waiting
        busy = running(lock_dir)
        if busy != said or time.monotonic() - said_at >= SAY_AGAIN:
            run.note_reason(waiting_text(busy, capacity), status="pending")
            run.journal.append("process.waiting", durable=True, running=busy, limit=capacity)
            said, said_at = busy, time.monotonic()
        sleep(POLL * (0.5 + random.random()))
