"""Paid fallbacks, said once per role per day: in the tick's report and the outbox.

A role whose free or local model went down is working on a paid one (``cost/fallback``
marks the day and role). The tick lists today's marks (a small folder, no ledger read
on an idle tick) and reports each role once a day with the spend so far.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from agentctl.cost import fallback
from agentctl.cost.pricing import format_usd
from agentctl.orchestrator.context import TickContext


def report_fallbacks(ctx: TickContext, state: dict[str, Any]) -> None:
    now = ctx.clock()
    marks = fallback.marked(ctx.config.workspace.state_dir, now)
    day = now.date().isoformat()
    said = state.setdefault("fallbacks_reported", {})
    told = set(said.get(day, []))
    new = [role for role in marks if role not in told]
    if not new:
        return
    spent = fallback.spent_by_role(ctx.config, now)
    cap = ctx.config.settings.budgets.fallback_usd
    limit = f" (cap {format_usd(cap)} a day)" if cap is not None else ""
    for role in new:
        mark = marks[role]
        ctx.report.fallbacks.append(
            f"{role} fell back from {mark['first']} to paid {mark['to']}: "
            f"{format_usd(spent.get(role, Decimal(0)))} so far today{limit}"
        )
    said.clear()  # only today's roles are kept
    said[day] = sorted(told | set(new))
