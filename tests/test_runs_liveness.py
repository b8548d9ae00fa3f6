"""Liveness from facts: pid + start time on this host, heartbeat age anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentctl.runs import RunRecord, pid_alive, process_start_token, stale_reason

T0 = datetime(2026, 11, 25, 21, 24, 33, 482913, tzinfo=UTC)
TIMEOUT = timedelta(seconds=60)
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")


def finished_child_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_current_process_is_alive() -> None:
    assert pid_alive(os.getpid(), None)
    assert pid_alive(os.getpid(), process_start_token(os.getpid()))


def test_finished_child_is_not_alive() -> None:
    assert not pid_alive(finished_child_pid(), None)


def test_unreaped_child_is_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, still a zombie
        assert not pid_alive(proc.pid, None)
    finally:
        proc.wait()


def test_no_pid_group_addresses() -> None:
    assert not pid_alive(0, None)
    assert not pid_alive(-1, None)


@linux_only
def test_start_token() -> None:
    token = process_start_token(os.getpid())
    assert token is not None and token.isdigit()
    assert process_start_token(finished_child_pid()) is None
    assert not pid_alive(os.getpid(), str(int(token) + 1))  # the pid was reused


@linux_only
def test_comm_with_parenthesis_and_spaces(tmp_path: Path) -> None:
    odd = os.path.join(str(tmp_path), "we ird) (x")
    os.symlink(sys.executable, odd)
    proc = subprocess.Popen([odd, "-c", "import time; time.sleep(5)"])
    try:
        # Popen returns after exec, so comm already holds the odd name.
        with open(f"/proc/{proc.pid}/stat") as handle:
            stat = handle.read()
        assert ")" in stat[stat.index("(") + 1 : stat.rindex(")")]
        assert process_start_token(proc.pid) == stat.rsplit(")", 1)[1].split()[19]
        assert pid_alive(proc.pid, process_start_token(proc.pid))
    finally:
        proc.kill()
        proc.wait()


def record(**over: object) -> RunRecord:
    base: dict[str, object] = {
        "id": "r",
        "kind": "agent",
        "status": "running",
        "created_at": T0,
        "updated_at": T0,
        "root_id": "r",
        "started_at": T0,
        "pid": os.getpid(),
        "pid_start": process_start_token(os.getpid()),
        "host": "here",
    }
    base.update(over)
    return RunRecord(**base)  # type: ignore[arg-type]


def stale(rec: RunRecord, beat: datetime | None, now: datetime, host: str = "here") -> str | None:
    return stale_reason(rec, beat, now, host=host, heartbeat_timeout=TIMEOUT)


def test_healthy_run() -> None:
    assert stale(record(), T0 + timedelta(seconds=50), T0 + timedelta(seconds=100)) is None


def test_dead_process_on_this_host() -> None:
    pid = finished_child_pid()
    assert stale(record(pid=pid, pid_start=None), T0, T0) == f"process {pid} is gone"


def test_old_heartbeat() -> None:
    now = T0 + timedelta(seconds=200)
    assert stale(record(), T0 + timedelta(seconds=90), now) == "no heartbeat for 110s"
    assert stale(record(), T0 + timedelta(seconds=140), now) is None


def test_missing_heartbeat_uses_start_time() -> None:
    assert stale(record(), None, T0 + timedelta(seconds=30)) is None
    assert stale(record(), None, T0 + timedelta(seconds=61)) == "no heartbeat for 61s"


def test_other_host_is_judged_by_heartbeat_only() -> None:
    pid = finished_child_pid()
    rec = record(pid=pid, host="elsewhere")
    assert stale(rec, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)) is None
    assert stale(rec, T0, T0 + timedelta(seconds=61)) == "no heartbeat for 61s"


@pytest.mark.parametrize("status", ["pending", "paused", "succeeded", "failed", "canceled"])
def test_only_running_runs_can_be_stale(status: str) -> None:
    rec = record(status=status, pid=finished_child_pid())
    assert stale(rec, None, T0 + timedelta(days=1)) is None
