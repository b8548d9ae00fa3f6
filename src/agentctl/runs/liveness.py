"""Is a run's process still there? Decided from facts, never guessed.

A pid alone lies once the kernel reuses it, so the process start time is recorded
with it and compared. On another host the pid means nothing: only the heartbeat
counts there.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from agentctl.runs.record import RunRecord

HOST_ENV = "AGENTCTL_HOST"


def this_host() -> str:
    """The name this process's runs record as their host: ``$AGENTCTL_HOST`` (a worker's
    ``--hostname``), else the machine's name. Two workers on one machine with different
    names judge each other's runs as another host's: by heartbeat age, never by pid."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (state first), or None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm (field 2) is in parentheses and may itself contain ')' or spaces.
    _, paren, rest = raw.rpartition(")")
    return rest.split() if paren else None


def process_start_token(pid: int) -> str | None:
    """The start time (field 22 of ``/proc/<pid>/stat``, clock ticks since boot)."""
    fields = _proc_stat(pid)
    if fields is None or len(fields) < 20:
        return None
    return fields[19]  # field 22; fields[0] is field 3


def pid_alive(pid: int, start_token: str | None) -> bool:
    """True if ``pid`` exists, is not a zombie and (when known) started at ``start_token``."""
    if pid <= 0:
        return False  # 0 and negatives address process groups, not a process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _proc_stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False  # exited, waiting to be reaped
    if start_token is not None:
        current = process_start_token(pid)
        if current is not None and current != start_token:
            return False  # the pid now belongs to another process
    return True


def stale_reason(
    record: RunRecord,
    heartbeat_at: datetime | None,
    now: datetime,
    *,
    host: str,
    heartbeat_timeout: timedelta,
) -> str | None:
    """Why a "running" run is stale, or None if it looks healthy (or is not running)."""
    if record.status != "running":
        return None
    pid = record.pid
    if record.host == host and pid is not None and not pid_alive(pid, record.pid_start):
        return f"process {pid} is gone"
    if heartbeat_at is not None:
        age = now - heartbeat_at
    else:
        age = now - (record.started_at or record.updated_at)
    if age > heartbeat_timeout:
        return f"no heartbeat for {int(age.total_seconds())}s"
    return None
