"""One orchestrator tick: deterministic code first, a model only when there is judgment.

In order: take the tick lock (a second tick exits at once), reap stale runs,
cancel runs that made no progress, read the inbox, poll the tracker once, claim
ready tickets with leases and start pipelines up to ``max_parallel`` within the
budgets (after a preflight: nothing is claimed that could not merge), watch the
open pull requests no live pipeline owns (review missing →
a review pipeline; approved → the merge queue, then the ticket to Done; changes
requested → the coding pipeline again, bounded; marked as waiting for a person →
nothing, said once), hand due HEARTBEAT.md duties to
the orchestrator role, and report to the outbox only when something changed.
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

from agentctl import failpoints
from agentctl.config import Config
from agentctl.errors import AgentctlError
from agentctl.orchestrator.home import Home
from agentctl.runs import TERMINAL, RunStore, stale_reason, utc_now
from agentctl.runs.timefmt import format_ts
from agentctl.services import Services

MAX_FIX_ROUNDS = 2  # a ticket's pipeline is started again at most this often after review
SETTLED_KEPT = 500  # merged PRs remembered as settled (more than a forge lists at once)


@dataclass
class TickReport:
    started: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    needs_person: list[str] = field(default_factory=list)  # PRs only a person may merge
    reaped: list[str] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    instructions: list[str] = field(default_factory=list)
    duties: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # tracker, forge, preflight: said once
    model_calls: int = 0
    skipped: str | None = None  # why the tick did nothing (another tick holds the lock)

    @property
    def changed(self) -> bool:
        return any(
            (
                self.started,
                self.merged,
                self.failed,
                self.needs_person,
                self.reaped,
                self.canceled,
                self.instructions,
                self.duties,
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [])} | {
            "model_calls": self.model_calls
        }

    def summary(self) -> str:
        if self.skipped:
            return self.skipped
        parts = [f"{len(v)} {k}" for k, v in self.__dict__.items() if isinstance(v, list) and v]
        return ", ".join(parts) or "idle"


@dataclass
class Tick:
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
        self._ready: list[Any] | None = None
        self._services = Services(self.config)
        self._preflights: dict[str, bool] = {}  # pipeline → may start (checked once a tick)

    # -- the tick -------------------------------------------------------------------

    def run(self) -> TickReport:
        with self.home.tick_lock() as held:
            if not held:
                self.report.skipped = "a tick is in progress; this one exits"
                return self.report
            state = self.home.load_state()
            self._reap(state)
            self._watchdog()
            self._inbox(state)
            with self._guard("tracker"):
                self._failures(state)
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

        from agentctl.agent.supervise import cancel_run, end_children, resume_run

        resumes: dict[str, int] = state.setdefault("resumes", {})
        for listing in self._live():
            record = listing.record
            if record.status != "running" or record.parent_id is not None:
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
            elif record.kind == "pipeline" and count < self.orch.max_resumes:
                resumes[listing.id] = count + 1
                resume_run(self.config, run)
                self._changed_runs()
                self.report.reaped.append(f"{listing.id}: {why}; resumed ({count + 1})")
            else:
                run.transition("failed", reason=f"stale: {why}")
                end_children(run, "failed", f"its pipeline {listing.id} failed: stale: {why}")
                self._changed_runs()
                self.report.reaped.append(f"{listing.id}: {why}; marked failed")

    def _watchdog(self) -> None:
        """Cancel a run whose journal has not moved for ``no_progress_timeout``."""
        from agentctl.agent.supervise import cancel_run

        limit = self.clock().timestamp() - self.orch.no_progress_timeout
        for listing in self._live():
            if listing.record.parent_id is not None:
                continue
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

    def _failures(self, state: dict[str, Any]) -> None:
        """Say once when a ticket's pipeline failed: in the report and on the ticket."""
        reported: list[str] = state.setdefault("failures_reported", [])
        if not self.home.leases.is_dir():
            return
        for path in sorted(self.home.leases.glob("*.json")):
            lease = self.home.lease(path.stem) or {}
            run_id, ticket = lease.get("run_id"), lease.get("ticket")
            if not run_id or not ticket or run_id in reported:
                continue
            try:
                record = self.store.get(str(run_id)).load()
            except AgentctlError:
                continue
            if record.status != "failed":
                continue
            reason = (record.reason or "")[:500]
            self.report.failed.append(f"{ticket}: pipeline {run_id} failed: {reason}")
            if not self.dry_run:
                reported.append(str(run_id))  # said once, even if saying it fails
                self._tracker().comment(str(ticket), f"agentctl: the pipeline failed: {reason}")

    # -- inbox and tickets ------------------------------------------------------------

    def _inbox(self, state: dict[str, Any]) -> None:
        seen = int(state.get("inbox_seen", 0))
        for message in self.home.inbox.read(after=seen):
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
        triaged: dict[str, dict[str, Any]] = state.setdefault("triaged", {})
        startable = [t for t in tickets if self.home.lease(t.id) is None]
        if startable and not self._preflight(self.orch.pipeline):
            return  # nothing could merge: no triage, no claim, no pipeline (said in errors)
        if self.orch.triage == "model":
            self._triage(tickets, triaged)
            tickets = [t for t in tickets if triaged.get(t.id, {}).get("action") == "start"]
        running = sum(1 for listing in self._live() if listing.record.kind == "pipeline")
        for ticket in tickets:
            lease = self.home.lease(ticket.id)
            if lease is not None and not self._orphaned(ticket.id, lease):
                continue  # one active pipeline per ticket, ever: its lease says who
            if running >= self.orch.max_parallel:
                self.report.waiting.append(f"{ticket.id}: max_parallel {self.orch.max_parallel}")
                continue
            refusal = self._budget_refusal()
            if refusal:
                self.report.waiting.append(f"{ticket.id}: {refusal}")
                continue
            pipeline = triaged.get(ticket.id, {}).get("pipeline") or self.orch.pipeline
            if self._start(state, ticket.id, pipeline, attempts=0):
                running += 1

    def _triage(self, tickets: list[Any], triaged: dict[str, dict[str, Any]]) -> None:
        """Ask the model about new tickets (or new instructions) — and only then."""
        new = [t for t in tickets if t.id not in triaged and self.home.lease(t.id) is None]
        if not (new or self.report.instructions) or self.dry_run:
            return  # an idle tick imports no model code and calls no model
        from agentctl.orchestrator.triage import triage

        decisions, problem = triage(self.config, new, self.report.instructions)
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
        attempts: int,
        feedback: str | None = None,
    ) -> bool:
        from agentctl.pipeline.process import start_pipeline

        if not self._preflight(pipeline):
            return False  # refused before the claim: the ticket stays as it is
        if self.dry_run:
            self.report.started.append(f"{ticket}: would start {pipeline}")
            return True
        token = self.home.next_token(state)
        state["fence"] = token
        orphan = self.home.lease(ticket)
        if attempts == 0 and orphan is not None and not orphan.get("run_id"):
            # A dead tick's claim (we hold the tick lock, so no live tick is between
            # claim and start): take it over with a higher token, never delete it.
            self.home.set_lease(ticket, {"ticket": ticket, "token": token, "run_id": None})
        elif attempts == 0 and not self.home.claim(ticket, token):
            return False  # another tick won the race for this ticket
        lease = self.home.lease(ticket) or {}
        if attempts == 0 and lease.get("token") != token:
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
            if attempts == 0:  # nothing started under the claim: the next tick may try again
                self.home.release(ticket, token)
            raise
        self._changed_runs()
        self.home.set_lease(
            ticket,
            {**lease, "ticket": ticket, "token": token, "run_id": run.id, "attempts": attempts},
        )
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

    # -- pull requests ------------------------------------------------------------------

    def _owned_branches(self) -> set[str]:
        owned = set()
        for listing in self._live():
            if listing.record.kind != "pipeline":
                continue
            data = self.store.get(listing.id).read_input()
            if data.get("ticket"):
                owned.add(f"agentctl/{data['ticket']['id']}")
            branch = data.get("inputs", {}).get("branch")
            if branch:
                owned.add(branch)
        return owned

    def _watch_prs(self, state: dict[str, Any]) -> None:
        from agentctl.mergequeue import merge_pr
        from agentctl.pipeline.process import base_branch, start_pipeline
        from agentctl.protected import rules_for
        from agentctl.tools.gate import GateSandbox

        root = self.config.workspace.git_root or self.config.workspace.root
        forge = self._forge()
        owned = self._owned_branches()
        self._settle_merged(state, forge, owned)
        for pr in forge.list_prs(state="open"):
            if pr.branch in owned:
                continue
            label = f"PR #{pr.number} ({pr.ticket or pr.branch})"
            if pr.needs_person:  # protected paths: no review, no dev round, no merge
                self._waits_for_person(state, pr, pr.needs_person)
                continue
            if pr.review_state == "approved":
                if self.dry_run:
                    self.report.merged.append(f"{label}: would merge")
                    continue
                failpoints.hit("orchestrator.before_merge")
                try:
                    outcome = merge_pr(
                        forge,
                        pr.number,
                        repo_root=root,
                        state_dir=self.state_dir,
                        gate=self.config.settings.project.test_command or None,
                        journal=self.home.ticks,
                        protected=rules_for(self.config),
                        sandbox=GateSandbox.of(self.config),
                        gate_home=self.home.dir / "gates" / f"pr-{pr.number}",
                    )
                except AgentctlError as exc:  # refused (dirty base checkout, moved head...)
                    self.report.failed.append(f"{label}: merge refused: {exc}")
                    continue
                failpoints.hit("orchestrator.after_merge")
                if outcome.status == "protected":  # the queue marked it: a person merges it
                    self._waits_for_person(state, pr, outcome.detail)
                elif outcome.merged:
                    self.report.merged.append(f"{label}: {str(outcome.sha)[:12]}")
                    self.report.waiting.extend(f"{label}: {why}" for why in outcome.kept)
                    self._to_done(
                        state,
                        pr,
                        f"Merged into {base_branch(self.config)} at {outcome.sha} "
                        f"(PR #{pr.number}).",
                    )
                else:
                    tail = outcome.gate_output[-3000:]
                    self._back_to_dev(
                        state,
                        pr,
                        f"merge {outcome.status}: {outcome.detail}",
                        f"The merge queue refused the merge ({outcome.status}): "
                        f"{outcome.detail}\n{tail}".strip(),
                    )
            elif pr.review_state == "changes_requested":
                self._back_to_dev(state, pr, "review requested changes")
            elif not self.dry_run and pr.branch not in owned and self._preflight("review-pr"):
                run = start_pipeline(
                    self.config,
                    "review-pr",
                    inputs={"branch": pr.branch},
                    parent=self._parent(),
                    preflight=False,
                )
                self._changed_runs()
                owned.add(pr.branch)
                self.report.started.append(f"{label}: review-pr {run.id}")

    def _waits_for_person(self, state: dict[str, Any], pr: Any, why: str) -> None:
        """Say once that a PR waits for a person; later ticks pass it over in silence."""
        said: list[int] = state.setdefault("needs_person_reported", [])
        if pr.number in said:
            return
        self.report.needs_person.append(
            f"PR #{pr.number} ({pr.ticket or pr.branch}): waiting for a person: {why}"
        )
        if not self.dry_run:
            said.append(pr.number)
            del said[:-SETTLED_KEPT]

    def _settle_merged(self, state: dict[str, Any], forge: Any, owned: set[str]) -> None:
        """Merged PRs whose ticket was not yet moved, or whose worktree and branch are
        still here (a tick or pipeline killed after its merge)."""
        from agentctl.errors import NotFoundError

        settled: list[int] = state.setdefault("settled_prs", [])
        del settled[:-SETTLED_KEPT]
        leftovers = self._local_agent_branches() - owned
        for pr in forge.list_prs(state="merged"):
            if pr.branch in leftovers and not self.dry_run:
                leftovers.discard(pr.branch)  # the newest merged PR of a branch decides
                self._remove_merged(pr)
            if not pr.ticket or pr.number in settled:
                continue
            try:
                closed = self._tracker().get(pr.ticket).closed
            except NotFoundError:  # a branch named like a ticket the tracker never had
                closed = True
            if closed:
                settled.append(pr.number)
                continue
            self.report.merged.append(f"PR #{pr.number} ({pr.ticket}): ticket moved to Done")
            if not self.dry_run:
                self._to_done(state, pr, f"Merged at {pr.merge_sha} (PR #{pr.number}).")

    def _local_agent_branches(self) -> set[str]:
        from agentctl import gitops

        root = self.config.workspace.git_root or self.config.workspace.root
        try:
            return gitops.local_branches(root, gitops.AGENT_BRANCHES)
        except AgentctlError as exc:
            self.report.errors.append(f"cannot list the local agentctl/* branches: {exc}")
            return set()

    def _remove_merged(self, pr: Any) -> None:
        """A merged PR's worktree and local branch, left by a crash after its merge."""
        from agentctl.mergequeue import remove_merged

        root = self.config.workspace.git_root or self.config.workspace.root
        try:
            kept = remove_merged(root, self.state_dir, pr.branch, pr.head_sha)
        except AgentctlError as exc:
            self.report.errors.append(f"PR #{pr.number}: clean-up after its merge: {exc}")
            return
        for why in kept:
            self.report.waiting.append(f"PR #{pr.number}: {why}")

    def _to_done(self, state: dict[str, Any], pr: Any, comment: str) -> None:
        """Ticket to Done, said once; a permanent refusal is reported, never retried."""
        from agentctl.errors import ServiceUnavailableError

        settled: list[int] = state.setdefault("settled_prs", [])
        if not pr.ticket:
            settled.append(pr.number)
            return
        tracker = self._tracker()
        try:
            tracker.set_state(pr.ticket, "Done")
        except ServiceUnavailableError:
            raise  # worth another try next tick
        except AgentctlError as exc:
            settled.append(pr.number)
            self.report.errors.append(f"{pr.ticket}: not moved to Done: {exc}")
            return
        settled.append(pr.number)
        tracker.comment(pr.ticket, comment)

    def _back_to_dev(
        self, state: dict[str, Any], pr: Any, why: str, feedback: str | None = None
    ) -> None:
        label = f"PR #{pr.number} ({pr.ticket or pr.branch})"
        if not pr.ticket:
            self.report.waiting.append(f"{label}: {why}; no ticket to send back to")
            return
        lease = self.home.lease(pr.ticket) or {}
        attempts = int(lease.get("attempts", 0))
        if attempts >= MAX_FIX_ROUNDS:
            self.report.failed.append(f"{label}: {why}; gave up after {attempts} rounds")
            return
        # Review comments are read from the PR by the pipeline itself; a gate's log tail is
        # handed over here.
        if self._start(
            state, pr.ticket, self.orch.pipeline, attempts=attempts + 1, feedback=feedback
        ):
            self.report.started[-1] += f" (round {attempts + 1}: {why})"

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
