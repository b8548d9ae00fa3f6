"""The live view of a pipeline run at a terminal: one row per step, redrawn in place.

Plain lines are what a pipe or a log gets (``follow_pipeline``); a person at a
terminal gets this table instead: each step's state, model, time and cost, the
loops back, and the run's spend so far from the ledger (read at most once a
second: the view must not cost more than the work it shows, and once more at the
end, so the last frame's total is the run's final total). A step that ran several
rounds (a loop back) shows the sum of its rounds' time and cost, so the rows add
up; each row stays on one line, its note cut with an ellipsis rather than wrapped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from agentctl.tools.feedback import one_line
from agentctl.visible import visible

MARKS = {
    "pending": "·",
    "running": "▶",
    "ok": "✓",
    "failed": "✗",
    "skipped": "–",
    "back": "↺",
    "changes": "↺",
}
STYLES = {
    "running": "bold cyan",
    "ok": "green",
    "failed": "red",
    "back": "yellow",
    "changes": "cyan",
}
CHANGES_PREFIX = "review requested changes:"  # how run_role opens a request for changes


@dataclass
class Row:
    step: str
    kind: str = ""
    status: str = "pending"
    model: str = ""
    cost: Decimal = Decimal(0)  # every round's, summed
    started: datetime | None = None  # the round under way
    took: float | None = None  # the rounds that ended, summed (None: none ended yet)
    note: str = ""
    runs: int = 0

    def end_round(self, ts: str, cost: object = None) -> None:
        """A round ended (finished, or failed into a loop back): add its time and cost."""
        from agentctl.runs import parse_ts

        if self.started is not None:
            seconds = (parse_ts(ts) - self.started).total_seconds()
            self.took = (self.took or 0.0) + seconds
            self.started = None
        self.cost += _usd(cost)

    def elapsed(self, now: datetime | None) -> float | None:
        """The rounds' time, with the one under way counted up to ``now``."""
        if self.status == "running" and self.started is not None and now is not None:
            return (self.took or 0.0) + (now - self.started).total_seconds()
        return self.took


