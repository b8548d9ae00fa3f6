"""Every run reaches a clear end: concurrent cancels, garbled model streams, a full disk."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.runs import RunStore
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke, make_repo
from tests.test_agent_run import CANARY, process_running, project, server, wait_for

__all__ = ["project", "server"]  # fixtures shared with test_agent_run


def test_two_concurrent_cancels_both_succeed(project: Path, server: LLMServer, cli: Invoke) -> None:
    server.script("chat-x", Turn.tool_call("bash", {"command": "sleep 983"}))
    run_id = cli("agent", "run", "dev", "x", "--model", "chat", "--detach").stdout.strip()
    run = RunStore(project / ".agentctl").get(run_id)
    wait_for(lambda: process_running("sleep 983"))
    os.killpg(run.load().pgid or 0, signal.SIGKILL)  # both cancellers go straight to the end
    wait_for(lambda: not process_running(f"agent worker {run_id}"))
    command = [sys.executable, "-m", "agentctl", "runs", "cancel", run_id]
    cancels = [
        subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    done = [c.communicate(timeout=30) for c in cancels]
    assert [c.returncode for c in cancels] == [0, 0], done
    assert all(b"canceled" in out for out, _ in done)
    assert run.load().status == "canceled"
    # A run that already ended is left as it is, and saying so is not an error.
    again = cli("runs", "cancel", run_id)
    assert again.exit_code == 0 and "already canceled" in again.stdout


def _waiters(lock: Path) -> int:
    """How many processes are blocked on ``lock`` (from /proc/locks)."""
    inode = f":{lock.stat().st_ino} "
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and inode in line)


def test_two_cancellers_reaching_the_end_at_once_both_succeed(project: Path) -> None:
    """Both cancellers saw the run unfinished; the second one's move finds it canceled."""
    run = RunStore(project / ".agentctl").create("agent", input={"task": "x"}, role="dev")
    command = [sys.executable, "-m", "agentctl", "runs", "cancel", run.id]
    fd = os.open(run.paths.lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # hold both at the run's lock: the race, made certain
        pair = [subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE) for _ in range(2)]
        wait_for(lambda: _waiters(run.paths.lock) == 2)
    finally:
        os.close(fd)
    outs = [p.communicate(timeout=30)[0] for p in pair]
    assert [p.returncode for p in pair] == [0, 0], outs
    assert run.load().status == "canceled"


APIS = {"messages": "claude-x", "chat": "chat-x", "responses": "codex-x"}


@pytest.mark.parametrize("api", list(APIS))
def test_a_garbled_stream_is_retried_and_the_agent_succeeds(
    api: str, project: Path, server: LLMServer, cli: Invoke
) -> None:
    toml = project / "agentctl.toml"
    toml.write_text(toml.read_text().replace("max_retries = 0", "max_retries = 1"))
    server.script(APIS[api], Turn.garbled(after=1), Turn.text("done after all"))
    result = cli("agent", "run", "dev", "x", "--model", api)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "done after all"
    assert "garbled answer" in result.stderr and "JSONDecodeError" not in result.stderr


@pytest.mark.parametrize("api", list(APIS))
def test_a_garbled_stream_with_no_retries_left_is_a_clear_provider_error(
    api: str, project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script(APIS[api], Turn.garbled(after=1))
    result = cli("agent", "run", "dev", "x", "--model", api)
    assert result.exit_code == 1
    reason = RunStore(project / ".agentctl").list(kind="agent")[0].record
    assert reason is not None and reason.status == "failed"
    output = json.loads((project / ".agentctl" / "runs" / reason.id / "output.json").read_text())
    assert "garbled answer" in output["reason"], output
    assert "internal error" not in output["reason"] and "JSONDecodeError" not in result.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs of our own (CI runs as root), unmounted whatever happens."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_fails_the_run_clearly_and_resume_continues_it(
    small_disk: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(small_disk / "project")
    (repo / "agentctl.toml").write_text(
        f'[models.chat]\nprovider = "openai"\napi = "chat"\nname = "chat-x"\n'
        f'base_url = "{server.openai_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
        "price = { input = 1.0, output = 2.0 }\n"
    )
    monkeypatch.setenv("TEST_KEY", CANARY)
    monkeypatch.chdir(repo)
    fill = "head -c 8000000 /dev/zero > fill.bin; echo filled"
    server.script("chat-x", Turn.tool_call("bash", {"command": fill}))
    result = cli("agent", "run", "dev", "x", "--model", "chat")
    (listing,) = RunStore(repo / ".agentctl").list(kind="agent")
    run = RunStore(repo / ".agentctl").get(listing.id)
    assert result.exit_code == 1
    assert run.load().status == "failed"
    assert "disk full: " in (run.load().reason or "")
    lines = [line for line in result.stderr.splitlines() if "disk full: " in line]
    assert len(lines) == 1, result.stderr
    assert "running ()" not in result.stderr
    (repo / "fill.bin").unlink()  # space is back
    server.script("chat-x", Turn.text("finished"))
    resumed = cli("runs", "resume", run.id)
    assert resumed.exit_code == 0, resumed.stderr
    assert run.load().status == "succeeded"
    assert run.read_output()["text"] == "finished"


def test_a_run_whose_process_died_is_never_shown_as_running(
    project: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script("chat-x", Turn.tool_call("write", {"path": "notes.txt", "content": "one\n"}))
    monkeypatch.setenv("AGENTCTL_FAILPOINT", "agent.after_tool_run")
    result = cli("agent", "run", "dev", "x", "--model", "chat")
    assert result.exit_code == 1
    assert "running (" not in result.stderr and "$0 · run" not in result.stderr
    ended = [line for line in result.stderr.splitlines() if "ended without a final status" in line]
    assert len(ended) == 1 and "runs resume" in ended[0], result.stderr


def test_the_disk_full_line_a_worker_left_in_its_log_is_what_the_cli_says(project: Path) -> None:
    run = RunStore(project / ".agentctl").create("agent", input={"task": "x"}, role="dev")
    run.paths.process_log.write_text("Traceback ...\nagentctl: disk full: /d/.agentctl/x.json\n")
    assert run.last_words() == "disk full: /d/.agentctl/x.json"
    run.paths.process_log.write_text("")
    assert "without recording an ending" in run.last_words()
