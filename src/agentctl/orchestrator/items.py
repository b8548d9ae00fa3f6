"""The tick's side of the attempt budget: may it act for an item now, what did it see
end, when does an item park, and one concurrency limit for everything it starts.

Every automatic action for a ticket or PR (a coding pipeline, a review, a fix round,
a merge, a resume) asks ``may_act`` first and counts through ``Attempts.started``.
Ended pipelines the orchestrator started are looked at once (``observe``): a
failure counts, backs off, and parks the item when it is permanent or the budget is
spent. A parked item is said once (report, ticket comment, the tracker's blocked
state) and left alone until a person acts: ``agentctl tickets retry`` (an inbox
message) or the ticket moved back to the ready state by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentctl.agent.supervise import end_children, latest_worker
from agentctl.errors import AgentctlError
from agentctl.executors.claim import in_hand
from agentctl.orchestrator.attempts import FailureClass, branch_key, ticket_key
from agentctl.orchestrator.context import TickContext
from agentctl.runs import TERMINAL, Run, RunRecord, pid_alive, this_host
from agentctl.runs.timefmt import format_ts

OBSERVED_KEPT = 500  # ended runs remembered as looked at (each is looked at once)
PENDING_GRACE = 60.0  # seconds a pending pipeline counts as running while its worker starts


@dataclass
class Items:
    ctx: TickContext

    # -- the one concurrency limit ------------------------------------------------------

    def running(self) -> int:
        """Pipelines of this workspace running now, read fresh: whoever started them.

        A run whose process is gone does not count (the reaper settles it); one just
        created counts while its worker starts.
        """
        here, now = this_host(), self.ctx.clock().timestamp()
        count = 0
        for listing in self.ctx.store.live():
            record = listing.record
            if record is None or record.kind != "pipeline" or record.status in TERMINAL:
                continue
            if record.status == "pending":
                count += int(self._starting(listing.id, record, now))
            elif record.status == "running":
                alive = record.host != here or (
                    record.pid is not None and pid_alive(record.pid, record.pid_start)
                )
                count += int(alive)
        return count

    def _starting(self, run_id: str, record: RunRecord, now: float) -> bool:
        if self.ctx.config.settings.executor.kind != "local":
            return True  # queued for a worker: the reaper sends it again if it was lost
        worker = latest_worker(self.ctx.store.get(run_id))
        if worker is not None and pid_alive(worker, None):
            return True
        return now - record.created_at.timestamp() < PENDING_GRACE

    def slot(self, label: str) -> bool:
        """May one more pipeline start within ``max_parallel``? If not, it waits, said."""
        limit = self.ctx.orch.max_parallel
        if self.running() + self.ctx.would_start < limit:
            return True
        self.ctx.report.waiting.append(f"{label}: max_parallel {limit}")
        return False

    # -- the attempt budget ---------------------------------------------------------------

    def may_act(self, key: str, label: str) -> bool:
        """None in the way of an attempt now? Else say why once a tick; a spent budget parks."""
        attempts, now = self.ctx.attempts, self.ctx.clock()
        why = attempts.wait_reason(key, now)
        if why is None:
            return True
        spent = attempts.count(key) >= attempts.max_attempts
        if attempts.parked(key) is None and spent:
            item = attempts.record(key)
            last = item.get("last_reason") or f"a {item.get('last_action', 'attempt')}"
            reason = f"no attempts left ({attempts.count(key)} used; last: {last})"
            if attempts.park(key, reason, now, "transient"):
                self.announce_park(key, label)
            return False
        if key not in self.ctx.said:
            self.ctx.said.add(key)
            self.ctx.report.waiting.append(f"{label}: {why}")
        return False

    def count(self, state: dict[str, Any], key: str, what: str, run: Run | None = None) -> None:
        """One attempt started (a run to look at once it ends, if there is one)."""
        self.ctx.attempts.started(key, what, self.ctx.clock())
        if run is not None:
            ticket = key.removeprefix("ticket:") if key.startswith("ticket:") else None
            state.setdefault("watch", {})[run.id] = {"key": key, "ticket": ticket, "what": what}
        self.ctx.save(state)

    def failed(
        self,
        key: str,
        label: str,
        reason: str,
        failure: FailureClass,
        *,
        pending: dict[str, str] | None = None,
    ) -> None:
        """A failed attempt: parked (said once) or, with attempts left, reported and owed."""
        attempts, now = self.ctx.attempts, self.ctx.clock()
        if attempts.failed(key, reason, now, failure):
            self.announce_park(key, label)
            return
        if attempts.parked(key) is not None:
            return  # parked already: nothing more is said or done
        if pending is not None:
            attempts.retry_later(key, **pending)
        self.ctx.report.failed.append(f"{label}: {reason}")
        ticket = ticket_of(key)
        if ticket and not self.ctx.dry_run:
            due = attempts.record(key).get("next_at") or format_ts(now)
            self.ctx.tracker.comment(
                ticket,
                f"agentctl: {reason[:1500]}\n\nAttempt {attempts.count(key)} of "
                f"{attempts.max_attempts}; the next one not before {due}.",
            )

    def announce_park(self, key: str, label: str) -> None:
        """Said once: the report, one comment, the ticket blocked in the tracker."""
        parked = self.ctx.attempts.parked(key)
        if parked is None:
            return
        self.ctx.report.parked.append(f"{label}: {parked.reason}")
        ticket = ticket_of(key)
        if ticket is None or self.ctx.dry_run:
            return
        tracker = self.ctx.tracker
        tracker.comment(
            ticket,
            f"agentctl parked this ticket: {parked.reason[:1500]}. Run `agentctl tickets retry "
            f"{ticket}` or move it back to {self.ctx.orch.ready_state} to try again.",
        )
        self.ctx.attempts.note_state(key, tracker.block(ticket).state)

    def unpark(self, key: str, why: str) -> None:
        if self.ctx.attempts.reset(key):
            self.ctx.report.unparked.append(f"{key.split(':', 1)[1]}: {why}")

    # -- what ended ---------------------------------------------------------------------

    def observe(self, state: dict[str, Any]) -> None:
        """Look once at each ended pipeline the orchestrator started (or a lease names)."""
        home = self.ctx.home
        watch: dict[str, dict[str, Any]] = state.setdefault("watch", {})
        observed: list[str] = state.setdefault("observed", [])
        seen = set(observed) | set(state.get("failures_reported", []))
        candidates = dict(watch)
        if home.leases.is_dir():  # a run a killed tick started is in its lease only
            for path in sorted(home.leases.glob("*.json")):
                lease = home.lease(path.stem) or {}
                run_id, ticket = lease.get("run_id"), lease.get("ticket")
                if not run_id or not ticket or lease.get("observed") == run_id:
                    continue  # the lease remembers its run was looked at: for ever
                candidates.setdefault(str(run_id), {"key": ticket_key(str(ticket))})
                candidates[str(run_id)].update(ticket=str(ticket), lease=path.stem)
        for run_id, item in candidates.items():
            if run_id in seen:
                watch.pop(run_id, None)
                continue
            run = self.ctx.store.get(run_id)
            try:
                record = run.load()
            except AgentctlError:
                watch.pop(run_id, None)
                continue
            if not self.over(run, record):
                continue
            watch.pop(run_id, None)
            observed.append(run_id)
            if item.get("lease") and not self.ctx.dry_run:
                lease = home.lease(str(item["ticket"])) or {}
                if lease.get("run_id") == run_id:
                    home.set_lease(str(item["ticket"]), {**lease, "observed": run_id})
            self._ended(run, record, str(item["key"]), item.get("ticket"))
        del observed[:-OBSERVED_KEPT]

    def over(self, run: Run, record: RunRecord) -> bool:
        """Ended, and no worker of it still alive (a resume marks a dead run failed just
        before its new worker starts; a worker that recorded its end may still be exiting;
        under Celery, a worker holds its claim or its resume is queued)."""
        if record.status not in TERMINAL:
            return False
        if self.ctx.config.settings.executor.kind != "local" and in_hand(run):
            return False  # a worker is taking it over, or will: not the attempt's end
        worker = latest_worker(run)
        return worker is None or not pid_alive(worker, None)

    def _ended(self, run: Run, record: RunRecord, key: str, ticket: str | None) -> None:
        if record.status != "succeeded" and not self.ctx.dry_run:
            # A worker killed again while resuming leaves the steps it had started.
            end_children(run, "failed", f"its pipeline {run.id} {record.status}")
        output = run.read_output() or {}
        label = ticket or key.split(":", 1)[1]
        if record.status == "succeeded":
            if self._reviews(record.pipeline) and not _verdict(output):
                reason = f"pipeline {run.id} ended without a review verdict"
                self.failed(key, label, reason, "permanent")
            return
        if output.get("step_reason"):
            return  # a review asking for changes: a fix round, when the PR watch sees it
        if output.get("ending") == "needs_person":  # said once; no attempt: a person's turn
            self.ctx.report.failed.append(f"{label}: pipeline {run.id} failed: {record.reason}")
            if ticket and not self.ctx.dry_run:
                self.ctx.tracker.comment(ticket, f"agentctl: the pipeline failed: {record.reason}")
            return
        reason = f"pipeline {run.id} {record.status}: {(record.reason or '')[:500]}"
        failure: FailureClass = "permanent" if record.failure == "permanent" else "transient"
        pending = None
        if ticket and not self._reviews_only(record.pipeline):
            pending = {"what": "coding", "pipeline": record.pipeline or self.ctx.orch.pipeline}
        self.failed(key, label, reason, failure, pending=pending)

    def _reviews(self, pipeline: str | None) -> bool:
        """Does ``pipeline`` end in a verdict (a role step of a verdict role)?"""
        config = self.ctx.config
        try:
            steps = config.pipeline(pipeline or "").steps
            return any(s.role and config.role(s.role).result == "verdict" for s in steps)
        except AgentctlError:
            return False

    def _reviews_only(self, pipeline: str | None) -> bool:
        """A review of a PR: retried by the PR watch, never as a coding pipeline."""
        config = self.ctx.config
        try:
            steps = config.pipeline(pipeline or "").steps
        except AgentctlError:
            return False
        return self._reviews(pipeline) and not any(
            s.role and config.role(s.role).result != "verdict" for s in steps
        )

    # -- leases and the items runs work for ----------------------------------------------

    def lease_ended(self, lease: dict[str, Any]) -> bool:
        """Has the pipeline a lease names failed or been canceled (the ticket is free)?"""
        run_id = lease.get("run_id")
        if not run_id:
            return False
        run = self.ctx.store.get(str(run_id))
        try:
            record = run.load()
        except AgentctlError:
            return False
        return record.status in ("failed", "canceled") and self.over(run, record)

    def key_of(self, record: RunRecord, run: Run) -> str | None:
        """The item a pipeline run works for: its ticket, else the branch it reviews."""
        if record.ticket:
            return ticket_key(record.ticket)
        try:
            branch = run.read_input().get("inputs", {}).get("branch")
        except AgentctlError:
            return None
        return branch_key(str(branch)) if branch else None


def ticket_of(key: str) -> str | None:
    return key.removeprefix("ticket:") if key.startswith("ticket:") else None


def _verdict(output: dict[str, Any]) -> bool:
    steps = output.get("steps") or {}
    return any(isinstance(v, dict) and v.get("verdict") for v in steps.values())
