"""Ready tickets to pipelines: triage hand-off, leases with fencing tokens, the start.

The tracker is polled once a tick. A ticket is claimed only after a preflight said
its pipeline could merge, within ``max_parallel`` and the budgets, when its item
may act; a lease names the one pipeline a ticket may have, and a lease a killed
tick left is reclaimed or its pipeline adopted, never doubled. Tickets whose
pipeline failed with attempts left start again here once their backoff passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentctl.agent.supervise import resume_run
from agentctl.errors import AgentctlError, NotSubmittedError, PreflightError
from agentctl.orchestrator.attempts import ticket_key
from agentctl.orchestrator.context import TickContext
from agentctl.orchestrator.items import Items, ticket_of
from agentctl.trackers import Ticket


@dataclass
class Dispatch:
    ctx: TickContext
    items: Items

    def ready_tickets(self) -> list[Ticket]:
        """The tracker polled once per tick (one request per page for a remote one)."""
        if self.ctx.ready is None:
            orch = self.ctx.orch
            self.ctx.ready = self.ctx.tracker.list(states=[orch.ready_state], labels=orch.labels)
        return self.ctx.ready

    def dispatch(self, state: dict[str, Any]) -> None:
        """Claim ready tickets and start their pipelines, up to max_parallel, within budget."""
        ctx, items = self.ctx, self.items
        tickets = self.ready_tickets()
        for ticket in tickets:  # moved back to the ready state by a person: un-parked
            parked = ctx.attempts.parked(ticket_key(ticket.id))
            if parked is not None and parked.state is not None and parked.state != ticket.state:
                items.unpark(ticket_key(ticket.id), f"moved back to {ticket.state} by a person")
        triaged: dict[str, dict[str, Any]] = state.setdefault("triaged", {})
        startable = [t for t in tickets if ctx.home.lease(t.id) is None]
        if startable and not self.preflight(ctx.orch.pipeline):
            return  # nothing could merge: no triage, no claim, no pipeline (said in errors)
        if ctx.orch.triage == "model":
            self._triage(tickets, triaged)
            tickets = [t for t in tickets if triaged.get(t.id, {}).get("action") == "start"]
        for ticket in tickets:
            lease = ctx.home.lease(ticket.id)
            again = lease is not None and items.lease_ended(lease)  # its last pipeline failed
            if lease is not None and not again and not self._orphaned(ticket.id, lease):
                continue  # one active pipeline per ticket, ever: its lease says who
            if not items.may_act(ticket_key(ticket.id), ticket.id):
                continue
            if not items.slot(ticket.id):
                continue
            refusal = self.budget_refusal()
            if refusal:
                ctx.report.waiting.append(f"{ticket.id}: {refusal}")
                continue
            pipeline = triaged.get(ticket.id, {}).get("pipeline") or ctx.orch.pipeline
            self.start(state, ticket.id, pipeline, claim=not again, what="coding")

    def _triage(self, tickets: list[Ticket], triaged: dict[str, dict[str, Any]]) -> None:
        """Ask the model about new tickets (or new instructions) — and only then."""
        ctx, report = self.ctx, self.ctx.report
        new = [t for t in tickets if t.id not in triaged and ctx.home.lease(t.id) is None]
        if not (new or report.instructions):
            return  # an idle tick imports no model code and calls no model
        # lazy: the model call and its pricing, only when there is something to triage
        from agentctl.orchestrator.triage import missing_keys, preview, triage

        if ctx.dry_run:  # what would be asked, at what cost; a missing key fails it too
            seen = preview(ctx.config, new, report.instructions)
            report.waiting.extend(seen.lines)
            report.errors.extend([seen.problem] if seen.problem else [])
            return
        if (no_key := missing_keys(ctx.config)) is not None:
            report.errors.append(no_key)  # retrying cannot help: `orchestrate --once` exits 1
            return
        decisions, problem = triage(ctx.config, new, report.instructions, parent_id=ctx.parent_id)
        report.model_calls += 1
        if problem:
            report.waiting.append(problem)
            return
        tracker = ctx.tracker
        for decision in decisions:
            triaged[decision.ticket] = {
                "action": decision.action,
                "pipeline": decision.pipeline,
                "reason": decision.reason,
            }
            if decision.action == "comment" and decision.comment:
                tracker.comment(decision.ticket, decision.comment)
            if decision.action != "start":
                report.waiting.append(
                    f"{decision.ticket}: {decision.action} ({decision.reason or decision.comment})"
                )
        for ticket in new:  # a ticket the model passed over waits; it is not asked again
            triaged.setdefault(ticket.id, {"action": "skip", "reason": "no decision"})

    def start(
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
        # lazy: the pipeline engine and its steps, only when a pipeline starts
        from agentctl.pipeline.process import start_pipeline

        ctx, home = self.ctx, self.ctx.home
        if not self.preflight(pipeline):
            return False  # refused before the claim: the ticket stays as it is
        if ctx.dry_run:
            ctx.would_start += 1
            ctx.report.started.append(f"{ticket}: would start {pipeline}")
            return True
        token = home.next_token(state)
        state["fence"] = token
        orphan = home.lease(ticket)
        if not claim or (orphan is not None and not orphan.get("run_id")):
            # Another attempt, or a dead tick's claim (we hold the tick lock, so no live
            # tick is between claim and start): taken over with a higher token, never
            # deleted.
            home.set_lease(ticket, {"ticket": ticket, "token": token, "run_id": None})
        elif not home.claim(ticket, token):
            return False  # another tick won the race for this ticket
        lease = home.lease(ticket) or {}
        if lease.get("token") != token:
            return False  # the fencing token is not ours: never act on a lease we lost
        inputs = {"review_feedback": feedback} if feedback else None
        try:
            run = start_pipeline(
                ctx.config,
                pipeline,
                ticket_id=ticket,
                inputs=inputs,
                parent=ctx.parent(),
                preflight=False,  # made above, for a merge by the orchestrator
            )
        except NotSubmittedError as exc:  # on disk, pending: the ticket is its, said once
            ctx.changed_runs()
            home.set_lease(
                ticket, {**lease, "ticket": ticket, "token": token, "run_id": exc.run_id}
            )
            self.items.count(state, ticket_key(ticket), what, ctx.store.get(exc.run_id))
            raise
        except AgentctlError:
            home.release(ticket, token)  # nothing started: the next tick may try again
            raise
        ctx.changed_runs()
        home.set_lease(ticket, {**lease, "ticket": ticket, "token": token, "run_id": run.id})
        self.items.count(state, ticket_key(ticket), what, run)
        ctx.report.started.append(f"{ticket}: {pipeline} {run.id}")
        return True

    def _orphaned(self, ticket: str, lease: dict[str, Any]) -> bool:
        """A lease a killed tick left without a started pipeline: reclaimable now.

        Leases are written only under the tick lock, which this tick holds, so no
        tick in progress is raced. A pipeline the dead tick did start (killed before
        the lease named it) is adopted instead: never a second one for the ticket.
        """
        ctx = self.ctx
        if ctx.dry_run:
            return False
        run_id = lease.get("run_id")
        if run_id:
            try:
                ctx.store.get(str(run_id)).load()
                self._kick(str(run_id))
                return False
            except AgentctlError:
                pass  # named but never published: as good as no run
        adopted = self._run_of(ticket, ctx.home.lease_path(ticket))
        if adopted is not None:
            ctx.home.set_lease(ticket, {**lease, "ticket": ticket, "run_id": adopted})
            self._kick(adopted)
            return False
        if run_id:
            ctx.home.set_lease(ticket, {**lease, "run_id": None})
        return True

    def _run_of(self, ticket: str, lease_path: Path) -> str | None:
        """The pipeline run for ``ticket`` created since its lease was written, if any."""
        try:
            since = lease_path.stat().st_mtime - 1.0
        except FileNotFoundError:
            return None
        made_since = datetime.fromtimestamp(since, UTC)  # older runs' records are not read
        for listing in self.ctx.store.list(kind="pipeline", since=made_since):
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
        run = self.ctx.store.get(run_id)
        if run.load().status != "pending":
            return  # running ones are the reaper's; ended ones are settled elsewhere
        if self.ctx.config.settings.executor.kind != "local":
            return  # a queued task may still start it: the reaper resubmits it in time
        try:
            resume_run(self.ctx.config, run)
        except AgentctlError:
            return
        self.ctx.changed_runs()
        self.ctx.report.reaped.append(f"{run_id}: its worker died before it began; resumed")

    def preflight(self, pipeline: str) -> bool:
        """May ``pipeline`` start? Checked once a tick; a refusal is one line in ``errors``.

        ``errors`` reach the outbox only when they change, so a refusal that holds for
        many ticks is reported once, and no ticket is claimed meanwhile.
        """
        # lazy: the git/network probes, only when something could start
        from agentctl.pipeline.preflight import require

        preflights = self.ctx.preflights
        if pipeline not in preflights:
            try:
                require(self.ctx.config, pipeline, merges=True)  # the orchestrator merges it
                preflights[pipeline] = True
            except PreflightError as exc:
                preflights[pipeline] = False
                self.ctx.report.errors.append(f"{pipeline}: {exc}")
        return preflights[pipeline]

    def budget_refusal(self) -> str | None:
        # lazy: the ledger and reservations, only when a pipeline could start
        from agentctl.cost.budget import BudgetGuard
        from agentctl.cost.ledger import Ledger
        from agentctl.cost.reserve import Reservations

        ctx = self.ctx
        pipeline = ctx.config.pipeline(ctx.orch.pipeline)
        estimate = pipeline.budget_usd or Decimal(0)
        roles = [s.role for s in pipeline.steps if s.role]
        budgets, ledger = ctx.config.settings.budgets, Ledger(ctx.state_dir, ctx.clock)
        guard = BudgetGuard(budgets, ledger, ctx.clock)
        # What calls in flight have reserved counts as spent: they may still spend it.
        held = [h.held for h in Reservations(ledger, budgets, ctx.clock).held()]
        for role in roles or ["dev"]:
            model = ctx.config.role(role).models[0]
            decision = guard.check(estimate, role=role, model=model, held=held)
            if not decision.allowed:
                return f"budget: {decision.reason}"
        return None

    def retry_pending(self, state: dict[str, Any], open_tickets: set[str]) -> None:
        """Tickets whose pipeline failed with attempts left: again, once the backoff passed.

        A ticket with an open PR is the PR watch's (its review state says what is next).
        """
        ctx, items = self.ctx, self.items
        for key in ctx.attempts.all_keys():
            pending = ctx.attempts.pending(key)
            ticket = ticket_of(key)
            if not pending or pending.get("what") != "coding" or ticket is None:
                continue
            if ticket in open_tickets:
                ctx.attempts.clear_pending(key)
                continue
            lease = ctx.home.lease(ticket)
            if lease is not None and not items.lease_ended(lease):
                continue  # something runs for it already
            if not items.may_act(key, ticket):
                continue
            if ctx.tracker.get(ticket).closed:  # a person closed it meanwhile
                ctx.attempts.succeeded(key)
                continue
            if not items.slot(ticket):
                continue
            refusal = self.budget_refusal()
            if refusal:
                ctx.report.waiting.append(f"{ticket}: {refusal}")
                continue
            pipeline = pending.get("pipeline") or ctx.orch.pipeline
            self.start(state, ticket, pipeline, claim=lease is None, what="coding")
