"""A day file's derived files: ``ledger/derived/<day>.{summary,totals,partial}.json``.

A closed day's summary holds one group per (day, model, role, root run, run) with its
calls, the four token counts, the exact cost, the first and last call time and the
smallest and largest prompt, plus the problems a full read of the file reports, in
order; its totals are the same by (model, role) only; the open day keeps a partial
of its totals as it grows. Each is tied to the day file it was built from and rebuilt
when that changed; all are derived: the ``.jsonl`` files stay the only truth, and a
file that cannot be written only costs time. How reports use them: ``cost/summary.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.atomic import write_bytes
from agentctl.cost.entry import Entry, parse_line
from agentctl.cost.pricing import cost_at, cost_of, rates
from agentctl.errors import StateError
from agentctl.llm.types import Usage
from agentctl.runs.oserrors import state_error
from agentctl.runs.timefmt import format_ts, parse_ts

if TYPE_CHECKING:
    from agentctl.config.schema import Price

VERSION = 1
_TAIL = 4096  # bytes of the day file whose CRC the summary keeps
_Key = tuple[str, str, str | None, str, str]  # day, model, role, root, run ("": a total)


@dataclass(frozen=True, slots=True)
class Tally:
    """Calls that share every key a report groups by, with their sums."""

    day: str
    model: str
    role: str | None
    root_id: str
    calls: int
    usage: Usage
    cost: Decimal
    what_if: Decimal | None = None

    @classmethod
    def of(cls, entry: Entry, what_if: Price | None) -> Tally:
        return cls(
            entry.day.isoformat(),
            entry.model,
            entry.role,
            entry.root_id,
            1,
            entry.usage,
            entry.cost,
            None if what_if is None else cost_of(entry.usage, what_if),
        )


@dataclass(slots=True)
class Group:
    """One (day, model, role, root, run) of a summarised day."""

    day: str
    model: str
    role: str | None
    root_id: str
    run_id: str
    calls: int
    usage: Usage
    cost: Decimal
    first: datetime
    last: datetime
    low: int  # the smallest prompt (tokens) of its calls
    high: int  # the largest

    def add(self, entry: Entry) -> None:
        self.calls += 1
        self.usage += entry.usage
        self.cost += entry.cost
        self.first = min(self.first, entry.ts)
        self.last = max(self.last, entry.ts)
        self.low = min(self.low, entry.usage.prompt_tokens)
        self.high = max(self.high, entry.usage.prompt_tokens)

    def to_json(self) -> list[Any]:
        u = self.usage
        return [
            self.day,
            self.model,
            self.role,
            self.root_id,
            self.run_id,
            self.calls,
            u.input_tokens,
            u.output_tokens,
            u.cache_write_tokens,
            u.cache_read_tokens,
            str(self.cost),
            format_ts(self.first),
            format_ts(self.last),
            self.low,
            self.high,
        ]

    @classmethod
    def from_json(cls, row: list[Any]) -> Group:
        day, model, role, root_id, run_id, calls, i, o, w, r, cost, first, last, low, high = row
        return cls(
            day,
            model,
            role,
            root_id,
            run_id,
            calls,
            Usage(i, o, w, r),
            Decimal(cost),
            parse_ts(first),
            parse_ts(last),
            low,
            high,
        )

    def tally(self, what_if: Price | None) -> Tally | None:
        """As a tally; None when the what-if price bands its calls differently."""
        extra = None
        if what_if is not None:
            band = rates(what_if, self.low)
            if band != rates(what_if, self.high):
                return None
            extra = cost_at(self.usage, band)
        return Tally(
            self.day, self.model, self.role, self.root_id, self.calls, self.usage, self.cost, extra
        )


@dataclass(frozen=True, slots=True)
class DaySummary:
    groups: tuple[Group, ...]
    problems: tuple[str, ...]

    def coarse(self) -> DaySummary:
        """The same day by (model, role) only: what a report by model, role or day needs.

        A day of 3,000 runs has 3,000 groups but a handful of these; the run and root
        of a coarse group are empty (a report by run never reads them).
        """
        merged: dict[tuple[str, str, str | None], Group] = {}
        for g in self.groups:
            key = (g.day, g.model, g.role)
            have = merged.get(key)
            if have is None:
                merged[key] = Group(
                    g.day, g.model, g.role, "", "", g.calls, g.usage, g.cost,
                    g.first, g.last, g.low, g.high,
                )  # fmt: skip
                continue
            have.calls += g.calls
            have.usage += g.usage
            have.cost += g.cost
            have.first, have.last = min(have.first, g.first), max(have.last, g.last)
            have.low, have.high = min(have.low, g.low), max(have.high, g.high)
        return DaySummary(tuple(merged.values()), self.problems)


def summary_path(path: Path, kind: str = "summary") -> Path:
    return path.parent / "derived" / f"{path.name.removesuffix('.jsonl')}.{kind}.json"


Cache = dict[Path, tuple[dict[str, Any], "DaySummary"]]


def _open(path: Path) -> int | None:
    """A day file's descriptor for reading, or None when the day has none."""
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise state_error(exc, path, "read") from exc


