"""The agent process itself: ``agentctl agent worker RUN`` (spawned, never typed by hand).

It owns its run directory from start to end: records its pid and process group,
beats, builds the model caller and the confined toolbox, runs the loop, and always
leaves a final status — also when it is told to stop or something breaks, or runs
past its deadline (``guard``: a supervisor process above the agent ends it then).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from agentctl import atomic, failpoints, keystore
from agentctl.agent import guard
from agentctl.agent.ending import Ending
from agentctl.agent.launch import take_process_slot
from agentctl.agent.loop import AgentLoop, Limits
from agentctl.agent.supervise import Heartbeat, chain_of
from agentctl.config import Config
from agentctl.config.schema import Role
from agentctl.cost.ledger import Ledger
from agentctl.errors import AgentctlError, StateError, TransitionError
from agentctl.redact import Redactor
from agentctl.runs import Run, RunStore, read_journal
from agentctl.tools import gitview, sandbox
from agentctl.tools.env import tool_env
from agentctl.tools.projectenv import with_pythonpath
from agentctl.tools.toolbox import Toolbox


def overrides(run: Run, data: dict[str, Any]) -> dict[str, Any]:
    """The limits asked for in input.json, with the latest ``budget.set`` over them."""
    out = {k: data[k] for k in ("budget_usd", "max_turns") if data.get(k) is not None}
    for event in read_journal(run.paths.events).events:
        if event.get("type") == "budget.set":
            out["budget_usd"] = event["budget_usd"]
    return out


def diff_base(config: Config, role: Role, data: dict[str, Any]) -> str | None:
    """What ``git_diff`` compares with when the model names no base.

    The base its starter gave (a pipeline's review step), else — for a reviewer, or any
    agent on an ``agentctl/*`` branch — the project's base branch; else nothing: a
    plain workspace sees its uncommitted changes, as before.
    """
    if data.get("base"):
        return str(data["base"])
    branch = gitview.current_branch(str(data["cwd"]), tool_env(role.env))
    if role.result != "verdict" and not (branch or "").startswith("agentctl/"):
        return None
    root = config.workspace.git_root or config.workspace.root
    base = config.settings.project.base_branch or gitview.current_branch(
        str(root), tool_env(role.env)
    )
    return base if base and base != branch else None


def work(config: Config, run_id: str) -> int:
    """Run the agent of ``run_id`` to an ending; returns the process exit code."""
    run = RunStore(config.workspace.state_dir).get(run_id)
    data = run.read_input()
    role = config.role(data["role"])
    chain = chain_of(config, data["role"], data.get("model"))
    if not take_process_slot(config, run):
        return 0  # canceled while it waited for a process slot: nothing ran
    failpoints.hit("worker.before_start")
    run.mark_started(guard.run_pid(), os.getpgid(0))
    atomic.reserve(run.dir / atomic.RESERVE)  # room for the ending if the disk fills up
    # From here on this is the agent; the process above it enforces the deadline.
    guard.split(run, role.deadline, config.workspace.state_dir)
    heartbeat = Heartbeat(run).start()

    def on_term(signum: int, frame: FrameType | None) -> None:
        heartbeat.cancel.set()

    signal.signal(signal.SIGTERM, on_term)
    # Every key value the parent handed down (and its encodings), plus anything in this
    # process's environment that looks like a secret.
    redact = Redactor([*keystore.redact_values(), *Redactor.from_environ(os.environ).secrets])
    if role.backend != "agentctl":  # an external coding agent CLI, metered through a proxy
        from agentctl.agent import backends  # lazy: the backends' modules, for their roles only

        ending = backends.run(config, run, role, data, chain, heartbeat, redact)
        heartbeat.stop()
        return record_ending(run, ending, redact, lambda: {"model": chain[0]})
    cwd = Path(data["cwd"])
    project = config.settings.project
    # The worktree's own code first on PYTHONPATH, as for the gates (tools.projectenv).
    env = with_pythonpath(tool_env(role.env), project.pythonpath, cwd)

    def on_process(pgid: int) -> None:  # a cancel kills the groups journaled here
        run.journal.append("tool.process", durable=True, pgid=pgid)

    mcp = None
    if role.mcp_servers:  # started before the loop, shut down in the finally below
        # lazy: asyncio and the MCP SDK (pydantic), only for a role that has MCP servers
        from agentctl.tools.mcp import McpTools

        try:
            mcp = McpTools.start(role.mcp_servers, env, cwd, redact, on_process)
        except AgentctlError as exc:  # a server did not start, or lacks an allowed tool
            heartbeat.stop()
            failed = Ending("failed", "error", str(exc))
            return record_ending(run, failed, redact, lambda: {"model": chain[0]})
    toolbox = Toolbox(
        cwd,
        role.tools,
        sandbox=role.sandbox,
        bash_timeout=role.bash_timeout,
        tool_timeout=role.tool_timeout,
        env=env,
        redact=redact,
        on_process=on_process,
        web_private=role.web_fetch_private,
        base=diff_base(config, role, data),
        # The same toolchain as the gates (the test command's venv), a home of its own,
        # and neither the state folder (other runs, the ledger) nor the user's home.
        policy=sandbox.workspace_policy(
            workspace=config.workspace.root,
            state_dir=config.workspace.state_dir,
            home=config.workspace.state_dir / "homes" / run.id,
            commands=[c for c in (project.test_command, project.setup_command) if c],
        ),
        extra=mcp,
    )
    loop = AgentLoop(
        run=run,
        config=config,
        role_name=data["role"],
        role=role,
        chain=chain,
        toolbox=toolbox,
        limits=Limits.of(role, overrides(run, data)),
        redact=redact.redact_obj,
        cancelled=heartbeat.cancel.is_set,
    )
    try:
        ending = loop.run_to_end(data["task"])
    except Exception as exc:  # the loop's own bug or an unexpected failure: still end clearly
        full = atomic.disk_full(exc)
        if full is not None:  # `runs resume` continues from the transcript once space is back
            ending = Ending("failed", "disk_full", f"disk full: {full}", failure="transient")
        else:
            traceback.print_exc()
            ending = Ending("failed", "error", f"internal error: {type(exc).__name__}: {exc}")
    finally:
        if mcp is not None:
            mcp.close()  # bounded; the supervisor kills whatever outlives it
        heartbeat.stop()
        home = config.workspace.state_dir / "homes" / run.id
        if home.exists():
            sandbox.remove_home(home)
    return record_ending(run, ending, redact, lambda: {"model": chain[loop.current]})


def record_ending(
    run: Run, ending: Ending, redact: Redactor, extra: Callable[[], dict[str, Any]]
) -> int:
    """Write the output and the final status, even on a full disk (the reserve is freed).

    What cannot be written is said on stderr (process.log) as the one line a person
    needs, "disk full: <path>", and the CLI reads it from there.
    """
    state_dir = run.dir.parent.parent
    try:
        spent = str(Ledger(state_dir).spent(since=None, run_ids={run.id}))
    except StateError:
        spent = "0"
    output = {
        "ending": ending.ending,
        "reason": redact(ending.reason),
        "cost_usd": spent,
        **extra(),
        **redact.redact_obj(ending.output),
    }
    if ending.failure:
        output["failure"] = ending.failure
    if ending.ending == "disk_full":
        atomic.release(run.dir / atomic.RESERVE)
    try:
        run.write_output(output)
        # A canceller may already have recorded the end (it killed us while we finished).
        with contextlib.suppress(TransitionError):
            run.transition(ending.status, reason=redact(ending.reason), failure=ending.failure)
    except StateError as exc:
        full = atomic.disk_full(exc)
        reason = ending.reason if ending.ending == "disk_full" else f"disk full: {full}"
        with contextlib.suppress(OSError):  # process.log may be on the full disk too
            sys.stderr.write(f"agentctl: {reason if full else exc}\n")
            sys.stderr.flush()
        with contextlib.suppress(StateError):  # run.json is small: it may still fit
            run.transition("failed", reason=reason if full else str(exc), failure="transient")
        return 1
    finally:
        atomic.release(run.dir / atomic.RESERVE)
    return 0 if ending.status == "succeeded" else 1
