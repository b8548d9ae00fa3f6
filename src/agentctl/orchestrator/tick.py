"""One orchestrator tick: deterministic code first, a model only when there is judgment.

In order: take the tick lock (a second tick exits at once), reap stale runs,
cancel runs that made no progress, read the inbox, look once at the pipelines it
started that ended (a failure counts against the item's attempts, and parks it
when permanent or the last one), poll the tracker once, claim ready tickets with
leases and start pipelines up to ``max_parallel`` within the budgets (after a
preflight: nothing is claimed that could not merge), watch the open pull requests
no live pipeline owns (``orchestrator.prs``), start again what failed with attempts
left once its backoff passed, hand due HEARTBEAT.md duties to the orchestrator
role, and report to the outbox only when something changed. Every automatic action
for a ticket or PR is an attempt (``orchestrator.items``); a parked item is left
alone until a person acts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentctl.config import Config
from agentctl.errors import AgentctlError
from agentctl.orchestrator.attempts import Attempts, ticket_key
from agentctl.orchestrator.home import Home
from agentctl.orchestrator.prs import PullRequests
from agentctl.orchestrator.report import TickReport
from agentctl.runs import TERMINAL, RunStore, stale_reason, utc_now
from agentctl.runs.timefmt import format_ts
from agentctl.services import Services

__all__ = ["Tick", "TickReport"]


@dataclass
class Tick(PullRequests):
    config: Config
    clock: Callable[[], datetime] = utc_now
    dry_run: bool = False
    report: TickReport = field(default_factory=TickReport)
    parent_id: str | None = None  # a chat that started this orchestrator owns its runs' costs

    def __post_init__(self) -> None:
        self.state_dir = self.config.workspace.state_dir
        self.home = Home.of(self.state_dir)
        self.orch = self.config.settings.orchestrator
        self.store = RunStore(self.state_dir)
        self._live_cache: list[Any] | None = None
        self._kinds: dict[str, str] = {}  # run id → kind, for parents looked up this tick
        self._ready: list[Any] | None = None
        self._services = Services(self.config)
        self._preflights: dict[str, bool] = {}  # pipeline → may start (checked once a tick)
        self._said: set[str] = set()
        self._would_start = 0
        self._resumed: set[str] = set()

    # -- the tick -------------------------------------------------------------------

    def run(self) -> TickReport:
        with self.home.tick_lock() as held:
            if not held:
                self.report.skipped = "a tick is in progress; this one exits"
                return self.report
            state = self.home.load_state()
            self.attempts = Attempts(state, self.orch.max_attempts, self.orch.retry_backoff)
            self._reap(state)
            self._watchdog()
            self._inbox(state)
            with self._guard("tracker"):
                self._observe(state)
                self._dispatch(state)
            with self._guard("pull requests"):
                self._watch_prs(state)
            self._duties(state)
            new_errors = self.report.errors != state.get("last_errors", [])
            state["last_errors"] = self.report.errors
            state["last_digest"] = self._digest()
            state["last_tick"] = format_ts(self.clock())
            if not self.dry_run:
                self.home.save_state(state)
                self.home.ticks.append(
                    "tick",
                    summary=self.report.summary(),
                    fence=int(state.get("fence", 0)),  # the counter outlives state.json
                    **self.report.to_json(),
                )
                if self.report.changed or (self.report.errors and new_errors):
                    self.home.outbox.post(
                        {
                            "type": "report",
                            "summary": self.report.summary(),
                            **self.report.to_json(),
                            "spend_today": self._spend(),
                        }
                    )
        return self.report

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """A tracker or forge failure ends that part of the tick, not the tick.

        Nothing here retries: the client already retried what was worth it, and the
        next tick tries once more. The report says it; the outbox hears it only when
        it is new, so a broken token is one message, not one per tick.
        """
        from agentctl.errors import MissingKeyError, ServiceError

        try:
            yield
        except (ServiceError, MissingKeyError) as exc:
            self.report.errors.append(f"{what}: {exc}")

    def _tracker(self) -> Any:
        return self._services.tracker

    def _forge(self) -> Any:
        return self._services.forge

    # -- runs -----------------------------------------------------------------------

    def _live(self) -> list[Any]:
        """Unfinished runs from the live index, read once per tick."""
        if self._live_cache is None:
            self._live_cache = [
                listing
                for listing in self.store.live()
                if listing.record is not None
                and listing.record.status not in TERMINAL
                and listing.record.status != "paused"
            ]
        return self._live_cache

    def _parent(self) -> Any:
        return self.store.get(self.parent_id) if self.parent_id else None

    def _changed_runs(self) -> None:
        self._live_cache = None  # a run was started, resumed or ended: list again

    def _reap(self, state: dict[str, Any]) -> None:
        """Stale runs (process gone or heartbeat too old): resume pipelines, fail the rest."""
        import socket

        from agentctl.agent.supervise import cancel_run, end_children, record_spend, resume_run

        resumes: dict[str, int] = state.setdefault("resumes", {})
        for listing in self._live():
            record = listing.record
            if record.status != "running" or not self._tick_owns(record):
                continue  # a child is its parent pipeline's business
            why = stale_reason(
                record,
                listing.heartbeat_at,
                self.clock(),
                host=socket.gethostname(),
                heartbeat_timeout=timedelta(seconds=self.orch.stale_after),
            )
            if why is None or self.dry_run:
                continue
            run = self.store.get(listing.id)
            count = resumes.get(listing.id, 0)
            if "gone" not in why:  # alive but silent: wedged; kill its whole group first
                cancel_run(run, grace=1.0)
                self._changed_runs()
                self.report.reaped.append(f"{listing.id}: {why}; canceled (wedged)")
            elif (
                record.kind == "pipeline"
                and count < self.orch.max_resumes
                and self._resumes(state, run)
            ):
                resumes[listing.id] = count + 1
                resume_run(self.config, run)
                self._resumed.add(listing.id)
                self._changed_runs()
                self.report.reaped.append(f"{listing.id}: {why}; resumed ({count + 1})")
            else:  # said as a failure of its item when looked at (``_observe``)
                run.transition("failed", reason=f"stale: {why}", failure="transient")
                record_spend(run, f"stale: {why}")
                end_children(run, "failed", f"its pipeline {listing.id} failed: stale: {why}")
                self._changed_runs()
                self.report.reaped.append(f"{listing.id}: {why}; marked failed")

    def _resumes(self, state: dict[str, Any], run: Any) -> bool:
        """May the reaper resume this dead pipeline? An attempt of its item, if it has one."""
        key = self._key_of(run.load(), run)
        if key is None:
            return True  # not an item of the orchestrator's (a pipeline run by hand)
        label = key.split(":", 1)[1]
        if not self._may_act(key, label):
            return False
        self._count(state, key, "resume")
        return True

    def _tick_owns(self, record: Any) -> bool:
        """A step's agent is its pipeline's business; a run a chat started is the tick's.

        A chat that starts the orchestrator is the parent of its pipelines (for costs),
        and those must be reaped and watched like any other top-level run.
        """
        if record.parent_id is None:
            return True
        kind = self._kinds.get(record.parent_id)
        if kind is None:
            try:
                kind = self.store.get(record.parent_id).load().kind
            except AgentctlError:
                kind = "?"  # the parent is gone: nobody else will look after this run
            self._kinds[record.parent_id] = kind
        return kind != "pipeline"

    def _watchdog(self) -> None:
        """Cancel a run whose journal has not moved for ``no_progress_timeout``."""
        from agentctl.agent.supervise import cancel_run

        limit = self.clock().timestamp() - self.orch.no_progress_timeout
        for listing in self._live():
            if listing.record.kind == "chat" or not self._tick_owns(listing.record):
                continue  # a chat waits for its person as long as they like
            events = listing.dir / "events.jsonl"
            try:
                moved = events.stat().st_mtime
            except FileNotFoundError:
                continue
            if moved < limit and not self.dry_run:
                cancel_run(self.store.get(listing.id), grace=1.0)
                self._changed_runs()
                self.report.canceled.append(
                    f"{listing.id}: no progress for {self.orch.no_progress_timeout:g} s"
                )

    # -- inbox and tickets ------------------------------------------------------------

    def _inbox(self, state: dict[str, Any]) -> None:
        seen = int(state.get("inbox_seen", 0))
        for message in self.home.inbox.read(after=seen):
            seen = message.seq
            if message.body.get("type") == "retry" and message.body.get("ticket"):
                # `agentctl tickets retry`: a person acted; not an instruction for triage
                ticket = str(message.body["ticket"])
                self._unpark(ticket_key(ticket), "un-parked by `agentctl tickets retry`")
                continue
            text = message.body.get("text") or json.dumps(message.body)
            self.report.instructions.append(str(text))
            seen = message.seq
        state["inbox_seen"] = seen

    def _ready_tickets(self) -> list[Any]:
        """The tracker polled once per tick (one request per page for a remote one)."""
        if self._ready is None:
            self._ready = self._tracker().list(
                states=[self.orch.ready_state], labels=self.orch.labels
            )
        return self._ready

    def _dispatch(self, state: dict[str, Any]) -> None:
        """Claim ready tickets and start their pipelines, up to max_parallel, within budget."""
        tickets = self._ready_tickets()
        for ticket in tickets:  # moved back to the ready state by a person: un-parked
            parked = self.attempts.parked(ticket_key(ticket.id))
            if parked is not None and parked.state is not None and parked.state != ticket.state:
                self._unpark(ticket_key(ticket.id), f"moved back to {ticket.state} by a person")
        triaged: dict[str, dict[str, Any]] = state.setdefault("triaged", {})
        startable = [t for t in tickets if self.home.lease(t.id) is None]
        if startable and not self._preflight(self.orch.pipeline):
            return  # nothing could merge: no triage, no claim, no pipeline (said in errors)
        if self.orch.triage == "model":
            self._triage(tickets, triaged)
            tickets = [t for t in tickets if triaged.get(t.id, {}).get("action") == "start"]
        for ticket in tickets:
            lease = self.home.lease(ticket.id)
            again = lease is not None and self._lease_ended(lease)  # its last pipeline failed
            if lease is not None and not again and not self._orphaned(ticket.id, lease):
                continue  # one active pipeline per ticket, ever: its lease says who
            if not self._may_act(ticket_key(ticket.id), ticket.id):
                continue
            if not self._slot(ticket.id):
                continue
            refusal = self._budget_refusal()
            if refusal:
                self.report.waiting.append(f"{ticket.id}: {refusal}")
                continue
            pipeline = triaged.get(ticket.id, {}).get("pipeline") or self.orch.pipeline
            self._start(state, ticket.id, pipeline, claim=not again, what="coding")

    def _triage(self, tickets: list[Any], triaged: dict[str, dict[str, Any]]) -> None:
        """Ask the model about new tickets (or new instructions) — and only then."""
        new = [t for t in tickets if t.id not in triaged and self.home.lease(t.id) is None]
        if not (new or self.report.instructions):
            return  # an idle tick imports no model code and calls no model
        from agentctl.orchestrator.triage import missing_keys, preview, triage

        if self.dry_run:  # what would be asked, at what cost; a missing key fails it too
            seen = preview(self.config, new, self.report.instructions)
            self.report.waiting.extend(seen.lines)
            self.report.errors.extend([seen.problem] if seen.problem else [])
            return
        if (no_key := missing_keys(self.config)) is not None:
            self.report.errors.append(no_key)  # retrying cannot help: `orchestrate --once` exits 1
            return
        decisions, problem = triage(
            self.config, new, self.report.instructions, parent_id=self.parent_id
        )
        self.report.model_calls += 1
        if problem:
            self.report.waiting.append(problem)
            return
        tracker = self._tracker()
        for decision in decisions:
            triaged[decision.ticket] = {
                "action": decision.action,
                "pipeline": decision.pipeline,
                "reason": decision.reason,
            }
            if decision.action == "comment" and decision.comment:
                tracker.comment(decision.ticket, decision.comment)
            if decision.action != "start":
                self.report.waiting.append(
                    f"{decision.ticket}: {decision.action} ({decision.reason or decision.comment})"
                )
        for ticket in new:  # a ticket the model passed over waits; it is not asked again
            triaged.setdefault(ticket.id, {"action": "skip", "reason": "no decision"})

    def _start(
        self,
        state: dict[str, Any],
        ticket: str,
        pipeline: str,
        *,
        claim: bool,
        what: str,
        feedback: str | None = None,
    ) -> bool:
        """Start ``pipeline`` for ``ticket``: one attempt of its item.

        ``claim``: a new claim (the lease must not exist, or be a dead tick's);
        otherwise the ticket's lease (its last pipeline ended) is taken over with a
        new fencing token, for another attempt or a fix round.
        """
        from agentctl.pipeline.process import start_pipeline

        if not self._preflight(pipeline):
            return False  # refused before the claim: the ticket stays as it is
        if self.dry_run:
            self._would_start += 1
            self.report.started.append(f"{ticket}: would start {pipeline}")
            return True
        token = self.home.next_token(state)
        state["fence"] = token
        orphan = self.home.lease(ticket)
        if not claim or (orphan is not None and not orphan.get("run_id")):
            # Another attempt, or a dead tick's claim (we hold the tick lock, so no live
            # tick is between claim and start): taken over with a higher token, never
            # deleted.
            self.home.set_lease(ticket, {"ticket": ticket, "token": token, "run_id": None})
        elif not self.home.claim(ticket, token):
            return False  # another tick won the race for this ticket
        lease = self.home.lease(ticket) or {}
        if lease.get("token") != token:
            return False  # the fencing token is not ours: never act on a lease we lost
        inputs = {"review_feedback": feedback} if feedback else None
        try:
            run = start_pipeline(
                self.config,
                pipeline,
                ticket_id=ticket,
                inputs=inputs,
                parent=self._parent(),
                preflight=False,  # made above, for a merge by the orchestrator
            )
        except AgentctlError:
            self.home.release(ticket, token)  # nothing started: the next tick may try again
            raise
        self._changed_runs()
        self.home.set_lease(ticket, {**lease, "ticket": ticket, "token": token, "run_id": run.id})
        self._count(state, ticket_key(ticket), what, run)
        self.report.started.append(f"{ticket}: {pipeline} {run.id}")
        return True

    def _orphaned(self, ticket: str, lease: dict[str, Any]) -> bool:
        """A lease a killed tick left without a started pipeline: reclaimable now.

        Leases are written only under the tick lock, which this tick holds, so no
        tick in progress is raced. A pipeline the dead tick did start (killed before
        the lease named it) is adopted instead: never a second one for the ticket.
        """
        if self.dry_run:
            return False
        run_id = lease.get("run_id")
        if run_id:
            try:
                self.store.get(str(run_id)).load()
                self._kick(str(run_id))
                return False
            except AgentctlError:
                pass  # named but never published: as good as no run
        adopted = self._run_of(ticket, self.home.lease_path(ticket))
        if adopted is not None:
            self.home.set_lease(ticket, {**lease, "ticket": ticket, "run_id": adopted})
            self._kick(adopted)
            return False
        if run_id:
            self.home.set_lease(ticket, {**lease, "run_id": None})
        return True

    def _run_of(self, ticket: str, lease_path: Path) -> str | None:
        """The pipeline run for ``ticket`` created since its lease was written, if any."""
        try:
            since = lease_path.stat().st_mtime - 1.0
        except FileNotFoundError:
            return None
        for listing in self.store.list(kind="pipeline"):
            record = listing.record
            if (
                record is not None
                and record.ticket == ticket
                and record.created_at.timestamp() >= since
            ):
                return str(listing.id)
        return None

    def _kick(self, run_id: str) -> None:
        """A run still ``pending`` whose worker died before it began: start it again.

        ``resume_run`` refuses while that worker is alive (merely slow to start).
        """
        from agentctl.agent.supervise import resume_run

        run = self.store.get(run_id)
        if run.load().status != "pending":
            return  # running ones are the reaper's; ended ones are settled elsewhere
        try:
            resume_run(self.config, run)
        except AgentctlError:
            return
        self._changed_runs()
        self.report.reaped.append(f"{run_id}: its worker died before it began; resumed")

    def _preflight(self, pipeline: str) -> bool:
        """May ``pipeline`` start? Checked once a tick; a refusal is one line in ``errors``.

        ``errors`` reach the outbox only when they change, so a refusal that holds for
        many ticks is reported once, and no ticket is claimed meanwhile.
        """
        from agentctl.errors import PreflightError
        from agentctl.preflight import require

        if pipeline not in self._preflights:
            try:
                require(self.config, pipeline, merges=True)  # the orchestrator merges it
                self._preflights[pipeline] = True
            except PreflightError as exc:
                self._preflights[pipeline] = False
                self.report.errors.append(f"{pipeline}: {exc}")
        return self._preflights[pipeline]

    def _budget_refusal(self) -> str | None:
        from agentctl.cost.budget import BudgetGuard
        from agentctl.cost.ledger import Ledger
        from agentctl.cost.reserve import Reservations

        pipeline = self.config.pipeline(self.orch.pipeline)
        estimate = Decimal(str(pipeline.budget_usd or 0))
        roles = [s.role for s in pipeline.steps if s.role]
        budgets, ledger = self.config.settings.budgets, Ledger(self.state_dir, self.clock)
        guard = BudgetGuard(budgets, ledger, self.clock)
        # What calls in flight have reserved counts as spent: they may still spend it.
        held = [h.held for h in Reservations(ledger, budgets, self.clock).held()]
        for role in roles or ["dev"]:
            model = self.config.role(role).models[0]
            decision = guard.check(estimate, role=role, model=model, held=held)
            if not decision.allowed:
                return f"budget: {decision.reason}"
        return None

    # -- heartbeat duties and reporting -----------------------------------------------------

    def _duties(self, state: dict[str, Any]) -> None:
        path = self.config.workspace.root / self.orch.heartbeat_file
        if not path.is_file():
            return
        from agentctl.agent.supervise import AgentRequest, start_agent
        from agentctl.orchestrator.heartbeat import due, parse_heartbeat
        from agentctl.runs import parse_ts

        duties = parse_heartbeat(path.read_text("utf-8"), str(path))
        last = {k: parse_ts(v) for k, v in state.get("duties", {}).items()}
        for duty in due(duties, last, self.clock()):
            self.report.duties.append(duty.text)
            if self.dry_run:
                continue
            start_agent(
                self.config,
                AgentRequest(self.orch.role, duty.text, Path(self.config.workspace.root)),
                parent=self._parent(),  # a chat that started the orchestrator pays for it
            )
            state.setdefault("duties", {})[duty.id] = format_ts(self.clock())

    def _digest(self) -> str:
        live = sorted((listing.id, listing.record.status) for listing in self._live())
        tickets = sorted(t.id for t in self._ready or [])  # none read: a failed poll
        text = json.dumps([live, tickets], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _spend(self) -> dict[str, str]:
        from agentctl.cost.ledger import Ledger

        ledger = Ledger(self.state_dir, self.clock)
        since = self.clock().replace(hour=0, minute=0, second=0, microsecond=0)
        by_role: dict[str, Decimal] = {}
        for entry in ledger.entries(since=since):
            key = entry.role or "-"
            by_role[key] = by_role.get(key, Decimal(0)) + entry.cost
        return {k: str(v) for k, v in sorted(by_role.items())}
