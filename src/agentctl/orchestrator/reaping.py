"""Runs nobody will finish: stale ones reaped (resumed or failed), silent ones canceled.

A pipeline whose process is gone is resumed while its item has attempts and its
``max_resumes`` lasts; any other stale run is marked failed (its ledger spend
recorded, its children ended). A run alive but silent past ``stale_after``, or whose
journal has not moved for ``no_progress_timeout``, is canceled with its process
group. Runs a pipeline started are that pipeline's business; a chat is never
canceled for silence.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agentctl.agent.supervise import cancel_run, end_children, record_spend, resume_run
from agentctl.errors import AgentctlError, ServiceError
from agentctl.orchestrator.context import TickContext
from agentctl.orchestrator.items import Items
from agentctl.runs import Run, RunRecord, parse_ts, read_journal, stale_reason, this_host


@dataclass
class Reaper:
    ctx: TickContext
    items: Items
    _broker_down: bool = False

    def reap(self, state: dict[str, Any]) -> None:
        """Stale runs (process gone or heartbeat too old): resume pipelines, fail the rest."""
        ctx, orch = self.ctx, self.ctx.orch
        resumes: dict[str, int] = state.setdefault("resumes", {})
        queued = ctx.config.settings.executor.kind != "local"
        for listing in ctx.live():
            record = listing.record
            if queued and record is not None and record.kind == "pipeline":
                if record.status in ("pending", "running") and ctx.tick_owns(record):
                    self._unclaimed(state, listing.id, record)
                continue
            if record is not None and record.status == "pending" and ctx.tick_owns(record):
                self._unstarted(state, listing.id, record)
                continue
            if record is None or record.status != "running" or not ctx.tick_owns(record):
                continue  # a child is its parent pipeline's business
            why = stale_reason(
                record,
                listing.heartbeat_at,
                ctx.clock(),
                host=this_host(),
                heartbeat_timeout=timedelta(seconds=orch.stale_after),
            )
            if why is None or ctx.dry_run:
                continue
            run = ctx.store.get(listing.id)
            count = resumes.get(listing.id, 0)
            if "gone" not in why:  # alive but silent: wedged; kill its whole group first
                cancel_run(run, grace=1.0)
                ctx.changed_runs()
                ctx.report.reaped.append(f"{listing.id}: {why}; canceled (wedged)")
            elif (
                record.kind == "pipeline" and count < orch.max_resumes and self._resumes(state, run)
            ):
                resumes[listing.id] = count + 1
                resume_run(ctx.config, run)
                ctx.resumed.add(listing.id)
                ctx.changed_runs()
                ctx.report.reaped.append(f"{listing.id}: {why}; resumed ({count + 1})")
            else:  # said as a failure of its item when looked at (``Items.observe``)
                run.transition("failed", reason=f"stale: {why}", failure="transient")
                record_spend(run, f"stale: {why}")
                end_children(run, "failed", f"its pipeline {listing.id} failed: stale: {why}")
                ctx.changed_runs()
                ctx.report.reaped.append(f"{listing.id}: {why}; marked failed")

    def _unstarted(self, state: dict[str, Any], run_id: str, record: RunRecord) -> None:
        """A run still ``pending`` long after it was made, with no live worker: its worker
        died before it began (kill -9 between spawn and start). Start it again, within
        ``max_resumes``; past that, fail it. A worker still starting, or waiting for a
        process slot, is alive: ``resume_run`` refuses it and it is left alone.
        """
        ctx = self.ctx
        waited = (ctx.clock() - record.updated_at).total_seconds()
        if ctx.dry_run or record.kind not in ("agent", "pipeline") or waited < ctx.orch.stale_after:
            return
        run = ctx.store.get(run_id)
        resumes: dict[str, int] = state.setdefault("resumes", {})
        count = resumes.get(run_id, 0)
        if count >= ctx.orch.max_resumes:
            why = f"its worker died before it began, {count + 1} times"
            with contextlib.suppress(AgentctlError):  # it began just now after all
                run.transition("failed", reason=why, failure="transient")
                ctx.changed_runs()
                ctx.report.reaped.append(f"{run_id}: {why}; marked failed")
            return
        try:
            resume_run(ctx.config, run)
        except AgentctlError:
            return  # its worker is alive (starting, or waiting for a process slot)
        resumes[run_id] = count + 1
        ctx.changed_runs()
        ctx.report.reaped.append(f"{run_id}: its worker died before it began; started again")

    def _unclaimed(self, state: dict[str, Any], run_id: str, record: RunRecord) -> None:
        """Under Celery: a pipeline no live worker holds gets its task sent again.

        ``pending`` and never sent (the broker was down), or sent longer than
        ``stale_after`` ago (a broker that lost its queue): sent again; a duplicate is
        harmless, the first worker to claim the run runs it. ``running`` with its claim
        free: its worker died; the task resumes it from its journal, within
        ``max_resumes``. One resumer: the reaper never resumes a pipeline here.
        """
        # lazy: the executor (and Celery), only in a tick under that executor
        from agentctl.executors import make_executor
        from agentctl.executors.claim import claimed

        ctx = self.ctx
        run = ctx.store.get(run_id)
        if ctx.dry_run or self._broker_down or claimed(run):
            return  # a worker holds it (a wedged one is the watchdog's)
        resumes: dict[str, int] = state.setdefault("resumes", {})
        count = resumes.get(run_id, 0)
        if record.status == "pending":
            sent = _last_submit(run)
            if sent is not None and (ctx.clock() - sent).total_seconds() < ctx.orch.stale_after:
                return  # its task waits in the queue
            why = "its task never reached the broker" if sent is None else "its task was lost"
            done = f"{run_id}: {why}; submitted again"
        elif count < ctx.orch.max_resumes and self._resumes(state, run):
            resumes[run_id] = count + 1
            why = f"its worker on {record.host or 'a host'} is gone"
            done = f"{run_id}: {why}; submitted to resume ({count + 1})"
        else:
            why = f"stale: its worker on {record.host or 'a host'} is gone"
            with contextlib.suppress(AgentctlError):  # a worker took it just now
                run.transition("failed", reason=why, failure="transient")
                record_spend(run, why)
                end_children(run, "failed", f"its pipeline {run_id} failed: {why}")
                ctx.changed_runs()
                ctx.report.reaped.append(f"{run_id}: {why}; marked failed")
            return
        try:
            make_executor(ctx.config).submit(run)
        except ServiceError as exc:
            self._broker_down = True  # said once this tick; the next tick tries again
            ctx.report.errors.append(f"executor: {exc}")
            return
        ctx.changed_runs()
        ctx.report.reaped.append(done)

    def _resumes(self, state: dict[str, Any], run: Run) -> bool:
        """May the reaper resume this dead pipeline? An attempt of its item, if it has one."""
        key = self.items.key_of(run.load(), run)
        if key is None:
            return True  # not an item of the orchestrator's (a pipeline run by hand)
        label = key.split(":", 1)[1]
        if not self.items.may_act(key, label):
            return False
        self.items.count(state, key, "resume")
        return True

    def watchdog(self) -> None:
        """Cancel a run whose journal has not moved for ``no_progress_timeout``."""
        ctx, timeout = self.ctx, self.ctx.orch.no_progress_timeout
        limit = ctx.clock().timestamp() - timeout
        for listing in ctx.live():
            record = listing.record
            if record is None or record.kind == "chat" or not ctx.tick_owns(record):
                continue  # a chat waits for its person as long as they like
            events = listing.dir / "events.jsonl"
            try:
                moved = events.stat().st_mtime
            except FileNotFoundError:
                continue
            if moved < limit and not ctx.dry_run:
                cancel_run(ctx.store.get(listing.id), grace=1.0)
                ctx.changed_runs()
                ctx.report.canceled.append(f"{listing.id}: no progress for {timeout:g} s")


def _last_submit(run: Run) -> datetime | None:
    """When the run's task was last sent to the broker (its journal), if ever."""
    sent = None
    for event in read_journal(run.paths.events).events:
        if event.get("type") == "executor.submitted" and event.get("ts"):
            sent = parse_ts(str(event["ts"]))
    return sent
