"""Budgets: each cap refuses exactly past its boundary, before the call is sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agentctl.config.schema import Budgets, Price
from agentctl.cost import BudgetGuard, Decision, Ledger
from agentctl.llm.types import Usage
from agentctl.runs import RunStore
from tests.test_cost_ledger import T0, make_entry

DOLLAR = Price(input=1.0, output=1.0)  # one million tokens cost $1


def spend(ledger: Ledger, usd: str, ts: datetime = T0, **fields: str) -> None:
    """Record calls costing exactly ``usd`` at $1 per million tokens."""
    tokens = int(Decimal(usd) * 1_000_000)
    ledger.record(make_entry(ts, usage=Usage(tokens, 0), price=DOLLAR, **fields))


def guard(tmp_path: Path, budgets: Budgets, now: datetime = T0) -> tuple[BudgetGuard, Ledger]:
    ledger = Ledger(tmp_path)
    return BudgetGuard(budgets, ledger, clock=lambda: now), ledger


def test_no_cap_configured_allows_everything(tmp_path: Path) -> None:
    check, ledger = guard(tmp_path, Budgets())
    spend(ledger, "1000")
    assert check.check(Decimal(10**6), role="dev", model="sonnet") == Decision(True)


def test_daily_cap_boundary_and_reason(tmp_path: Path) -> None:
    check, ledger = guard(tmp_path, Budgets(daily_usd=20.0))
    spend(ledger, "19.95", role="review", model="opus")
    allowed = check.check(Decimal("0.05"), role="dev", model="sonnet")
    assert allowed == Decision(True, None, "daily", Decimal("0.05"))
    refused = check.check(Decimal("0.050001"), role="dev", model="sonnet")
    assert not refused.allowed and refused.limit == "daily"
    assert refused.remaining == Decimal("0.05")
    assert refused.reason == (
        "daily budget $20 reached: $19.95 spent today, this call may cost up to $0.05"
    )


@pytest.mark.parametrize(
    ("budgets", "limit", "what"),
    [
        (Budgets(roles={"dev": 1.5}), "role:dev", "daily budget of role dev $1.5"),
        (Budgets(models={"sonnet": 1.5}), "model:sonnet", "daily budget of model sonnet $1.5"),
    ],
)
def test_role_and_model_caps_count_only_their_own_spend(
    tmp_path: Path, budgets: Budgets, limit: str, what: str
) -> None:
    check, ledger = guard(tmp_path, budgets)
    spend(ledger, "1", role="dev", model="sonnet")
    spend(ledger, "100", role="review", model="opus")  # another role and model: not counted
    assert check.check(Decimal("0.5"), role="dev", model="sonnet").allowed
    refused = check.check(Decimal("0.51"), role="dev", model="sonnet")
    assert (refused.allowed, refused.limit) == (False, limit)
    assert refused.reason is not None and refused.reason.startswith(f"{what} reached: $1 spent")
    # the other role and model have no cap
    assert check.check(Decimal(1000), role="review", model="opus") == Decision(True)


def test_run_cap_counts_the_run_tree_over_all_time(tmp_path: Path) -> None:
    store = RunStore(tmp_path, clock=lambda: T0 - timedelta(days=3))
    parent = store.create("pipeline", input={})
    child = store.create("agent", input={}, parent=parent)
    other = store.create("agent", input={})
    check, ledger = guard(tmp_path, Budgets(daily_usd=100.0))
    spend(ledger, "1", T0 - timedelta(days=2), run_id=parent.id)  # days ago: still counts
    spend(ledger, "1", run_id=child.id)
    spend(ledger, "50", run_id=other.id)
    tree = {parent.id, child.id}
    ok = check.check(Decimal(1), role="dev", model="sonnet", run_ids=tree, run_cap=Decimal(3))
    assert ok == Decision(True, None, "run", Decimal(1))
    refused = check.check(
        Decimal("1.01"), role="dev", model="sonnet", run_ids=tree, run_cap=Decimal(3)
    )
    assert (refused.allowed, refused.limit, refused.remaining) == (False, "run", Decimal(1))
    assert refused.reason == (
        "run budget $3 reached: $2 spent by this run and its children, "
        "this call may cost up to $1.01"
    )


def test_first_cap_reached_is_named(tmp_path: Path) -> None:
    budgets = Budgets(daily_usd=10.0, roles={"dev": 2.0}, models={"sonnet": 5.0})
    check, ledger = guard(tmp_path, budgets)
    spend(ledger, "1.5", role="dev", model="sonnet")
    decision = check.check(Decimal("0.25"), role="dev", model="sonnet")
    assert decision == Decision(True, None, "role:dev", Decimal("0.5"))  # the tightest
    assert check.check(Decimal(1), role="dev", model="sonnet").limit == "role:dev"
    assert check.check(Decimal(9), role="main", model="opus").limit == "daily"


def test_a_new_utc_day_resets_daily_caps(tmp_path: Path) -> None:
    now = [T0.replace(hour=23, minute=59)]
    ledger = Ledger(tmp_path)
    check = BudgetGuard(Budgets(daily_usd=1.0, roles={"dev": 1.0}), ledger, clock=lambda: now[0])
    spend(ledger, "1", now[0])
    assert not check.check(Decimal("0.01"), role="dev", model="sonnet").allowed
    now[0] = T0.replace(hour=0, minute=0) + timedelta(days=1)
    assert check.check(Decimal(1), role="dev", model="sonnet") == Decision(
        True, None, "daily", Decimal(1)
    )
