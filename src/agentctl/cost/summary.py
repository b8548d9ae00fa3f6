"""``<state>/ledger/derived/<day>.summary.json``: a closed day's totals without its lines.

A report over a month must not parse a month of lines. For each day file of a
closed day (before today, by the ledger's clock) a summary holds one group per
(day, model, role, root run, run) with its calls, the four token counts, the exact
cost, the first and last call time and the smallest and largest prompt, plus the
problems a full read of the file reports, in order. That is enough for every
``--by`` and ``--run``, and for ``--what-if`` (tokens × another price) whenever the
what-if long-context threshold does not fall inside a group's prompt range. The
runs of a group that a ``--since`` cuts through, or that a what-if band splits, are
read call by call from their own lines (found by the run index), so a report is
always exactly the one the lines give.

The summary records the day file it was built from (inode, size, mtime, a CRC of
its last bytes): a late writer (see ``_CLOCK_SLACK``) or any edit makes it stale,
and it is rebuilt on the next read. Summaries are derived: the ``.jsonl`` files
stay the only truth, a missing or unreadable summary is rebuilt silently, and one
that cannot be written (a read-only state folder) only costs time. The open day is
always read from its lines, with the run index for run queries (``runindex``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.cost import runindex
from agentctl.cost.daytotals import (
    Cache,
    DaySummary,
    Group,
    Tally,
    load,
    open_totals,
    summary_path,
)
from agentctl.cost.entry import Entry
from agentctl.runs.oserrors import state_error

if TYPE_CHECKING:
    from agentctl.config.schema import Price
    from agentctl.cost.ledger import Ledger

__all__ = ["Cache", "DaySummary", "Tally", "load", "rebuild", "spent", "tallies"]


def _within(group: Group, since: datetime | None, until: datetime | None) -> bool | None:
    """Whether every call of ``group`` is in ``since..until`` (None: some are, some not)."""
    inside = (since is None or group.first >= since) and (until is None or group.last < until)
    if inside:
        return True
    outside = (since is not None and group.last < since) or (
        until is not None and group.first >= until
    )
    return False if outside else None


def _closed_day(
    ledger: Ledger,
    path: Path,
    since: datetime | None,
    until: datetime | None,
    run_ids: set[str] | None,
    what_if: Price | None,
    coarse: bool = False,
) -> tuple[list[Tally], tuple[str, ...]] | None:
    """A closed day's tallies and problems from its summary; None: read its lines.

    A run with a group that ``since``/``until`` cuts through, or that the what-if
    long-context band splits, is read call by call from its own lines (run index).
    """
    # Whole days of a report by model, role or day: its (model, role) totals suffice,
    # also for the open day (kept as it grows); otherwise only closed days summarise.
    whole = since is None or (since.date().isoformat() < path.name.removesuffix(".jsonl"))
    coarse = coarse and run_ids is None and whole and until is None
    if _closed(ledger, path):
        summary = load(path, cache=ledger.summaries, coarse=coarse)
    elif coarse:
        summary = open_totals(path)
    else:
        return None
    if summary is None:
        return None
    kept: list[tuple[str, Tally]] = []
    redo: set[str] = set()
    for group in summary.groups:
        if run_ids is not None and group.run_id not in run_ids:
            continue
        within = _within(group, since, until)
        if within is False:
            continue
        tally = None if within is None else group.tally(what_if)
        if tally is None:
            redo.add(group.run_id)
        else:
            kept.append((group.run_id, tally))
    if redo and coarse:  # a what-if band splits a (model, role) total: by run, then
        return _closed_day(ledger, path, since, until, run_ids, what_if)
    found = [tally for run_id, tally in kept if run_id not in redo]
    if redo:
        try:
            entries = runindex.load(path).entries(redo)
        except runindex.Stale:
            return None
        found.extend(
            Tally.of(e, what_if)
            for e in entries
            if (since is None or e.ts >= since) and (until is None or e.ts < until)
        )
    return found, summary.problems


def _closed(ledger: Ledger, path: Path) -> bool:
    return path.name.removesuffix(".jsonl") < ledger.today().isoformat()


def _from_lines(
    ledger: Ledger,
    path: Path,
    since: datetime | None,
    until: datetime | None,
    run_ids: set[str] | None,
) -> Iterator[Entry]:
    for entry in ledger.read_day(path, run_ids):
        if (since is None or entry.ts >= since) and (until is None or entry.ts < until):
            yield entry


def tallies(
    ledger: Ledger,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    run_ids: set[str] | None = None,
    what_if: Price | None = None,
    by_run: bool = True,
) -> Iterator[Tally]:
    """What ``ledger.entries(since, until, run_ids=...)`` holds, as tallies to sum.

    Closed days come from their summaries where that is exact, the rest from lines;
    without ``by_run`` (a report by model, role or day) whole days from their totals.
    ``ledger.problems`` is set as ``entries`` sets it.
    """
    ledger.problems = []
    for path in ledger.day_files(since, until, run_ids):
        done = _closed_day(ledger, path, since, until, run_ids, what_if, coarse=not by_run)
        if done is not None:
            ledger.problems.extend(done[1])
            yield from done[0]
            continue
        for entry in _from_lines(ledger, path, since, until, run_ids):
            yield Tally.of(entry, what_if)


def spent(ledger: Ledger, since: datetime | None, run_ids: set[str] | None) -> Decimal:
    """``Ledger.spent`` without role or model: closed days from their summaries, a run's
    calls on the open day from its own lines (found by the run index)."""
    return sum((t.cost for t in tallies(ledger, since, run_ids=run_ids)), Decimal(0))


def rebuild(ledger: Ledger) -> tuple[int, int, int]:
    """Rebuild every summary and index from the raw files, and remove derived files
    whose day file is gone (and temp files of killed writers): the three counts."""
    summaries = indexes = removed = 0
    days = ledger.day_files(None, None, None)
    for path in days:
        if _closed(ledger, path):
            load(path, rebuild=True)
            summaries += 1
        runindex.load(path, rebuild=True)
        indexes += 1
    derived = ledger.dir / "derived"
    wanted = {summary_path(p).name for p in days} | {runindex.index_path(p).name for p in days}
    wanted |= {summary_path(p, kind).name for p in days for kind in ("totals", "partial")}
    try:
        names = os.listdir(derived)
    except FileNotFoundError:
        names = []
    except OSError as exc:
        raise state_error(exc, derived, "list") from exc
    for name in names:
        if name not in wanted:
            try:
                (derived / name).unlink()
                removed += 1
            except OSError as exc:
                raise state_error(exc, derived / name, "remove") from exc
    return summaries, indexes, removed
