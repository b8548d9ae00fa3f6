"""Issue 17: agents forked from a warm per-workspace zygote, indistinguishable from exec'd ones.

Real processes throughout: the zygote is started by the product's own spawn path,
its children are cancelled, killed with -9, resumed and gc'd through the CLI, and
the scripted model server sees exactly one worker per spawn.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentctl import keystore
from agentctl.agent.env import agent_env
from agentctl.agent.spawner import Forked, fork_worker
from agentctl.agent.zygote_paths import ZygotePaths, address
from agentctl.config import load_config
from agentctl.runs import RunStore, read_journal
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.workspace import find_workspace
from tests import test_agent_run as agents
from tests.conftest import Invoke, git, make_repo
from tests.test_agent_run import set_spawn, spawns, wait_for

server = agents.server  # the same fixtures as the agent tests
project = agents.project


def zygote_pid(root: Path) -> int | None:
    return ZygotePaths.of(root / ".agentctl").running_pid()


def threads_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Threads:")).split()[1])


def test_agents_fork_from_one_warm_single_threaded_zygote(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("chat-x", Turn.text("one"), Turn.text("two"))
    ids = []
    for task in ("first", "second"):
        result = cli("agent", "run", "research", task, "--model", "chat")
        assert result.exit_code == 0, result.stderr
        ids.append(only_new(project, ids))
    pid = zygote_pid(project)
    assert pid is not None and threads_of(pid) == 1  # no thread before any fork
    for run_id in ids:
        assert spawns(project, run_id) == ["zygote"]
        assert RunStore(project / ".agentctl").get(run_id).load().status == "succeeded"
    assert zygote_pid(project) == pid  # the second agent used the same zygote
    doctor = cli("doctor")
    assert f"zygote: warm (pid {pid}" in doctor.stdout


def only_new(root: Path, seen: list[str]) -> str:
    (new,) = [x.id for x in RunStore(root / ".agentctl").list(kind="agent") if x.id not in seen]
    return new


def test_two_workspaces_never_share_a_zygote(
    tmp_path: Path, project: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_repo(tmp_path / "other")
    (other / "agentctl.toml").write_text((project / "agentctl.toml").read_text())
    git(other, "add", ".")
    git(other, "commit", "-qm", "same config")
    server.script("chat-x", Turn.text("here"), Turn.text("there"))
    assert cli("agent", "run", "research", "x", "--model", "chat").exit_code == 0
    monkeypatch.chdir(other)
    assert cli("agent", "run", "research", "y", "--model", "chat").exit_code == 0
    here, there = zygote_pid(project), zygote_pid(other)
    assert here and there and here != there
    assert (project / ".agentctl" / "zygote").is_dir() and (other / ".agentctl" / "zygote").is_dir()


def test_a_zygote_killed_mid_spawn_falls_back_without_losing_the_run(
    tmp_path: Path, project: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "fired"
    monkeypatch.setenv("AGENTCTL_FAILPOINT", f"zygote.after_fork@{marker}")
    server.script("chat-x", Turn.text("done once"))
    result = cli("agent", "run", "research", "x", "--model", "chat")
    assert result.exit_code == 0, result.stderr
    assert marker.exists()  # the zygote died after forking, before it answered
    (run_id,) = [x.id for x in RunStore(project / ".agentctl").list(kind="agent")]
    events = read_journal(RunStore(project / ".agentctl").get(run_id).paths.events).events
    (spawned,) = [e for e in events if e["type"] == "process.spawned"]
    assert spawned["spawn"] == "exec" and "mid-spawn" in str(spawned["fallback"])
    assert len(server.requests) == 1  # the orphaned child never ran: one worker, one call
    server.assert_complete()


def test_exec_when_configured_starts_no_zygote(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    set_spawn(project, "exec")
    server.script("chat-x", Turn.text("ok"))
    assert cli("agent", "run", "research", "x", "--model", "chat").exit_code == 0
    assert not (project / ".agentctl" / "zygote").exists()
    assert "exec: a new interpreter per agent" in cli("doctor").stdout


# -- the zygote's side of the request, with a child that reports what it got --------------

REPORTER = textwrap.dedent(
    """
    import json, os, sys, threading
    from agentctl.agent.zygote import serve
    from agentctl.config import load_config
    from agentctl.workspace import find_workspace

    from agentctl.agent import guard

    def report():
        keys = os.read(int(os.environ["AGENTCTL_KEYS_FD"]), 65536)
        fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
        print(json.dumps({
            "environ": dict(os.environ), "argv": sys.argv, "cwd": os.getcwd(),
            "session": os.getsid(0), "parent": os.getppid(), "run_pid": guard.run_pid(),
            "supervisor_pipe": guard._EARLY[0][1], "fds": fds,
            "threads": threading.active_count(), "keys": json.loads(keys),
        }), flush=True)

    serve(load_config(find_workspace(sys.argv[1])), report)
    """
)


@pytest.fixture
def reporter(project: Path) -> ZygotePaths:
    """A zygote whose children print what they were given (its parent had a canary)."""
    env = {**agent_env(), "ZYGOTE_PARENT_CANARY": "leaked"}
    subprocess.run([sys.executable, "-c", REPORTER, str(project)], env=env, check=True)
    paths = ZygotePaths.of(project / ".agentctl")
    wait_for(lambda: paths.token.exists() and paths.socket.exists(), timeout=30)
    return paths


def test_a_forked_child_has_exactly_its_requested_environment_and_descriptors(
    project: Path, reporter: ZygotePaths, tmp_path: Path
) -> None:
    config = load_config(find_workspace(project))
    log = tmp_path / "child.log"
    with log.open("ab") as out, keystore.handoff(["K"], {"K": "sk-the-key"}) as handoff:
        forked = fork_worker(
            config,
            ["agent", "worker", "R-1"],
            env={"PATH": "/usr/bin:/bin", "ONLY": "this"},
            log_fd=out.fileno(),
            keys_fd=handoff.pass_fds[0],
        )
        assert isinstance(forked, Forked), forked
        forked.go()
    wait_for(lambda: log.read_text().strip() != "", timeout=10)
    got = json.loads(log.read_text())
    keys_fd = got["environ"].pop("AGENTCTL_KEYS_FD")
    assert got["environ"] == {"PATH": "/usr/bin:/bin", "ONLY": "this"}  # no canary, no key
    assert got["keys"]["use"] == {"K": "sk-the-key"}  # through the pipe only
    fds = set(got["fds"])  # 0-2, the key pipe, the supervisor's pipe and listdir's own
    assert {0, 1, 2, int(keys_fd), got["supervisor_pipe"]} <= fds and len(fds) == 6
    # Forked at spawn, the run's supervisor leads its own session; the worker is below it.
    assert got["run_pid"] == got["parent"] == got["session"] == forked.pid
    assert got["threads"] == 1
    assert got["argv"] == ["agentctl", "agent", "worker", "R-1"]
    assert got["cwd"] == str(project)


def test_a_child_whose_requester_gives_up_never_runs(
    project: Path, reporter: ZygotePaths, tmp_path: Path
) -> None:
    config = load_config(find_workspace(project))
    log = tmp_path / "child.log"
    with log.open("ab") as out, keystore.handoff([], {}) as handoff:
        forked = fork_worker(
            config, ["x"], env={}, log_fd=out.fileno(), keys_fd=handoff.pass_fds[0]
        )
        assert isinstance(forked, Forked)
        forked.abort()  # e.g. its pid could not be journaled
    wait_for(lambda: not Path(f"/proc/{forked.pid}").exists(), timeout=10)
    assert log.read_text() == ""


def test_a_request_without_the_token_is_refused(project: Path, reporter: ZygotePaths) -> None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    read_end, write_end = os.pipe()
    try:
        with address(reporter.socket) as where:
            conn.connect(where)
        request = {"token": "guessed", "argv": ["x"], "cwd": "/", "env": {}}
        socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [0, 1, read_end])
        reply = json.loads(conn.makefile("rb").readline())
    finally:
        conn.close()
        os.close(read_end)
        os.close(write_end)
    assert reply == {"error": "refused: wrong token"}


def test_a_zygote_started_by_a_pipeline_outlives_its_end(project: Path) -> None:
    """A pipeline worker adopts orphans and kills them all as it ends: not the zygote,
    which other pipelines' agents are forked from."""
    script = textwrap.dedent(
        """
        import sys
        from agentctl.agent.spawner import start
        from agentctl.agent.zygote_paths import ZygotePaths
        from agentctl.config import load_config
        from agentctl.tools import reaper
        from agentctl.workspace import find_workspace

        config = load_config(find_workspace(sys.argv[1]))
        assert reaper.become_subreaper()
        assert start(config, ZygotePaths.of(config.workspace.state_dir)) is None
        print(reaper.kill_left(()))  # what a pipeline does as it ends
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(project)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"  # nothing of ours was below it
    pid = zygote_pid(project)
    assert pid is not None and Path(f"/proc/{pid}").exists()
