"""Agents as processes: start, watch, cancel, resume (the spawn itself is ``launch``).

A parent creates the run (input.json first), then spawns ``python -m agentctl agent
worker RUN`` in a new session with an allowlisted environment and its output in
process.log. The worker records pid, pgid and heartbeat, runs the loop, writes
output.json and its final status. Cancel asks politely (inbox, SIGTERM), then
kills the whole group and every tool process group the journal recorded; a
resumed agent continues from its transcript.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentctl.agent.launch import spawn_worker
from agentctl.config import Config
from agentctl.cost.ledger import Ledger
from agentctl.errors import AgentctlError, TransitionError, UsageError
from agentctl.runs import (
    TERMINAL,
    Run,
    RunStore,
    follow,
    pid_alive,
    read_journal,
    stale_reason,
    this_host,
    utc_now,
)
from agentctl.runs.summary import DEFAULT_STALE_AFTER

HEARTBEAT_EVERY = 2.0


@dataclass(frozen=True, slots=True)
class AgentRequest:
    role: str
    task: str
    cwd: Path
    model: str | None = None
    budget_usd: float | None = None
    max_turns: int | None = None
    base: str | None = None  # what git_diff compares with (a review's base branch)


def chain_of(config: Config, role: str, model: str | None) -> list[str]:
    chain = [model] if model else list(config.role(role).models)
    for name in chain:
        config.model(name)
    return chain


def start_agent(
    config: Config,
    request: AgentRequest,
    *,
    sets: tuple[str, ...] = (),
    parent: Run | None = None,
    environ: Mapping[str, str] | None = None,
) -> Run:
    """Create an agent run and spawn its worker process (detached; returns at once)."""
    config.role(request.role)
    chain = chain_of(config, request.role, request.model)
    cwd = request.cwd.resolve()
    if not cwd.is_dir():
        raise UsageError(f"--cwd {request.cwd}: no such directory")
    run = RunStore(config.workspace.state_dir).create(
        "agent",
        input={
            "task": request.task,
            "role": request.role,
            "cwd": str(cwd),
            "model": request.model,
            "models": chain,
            "budget_usd": request.budget_usd,
            "max_turns": request.max_turns,
            "sets": list(sets),
            **({"base": request.base} if request.base else {}),
        },
        parent=parent,
        role=request.role,
        model=chain[0],
        workspace=str(config.workspace.root),
        worktree=str(cwd),
    )
    spawn_worker(config, run, environ)
    return run


def watch(run: Run, *, poll: float = 0.1) -> Iterator[dict[str, Any]]:
    """Events of ``run`` as they happen, until its latest worker ends (or dies without a word).

    The latest ``process.spawned`` pid is the worker being watched: a resumed run
    starts out ``failed`` or ``paused``, and only that worker's own final status ends
    the watch.
    """
    worker = latest_worker(run)

    def done() -> bool:
        record = run.load()
        finished = record.status in TERMINAL or record.status == "paused"
        if worker is None:  # not started yet, or on another host: its record says
            return finished and not resume_asked(run)
        if record.pid == worker and finished:
            return True
        return not pid_alive(worker, None)

    yield from follow(run.paths.events, poll=poll, stop=done)


def resume_asked(run: Run) -> bool:
    """Is a resume of ``run`` journaled that no worker has started yet (queued for one)?"""
    asked = False
    for event in read_journal(run.paths.events).events:
        kind = event.get("type")
        if kind == "resume.requested":
            asked = True
        elif kind == "process.spawned":
            asked = False
    return asked


def latest_worker(run: Run) -> int | None:
    """The pid of the run's latest worker process, from its journal; None when there is
    none, or it ran on another host (its pid means nothing here)."""
    spawned = [
        e for e in read_journal(run.paths.events).events if e.get("type") == "process.spawned"
    ]
    if not spawned or spawned[-1].get("host", this_host()) != this_host():
        return None
    pid = spawned[-1].get("pid")
    return pid if isinstance(pid, int) else None


def _tool_groups(run: Run) -> list[int]:
    return [
        int(e["pgid"])
        for e in read_journal(run.paths.events).events
        if e.get("type") == "tool.process" and isinstance(e.get("pgid"), int)
    ]


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _stop(pid: int, pgid: int, sig: int) -> None:
    """Signal a run's process: its whole group when it leads one, else the process alone
    (a pipeline under a Celery worker shares the worker's group, which must live on)."""
    if pgid == pid:
        _signal_group(pgid, sig)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def cancel_run(
    run: Run,
    *,
    grace: float = 3.0,
    sleep: Callable[[float], None] = time.sleep,
    backstop: Callable[[Run], None] | None = None,
) -> str:
    """Cancel ``run``: inbox message, SIGTERM to its group, then SIGKILL to all it started.

    A run on another host gets the inbox message alone, and ``grace`` (plus a
    heartbeat) to end itself; then ``backstop`` (a Celery revoke) if given.
    """
    record = run.load()
    if record.status in TERMINAL:
        return f"already {record.status}"
    run.inbox.post({"type": "cancel"})
    here = record.host is None or record.host == this_host()
    if here and record.pid and record.pgid:
        _stop(record.pid, record.pgid, signal.SIGTERM)
        waited = 0.0
        while waited < grace and pid_alive(record.pid, record.pid_start):
            sleep(0.05)
            waited += 0.05
        _stop(record.pid, record.pgid, signal.SIGKILL)
    elif not here:  # another host's: it reads its inbox within a heartbeat and ends itself
        waited = 0.0
        while waited < grace + HEARTBEAT_EVERY and run.load().status not in TERMINAL:
            sleep(0.05)
            waited += 0.05
        if run.load().status not in TERMINAL and backstop is not None:
            backstop(run)  # wedged, or its host is gone: the executor's own way
    for pgid in _tool_groups(run) if here else ():  # another host's groups are not ours
        _signal_group(pgid, signal.SIGKILL)
    for child in RunStore(run.dir.parent.parent).children(run.id):  # its agents too
        if child.record is not None and child.record.status not in TERMINAL:
            cancel_run(RunStore(run.dir.parent.parent).get(child.id), grace=grace, sleep=sleep)
    try:  # another canceller (or the run itself) may record the end first: that is fine
        run.transition("canceled", reason="canceled on request")
        record_spend(run, "canceled on request")
    except TransitionError:
        status = run.load().status
        return "canceled" if status == "canceled" else f"already {status}"
    return "canceled"


def died(reason: str | None) -> bool:
    """Does a run's ending reason say its worker died (not that it ended on its own)?"""
    text = reason or ""
    return text.startswith("stale:") or "process died" in text


def deaths(run: Run) -> int:
    """How many of the run's workers died without an ending of their own (its journal).

    A worker dies when a later worker is spawned before it ended, or when its ending
    was written for it by someone who found it dead (``stale: ...``, ``process died``).
    """
    count, open_ = 0, False
    for event in read_journal(run.paths.events).events:
        kind = event.get("type")
        if kind == "process.spawned":
            count += open_
            open_ = True
        elif kind == "status" and (event.get("to") in TERMINAL or event.get("to") == "paused"):
            count += open_ and died(event.get("reason"))
            open_ = False
    return count


def end_children(run: Run, status: str, reason: str) -> list[str]:
    """End every unfinished child of ``run`` (and theirs): kill what runs, record ``status``.

    A failed or canceled pipeline leaves no run ``running`` behind it; the ids ended.
    """
    store = RunStore(run.dir.parent.parent)
    ended: list[str] = []
    for listing in store.children(run.id):
        if listing.record is None or listing.record.status in TERMINAL:
            continue
        child = store.get(listing.id)
        ended += end_children(child, status, reason)
        record = child.load()
        here = record.host is None or record.host == this_host()
        if record.pgid and record.pid and here and pid_alive(record.pid, record.pid_start):
            _stop(record.pid, record.pgid, signal.SIGKILL)
        for pgid in _tool_groups(child) if here else ():
            _signal_group(pgid, signal.SIGKILL)
        try:
            child.transition(status, reason=reason)
        except TransitionError:  # it ended on its own just now
            continue
        record_spend(child, reason)
        ended.append(child.id)
    return ended


def record_spend(run: Run, reason: str) -> None:
    """The output a run ended by someone else never wrote: why, and what it spent.

    A killed agent may have paid for calls it never reported; the ledger knows, and
    ``runs show`` / the run's output then say the same as ``cost``. The ending is
    ``killed``: a resumed pipeline still continues such an agent's transcript, and a
    ``killed`` output from an earlier death is said again with what it spent since.
    """
    if run.load().kind != "agent":
        return  # only agents pay for model calls
    with contextlib.suppress(AgentctlError):
        said = run.read_output()
        if said is not None and said.get("ending") != "killed":
            return  # the run said its own last words
        spent = Ledger(run.dir.parent.parent).spent(since=None, run_ids={run.id})
        run.write_output({"ending": "killed", "reason": reason, "cost_usd": str(spent)})


def resume_run(
    config: Config,
    run: Run,
    environ: Mapping[str, str] | None = None,
    *,
    budget_usd: float | None = None,
) -> str:
    """Continue an interrupted run in a new worker process (an agent from its transcript).

    ``budget_usd`` raises (or sets) the run's cap: journaled as ``budget.set``, which
    the worker reads over the cap in input.json (what was asked stays as it was).
    """
    record = run.load()
    if record.kind not in ("agent", "pipeline"):
        raise UsageError(f"run {run.id} is a {record.kind} run; agents and pipelines resume")
    if record.status in ("succeeded", "canceled"):
        raise UsageError(f"run {run.id} is {record.status}; only unfinished runs resume")
    starting = latest_worker(run)
    if record.status == "pending" and starting is not None and pid_alive(starting, None):
        raise UsageError(  # spawned, not yet started: a second worker would race it
            f"run {run.id} is starting (pid {starting})",
            hint="wait for it, or cancel it first (agentctl runs cancel)",
        )
    if record.status == "running":
        stale = stale_reason(
            record,
            run.heartbeat_at(),
            utc_now(),
            host=this_host(),
            heartbeat_timeout=DEFAULT_STALE_AFTER,
        )
        if stale is None:
            raise UsageError(
                f"run {run.id} is still running (pid {record.pid})",
                hint="cancel it first (agentctl runs cancel), or wait",
            )
        run.transition("failed", reason=f"stale: {stale}", failure="transient")
    for pgid in _tool_groups(run):  # a killed agent's tool commands may still be running
        _signal_group(pgid, signal.SIGKILL)
    if budget_usd is not None:
        run.journal.append("budget.set", durable=True, budget_usd=budget_usd)
    run.journal.append("resume.requested", durable=True, previous=record.status)
    spawn_worker(config, run, environ, group=record.kind)
    return record.status


class Heartbeat:
    """Beats in a daemon thread; also turns an inbox ``cancel`` into the cancel flag."""

    def __init__(
        self,
        run: Run,
        every: float = HEARTBEAT_EVERY,
        on_cancel: Callable[[], None] | None = None,
    ) -> None:
        self.run = run
        self.every = every
        self.on_cancel = on_cancel  # a pipeline's: a cancel from another host reaches it here
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._seen = 0
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self.run.heartbeat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self.run.heartbeat()
            for message in self.run.inbox.read(after=self._seen):
                self._seen = message.seq
                if message.body.get("type") == "cancel" and not self.cancel.is_set():
                    self.cancel.set()
                    if self.on_cancel is not None:
                        self.on_cancel()