def load(
    path: Path, *, rebuild: bool = False, cache: Cache | None = None, coarse: bool = False
) -> DaySummary | None:
    """The summary of day file ``path``, rebuilt (and saved) when missing or stale.

    ``cache`` keeps summaries already read by this process (a ``Ledger``'s), still
    checked against the day file: ``status`` asks once per unfinished run.
    ``coarse``: by (model, role) only (``<day>.totals.json``), made from the summary.
    """
    fd = _open(path)
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        tail = os.pread(fd, _TAIL, max(0, st.st_size - _TAIL))
        source = {
            "name": path.name,
            "ino": st.st_ino,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "tail_crc": zlib.crc32(tail),
        }
        if coarse and not rebuild:
            totals = _saved(summary_path(path, "totals"), source)
            if totals is not None:
                return totals
        if not rebuild:
            known = None if cache is None else cache.get(path)
            saved = known[1] if known is not None and known[0] == source else None
            if saved is None:
                saved = _saved(summary_path(path), source)
            if saved is not None:
                if cache is not None:
                    cache[path] = (source, saved)
                return _coarse(path, source, saved) if coarse else saved
        data = os.pread(fd, st.st_size, 0) if st.st_size else b""
    finally:
        os.close(fd)
    summary = _build(path.name, data)
    _save(summary_path(path), source, summary)
    if cache is not None:
        cache[path] = (source, summary)
    totals = _coarse(path, source, summary) if coarse or rebuild else None
    return totals if coarse and totals is not None else summary


def _coarse(path: Path, source: dict[str, Any], summary: DaySummary) -> DaySummary:
    totals = summary.coarse()
    _save(summary_path(path, "totals"), source, totals)
    return totals


def _saved(path: Path, source: dict[str, Any]) -> DaySummary | None:
    try:
        value = json.loads(path.read_bytes())
        if value["version"] != VERSION or value["source"] != source:
            return None
        groups = tuple(Group.from_json(row) for row in value["groups"])
        problems = tuple(str(p) for p in value["problems"])
    except (OSError, ValueError, KeyError, TypeError, ArithmeticError):
        return None  # missing, unreadable or from another build: rebuilt
    return DaySummary(groups, problems)


def _build(name: str, data: bytes) -> DaySummary:
    """Exactly what ``Ledger._read`` makes of ``data``, summed by group."""
    lines = data.split(b"\n")
    problems = [f"{name}: torn last line skipped"] if lines.pop() else []
    groups: dict[_Key, Group] = {}
    for number, line in enumerate(lines, start=1):
        entry, problem = parse_line(name, number, line)
        if problem is not None:
            problems.append(problem)
        if entry is None:
            continue
        _add(groups, entry, by_run=True)
    return DaySummary(tuple(groups.values()), tuple(problems))


