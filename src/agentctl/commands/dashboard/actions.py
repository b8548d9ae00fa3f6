"""The dashboard's actions: the same core functions the CLI commands call."""

from __future__ import annotations

from agentctl.config import Config
from agentctl.errors import UsageError
from agentctl.executors import cancel, resume
from agentctl.orchestrator.loop import start_loop, stop_loop
from agentctl.orchestrator.retry import retry_ticket
from agentctl.runs import RunStore

GRACE = 2.0  # seconds a canceled run has to end itself, as `runs cancel` gives


def perform(config: Config, action: str, target: str) -> str:
    """Do ``action`` on ``target`` (a run id, a ticket id, or nothing); what to say."""
    store = RunStore(config.workspace.state_dir)
    if action == "cancel":
        run = store.get(target)
        return f"{run.id}: {cancel(run, grace=GRACE, config=lambda: config)}"
    if action == "resume":
        run = store.get(target)
        previous = resume(config, run)
        return f"{run.id}: resumed (was {previous})"
    if action == "start":
        return f"orchestrator loop running (pid {start_loop(config)})"
    if action == "stop":
        pid = stop_loop(config)
        return (
            "the orchestrator loop was not running"
            if pid is None
            else (f"asked the orchestrator loop (pid {pid}) to stop after its current tick")
        )
    if action == "retry":
        return retry_ticket(config, target).message
    raise UsageError(f"unknown action {action!r}")
