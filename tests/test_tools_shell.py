"""bash: exact environment, own process group, nothing left behind, output kept and cut."""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path

import pytest

from agentctl.tools import shell
from agentctl.tools.sandbox import bwrap_available
from agentctl.tools.toolbox import Toolbox

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "AGENTCTL_T": "1"}


def marker() -> str:
    """A sleep duration no other process uses, to find ours in the process table."""
    return f"1000.{secrets.randbelow(10**6):06d}"


def pids_running(arg: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\x00")
        except OSError:
            continue
        if arg.encode() in cmdline:
            found.append(int(entry))
    return found


def group_states(pgid: int) -> set[str]:
    """The states (R, S, Z, ...) of the processes still in group ``pgid``."""
    states = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            states.add(fields[0])
    return states


def settled(pgid: int, within: float = 2.0) -> bool:
    """True once group ``pgid`` holds nothing but zombies."""
    deadline = time.monotonic() + within
    while not group_states(pgid) <= {"Z"}:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def gone(arg: str, within: float = 1.0) -> bool:
    deadline = time.monotonic() + within
    while pids_running(arg):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def modes() -> list[str]:
    return ["none", "strict"] if bwrap_available() else ["none"]


@pytest.mark.parametrize("sandbox", modes())
def test_exit_code_and_output(repo: Path, sandbox: str) -> None:
    box = Toolbox(repo, ["bash"], sandbox=sandbox, env=ENV)
    ok = box.run("bash", {"command": "echo out; echo err >&2; ls"})
    assert not ok.is_error
    assert ok.content == "exit code 0\nout\nerr\nREADME.md\n"
    assert ok.meta["exit_code"] == 0
    assert ok.meta["sandboxed"] is (sandbox == "strict")
    bad = box.run("bash", {"command": "exit 3"})
    assert bad.is_error
    assert bad.meta["exit_code"] == 3
    assert bad.content == "exit code 3\n(no output)\n"
    assert box.run("bash", {"command": "cat; echo done"}).content.endswith("done\n")  # no stdin


def test_bash_sees_exactly_the_given_environment(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = "sk-ant-canary-" + secrets.token_hex(16)
    monkeypatch.setenv("ANTHROPIC_API_KEY", canary)
    monkeypatch.setenv("GITHUB_TOKEN", canary)
    box = Toolbox(repo, ["bash"], sandbox="auto", env=ENV)
    result = box.run("bash", {"command": "env"})
    seen = dict(line.split("=", 1) for line in result.full.splitlines()[1:])
    for added_by_bash in ("PWD", "SHLVL", "_", "OLDPWD"):
        seen.pop(added_by_bash, None)
    assert seen == ENV
    assert canary not in result.full


@pytest.mark.parametrize("sandbox", modes())
def test_background_processes_die_when_the_command_ends(repo: Path, sandbox: str) -> None:
    box = Toolbox(repo, ["bash"], sandbox=sandbox, env=ENV)
    arg = marker()
    started = time.monotonic()
    result = box.run("bash", {"command": f"sleep {arg} & echo started"})
    assert time.monotonic() - started < 2
    assert result.content == "exit code 0\nstarted\n"
    assert gone(arg), f"sleep {arg} survived its command"


@pytest.mark.parametrize("sandbox", modes())
def test_timeout_kills_the_whole_group(repo: Path, sandbox: str) -> None:
    groups: list[int] = []

    def record(pgid: int) -> None:
        assert os.getpgid(pgid) == pgid  # alive and leading its own group
        assert pgid != os.getpgid(0)
        groups.append(pgid)

    box = Toolbox(repo, ["bash"], sandbox=sandbox, env=ENV, bash_timeout=30, on_process=record)
    arg = marker()
    started = time.monotonic()
    result = box.run("bash", {"command": f"echo before; sleep {arg} & sleep {arg}", "timeout": 0.5})
    assert time.monotonic() - started < 3
    assert result.is_error
    assert result.meta["timed_out"] is True
    assert result.content.startswith("timed out after 0.5s")
    assert "before" in result.content
    assert groups == [result.meta["pgid"]]
    assert gone(arg)
    # At most zombies waiting for init to reap them, once the SIGKILLed members have
    # finished dying (a sandbox's namespace takes a moment to tear down).
    assert settled(groups[0]), group_states(groups[0])


def test_timeout_is_capped_by_the_role(repo: Path) -> None:
    box = Toolbox(repo, ["bash"], sandbox="none", env=ENV, bash_timeout=0.5)
    result = box.run("bash", {"command": "sleep 5", "timeout": 100})
    assert result.content.startswith("timed out after 0.5s")
    assert box.run("bash", {"command": "true", "timeout": 0}).is_error


def test_a_process_that_escaped_the_group_cannot_hang_us(repo: Path) -> None:
    arg = marker()
    started = time.monotonic()
    done = shell.run(
        ["bash", "-c", f"setsid sleep {arg} & sleep 0.2; echo left"],
        cwd=str(repo),
        env=ENV,
        timeout=5,
        grace=0.3,
    )
    try:
        assert time.monotonic() - started < 2
        assert done.output == "left\n"
        assert done.pipe_held is True
    finally:
        for pid in pids_running(arg):
            os.kill(pid, signal.SIGKILL)


def test_output_is_kept_to_a_cap_and_cut_for_the_model(repo: Path) -> None:
    done = shell.run(
        ["bash", "-c", "printf 'A%.0s' {1..3000}; printf 'B%.0s' {1..3000}"],
        cwd=str(repo),
        env=ENV,
        timeout=5,
        keep=1000,
    )
    assert done.dropped == 5000
    assert done.output.startswith("A" * 500 + "\n[... 5000 bytes of output not kept ...]\n")
    assert done.output.endswith("B" * 500)

    box = Toolbox(repo, ["bash"], sandbox="none", env=ENV, max_output=200)
    result = box.run("bash", {"command": "seq 1 10000"})
    assert result.meta["truncated"] is True
    assert len(result.content) <= 200
    assert result.content.startswith("exit code 0\n1\n2\n")
    assert result.content.endswith("9999\n10000\n")
    assert "characters cut ...]" in result.content
    assert result.full.count("\n") == 10001