def _add(groups: dict[_Key, Group], entry: Entry, *, by_run: bool) -> None:
    """Count ``entry`` in its group: by (day, model, role, root, run), or without the
    run and root (a day's totals)."""
    run = (entry.root_id, entry.run_id) if by_run else ("", "")
    key: _Key = (entry.day.isoformat(), entry.model, entry.role, *run)
    group = groups.get(key)
    if group is None:
        prompt = entry.usage.prompt_tokens
        groups[key] = Group(*key, 1, entry.usage, entry.cost, entry.ts, entry.ts, prompt, prompt)
    else:
        group.add(entry)


def _save(path: Path, source: dict[str, Any], summary: DaySummary) -> None:
    value = {
        "version": VERSION,
        "source": source,
        "problems": list(summary.problems),
        "groups": [g.to_json() for g in summary.groups],
    }
    try:
        path.parent.mkdir(exist_ok=True)
        write_bytes(path, json.dumps(value, ensure_ascii=False).encode(), durable=False)
    except (OSError, StateError):
        pass  # derived: it costs only time to rebuild it


def open_totals(path: Path) -> DaySummary | None:
    """The open day's (model, role) totals, kept as its file grows: ``<day>.partial.json``
    holds the totals of the complete lines up to a byte offset (and how many lines that
    is, for the problems' line numbers); a read parses only the lines past it.

    The partial is trusted while the day file has the same inode, is not shorter, and
    the 4 KiB before the offset still have the recorded CRC; else it starts over. Only
    complete lines are summed, so the next writer's cut of a torn tail (bytes after the
    last newline) never reaches them. Readers racing each other each save a consistent
    partial (atomic replace): whichever lands is right.
    """
    fd = _open(path)
    if fd is None:
        return None
    where = summary_path(path, "partial")
    try:
        st = os.fstat(fd)
        start, lines = 0, 0
        groups: dict[_Key, Group] = {}
        problems: list[str] = []
        saved = _partial(where)
        if saved is not None and saved["ino"] == st.st_ino and saved["upto"] <= st.st_size:
            upto = int(saved["upto"])
            back = min(_TAIL, upto)
            if zlib.crc32(os.pread(fd, back, upto - back)) == saved["crc"]:
                start, lines = upto, int(saved["lines"])
                groups = {(g.day, g.model, g.role, "", ""): g for g in saved["groups"]}
                problems = list(saved["problems"])
        data = os.pread(fd, st.st_size - start, start) if st.st_size > start else b""
    finally:
        os.close(fd)
    cut = data.rfind(b"\n") + 1  # complete lines only
    for line in data[:cut].split(b"\n")[:-1]:
        lines += 1
        entry, problem = parse_line(path.name, lines, line)
        if problem is not None:
            problems.append(problem)
        if entry is None:
            continue
        _add(groups, entry, by_run=False)
    if cut:
        upto = start + cut
        back = min(_TAIL, upto)
        tail: bytes | None = data[cut - back : cut] if back <= cut else None
        if tail is None:  # the 4 KiB reach back before what was read now
            with contextlib.suppress(OSError), path.open("rb") as again:
                again.seek(upto - back)
                tail = again.read(back)
        value = {
            "version": VERSION,
            "ino": st.st_ino,
            "upto": upto,
            "lines": lines,
            "crc": zlib.crc32(tail or b""),
            "problems": problems,
            "groups": [g.to_json() for g in groups.values()],
        }
        with contextlib.suppress(OSError, StateError):  # derived: it costs only time
            where.parent.mkdir(exist_ok=True)
            write_bytes(where, json.dumps(value, ensure_ascii=False).encode(), durable=False)
    torn = [f"{path.name}: torn last line skipped"] if data[cut:] else []
    return DaySummary(tuple(groups.values()), (*torn, *problems))


def _partial(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_bytes())
        if value["version"] != VERSION:
            return None
        value["groups"] = [Group.from_json(row) for row in value["groups"]]
        for name in ("ino", "upto", "lines", "crc"):
            int(value[name])
        value["problems"] = [str(p) for p in value["problems"]]
    except (OSError, ValueError, KeyError, TypeError, ArithmeticError):
        return None
    return dict(value)
