"""``max_concurrency``: at most N requests in flight to one model, across all processes.

A local GPU server serves few requests at once. Each model gets N slot files under
``.agentctl/locks/``; a caller holds one with ``flock`` for the length of a call.
The kernel releases a slot when its holder dies, even on ``kill -9``, so a crashed
agent never leaks one.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agentctl.errors import StateError

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@contextmanager
def slot(
    lock_dir: Path,
    model: str,
    capacity: int | None,
    *,
    wait: float = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[int | None]:
    """Hold one of ``capacity`` slots for ``model`` (no limit when ``capacity`` is None).

    Yields the slot number. Waits (polling, with jitter so waiters do not march in
    step) up to ``wait`` seconds, then raises ``StateError``.
    """
    if capacity is None:
        yield None
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    base = _SAFE.sub("_", model)
    deadline = time.monotonic() + wait
    pause = 0.005
    while True:
        for number in random.sample(range(capacity), capacity):
            fd = os.open(lock_dir / f"model-{base}.{number}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield number
            finally:
                os.close(fd)  # releases the lock
            return
        if time.monotonic() > deadline:
            raise StateError(
                f"waited {wait:g} s for one of {capacity} slots of model {model!r}",
                hint="another agentctl process holds them; raise max_concurrency or wait",
            )
        sleep(pause * (0.5 + random.random()))
        pause = min(pause * 2, 0.1)
