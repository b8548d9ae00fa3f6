"""Asking the workspace's zygote for a forked agent worker (``agent/zygote.py``).

``fork_worker`` returns a ``Forked`` child still waiting for its *go* (the caller
journals its pid first), or the reason the zygote could not be used: the caller
then execs the worker as before and journals that reason. The first spawn of a
workspace starts the zygote and waits for it, which costs what an exec'd worker's
imports would have cost; every later spawn is a fork.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agentctl.agent.env import agent_env
from agentctl.agent.zygote_paths import ZygotePaths, address
from agentctl.checks import Check
from agentctl.config import Config
from agentctl.tools import reaper

REQUEST_TIMEOUT = 10.0  # a fork and a reply: milliseconds, unless the machine is swamped
READY_TIMEOUT = 20.0  # a zygote importing its SDKs on a loaded machine
NO_SHOW = 2.0  # a started zygote with no live pid after this never will be


@dataclass
class Forked:
    """A forked worker that runs only once ``go`` is called; ``abort`` ends it unrun."""

    pid: int
    _go: int

    def go(self) -> None:
        try:
            os.write(self._go, b"g")
        finally:
            os.close(self._go)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._go)


def available() -> str | None:
    """None where agents can be forked from a zygote; else why not."""
    if sys.platform != "linux" or not hasattr(os, "fork") or not hasattr(socket, "send_fds"):
        return f"no fork server on {sys.platform}"
    return None


def fork_worker(
    config: Config,
    argv: list[str],
    *,
    env: Mapping[str, str],
    log_fd: int,
    keys_fd: int,
    environ: Mapping[str, str] | None = None,
) -> Forked | str:
    """A worker for ``agentctl <argv>`` forked by the zygote (started if need be), or why not.

    ``env`` is the worker's whole environment (an allowlist); ``keys_fd`` the key pipe.
    """
    why = available()
    if why is not None:
        return why
    paths = ZygotePaths.of(config.workspace.state_dir)
    request: dict[str, object] = {"argv": argv, "cwd": str(config.workspace.root), "env": dict(env)}
    answer = _ask(paths, request, (log_fd, keys_fd))
    if isinstance(answer, Forked) or not answer.startswith(("no zygote", "stale")):
        return answer
    started = start(config, paths, environ)
    if started is not None:
        return f"{answer}; {started}"
    return _ask(paths, request, (log_fd, keys_fd))


def _ask(paths: ZygotePaths, request: dict[str, object], fds: tuple[int, int]) -> Forked | str:
    try:
        token = paths.token.read_text().strip()
    except OSError:
        return "no zygote running"
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(REQUEST_TIMEOUT)
    go_read, go_write = os.pipe()
    try:
        try:
            with address(paths.socket) as where:
                conn.connect(where)
        except (FileNotFoundError, ConnectionRefusedError):
            return "no zygote running"
        data = json.dumps({**request, "token": token}).encode() + b"\n"
        sent = socket.send_fds(conn, [data], [*fds, go_read])
        conn.sendall(data[sent:])
        os.close(go_read)
        go_read = -1
        reply = _read_line(conn)
    except OSError as exc:
        reply = f"the zygote did not answer: {exc}".encode()
    finally:
        conn.close()
        if go_read >= 0:
            os.close(go_read)
    try:
        answer = json.loads(reply)
        pid = answer.get("pid") if isinstance(answer, dict) else None
    except ValueError:
        answer, pid = None, None
    if isinstance(pid, int) and pid > 0:
        return Forked(pid, go_write)
    os.close(go_write)  # a child it may have forked reads end-of-file and leaves unrun
    if isinstance(answer, dict) and answer.get("error"):
        return str(answer["error"])
    return "the zygote ended mid-spawn" if not reply else reply.decode(errors="replace")[:200]


def _read_line(conn: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)


def start(
    config: Config, paths: ZygotePaths, environ: Mapping[str, str] | None = None
) -> str | None:
    """Start the workspace's zygote and wait until it answers; None when ready, else why not.

    It gets an agent's allowlisted environment and no keys. A zygote already starting
    (another spawner's) is waited for, not doubled: the lock lets only one serve.
    """
    paths.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = config.workspace.root
    argv = [sys.executable, "-m", "agentctl", "--workspace", str(root), "agent", "zygote"]
    began = time.monotonic()
    # A pipeline worker adopts orphans (to kill what its gates leave); the zygote must
    # not be one of them, or the pipeline's end would kill it and every agent it forked.
    with reaper.not_adopting(), paths.log.open("ab") as log:
        launcher = subprocess.Popen(
            argv,
            cwd=root,
            env=agent_env(environ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            launcher.wait(timeout=READY_TIMEOUT)  # it forks the zygote and exits at once
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()
            return "the zygote's launcher hung"
    while time.monotonic() - began < READY_TIMEOUT:
        if _ready(paths):
            return None
        if time.monotonic() - began > NO_SHOW and paths.running_pid() is None:
            return f"the zygote did not start (see {paths.log})"
        time.sleep(0.01)
    return f"the zygote was not ready after {READY_TIMEOUT:.0f}s"


def _ready(paths: ZygotePaths) -> bool:
    if not paths.token.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with address(paths.socket) as where:
            probe.connect(where)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def spawn_check(config: Config) -> Check:
    """What ``doctor`` says about how agent processes start here."""
    executor = config.settings.executor
    if executor.spawn == "exec":
        return Check("agent spawn", "ok", "exec: a new interpreter per agent ([executor] spawn)")
    why = available()
    if why is not None:
        return Check("agent spawn", "ok", f"exec: {why}")
    paths = ZygotePaths.of(config.workspace.state_dir)
    pid = paths.running_pid()
    seconds = executor.zygote_idle
    span = f"{seconds / 60:g}m" if seconds % 60 == 0 else f"{seconds:g}s"
    idle = f"exits after {span} without a spawn"
    if pid is not None:
        return Check("agent spawn", "ok", f"zygote: warm (pid {pid}, {paths.socket}); {idle}")
    return Check("agent spawn", "ok", f"zygote: started by the first agent; {idle}")


def stop(state_dir: Path, *, wait: float = 5.0) -> int | None:
    """Ask the workspace's zygote to exit (SIGTERM) and wait for it; its pid, if one ran."""
    paths = ZygotePaths.of(state_dir)
    pid = paths.running_pid()
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and paths.running_pid() == pid:
        time.sleep(0.02)
    return pid
