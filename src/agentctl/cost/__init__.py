"""Cost: prices, the ledger of every model call, budgets checked before a call, reports.

Only the standard library is imported here: ``agentctl cost`` imports this package
and must start fast (no SDK, no pydantic, no rich).
"""

from agentctl.cost.budget import BudgetGuard, Decision
from agentctl.cost.ledger import SCHEMA_VERSION, Entry, Ledger, dumps
from agentctl.cost.pricing import cost_at, cost_of, format_usd, plain, rates, upper_bound
from agentctl.cost.report import (
    BY,
    By,
    Report,
    Row,
    build_report,
    descendants,
    parse_since,
    report,
)

__all__ = [
    "BY",
    "SCHEMA_VERSION",
    "BudgetGuard",
    "By",
    "Decision",
    "Entry",
    "Ledger",
    "Report",
    "Row",
    "build_report",
    "cost_at",
    "cost_of",
    "descendants",
    "dumps",
    "format_usd",
    "parse_since",
    "plain",
    "rates",
    "report",
    "upper_bound",
]
