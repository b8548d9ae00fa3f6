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
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.atomic import fsync_dir
from agentctl.cost.pricing import RATE_KINDS, cost_at, plain, rates
from agentctl.llm.types import Usage
from agentctl.runs.ids import parse_run_id
from agentctl.runs.journal import _drop_torn_tail
from agentctl.runs.oserrors import state_error
from agentctl.runs.record import RunRecord
from agentctl.runs.timefmt import format_ts, parse_ts, utc_now

if TYPE_CHECKING:
    from agentctl.config.schema import Model

SCHEMA_VERSION = 1

_DAY_FILE = re.compile(r"^(\d{4}-\d\d-\d\d)\.jsonl$")
# Entries of a run cannot predate the run (its id holds its creation time); a day of
# slack covers clocks of different processes that disagree.
_CLOCK_SLACK = timedelta(days=1)

# Bounds of a believable line. One call of a million-token prompt at today's dearest
# prices costs tens of dollars; a thousand is far past any real call and far below
# what would overflow a report.
MAX_CALL_USD = Decimal(1000)
MAX_PRICE = Decimal(10_000)  # USD per million tokens
MAX_TOKENS = 10**9
USAGE_KINDS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")

_reported: set[str] = set()  # problems already reported by this process


def report_once(problems: list[str]) -> list[str]:
    """The ``problems`` this process has not reported yet (then remembered as reported)."""
    fresh = [p for p in dict.fromkeys(problems) if p not in _reported]
    _reported.update(fresh)
    return fresh


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON text in which every Decimal is an exact JSON number (``0.0000125``)."""
    mark = "dec" + os.urandom(8).hex()

    def default(obj: object) -> str:
        if isinstance(obj, Decimal):
            return mark + plain(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    separators = (",", ": ") if indent is not None else (",", ":")
    text = json.dumps(
        value,
        default=default,
        indent=indent,
        separators=separators,
        ensure_ascii=False,
        allow_nan=False,
    )
    return re.sub(f'"{mark}([-0-9.]+)"', r"\1", text)


def _decimal(value: object, name: str, bound: Decimal) -> Decimal:
    """A finite amount in ``0..bound``, or ValueError naming the field."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    else:
        raise ValueError(f"{name} must be a number, found {value!r}")
    if not number.is_finite() or number < 0 or number > bound:
        raise ValueError(f"{name} must be between 0 and {bound}, found {value}")
    return number


def _usage(data: Mapping[str, Any]) -> Usage:
    counts = {}
    for kind in USAGE_KINDS:
        value = data.get(kind, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TOKENS:
            raise ValueError(f"usage.{kind} must be an integer in 0..{MAX_TOKENS}, found {value!r}")
        counts[kind] = value
    return Usage(**counts)


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, found {value!r}")
    return value


def _optional_text(data: Mapping[str, Any], name: str) -> str | None:
    return None if data.get(name) is None else _text(data, name)


@dataclass(frozen=True, slots=True)
class Entry:
    """One priced model call. ``price`` holds the four per-million figures applied."""

    ts: datetime
    run_id: str
    root_id: str
    parent_id: str | None
    role: str | None
    model: str  # the configured name, e.g. "sonnet"
    provider: str
    model_id: str  # the API's model id that answered
    request_id: str | None
    usage: Usage
    price: Mapping[str, Decimal]
    cost: Decimal
    schema_version: int = SCHEMA_VERSION

    @property
    def computed_cost(self) -> Decimal:
        """The line's tokens × the prices recorded in it: the figure that counts."""
        return cost_at(self.usage, dict(self.price))

    @property
    def day(self) -> date:
        return self.ts.astimezone(UTC).date()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "ts": format_ts(self.ts),
            "run_id": self.run_id,
            "root_id": self.root_id,
            "parent_id": self.parent_id,
            "role": self.role,
            "model": self.model,
            "provider": self.provider,
            "model_id": self.model_id,
            "request_id": self.request_id,
            "usage": self.usage.to_json(),
            "price": {kind: self.price[kind] for kind in RATE_KINDS},
            "cost": self.cost,
        }

    @classmethod
    def from_json(cls, data: object) -> Entry:
        """Parse a ledger line (read with ``parse_float=Decimal``); ValueError if unusable.

        ``cost`` is the recorded figure, checked; ``Ledger`` counts ``computed_cost``.
        """
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"schema_version must be a positive integer, found {version!r}")
        if version > SCHEMA_VERSION:
            raise ValueError(f"schema_version {version} was written by a newer agentctl")
        price = data.get("price")
        usage = data.get("usage")
        if not isinstance(price, dict) or not isinstance(usage, dict):
            raise ValueError("price and usage must be objects")
        return cls(
            ts=parse_ts(_text(data, "ts")),
            run_id=_text(data, "run_id"),
            root_id=_text(data, "root_id"),
            parent_id=_optional_text(data, "parent_id"),
            role=_optional_text(data, "role"),
            model=_text(data, "model"),
            provider=_text(data, "provider"),
            model_id=_text(data, "model_id"),
            request_id=_optional_text(data, "request_id"),
            usage=_usage(usage),
            price={
                kind: _decimal(price.get(kind), f"price.{kind}", MAX_PRICE) for kind in RATE_KINDS
            },
            cost=_decimal(data.get("cost"), "cost", MAX_CALL_USD),
            schema_version=version,
        )


# One decoder for every line: ``json.loads(line, parse_float=...)`` builds a new one
# per call, a quarter of the time of reading a large ledger.
_DECODER = json.JSONDecoder(parse_float=Decimal)


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

    def entries(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        run_ids: set[str] | None = None,
    ) -> Iterator[Entry]:
        """Entries with ``since <= ts < until`` (of ``run_ids`` when given), oldest day first.

        Only the day files that can hold the range are read. Unreadable lines are
        skipped and listed in ``problems`` (reset at each call).
        """
        self.problems = []
        files_from = since
        if run_ids is not None:
            if not run_ids:
                return
            earliest = _earliest(run_ids)
            if earliest is not None and (since is None or earliest > since):
                files_from = earliest
        for path in self._day_files(files_from, until):
            for entry in self._read(path):
                if since is not None and entry.ts < since:
                    continue
                if until is not None and entry.ts >= until:
                    continue
                if run_ids is not None and entry.run_id not in run_ids:
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
        """USD spent since ``since`` (None: ever), by ``role``/``model``/``run_ids`` if given."""
        total = Decimal(0)
        for entry in self.entries(since, run_ids=run_ids):
            if (role is None or entry.role == role) and (model is None or entry.model == model):
                total += entry.cost
        return total

    def _day_files(self, since: datetime | None, until: datetime | None) -> list[Path]:
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
            if not line.strip():
                continue
            try:
                value = _DECODER.decode(line.decode("utf-8"))
            except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
                self.problems.append(f"{path.name} line {number}: not JSON; skipped")
                continue
            try:
                entry = Entry.from_json(value)
            except (ValueError, TypeError, ArithmeticError) as exc:
                self.problems.append(f"{path.name} line {number}: {exc}; skipped")
                continue
            computed = entry.computed_cost
            if computed != entry.cost:
                if computed > MAX_CALL_USD:
                    self.problems.append(
                        f"{path.name} line {number}: tokens × prices come to "
                        f"{plain(computed)}, more than {MAX_CALL_USD}; skipped"
                    )
                    continue
                self.problems.append(
                    f"{path.name} line {number}: cost {plain(entry.cost)} disagrees with its "
                    f"tokens × prices; counted as {plain(computed)}"
                )
                entry = replace(entry, cost=computed)
            yield entry
