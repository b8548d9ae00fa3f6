"""``events.jsonl``: the append-only journal of a run, one JSON object a line.

Each event is written with a single ``os.write`` on an ``O_APPEND`` descriptor while
holding ``flock`` on the file, so writers from several processes (the run itself, a
parent cancelling it, the reaper) never interleave or reuse a sequence number. A
writer killed mid-line leaves a torn tail: readers skip it, and the next writer cuts
it off and journals that it did, so the repair is visible.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from agentctl import failpoints, keystore
from agentctl.runs.oserrors import state_error
from agentctl.runs.timefmt import format_ts, utc_now

_CHUNK = 64 * 1024
_RESERVED = frozenset({"seq", "ts", "type"})


@dataclass(slots=True)
class JournalRead:
    events: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Journal:
    """Appends events to one ``events.jsonl``, numbering them ``seq`` 1, 2, 3, ..."""

    def __init__(self, path: Path, clock: Callable[[], datetime] = utc_now) -> None:
        self.path = path
        self._clock = clock
        # What this process last saw: file size after its own last append and the seq
        # in it. If the size differs at the next append, someone else wrote: rescan.
        self._size: int | None = None
        self._seq = 0

    def append(self, type: str, /, *, durable: bool = False, **fields: Any) -> int:
        """Append one event and return its seq; ``durable`` fsyncs (side-effect intents)."""
        clash = _RESERVED.intersection(fields)
        if clash:
            raise ValueError(f"event fields may not be named {', '.join(sorted(clash))}")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise state_error(exc, self.path, "append to") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size != self._size:
                torn = _drop_torn_tail(fd, size)
                size -= torn
                self._seq = _last_seq(fd, size)
                self._size = size
                if torn:
                    self._write(fd, "journal.torn_tail_dropped", {"bytes": torn}, durable)
            seq = self._write(fd, type, fields, durable)
        except OSError as exc:
            self._size = None  # unknown state: rescan next time
            raise state_error(exc, self.path, "append to") from exc
        finally:
            os.close(fd)  # also releases the lock
        failpoints.hit("journal.after_append")
        return seq

    def _write(self, fd: int, type: str, fields: dict[str, Any], durable: bool) -> int:
        seq = self._seq + 1
        event = {"seq": seq, "ts": format_ts(self._clock()), "type": type, **fields}
        line = _redacted(_dump(event), event)
        data = (line + "\n").encode("utf-8")
        if "journal.mid_append" in failpoints.armed():
            os.write(fd, data[: len(data) // 2])
            failpoints.hit("journal.mid_append")
        view = memoryview(data)
        while view:  # one write; a loop only for a short write (disk full)
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
        self._seq = seq
        assert self._size is not None
        self._size += len(data)
        return seq


def _dump(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _redacted(line: str, event: dict[str, Any]) -> str:
    """``line`` with every known key value taken out: the last line of defence, not the first.

    The whole line is redacted in one pass (cheap); in the rare case that breaks the
    JSON (a key that looks like a number), each string of the event is redacted instead.
    """
    redactor = keystore.redactor()
    if not redactor:
        return line
    clean = redactor(line)
    if clean == line:
        return line
    try:
        json.loads(clean)
    except ValueError:
        return _dump(redactor.redact_obj(event))
    return clean


def _drop_torn_tail(fd: int, size: int) -> int:
    """Cut a last line that has no newline; return how many bytes went."""
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        block = os.pread(fd, end - start, start)
        cut = block.rfind(b"\n")
        if cut >= 0:
            keep = start + cut + 1
            break
        end = start
    else:
        keep = 0
    os.ftruncate(fd, keep)
    return size - keep


def _last_seq(fd: int, size: int) -> int:
    """The seq of the last valid line, reading backwards from the end (0 if none)."""
    pos = size
    rest = b""  # the incomplete start of a line seen so far
    while pos > 0:
        start = max(0, pos - _CHUNK)
        buf = os.pread(fd, pos - start, start) + rest
        pos = start
        lines = buf.split(b"\n")
        rest = lines.pop(0) if pos > 0 else b""
        for line in reversed(lines):
            seq = _seq_of(line)
            if seq is not None:
                return seq
    return 0


def _seq_of(line: bytes) -> int | None:
    event = _parse(line)
    if event is None:
        return None
    seq = event.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        return None
    return value if isinstance(value, dict) else None


def read_journal(path: Path) -> JournalRead:
    """All readable events; torn or garbled lines are skipped and listed as problems."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return JournalRead()
    except OSError as exc:
        raise state_error(exc, path, "read") from exc
    result = JournalRead()
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    if torn:
        lines.append(torn)
    last = len(lines)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        event = _parse(line)
        if event is not None and not (number == last and torn):
            result.events.append(event)
        elif number == last:
            result.problems.append("torn last line skipped")
        else:
            result.problems.append(f"line {number}: not a JSON object, skipped")
    return result


def last_event(path: Path, *, block: int = 65536) -> tuple[dict[str, Any] | None, list[str]]:
    """The journal's last readable event, read from the end: what ``status`` shows.

    Its cost does not grow with the journal (a tick journal gains a line a minute,
    forever). A torn tail or garbled lines met on the way back are skipped and said,
    as ``read_journal`` would; lines before the answer are never read.
    """
    problems: list[str] = []
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None, problems
    except OSError as exc:
        raise state_error(exc, path, "read") from exc
    with handle:
        lines = _lines_backwards(handle, os.fstat(handle.fileno()).st_size, block)
        if next(lines, b"").strip():  # what follows the last newline: a torn line
            problems.append("torn last line skipped")
        for line in lines:
            if not line.strip():
                continue
            event = _parse(line)
            if event is not None:
                return event, problems
            problems.append("a line that is not a JSON object, skipped")
    return None, problems


def _lines_backwards(handle: BinaryIO, size: int, block: int) -> Iterator[bytes]:
    """The file's lines, last first; the first one yielded is what follows the last
    newline (empty when the file ends with one)."""
    end, rest = size, b""
    while end > 0:
        start = max(0, end - block)
        handle.seek(start)
        parts = (handle.read(end - start) + rest).split(b"\n")
        rest = parts.pop(0)  # may continue in the block before
        yield from reversed(parts)
        end = start
    yield rest


def follow(path: Path, *, poll: float = 0.2, stop: Callable[[], bool]) -> Iterator[dict[str, Any]]:
    """Yield events as they are appended (complete lines only) until ``stop()`` is true.

    The file is read once more after ``stop()`` turns true, so events written just
    before a run finished are not lost.
    """
    pos = 0  # end of the complete lines already yielded
    while True:
        done = stop()
        try:
            with path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                pos = min(pos, size)
                handle.seek(pos)
                chunk = handle.read()
        except FileNotFoundError:
            chunk = b""
        complete = chunk.rfind(b"\n") + 1
        for line in chunk[:complete].split(b"\n")[:-1]:
            event = _parse(line)
            if event is not None:
                yield event
        pos += complete
        if done:
            return
        time.sleep(poll)
