"""What ``agentctl cost`` shows: ledger entries summed by model, role, day or run tree.

Closed days are summed from their summaries (``agentctl.cost.summary``), so a report
over a month parses only the open day's lines; the figures are the lines' exactly.

Costs are the ones recorded at call time (the price then in force); a what-if
column re-prices the same tokens, call by call, at another model's price, so a
long-context band applies exactly where it would have.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from agentctl.cost.ledger import Entry, Ledger
from agentctl.cost.summary import Tally, tallies
from agentctl.errors import UsageError
from agentctl.llm.types import Usage
from agentctl.runs.store import RunStore
from agentctl.runs.timefmt import format_ts, parse_ts, utc_now

if TYPE_CHECKING:
    from agentctl.config.schema import Price

By = Literal["model", "role", "day", "run"]
BY: tuple[By, ...] = get_args(By)

_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SINCE_HINT = "give a duration such as 12h, 1d or 7d, or a date such as 2026-11-01 (UTC)"


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    calls: int
    usage: Usage
    cost: Decimal
    what_if_cost: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "calls": self.calls, **self.usage.to_json()}
        out["cost_usd"] = self.cost
        if self.what_if_cost is not None:
            out["what_if_cost_usd"] = self.what_if_cost
        return out


@dataclass(frozen=True, slots=True)
class Report:
    by: By
    rows: tuple[Row, ...]
    total: Row
    since: datetime | None = None
    run_ids: frozenset[str] = frozenset()
    problems: tuple[str, ...] = field(default=())

    def top(self, limit: int | None) -> tuple[tuple[Row, ...], Row | None]:
        """The ``limit`` dearest rows, in the report's order, and one row summing the
        rest (None when nothing is left out): a table of 20,000 runs is unreadable and
        slow to draw, and its total must still add up."""
        if limit is None or len(self.rows) <= limit:
            return self.rows, None
        kept = {id(row) for row in sorted(self.rows, key=lambda r: (-r.cost, r.key))[:limit]}
        shown = tuple(row for row in self.rows if id(row) in kept)
        rest = [row for row in self.rows if id(row) not in kept]
        usage = rest[0].usage
        for row in rest[1:]:
            usage = usage + row.usage
        what_if = None
        if rest[0].what_if_cost is not None:
            what_if = sum((row.what_if_cost or Decimal(0) for row in rest), Decimal(0))
        calls = sum(row.calls for row in rest)
        cost = sum((row.cost for row in rest), Decimal(0))
        return shown, Row(f"{len(rest):,} more {self.by}s", calls, usage, cost, what_if)

    def to_json(self) -> dict[str, Any]:
        return {
            "since": format_ts(self.since) if self.since is not None else None,
            "by": self.by,
            "rows": [row.to_json() for row in self.rows],
            "total": self.total.to_json(),
        }


def _key(tally: Tally, by: By) -> str:
    if by == "model":
        return tally.model
    if by == "role":
        return tally.role or "-"
    if by == "day":
        return tally.day
    return tally.root_id


@dataclass(slots=True)
class _Sum:
    calls: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = field(default_factory=Decimal)
    what_if: Decimal = field(default_factory=Decimal)

    def add(self, tally: Tally) -> None:
        self.calls += tally.calls
        self.usage += tally.usage
        self.cost += tally.cost
        if tally.what_if is not None:
            self.what_if += tally.what_if

    def row(self, key: str, what_if: Price | None) -> Row:
        return Row(key, self.calls, self.usage, self.cost, self.what_if if what_if else None)


def report(entries: Iterable[Entry], *, by: By, what_if: Price | None = None) -> Report:
    """Rows per key with calls, tokens, cost (and what-if cost), plus a total row.

    ``by="run"`` groups by ``root_id``: a chat and everything it started is one row.
    Days and runs are listed oldest first, models and roles dearest first.
    """
    return _report((Tally.of(entry, what_if) for entry in entries), by=by, what_if=what_if)


def _report(tallies: Iterable[Tally], *, by: By, what_if: Price | None) -> Report:
    groups: dict[str, _Sum] = {}
    total = _Sum()
    for tally in tallies:
        groups.setdefault(_key(tally, by), _Sum()).add(tally)
        total.add(tally)
    rows = [group.row(key, what_if) for key, group in groups.items()]
    if by in ("day", "run"):
        rows.sort(key=lambda row: row.key)
    else:
        rows.sort(key=lambda row: (-row.cost, row.key))
    return Report(by, tuple(rows), total.row("total", what_if))


def descendants(state_dir: Path, run_id: str) -> set[str]:
    """``run_id`` and every run below it (each run's children index, not every run)."""
    return RunStore(state_dir).descendants(run_id)


def parse_since(text: str, *, clock: Callable[[], datetime] = utc_now) -> datetime:
    """``12h``, ``1d``, ``7d``, ``2w`` (back from now), or a date (its midnight UTC)."""
    value = text.strip()
    match = _DURATION.match(value)
    if match is not None:
        return clock() - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d")
            return day.replace(tzinfo=UTC)
        return parse_ts(value)
    except ValueError:
        raise UsageError(f"cannot read --since {text!r}", hint=_SINCE_HINT) from None


def check_by(by: str) -> By:
    for choice in BY:
        if by == choice:
            return choice
    raise UsageError(f"cannot group by {by!r}", hint=f"use one of {', '.join(BY)}")


def build_report(
    state_dir: Path,
    *,
    by: str,
    since: datetime | None,
    run: str | None = None,
    what_if: Price | None = None,
) -> Report:
    """The whole ``agentctl cost`` query: ``run`` is a reference as ``runs show`` takes."""
    grouping = check_by(by)
    run_ids = None
    if run is not None:
        run_ids = descendants(state_dir, RunStore(state_dir).get(run).id)
    ledger = Ledger(state_dir)
    found = tallies(ledger, since, run_ids=run_ids, what_if=what_if, by_run=grouping == "run")
    result = _report(found, by=grouping, what_if=what_if)
    return replace(
        result, since=since, run_ids=frozenset(run_ids or ()), problems=tuple(ledger.problems)
    )
