"""May this call go? Answered from the ledger *before* a call is sent.

A call is refused when the spend so far plus the most it can cost (``upper_bound``)
would exceed a cap: the daily total, the role's or the model's daily cap (all in
the current UTC day), or the cap of a run tree (a run and every run below it, all
time). Spending exactly up to a cap is allowed. A refused call pauses work
resumably; the reason says which cap, what was spent and what the call may cost.

Calls in flight count too: ``held`` are the reservations of calls sent but not yet
settled (see ``agentctl.cost.reserve``), so concurrent callers cannot all see room.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from agentctl.cost.ledger import Ledger
from agentctl.cost.pricing import format_usd, usd
from agentctl.runs.timefmt import utc_now

if TYPE_CHECKING:
    from agentctl.config.schema import Budgets


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer. ``limit`` names the cap that refused (or, when allowed, the tightest
    cap: ``daily``, ``role:<name>``, ``model:<name>``, ``run``); ``remaining`` is what
    that cap still allows before this call (never negative). Both None: no cap applies.
    """

    allowed: bool
    reason: str | None = None
    limit: str | None = None
    remaining: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Held:
    """Money a call in flight may still spend: counted as spent until it settles."""

    role: str | None
    model: str
    run_id: str | None
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Tree:
    """A cap over a tree of runs besides the run's own: a pipeline's over all its runs."""

    limit: str  # e.g. "pipeline:feature"
    what: str  # e.g. "budget of pipeline feature"
    run_ids: frozenset[str]
    cap: Decimal


@dataclass(frozen=True, slots=True)
class _Cap:
    limit: str
    what: str
    cap: Decimal
    spent: Decimal
    where: str


class BudgetGuard:
    def __init__(
        self, budgets: Budgets, ledger: Ledger, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.budgets = budgets
        self.ledger = ledger
        self._clock = clock

    def check(
        self,
        estimate: Decimal,
        *,
        role: str,
        model: str,
        run_ids: set[str] | None = None,
        run_cap: Decimal | None = None,
        held: Sequence[Held] = (),
        trees: Sequence[Tree] = (),
    ) -> Decision:
        """Whether a call that may cost up to ``estimate`` fits every configured cap."""
        tightest: _Cap | None = None
        for cap in self._caps(role, model, run_ids, run_cap, held, trees):
            if cap.spent + estimate > cap.cap:
                return Decision(
                    False,
                    f"{cap.what} {format_usd(cap.cap)} reached: {format_usd(cap.spent)} "
                    f"spent {cap.where}, this call may cost up to {format_usd(estimate)}",
                    cap.limit,
                    max(cap.cap - cap.spent, Decimal(0)),
                )
            if tightest is None or cap.cap - cap.spent < tightest.cap - tightest.spent:
                tightest = cap
        if tightest is None:
            return Decision(True)
        return Decision(True, None, tightest.limit, tightest.cap - tightest.spent)

    def _caps(
        self,
        role: str,
        model: str,
        run_ids: set[str] | None,
        run_cap: Decimal | None,
        held: Sequence[Held],
        trees: Sequence[Tree] = (),
    ) -> list[_Cap]:
        budgets = self.budgets
        caps = []
        role_cap, model_cap = budgets.roles.get(role), budgets.models.get(model)
        if budgets.daily_usd is not None or role_cap is not None or model_cap is not None:
            now = self._clock().astimezone(UTC)
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            total = by_role = by_model = Decimal(0)
            for entry in self.ledger.entries(since=midnight):  # one read for three caps
                total += entry.cost
                by_role += entry.cost if entry.role == role else 0
                by_model += entry.cost if entry.model == model else 0
            for hold in held:
                total += hold.amount
                by_role += hold.amount if hold.role == role else 0
                by_model += hold.amount if hold.model == model else 0
            if budgets.daily_usd is not None:
                caps.append(_Cap("daily", "daily budget", usd(budgets.daily_usd), total, "today"))
            if role_cap is not None:
                caps.append(
                    _Cap(
                        f"role:{role}",
                        f"daily budget of role {role}",
                        usd(role_cap),
                        by_role,
                        "today",
                    )
                )
            if model_cap is not None:
                caps.append(
                    _Cap(
                        f"model:{model}",
                        f"daily budget of model {model}",
                        usd(model_cap),
                        by_model,
                        "today",
                    )
                )
        if run_cap is not None:
            spent = self.ledger.spent(since=None, run_ids=run_ids) if run_ids else Decimal(0)
            spent += sum((h.amount for h in held if run_ids and h.run_id in run_ids), Decimal(0))
            caps.append(_Cap("run", "run budget", run_cap, spent, "by this run and its children"))
        for tree in trees:
            ids = set(tree.run_ids)
            spent = self.ledger.spent(since=None, run_ids=ids)
            spent += sum((h.amount for h in held if h.run_id in ids), Decimal(0))
            caps.append(_Cap(tree.limit, tree.what, tree.cap, spent, "by its runs"))
        return caps
