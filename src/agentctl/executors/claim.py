"""Which worker runs a pipeline run now: an ``flock`` on ``<run>/claim.lock``.

A Celery task holds its run's claim for as long as the pipeline process runs. The
kernel (or, on NFSv4, the server when the client's lease lapses) drops it when that
task's process dies, however it dies. So a claim held means a live worker has the
run, and a free claim on a ``running`` run means its worker is gone: no heartbeat
age to guess from, and never a second worker for one run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from agentctl.agent.supervise import resume_asked
from agentctl.runs import Run
from agentctl.runs.locking import try_lock

CLAIM = "claim.lock"


@contextlib.contextmanager
def claim(run: Run) -> Iterator[bool]:
    """Try to take ``run``'s claim without waiting; yields whether it is ours."""
    with try_lock(run.dir / CLAIM, 0o600) as ours:
        yield ours


def claimed(run: Run) -> bool:
    """Does a live worker hold ``run``'s claim now?"""
    if not (run.dir / CLAIM).exists():
        return False
    with claim(run) as ours:
        return not ours


def in_hand(run: Run) -> bool:
    """Does a worker have ``run`` (its claim held), or is its resume queued for one? An
    ended record is not the end then: a worker taking over a dead worker's run marks it
    failed just before it starts it again."""
    return claimed(run) or resume_asked(run)
