"""The live view of a pipeline run at a terminal: one row per step, redrawn in place.

Plain lines are what a pipe or a log gets (``follow_pipeline``); a person at a
terminal gets this table instead: each step's state, model, time and cost, the
loops back, and the run's spend so far from the ledger (read at most once a
second: the view must not cost more than the work it shows).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from agentctl.pipeline.feedback import one_line
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
    cost: str = ""
    started: datetime | None = None
    took: float | None = None
    note: str = ""
    runs: int = 0


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

    def apply(self, event: dict[str, Any]) -> None:
        from agentctl.runs import parse_ts

        kind, step = event.get("type"), event.get("step")
        if not step or kind not in ("step.start", "step.finish", "step.goto"):
            return
        row = self.rows.setdefault(step, Row(step))
        if kind == "step.start":
            row.kind = event.get("kind") or row.kind
            row.status, row.runs, row.took = "running", row.runs + 1, None
            row.started = parse_ts(event["ts"])
        elif kind == "step.finish":
            out = event.get("outputs") or {}
            row.status = str(event.get("status") or "ok")
            row.model = str(out.get("model") or row.model)
            row.cost = str(out.get("cost") or row.cost)
            if row.started is not None:
                row.took = (parse_ts(event["ts"]) - row.started).total_seconds()
            row.note = _note(out)
        else:
            changes = event.get("reason") == "changes_requested"
            row.status = "changes" if changes else "back"
            row.note = goto_note(event, 60)

    def spent(self) -> Decimal | None:
        now = self._clock()
        if now - self._spent_at >= 1.0:
            self._spent, self._spent_at = self._spend(), now
        return self._spent

    def table(self, now: datetime | None = None) -> Any:
        from rich.table import Table
        from rich.text import Text

        spent = self.spent()
        caption = f"spent ${spent:f}" if spent is not None else None
        table = Table(title=self.title, caption=caption, title_justify="left", expand=False)
        for column in ("", "step", "kind", "model", "time", "cost", ""):
            table.add_column(column, no_wrap=column != "")
        for row in self.rows.values():
            took = row.took
            if took is None and row.status == "running" and row.started and now:
                took = (now - row.started).total_seconds()
            cells = (
                MARKS.get(row.status, "?"),
                row.step + (f" ×{row.runs}" if row.runs > 1 else ""),
                row.kind,
                row.model,
                f"{took:.1f}s" if took is not None else "",
                f"${row.cost}" if row.cost not in ("", "0") else "",
                row.note,
            )
            table.add_row(
                *(Text(visible(cell, one_line=True)) for cell in cells),
                style=STYLES.get(row.status),
            )
        return table


def goto_note(event: dict[str, Any], width: int) -> str:
    """A loop back in words: a review asking for changes is the next round, not a failure."""
    failure = str(event.get("failure", "")).strip()
    count = int(event.get("count") or 0)
    if event.get("reason") == "changes_requested":
        said = one_line(failure.removeprefix(CHANGES_PREFIX), width)
        return f"changes requested → round {count + 1}" + (f": {said}" if said else "")
    return f"→ {event.get('to')} ({count}): {one_line(failure, width)}"


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
