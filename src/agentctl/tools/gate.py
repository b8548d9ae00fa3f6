"""Gates (``run`` steps, the merge queue's test command) under the gate sandbox policy.

A gate runs code an agent wrote, with agentctl's own processes (which hold keys)
around it. So it runs like an agent's ``bash``: bubblewrap per ``[project]
gate_sandbox``, no network unless ``gate_network``, the state folder and the user's
home hidden, and a writable home of its own inside its run directory, removed after.
It goes through ``shell.run``: its own process group, bounded output.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.tools import sandbox, shell
from agentctl.tools.env import tool_env
from agentctl.tools.projectenv import with_pythonpath

if TYPE_CHECKING:
    from agentctl.config import Config

GATE_SETTING = 'gate_sandbox = "auto" or "none" in [project]'


@dataclass(frozen=True, slots=True)
class GateSandbox:
    """How gates of one workspace run (``[project] gate_sandbox`` and ``gate_network``)."""

    mode: str = "auto"
    network: bool = False
    workspace: Path | None = None  # its agentctl.toml, roles/ and pipelines/ stay read-only
    state_dir: Path | None = None  # hidden: every run's transcript, the ledger, the locks
    host: sandbox.Host = field(default_factory=sandbox.Host)
    pythonpath: tuple[str, ...] = ()  # [project] pythonpath: the worktree's code first
    setup_command: str | None = None  # [project] setup_command: once per worktree and head

    @classmethod
    def of(cls, config: Config, host: sandbox.Host | None = None) -> GateSandbox:
        project = config.settings.project
        return cls(
            mode=project.gate_sandbox,
            network=project.gate_network,
            workspace=config.workspace.root,
            state_dir=config.workspace.state_dir,
            host=host or sandbox.Host(),
            pythonpath=project.pythonpath,
            setup_command=project.setup_command,
        )


@dataclass(frozen=True, slots=True)
class GateRun:
    """How a gate ended; ``refused`` (with ``output`` the one-line reason) when it never ran."""

    exit_code: int
    output: str
    timed_out: bool
    sandboxed: bool
    refused: bool = False

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.refused


def run_gate(
    command: str,
    cwd: Path,
    *,
    home: Path,
    timeout: float,
    policy: GateSandbox,
    env: Mapping[str, str] | None = None,
) -> GateRun:
    """``bash -c command`` in ``cwd`` under ``policy``, with ``home`` as its home."""
    sandboxed, refusal = sandbox.decide(
        policy.mode, policy.host, what="this gate", setting=GATE_SETTING
    )
    if refusal:
        return GateRun(-1, refusal, False, False, refused=True)
    bash = shutil.which("bash") or "/bin/bash"
    root = os.path.realpath(cwd)
    real_home = sandbox.make_home(home)
    try:
        base = with_pythonpath(env if env is not None else tool_env(), policy.pythonpath, cwd)
        run_env = sandbox.home_env(base, real_home, network=policy.network)
        argv = [bash, "-c", command]
        if sandboxed:
            if "TMPDIR" in run_env:  # the host's may not exist inside: the sandbox's own /tmp
                run_env["TMPDIR"] = "/tmp"
            rules = sandbox.workspace_policy(
                workspace=policy.workspace,
                state_dir=policy.state_dir,
                home=real_home,
                network=policy.network,
                commands=(command,),
            )
            argv = sandbox.wrap(root, argv, rules, run_env)
        done = shell.run(argv, cwd=root, env=run_env, timeout=timeout)
    finally:
        sandbox.remove_home(real_home)
    output = done.output
    if done.timed_out:
        output += f"\n[timed out after {timeout:g} s]"
    return GateRun(done.exit_code, output, done.timed_out, sandboxed)
