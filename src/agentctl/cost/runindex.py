"""``<state>/ledger/derived/<day>.index``: where each run's lines are in one day file.

So a budget check or a run's ending (``Ledger.spent(run_ids=...)``) and ``cost --run``
read only that run's lines, not the whole day. One record a ledger line, in order
(so record *n* is line *n*): its byte span, a CRC of its bytes, its run id (empty
when the line counts for nothing) and the problem it reports. A lookup reads the
run's lines and checks each against its CRC and run id before counting it.

Built lazily, not by the writer: a reader indexes the complete lines past the last
indexed one, under ``flock`` on the index, and appends their records in one write.
The money path (``Ledger.record``) stays one write, and a writer killed between
the ledger and an index cannot leave a gap. The index covers only lines that end in
a newline, so a torn tail is never indexed and the next writer's cut (which drops
only bytes after the last newline) never reaches an indexed line. The index is
trusted only while it matches its day file: same inode, not longer than the file,
and the last indexed line has the recorded CRC; a reader killed mid-append leaves
a torn record, cut on the next catch-up. Anything else: rebuilt from the raw file.
If the index cannot be written (a read-only state folder), it is built in memory.
"""

from __future__ import annotations

import fcntl
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agentctl.cost.entry import Entry, parse_line
from agentctl.runs.oserrors import state_error

_MAGIC = b"agentctl-ledger-index 2"


@dataclass(frozen=True, slots=True)
class Record:
    """One ledger line: bytes ``offset..end`` (newline excluded), its line ``number``."""

    number: int
    offset: int
    end: int
    crc: int
    run_id: str | None  # None: the line counts for nothing (blank or skipped)
    problem: str | None

    def fields(self) -> list[str]:
        problem = "" if self.problem is None else json.dumps(self.problem, ensure_ascii=False)
        run_id = "" if self.run_id is None else self.run_id
        if not run_id or run_id[0] == '"' or any(c in run_id for c in "\t\r\n"):
            run_id = json.dumps(run_id, ensure_ascii=False)  # never a bare "" or a separator
        return [str(self.offset), str(self.end), str(self.crc), run_id, problem]

    @classmethod
    def of(cls, number: int, fields: list[str]) -> Record:
        offset, end, crc, run_id, problem = fields
        return cls(
            number,
            int(offset),
            int(end),
            int(crc),
            _run_id(run_id),
            json.loads(problem) if problem else None,
        )


def _run_id(field: str) -> str | None:
    if not field:
        return None
    return str(json.loads(field)) if field[0] == '"' else field


@dataclass(frozen=True, slots=True)
class DayIndex:
    """Every line of one day file as indexed (fields of its records, parsed only when
    asked: a lookup touches one run), and whether a torn tail follows them."""

    path: Path
    rows: list[list[str]]
    torn: bool

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def problems(self) -> list[str]:
        """The problems a full read of the file reports, in the same order."""
        out = [f"{self.path.name}: torn last line skipped"] if self.torn else []
        out.extend(str(json.loads(row[4])) for row in self.rows if row[4])
        return out

    def of(self, run_ids: Iterable[str]) -> list[Record]:
        wanted = set(run_ids)
        return [
            Record.of(number, row)
            for number, row in enumerate(self.rows, start=1)
            if row[3] and _run_id(row[3]) in wanted
        ]

    def entries(self, run_ids: set[str]) -> list[Entry]:
        """The entries of ``run_ids`` in file order, read from their lines only.

        Raises ``Stale`` if a line is not what its record says (the file was rewritten).
        """
        records = self.of(run_ids)
        if not records:
            return []
        found = []
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise Stale() from exc
        try:
            for record in records:
                line = os.pread(fd, record.end - record.offset, record.offset)
                entry, _problem = parse_line(self.path.name, record.number, line)
                if zlib.crc32(line) != record.crc or entry is None or entry.run_id != record.run_id:
                    raise Stale()
                found.append(entry)
        finally:
            os.close(fd)
        return found


class Stale(Exception):
    """An index record no longer matches its line: read the raw file instead."""


def index_path(path: Path) -> Path:
    return path.parent / "derived" / f"{path.name.removesuffix('.jsonl')}.index"


def load(path: Path, *, rebuild: bool = False) -> DayIndex:
    """The index of day file ``path``, brought up to date with its complete lines."""
    try:
        source = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return DayIndex(path, [], False)
    except OSError as exc:
        raise state_error(exc, path, "read") from exc
    try:
        size = os.fstat(source).st_size
        ino = os.fstat(source).st_ino
        fd = _open_index(index_path(path))
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            header = _MAGIC + f" {ino}\n".encode()
            old: list[list[str]] = []
            keep = 0
            if fd is not None and not rebuild:
                old, keep = _parse(_read_all(fd), header)
                if old and not _matches(source, size, old[-1]):
                    old, keep = [], 0
            covered = int(old[-1][1]) + 1 if old else 0
            tail = os.pread(source, size - covered, covered) if size > covered else b""
            cut = tail.rfind(b"\n") + 1
            new = [r.fields() for r in _index(path.name, tail[:cut], covered, len(old))]
            if fd is not None:
                _append(fd, keep, header, new)
            return DayIndex(path, old + new, cut < len(tail))
        finally:
            if fd is not None:
                os.close(fd)  # also releases the lock
    finally:
        os.close(source)


def _open_index(path: Path) -> int | None:
    """The index file open for update, or None when it cannot be (then kept in memory)."""
    try:
        path.parent.mkdir(exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0) if size else b""


def _parse(data: bytes, header: bytes) -> tuple[list[list[str]], int]:
    """The records of an index and the length of its valid part (0: rebuild it whole)."""
    if not data.startswith(header):
        return [], 0
    keep = data.rfind(b"\n") + 1  # a torn last record is dropped
    try:
        text = data[len(header) : keep].decode("utf-8")
    except UnicodeDecodeError:
        return [], 0
    rows = [line.split("\t") for line in text.split("\n")[:-1]]
    expected = 0
    try:
        for row in rows:
            if len(row) != 5 or int(row[0]) != expected:
                return [], 0
            expected = int(row[1]) + 1
    except ValueError:
        return [], 0
    return rows, keep


def _matches(source: int, size: int, last: list[str]) -> bool:
    """Whether the day file still holds the last indexed line where the index says."""
    try:
        offset, end, crc = int(last[0]), int(last[1]), int(last[2])
    except ValueError:
        return False
    if end < offset or end + 1 > size:
        return False
    line = os.pread(source, end - offset + 1, offset)
    return line.endswith(b"\n") and zlib.crc32(line[:-1]) == crc


def _index(name: str, data: bytes, base: int, before: int) -> Iterator[Record]:
    """Records of the complete lines in ``data``, which starts at byte ``base``."""
    offset = 0
    number = before
    while offset < len(data):
        end = data.index(b"\n", offset)
        line = data[offset:end]
        number += 1
        entry, problem = parse_line(name, number, line)
        yield Record(
            number,
            base + offset,
            base + end,
            zlib.crc32(line),
            None if entry is None else entry.run_id,
            problem,
        )
        offset = end + 1


def _append(fd: int, keep: int, header: bytes, new: list[list[str]]) -> None:
    """Cut what is not valid, then add the header if needed and ``new``, in one write."""
    try:
        if os.fstat(fd).st_size != keep:
            os.ftruncate(fd, keep)
        text = "".join("\t".join(row) + "\n" for row in new)
        data = (header if keep == 0 else b"") + text.encode("utf-8")
        if data:
            os.pwrite(fd, data, keep)
    except OSError:
        pass  # derived: the next reader indexes these lines again
