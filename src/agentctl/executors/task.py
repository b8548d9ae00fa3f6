"""The task's body on a worker: claim the run, decide, run its pipeline process below us.

Idempotent by run id. A delivery whose run a live worker holds (its claim) is left
alone: a healthy pipeline that outlives ``visibility_timeout`` is never run twice. A
``pending`` run starts; a ``running`` run whose claim is free lost its worker and is
resumed from its journal; a run whose resume was requested resumes; anything else
(ended, canceled) is acknowledged and dropped.
"""

from __future__ import annotations

import contextlib

from agentctl.agent.launch import run_attached
from agentctl.agent.supervise import deaths, record_spend, resume_asked
from agentctl.config import Config
from agentctl.errors import NotFoundError, TransitionError
from agentctl.executors.claim import claim
from agentctl.runs import Run, RunStore, this_host


def run_task(config: Config, run_id: str) -> str:
    """What became of the delivery, in words (the task's result in Celery's log)."""
    try:
        run = RunStore(config.workspace.state_dir).get(run_id)
    except NotFoundError:
        return f"{run_id}: no such run here (a state folder not shared with the head?)"
    with claim(run) as ours:
        if not ours:
            return f"{run_id}: a live worker has it; left alone"
        todo = _todo(run)
        if todo is None:
            return f"{run_id}: {run.load().status}; nothing to do"
        if todo == "dead" and not _take_over(config, run):
            return f"{run_id}: its workers died too often; marked failed"
        checkout = config.settings.executor.celery.workspace
        sets = (f"executor.celery.workspace={config.workspace.git_root}",) if checkout else ()
        code = run_attached(config, run, sets=sets)
        return f"{run_id}: pipeline process exited {code} on {this_host()}"


def _todo(run: Run) -> str | None:
    """``start`` (pending), ``dead`` (running, but nobody holds it), ``resume`` (asked)."""
    status = run.load().status
    if status == "pending":
        return "start"
    if status == "running":
        return "dead"  # we hold its claim: the process that ran it is gone
    if status in ("failed", "paused"):
        return "resume" if resume_asked(run) else None
    return None


def _take_over(config: Config, run: Run) -> bool:
    """A running run whose worker died: mark it so and resume, within ``max_resumes``."""
    record = run.load()
    why = f"stale: its worker on {record.host or 'another host'} died"
    with contextlib.suppress(TransitionError):
        run.transition("failed", reason=why, failure="transient")
    if deaths(run) >= config.settings.orchestrator.max_resumes:
        record_spend(run, why)
        return False
    run.journal.append("resume.requested", durable=True, previous="running")
    return True
