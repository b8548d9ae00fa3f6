"""One orchestrator tick: deterministic code first, a model only when there is judgment.

In order: take the tick lock (a second tick exits at once), reap stale runs,
cancel runs that made no progress (``reaping``), read the inbox, look once at the
pipelines it started that ended (a failure counts against the item's attempts, and
parks it when permanent or the last one: ``items``), poll the tracker once, claim
ready tickets with leases and start pipelines up to ``max_parallel`` within the
budgets (after a preflight: nothing is claimed that could not merge: ``dispatch``),
watch the open pull requests no live pipeline owns (``prs``), start again what
failed with attempts left once its backoff passed, hand due HEARTBEAT.md duties to
the orchestrator role (``duties``), send what ``[notify]`` asks for (``notify``),
and report to the outbox only when something changed. This module only sequences
those parts and owns the lock, the state and the report; a parked item is left
alone until a person acts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from agentctl import keystore
from agentctl.config import Config
from agentctl.errors import MissingKeyError, ServiceError
from agentctl.orchestrator.attempts import Attempts, ticket_key
from agentctl.orchestrator.context import TickContext
from agentctl.orchestrator.dispatch import Dispatch
from agentctl.orchestrator.duties import hand_out_duties
from agentctl.orchestrator.fallbacks import report_fallbacks
from agentctl.orchestrator.home import Home
from agentctl.orchestrator.items import Items
from agentctl.orchestrator.notify import notify
from agentctl.orchestrator.prs import PullRequestWatch
from agentctl.orchestrator.reaping import Reaper
from agentctl.orchestrator.report import TickReport
from agentctl.pipeline.services import Services
from agentctl.runs import RunStore, utc_now
from agentctl.runs.timefmt import format_ts

__all__ = ["Tick", "TickReport"]


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
        self.store = RunStore(self.state_dir)
        self._services = Services(self.config)

    def run(self) -> TickReport:
        with self.home.tick_lock() as held:
            if not held:
                self.report.skipped = "a tick is in progress; this one exits"
                return self.report
            state = self.home.load_state()
            ctx = self._context(state)
            items = Items(ctx)
            dispatch = Dispatch(ctx, items)
            reaper = Reaper(ctx, items)
            reaper.reap(state)
            reaper.watchdog()
            self._inbox(state, items)
            with self._guard("tracker"):
                items.observe(state)
                dispatch.dispatch(state)
            with self._guard("pull requests"):
                PullRequestWatch(ctx, items, dispatch).watch(state)
            hand_out_duties(ctx, state)
            report_fallbacks(ctx, state)
            self._notify(state, ctx)
            self._finish(state, ctx)
        return self.report

    def _context(self, state: dict[str, Any]) -> TickContext:
        orch = self.config.settings.orchestrator
        return TickContext(
            config=self.config,
            clock=self.clock,
            dry_run=self.dry_run,
            report=self.report,
            parent_id=self.parent_id,
            home=self.home,
            store=self.store,
            attempts=Attempts(state, orch.max_attempts, orch.retry_backoff),
            services=self._services,
        )

    def _finish(self, state: dict[str, Any], ctx: TickContext) -> None:
        """The state saved, the tick journaled, the outbox told when something changed."""
        new_errors = self.report.errors != state.get("last_errors", [])
        state["last_errors"] = self.report.errors
        state["last_digest"] = _digest(ctx)
        state["last_tick"] = format_ts(self.clock())
        if self.dry_run:
            return
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

    def _notify(self, state: dict[str, Any], ctx: TickContext) -> None:
        """Reports sent out (``[notify]``): last, and never at the cost of the tick's work.

        Whatever goes wrong there (a bug included) is one line in the report's errors;
        the merges have happened and the state is saved all the same.
        """
        try:
            notify(ctx, state)
        except Exception as exc:  # the tick's own work must not be lost to a message
            problem = keystore.redact(f"{type(exc).__name__}: {exc}")
            self.report.errors.append(f"notify: {problem}"[:500])

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """A tracker or forge failure ends that part of the tick, not the tick.

        Nothing here retries: the client already retried what was worth it, and the
        next tick tries once more. The report says it; the outbox hears it only when
        it is new, so a broken token is one message, not one per tick.
        """
        try:
            yield
        except (ServiceError, MissingKeyError) as exc:
            self.report.errors.append(f"{what}: {exc}")

    def _inbox(self, state: dict[str, Any], items: Items) -> None:
        seen = int(state.get("inbox_seen", 0))
        for message in self.home.inbox.read(after=seen):
            seen = message.seq
            if message.body.get("type") == "retry" and message.body.get("ticket"):
                # `agentctl tickets retry`: a person acted; not an instruction for triage
                ticket = str(message.body["ticket"])
                items.unpark(ticket_key(ticket), "un-parked by `agentctl tickets retry`")
                continue
            text = message.body.get("text") or json.dumps(message.body)
            self.report.instructions.append(str(text))
            seen = message.seq
        state["inbox_seen"] = seen

    def _spend(self) -> dict[str, str]:
        # lazy: the ledger, only when a report goes to the outbox
        from agentctl.cost.ledger import Ledger

        ledger = Ledger(self.state_dir, self.clock)
        since = self.clock().replace(hour=0, minute=0, second=0, microsecond=0)
        by_role: dict[str, Decimal] = {}
        for entry in ledger.entries(since=since):
            key = entry.role or "-"
            by_role[key] = by_role.get(key, Decimal(0)) + entry.cost
        return {k: str(v) for k, v in sorted(by_role.items())}


def _digest(ctx: TickContext) -> str:
    live = sorted((x.id, x.record.status if x.record else "") for x in ctx.live())
    tickets = sorted(t.id for t in ctx.ready or [])  # none read: a failed poll
    text = json.dumps([live, tickets], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
