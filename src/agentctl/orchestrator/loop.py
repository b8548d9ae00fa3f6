"""The orchestrator's loop as a background process: start it, find it, stop it.

One loop per workspace, recorded in ``<state>/orchestrator/loop.pid``. The chat's
orchestrator tools and the dashboard's buttons both come here, so there is one way to
start it (keys through a pipe, never its environment; its output in ``loop.log``) and
one way to stop it (SIGTERM: it finishes the tick under way, then leaves).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from agentctl import keystore
from agentctl.agent.env import agent_env
from agentctl.config import Config
from agentctl.keystore import notify_keys, service_keys
from agentctl.orchestrator.home import Home


def loop_pid(config: Config) -> int | None:
    """The running loop's pid, or None (no pid file, or its process is gone)."""
    home = Home.of(config.workspace.state_dir)
    try:
        pid = int((home.dir / "loop.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return pid
    return None if "State:\tZ" in status else pid


def start_loop(config: Config, *, interval: str = "30s", parent_id: str | None = None) -> int:
    """Start the loop (if none runs) in a session of its own; its pid.

    ``parent_id``: the chat run that started it, so the pipelines it starts count as
    that chat's children (their costs add up there).
    """
    running = loop_pid(config)
    if running is not None:
        return running
    home = Home.of(config.workspace.state_dir)
    home.make()
    models = {m for r in config.roles.values() for m in r.models}
    keys = sorted({k for k in (config.models[m].key_env for m in models) if k})
    keys += service_keys(config)  # the orchestrator talks to the tracker and forge
    keys += notify_keys(config)  # and sends [notify]'s webhook
    argv = [
        sys.executable,
        "-m",
        "agentctl",
        "--workspace",
        str(config.workspace.root),
        "orchestrate",
        "--interval",
        interval,
    ]
    if parent_id is not None:
        argv += ["--parent", parent_id]
    with (
        (home.dir / "loop.log").open("ab") as log,
        keystore.handoff(keys) as handoff,  # through a pipe, never its environment
    ):
        process = subprocess.Popen(
            argv,
            cwd=config.workspace.root,
            env={**agent_env(), **handoff.env},
            pass_fds=handoff.pass_fds,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (home.dir / "loop.pid").write_text(f"{process.pid}\n")
    # Reaped when it exits, so a long-lived starter (the dashboard, a chat) keeps no zombie.
    threading.Thread(target=process.wait, daemon=True).start()
    return process.pid


def stop_loop(config: Config) -> int | None:
    """Ask the loop to stop after its current tick; the pid it had, or None if none ran."""
    pid = loop_pid(config)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    (Home.of(config.workspace.state_dir).dir / "loop.pid").unlink(missing_ok=True)
    return pid