class PipelineView:
    """Folds a pipeline's journal events into rows; ``table()`` draws them."""

    def __init__(
        self,
        title: str,
        steps: Sequence[tuple[str, str]] = (),
        spend: Callable[[], Decimal | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.title = title
        self.rows: dict[str, Row] = {step: Row(step, kind) for step, kind in steps}
        self._spend = spend
        self._clock = clock
        self._spent: Decimal | None = None
        self._spent_at = float("-inf")
        self.waiting: str | None = None  # why the run has not started yet

    def apply(self, event: dict[str, Any]) -> None:
        from agentctl.runs import parse_ts

        kind, step = event.get("type"), event.get("step")
        if kind == "process.waiting":  # past [executor] max_processes: said in the caption
            from agentctl.runs.procslots import waiting_text

            self.waiting = waiting_text(event.get("running"), event.get("limit"))
            return
        if kind == "step.start":
            self.waiting = None
        if not step or kind not in ("step.start", "step.finish", "step.goto"):
            return
        row = self.rows.setdefault(step, Row(step))
        if kind == "step.start":
            row.kind = event.get("kind") or row.kind
            row.status, row.runs = "running", row.runs + 1
            row.started = parse_ts(event["ts"])  # a round cut short by a crash adds nothing
        elif kind == "step.finish":
            out = event.get("outputs") or {}
            row.status = str(event.get("status") or "ok")
            row.model = str(out.get("model") or row.model)
            row.end_round(event["ts"], out.get("cost"))
            row.note = _note(out)
        else:
            out = event.get("outputs") or {}  # what the round that failed cost (a review)
            changes = event.get("reason") == "changes_requested"
            row.status = "changes" if changes else "back"
            row.model = str(out.get("model") or row.model)
            if "ts" in event:
                row.end_round(event["ts"], out.get("cost"))
            row.note = goto_note(event, 60)

    def last_frame(self) -> None:
        """The run ended: the next frame reads the ledger again, so its total is final."""
        self._spent_at = float("-inf")

    def spent(self) -> Decimal | None:
        now = self._clock()
        if now - self._spent_at >= 1.0:
            self._spent, self._spent_at = self._spend(), now
        return self._spent

    def table(self, now: datetime | None = None, width: int | None = None) -> Any:
        """The table as of ``now``; within ``width`` columns, each row on one line.

        The note (a failure, a loop back's reason) takes the room the other columns
        leave and ends in an ellipsis when it is longer: a wrapped note used to show
        "→ implement (1):" with its reason scattered over the lines below.
        """
        from rich.table import Table
        from rich.text import Text

        spent = self.spent()
        caption = f"spent ${spent:f}" if spent is not None else None
        if self.waiting:
            caption = " · ".join(c for c in (self.waiting, caption) if c)
        table = Table(title=self.title, caption=caption, title_justify="left", expand=False)
        styles = [STYLES.get(row.status) for row in self.rows.values()]
        cells = [self._cells(row, now) for row in self.rows.values()]
        if width is not None:
            cells = _fit_notes(cells, width)
        for column in HEADERS:
            table.add_column(column, no_wrap=True)
        for row_cells, style in zip(cells, styles, strict=True):
            table.add_row(*(Text(cell) for cell in row_cells), style=style)
        return table

    @staticmethod
    def _cells(row: Row, now: datetime | None) -> tuple[str, ...]:
        took = row.elapsed(now)
        cells = (
            MARKS.get(row.status, "?"),
            row.step + (f" ×{row.runs}" if row.runs > 1 else ""),
            row.kind,
            row.model,
            f"{took:.1f}s" if took is not None else "",
            f"${row.cost:f}" if row.cost else "",
            row.note,
        )
        return tuple(visible(cell, one_line=True) for cell in cells)


HEADERS = ("", "step", "kind", "model", "time", "cost", "")


def _fit_notes(rows: list[tuple[str, ...]], width: int) -> list[tuple[str, ...]]:
    """Cut the last column so that the table fits ``width``: one space and a border a side."""
    from rich.cells import cell_len
    from rich.text import Text

    fixed = sum(
        max([cell_len(header)] + [cell_len(row[i]) for row in rows])
        for i, header in enumerate(HEADERS[:-1])
    )
    room = max(width - fixed - 3 * len(HEADERS) - 1, 1)
    out = []
    for row in rows:
        note = Text(row[-1])
        note.truncate(room, overflow="ellipsis")
        out.append((*row[:-1], note.plain))
    return out


def goto_note(event: dict[str, Any], width: int) -> str:
    """A loop back in words: a review asking for changes is the next round, not a failure."""
    failure = str(event.get("failure", "")).strip()
    count = int(event.get("count") or 0)
    if event.get("reason") == "changes_requested":
        said = one_line(failure.removeprefix(CHANGES_PREFIX), width)
        return f"changes requested → round {count + 1}" + (f": {said}" if said else "")
    return f"→ {event.get('to')} ({count}): {one_line(failure, width)}"


def _usd(value: object) -> Decimal:
    """A step's cost as journaled (a string of dollars); anything unreadable is nothing."""
    from decimal import InvalidOperation

    from agentctl.cost.pricing import usd

    try:
        cost = usd(value) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
    return cost if cost.is_finite() and cost > 0 else Decimal(0)


def _note(out: dict[str, Any]) -> str:
    if out.get("status") == "failed" and out.get("failure"):
        return one_line(str(out["failure"]), 60)
    if out.get("verdict"):
        return str(out["verdict"])
    if out.get("exit_code") not in (None, ""):
        return f"exit {out['exit_code']}"
    if out.get("sha"):
        return str(out["sha"])[:12]
    if out.get("url"):
        return str(out["url"])
    return one_line(str(out.get("failure", "")), 60)
