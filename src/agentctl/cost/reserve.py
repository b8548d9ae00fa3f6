"""Reserve before a call, settle after: no cap is passed, however many callers race.

Checking the ledger and then calling lets every concurrent caller see the same room.
So a call first *reserves* its upper-bound cost: under one lock
(``<state>/ledger/holds.lock``) the day's ledger and every reservation still held
are summed, and the reservation is written to ``holds.json`` only if it fits every
cap. After the call, *settling* records the real cost in the ledger and drops the
reservation under the same lock, so a reader sees one or the other, never neither.

A reservation whose process died (pid and process start time, on this host) or that
is older than ``MAX_AGE`` is dropped: a crash never blocks the budget for good.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from agentctl.atomic import write_json
from agentctl.cost.budget import BudgetGuard, Decision, Held, Tree
from agentctl.cost.ledger import Entry, Ledger, report_once
from agentctl.cost.pricing import plain, usd
from agentctl.errors import BudgetExceeded
from agentctl.llm.types import Usage
from agentctl.runs.liveness import pid_alive, process_start_token, this_host
from agentctl.runs.oserrors import state_error
from agentctl.runs.record import RunRecord
from agentctl.runs.timefmt import format_ts, parse_ts, utc_now

if TYPE_CHECKING:
    from agentctl.config.schema import Budgets, Model

# Longer than one model's whole attempt (retries waiting up to 300 s, streams up to
# 600 s each): a live call is never dropped, a wedged one frees its money in time.
MAX_AGE = timedelta(hours=2)


class BudgetRefused(BudgetExceeded):
    """A reservation that would pass a cap; ``decision`` says which and why."""

    def __init__(self, decision: Decision, *, hint: str | None = None) -> None:
        super().__init__(f"not sent: {decision.reason}", hint=hint)
        self.decision = decision


@dataclass(frozen=True, slots=True)
class Hold:
    """One reservation: who holds it (to expire it) and what it may still spend."""

    id: str
    pid: int
    pid_start: str | None
    host: str
    at: datetime
    held: Held

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": self.pid,
            "pid_start": self.pid_start,
            "host": self.host,
            "at": format_ts(self.at),
            "role": self.held.role,
            "model": self.held.model,
            "run_id": self.held.run_id,
            "amount": plain(self.held.amount),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hold:
        amount = usd(data["amount"])
        if not amount.is_finite() or amount < 0:
            raise ValueError(f"bad amount {data['amount']!r}")
        return cls(
            id=str(data["id"]),
            pid=int(data["pid"]),
            pid_start=data.get("pid_start"),
            host=str(data["host"]),
            at=parse_ts(str(data["at"])),
            held=Held(data.get("role"), str(data["model"]), data.get("run_id"), amount),
        )


class Reservations:
    """The reservations of one state folder, next to its ledger."""

    def __init__(
        self,
        ledger: Ledger,
        budgets: Budgets,
        clock: Callable[[], datetime] = utc_now,
        *,
        max_age: timedelta = MAX_AGE,
    ) -> None:
        self.ledger = ledger
        self.guard = BudgetGuard(budgets, ledger, clock)
        self.path = ledger.dir / "holds.json"
        self._lock_path = ledger.dir / "holds.lock"
        self._clock = clock
        self.max_age = max_age
        self._host = this_host()

    def reserve(
        self,
        amount: Decimal,
        *,
        role: str,
        model: str,
        run_id: str | None,
        run_ids: set[str] | None = None,
        run_cap: Decimal | None = None,
        trees: tuple[Tree, ...] = (),
    ) -> tuple[Hold | None, Decision]:
        """Hold ``amount`` if it fits every cap; (None, the refusal) if it does not."""
        with self._locked():
            holds = self._live(self._load())
            decision = self.guard.check(
                amount,
                role=role,
                model=model,
                run_ids=run_ids,
                run_cap=run_cap,
                held=[h.held for h in holds],
                trees=trees,
            )
            for problem in report_once(self.ledger.problems):  # to the process's log
                sys.stderr.write(f"agentctl: warning: ledger: {problem}\n")
            if not decision.allowed:
                self._save(holds)
                return None, decision
            pid = os.getpid()
            hold = Hold(
                id=os.urandom(8).hex(),
                pid=pid,
                pid_start=process_start_token(pid),
                host=self._host,
                at=self._clock(),
                held=Held(role, model, run_id, amount),
            )
            self._save([*holds, hold])
            return hold, decision

    def release(self, hold: Hold) -> None:
        """The call was not billed (it failed before an answer): free its money."""
        with self._locked():
            self._save([h for h in self._load() if h.id != hold.id])

    def settle(
        self,
        hold: Hold | None,
        *,
        run: RunRecord,
        model_name: str,
        model: Model,
        usage: Usage,
        model_id: str | None = None,
        request_id: str | None = None,
    ) -> Entry:
        """Record the real cost in the ledger and drop ``hold``, as one step for readers."""
        with self._locked():
            entry = self.ledger.charge(
                run=run,
                model_name=model_name,
                model=model,
                usage=usage,
                model_id=model_id,
                request_id=request_id,
            )
            if hold is not None:
                self._save([h for h in self._load() if h.id != hold.id])
            return entry

    def held(self) -> list[Hold]:
        """The reservations now held (dead ones left out), for a report."""
        return self._live(self._load())

    # -- the file -------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.ledger.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise state_error(exc, self._lock_path, "lock") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # also releases the lock

    def _load(self) -> list[Hold]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            return []  # unreadable: only in-flight money is lost, and it is rewritten now
        holds = []
        for item in data.get("holds", []) if isinstance(data, dict) else []:
            try:
                holds.append(Hold.from_json(item))
            except (KeyError, TypeError, ValueError):
                continue
        return holds

    def _save(self, holds: list[Hold]) -> None:
        # Not fsynced: after a power loss the holders are gone too.
        write_json(
            self.path, {"schema_version": 1, "holds": [h.to_json() for h in holds]}, durable=False
        )

    def _live(self, holds: list[Hold]) -> list[Hold]:
        now = self._clock()
        out = []
        for hold in holds:
            if now - hold.at > self.max_age:
                continue
            if hold.host == self._host and not pid_alive(hold.pid, hold.pid_start):
                continue
            out.append(hold)
        return out
