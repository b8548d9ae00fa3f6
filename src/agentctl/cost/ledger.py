"""``<state>/ledger/<YYYY-MM-DD>.jsonl``: one line per model call, priced, never lost.

A line is money, so each is appended with a single ``os.write`` on an ``O_APPEND``
descriptor under ``flock`` and fsynced before ``record`` returns; writers in several
processes never interleave. A writer killed mid-line leaves a torn tail: readers
skip it (as a problem, never an exception) and the next writer cuts it off, the way
the run journal does. Files are split by the UTC day of the call, so a report or a
budget check of today reads one small file. USD figures are JSON numbers written
exactly (``0.0000125``) and read back as ``Decimal``.

A line is not trusted because it is in the file: on read, token counts must be
integers in ``0..MAX_TOKENS``, prices finite in ``0..MAX_PRICE`` (USD per million)
and the cost finite in ``0..MAX_CALL_USD``; a line that is not is left out of every
total and reported once per process (``report_once``). The figure that counts is
the line's tokens × the prices recorded in that line: a ``cost`` that disagrees
with them is reported and replaced.

Reads do not grow with history: ``<state>/ledger/derived/`` holds a summary of each
closed day (``summary``) and an index of where each run's lines are (``runindex``),
both rebuilt from the day files when missing or stale (``agentctl cost --rebuild``
rebuilds them all). The day files stay the only truth: delete ``derived/`` and every
figure is the same.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.atomic import fsync_dir
from agentctl.cost import runindex
from agentctl.cost.entry import (
    MAX_CALL_USD,
    MAX_PRICE,
    MAX_TOKENS,
    SCHEMA_VERSION,
    USAGE_KINDS,
    Entry,
    dumps,
    parse_line,
    report_once,
)
from agentctl.cost.pricing import cost_at, rates
from agentctl.llm.types import Usage
from agentctl.runs.ids import parse_run_id
from agentctl.runs.journal import _drop_torn_tail
from agentctl.runs.oserrors import state_error
from agentctl.runs.record import RunRecord
from agentctl.runs.timefmt import utc_now

if TYPE_CHECKING:
    from agentctl.config.schema import Model
    from agentctl.cost.summary import Cache

__all__ = [
    "MAX_CALL_USD",
    "MAX_PRICE",
    "MAX_TOKENS",
    "SCHEMA_VERSION",
    "USAGE_KINDS",
    "Entry",
    "Ledger",
    "dumps",
    "report_once",
]

_DAY_FILE = re.compile(r"^(\d{4}-\d\d-\d\d)\.jsonl$")
# Entries of a run cannot predate the run (its id holds its creation time); a day of
# slack covers clocks of different processes that disagree.
_CLOCK_SLACK = timedelta(days=1)


def _earliest(run_ids: set[str]) -> datetime | None:
    """When the oldest of ``run_ids`` was created (None if any id is not a run id)."""
    times = [parse_run_id(run_id) for run_id in run_ids]
    if not times or any(t is None for t in times):
        return None
    return min(t[0] for t in times if t is not None) - _CLOCK_SLACK


class Ledger:
    """The cost ledger of one state folder (``<workspace>/.agentctl``)."""

    def __init__(self, state_dir: Path, clock: Callable[[], datetime] = utc_now) -> None:
        self.dir = state_dir / "ledger"
        self._clock = clock
        self.problems: list[str] = []  # lines skipped by the last read, for a warning
        self.summaries: Cache = {}  # day summaries this ledger has read (checked on use)

    def path_for(self, day: date) -> Path:
        return self.dir / f"{day.isoformat()}.jsonl"

    def charge(
        self,
        *,
        run: RunRecord,
        model_name: str,
        model: Model,
        usage: Usage,
        model_id: str | None = None,
        request_id: str | None = None,
    ) -> Entry:
        """Price one call at ``model``'s configured price, record it now, return the entry."""
        applied = rates(model.price, usage.prompt_tokens)
        entry = Entry(
            ts=self._clock(),
            run_id=run.id,
            root_id=run.root_id,
            parent_id=run.parent_id,
            role=run.role,
            model=model_name,
            provider=model.provider,
            model_id=model_id or model.name,
            request_id=request_id,
            usage=usage,
            price=applied,
            cost=cost_at(usage, applied),
        )
        self.record(entry)
        return entry

    def record(self, entry: Entry) -> None:
        """Append ``entry`` to its day file as one whole line, durable on return."""
        path = self.path_for(entry.day)
        data = (dumps(entry.to_json()) + "\n").encode("utf-8")
        try:
            if not self.dir.is_dir():
                self.dir.mkdir(parents=True, exist_ok=True)
                fsync_dir(self.dir.parent)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                size -= _drop_torn_tail(fd, size)
                view = memoryview(data)
                while view:  # one write; a loop only for a short write (disk full)
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)  # also releases the lock
            if size == 0:  # a new day file: make its name durable too
                fsync_dir(self.dir)
        except OSError as exc:
            raise state_error(exc, path, "record a cost in") from exc

    def today(self) -> date:
        """The open day: its file is still written, so it is read from its lines."""
        return self._clock().astimezone(UTC).date()

    def entries(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        run_ids: set[str] | None = None,
    ) -> Iterator[Entry]:
        """Entries with ``since <= ts < until`` (of ``run_ids`` when given), oldest day first.

        Only the day files that can hold the range are read; with ``run_ids``, only
        those runs' lines (found by the run index). Unreadable lines are skipped and
        listed in ``problems`` (reset at each call): those of every line of the files.
        """
        self.problems = []
        for path in self.day_files(since, until, run_ids):
            for entry in self.read_day(path, run_ids):
                if since is not None and entry.ts < since:
                    continue
                if until is not None and entry.ts >= until:
                    continue
                yield entry

    def spent(
        self,
        *,
        since: datetime | None,
        role: str | None = None,
        model: str | None = None,
        run_ids: set[str] | None = None,
    ) -> Decimal:
        """USD spent since ``since`` (None: ever), by ``role``/``model``/``run_ids`` if given.

        Closed days are read from their summaries, a run's calls today from the run
        index: a budget check costs the same on the hundredth day as on the first.
        """
        if role is None and model is None:
            from agentctl.cost import summary  # lazy: summary imports this module (a cycle)

            return summary.spent(self, since, run_ids)
        total = Decimal(0)
        for entry in self.entries(since, run_ids=run_ids):
            if (role is None or entry.role == role) and (model is None or entry.model == model):
                total += entry.cost
        return total

    def day_files(
        self, since: datetime | None, until: datetime | None, run_ids: set[str] | None = None
    ) -> list[Path]:
        """The day files that can hold entries of ``since..until`` (and ``run_ids``)."""
        if run_ids is not None:
            if not run_ids:
                return []
            earliest = _earliest(run_ids)
            if earliest is not None and (since is None or earliest > since):
                since = earliest
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise state_error(exc, self.dir, "list") from exc
        first = since.astimezone(UTC).date().isoformat() if since is not None else None
        last = None
        if until is not None:  # until is exclusive: midnight belongs to the day before
            last = (until.astimezone(UTC) - timedelta(microseconds=1)).date().isoformat()
        paths = []
        for name in names:
            match = _DAY_FILE.match(name)
            if match is None:
                continue
            day = match.group(1)
            if (first is None or day >= first) and (last is None or day <= last):
                paths.append(self.dir / name)
        return paths

    def read_day(self, path: Path, run_ids: set[str] | None = None) -> Iterator[Entry]:
        """The entries of one day file (of ``run_ids`` only: their lines, by the run
        index); the problems of all its lines go to ``problems``."""
        if run_ids is not None:
            index = runindex.load(path)
            try:
                found = index.entries(run_ids)
            except runindex.Stale:
                index = runindex.load(path, rebuild=True)  # rewritten under us: once more
                try:
                    found = index.entries(run_ids)
                except runindex.Stale:  # still changing: the raw lines decide
                    found = [e for e in self._read(path) if e.run_id in run_ids]
                    yield from found
                    return
            self.problems.extend(index.problems)
            yield from found
            return
        yield from self._read(path)

    def _read(self, path: Path) -> Iterator[Entry]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise state_error(exc, path, "read") from exc
        lines = data.split(b"\n")
        if lines.pop():  # bytes after the last newline: a writer died mid-line
            self.problems.append(f"{path.name}: torn last line skipped")
        for number, line in enumerate(lines, start=1):
            entry, problem = parse_line(path.name, number, line)
            if problem is not None:
                self.problems.append(problem)
            if entry is not None:
                yield entry
