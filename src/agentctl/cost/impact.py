"""What tiering saved: the ledger's calls beside what the same tokens would have cost.

``agentctl cost --impact`` answers the question the tiered design was made for. For
each tier (the main session, the orchestrator, each role) it sums the calls' tokens and
their actual cost — each line's own recorded prices, the price at the time — and prices
the same tokens three other ways, with today's configured prices:

- ``all_main``: everything on the main session's model (no tiering at all);
- ``all_orchestrator``: everything on the orchestrator's model (one cheaper tier);
- ``paid_instead_of_free``: the calls of free models (price 0: local servers) on their
  role's first paid model, everything else as it was (what the local models saved).

Each call is priced on its own (a long-context band depends on the call's prompt), so
the figures are exact to the micro-dollar. ``cache_saved`` is what the cache reads saved
over plain input, less what the cache writes cost over it, at the lines' own prices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from agentctl.config import Config
from agentctl.cost.fallback import free
from agentctl.cost.ledger import Ledger
from agentctl.cost.pricing import MILLION, cost_of, plain
from agentctl.llm.types import Usage

COUNTERFACTUALS = ("all_main", "all_orchestrator", "paid_instead_of_free")
KINDS = ("conversation", "orchestration", "work")  # the order of the table's tiers


@dataclass
class TierRow:
    """One tier's calls: tokens, what they cost, and what they would have cost."""

    tier: str
    kind: str  # conversation | orchestration | work
    calls: int = 0
    usage: Usage = field(default_factory=Usage)
    actual: Decimal = Decimal(0)
    would: dict[str, Decimal] = field(
        default_factory=lambda: dict.fromkeys(COUNTERFACTUALS, Decimal(0))
    )
    cache_saved: Decimal = Decimal(0)

    def to_json(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "kind": self.kind,
            "calls": self.calls,
            **self.usage.to_json(),
            "actual_usd": plain(self.actual),
            **{f"{name}_usd": plain(value) for name, value in self.would.items()},
            "cache_saved_usd": plain(self.cache_saved),
        }


@dataclass
class Impact:
    since: datetime | None
    main_model: str
    orchestrator_model: str
    rows: list[TierRow]
    total: TierRow
    problems: list[str]

    def to_json(self) -> dict[str, Any]:
        conversation = sum((r.actual for r in self.rows if r.kind == "conversation"), Decimal(0))
        actual = self.total.actual
        return {
            "since": self.since.isoformat() if self.since else None,
            "main_model": self.main_model,
            "orchestrator_model": self.orchestrator_model,
            "rows": [row.to_json() for row in self.rows],
            "total": self.total.to_json(),
            "conversation_share": plain(conversation / actual) if actual else "0",
            "automation_share": plain((actual - conversation) / actual) if actual else "0",
            "saved_vs_all_main_usd": plain(self.total.would["all_main"] - actual),
        }


def impact(config: Config, since: datetime | None, until: datetime | None = None) -> Impact:
    """The impact table of the ledger's calls in ``[since, until)``."""
    orchestrator_role = config.settings.orchestrator.role
    main_name = config.role("main").models[0]
    orch_name = config.role(orchestrator_role).models[0]
    main, orch = config.models[main_name], config.models[orch_name]
    ledger = Ledger(config.workspace.state_dir)
    rows: dict[str, TierRow] = {}
    total = TierRow("total", "all")
    for entry in ledger.entries(since, until):
        tier = entry.role or "-"
        kind = (
            "conversation"
            if tier == "main"
            else "orchestration"
            if tier == orchestrator_role
            else "work"
        )
        row = rows.setdefault(tier, TierRow(tier, kind))
        prices = {
            "all_main": cost_of(entry.usage, main.price),
            "all_orchestrator": cost_of(entry.usage, orch.price),
            "paid_instead_of_free": _paid_instead(config, entry.role, entry.model, entry.usage)
            or entry.cost,
        }
        saved = (
            entry.usage.cache_read_tokens * (entry.price["input"] - entry.price["cache_read"])
            - entry.usage.cache_write_tokens * (entry.price["cache_write"] - entry.price["input"])
        ) / MILLION
        for target in (row, total):
            target.calls += 1
            target.usage = target.usage + entry.usage
            target.actual += entry.cost
            target.cache_saved += saved
            for name, value in prices.items():
                target.would[name] += value
    ordered = sorted(
        rows.values(),
        key=lambda r: (("conversation", "orchestration", "work").index(r.kind), -r.actual, r.tier),
    )
    return Impact(since, main_name, orch_name, ordered, total, list(ledger.problems))


def _paid_instead(
    config: Config, role: str | None, model_name: str, usage: Usage
) -> Decimal | None:
    """What a free model's call would have cost on its role's first paid model; None
    for a paid model's call (it stays as it was) or a role with no paid model."""
    model = config.models.get(model_name)
    if model is None or not free(model) or role is None or role not in config.roles:
        return None
    for name in config.roles[role].models:
        candidate = config.models.get(name)
        if candidate is not None and not free(candidate):
            return cost_of(usage, candidate.price)
    return None
