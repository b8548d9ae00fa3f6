"""Kill every process a command left behind, also those that left its process group.

``killpg`` reaches a command's group, but a ``setsid`` child starts a group of its
own and, once its parent is gone, is adopted by init and outlives everything. A
process that made itself a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``)
adopts such orphans instead, so they stay below it in ``/proc/<pid>/task/*/children``
where ``kill_left`` finds and kills them. Elsewhere these functions do nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Collection, Iterator
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_ROUNDS = 20  # kill, look again: a process may fork between our look and our kill
_REAP_FOR = 0.5  # seconds to wait for killed children to turn into reapable zombies

_adopting: set[int] = set()  # the pid that became a subreaper (a forked copy is not one)


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux); True if it worked.

    Not inherited by ``fork``: every process that wants it calls this itself.
    """
    if not _prctl(PR_SET_CHILD_SUBREAPER, 1):
        return False
    _adopting.add(os.getpid())
    return True


@contextlib.contextmanager
def not_adopting() -> Iterator[None]:
    """While inside, this process adopts no orphan: a daemon started here (the agents'
    zygote) goes to init instead of staying below us, where ``kill_left`` would kill it."""
    if not is_subreaper() or not _prctl(PR_SET_CHILD_SUBREAPER, 0):
        yield
        return
    try:
        yield
    finally:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)


def is_subreaper() -> bool:
    return os.getpid() in _adopting


def die_with_parent() -> None:
    """Be killed (SIGKILL) when the parent process dies (Linux; a no-op elsewhere)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (every thread's), from /proc."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            text = (task / "children").read_text()
        except OSError:
            return _children_by_scan(pid)  # a kernel without CONFIG_PROC_CHILDREN
        found.extend(int(p) for p in text.split())
    return found


def _children_by_scan(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 1 and fields[1] == str(pid):
                found.append(int(entry.name))
    return found


def descendants(pid: int, *, skip: Collection[int] = ()) -> list[int]:
    """Every process below ``pid``, parents first; ``skip`` pids and their subtrees left out."""
    out: list[int] = []
    todo = [pid]
    seen = {pid}
    while todo:
        for child in children(todo.pop(0)):
            if child in seen or child in skip:
                continue
            seen.add(child)
            out.append(child)
            todo.append(child)
    return out


def snapshot() -> frozenset[int] | None:
    """What is below this process now, to tell later what a command left; None if not a
    subreaper (orphans are not ours to find then, and other threads' children are not
    ours to kill)."""
    return frozenset(descendants(os.getpid())) if is_subreaper() else None


def kill_left(before: Collection[int] | None, *, spare: Collection[int] = ()) -> list[int]:
    """SIGKILL every descendant of this process not in ``before`` (those are left alone
    with their subtrees) and not in ``spare`` (whose subtrees are still searched).

    Returns the pids killed; zombies among our own children are reaped. ``before=None``
    (see ``snapshot``) does nothing.
    """
    if before is None:
        return []
    me = os.getpid()
    killed: list[int] = []
    for _ in range(_ROUNDS):
        targets = [p for p in descendants(me, skip=before) if p not in spare and p not in killed]
        alive = [p for p in targets if not _zombie(p)]
        if not alive:
            killed.extend(targets)
            break
        for pid in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed.extend(targets)
    _reap(set(killed))
    return killed


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # gone already
    return stat[stat.rfind(")") + 2 :].startswith(("Z", "X"))


def _reap(pids: set[int]) -> None:
    """Collect the exit status of those ``pids`` that are our own children."""
    until = time.monotonic() + _REAP_FOR
    while pids:
        for pid in list(pids):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child (or reaped elsewhere)
                pids.discard(pid)
                continue
            if done:
                pids.discard(pid)
        if not pids or time.monotonic() > until:
            return
        time.sleep(0.01)
