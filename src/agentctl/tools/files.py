"""read, write and edit: file tools that only ever touch checked, confined paths.

Every path goes through ``confine.resolve`` first and is then opened through an
``O_NOFOLLOW`` chain; writes are atomic so a killed agent never leaves half a file.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from agentctl.tools import confine
from agentctl.tools.result import Output, ToolError

BINARY_SNIFF = 8192
DEFAULT_LIMIT = 2000
MAX_LINE_CHARS = 2000  # a longer line is shown cut, with its full length
MAX_READ_CHARS = 1_000_000  # lines past this much text are not collected (the model sees 16K)
MAX_EDIT_BYTES = 20 * 1024 * 1024  # edit holds the file in memory: bigger ones go to bash
_CHUNK = 1 << 16


def is_binary(data: bytes) -> bool:
    """A NUL byte near the start: what git and grep take to mean binary."""
    return b"\x00" in data[:BINARY_SNIFF]


def read(
    root: str,
    path: str,
    offset: int | None = None,
    limit: int | None = None,
    *,
    time_limit: float | None = None,
) -> Output:
    """Lines of a text file numbered like ``cat -n``, from line ``offset`` (1-based).

    The file is streamed, never loaded whole: a 100 MB one-line file costs a chunk of
    memory, not 100 MB, and each shown line is cut to ``MAX_LINE_CHARS``. Past
    ``time_limit`` seconds it stops: with what was asked for, if that was read (the
    rest then goes uncounted), else with an error.
    """
    target = confine.resolve(root, path)
    start = 1 if offset is None else offset
    count = DEFAULT_LIMIT if limit is None else limit
    if start < 1:
        raise ToolError(f"offset must be 1 or more, not {start}", path=target.path)
    if count < 1:
        raise ToolError(f"limit must be 1 or more, not {count}", path=target.path)
    stop_at = None if time_limit is None else time.monotonic() + time_limit
    complete = True
    with confine.opened(root, target) as fh:
        scan = _Scan(start, start - 1 + count)
        first = True
        while chunk := fh.read(_CHUNK):
            if first and is_binary(chunk):
                raise ToolError(f"{target.path} is a binary file", path=target.path)
            first = False
            scan.feed(chunk)
            if stop_at is not None and time.monotonic() > stop_at:
                if not scan.window_done():
                    raise ToolError(
                        f"read stopped after {time_limit:g}s (its time limit) at line "
                        f"{scan.lines + 1} of {target.path}; use a later offset",
                        path=target.path,
                        timed_out=True,
                    )
                complete = False
                break
        else:
            scan.close()
    total = scan.lines
    meta: dict[str, Any] = {"path": target.path, "lines": total, "bytes": scan.size}
    if complete:
        meta["sha256"] = scan.hash.hexdigest()
    else:
        meta["counted"] = False  # lines and bytes are what was read in time, not the file's
    if scan.cut_lines:
        meta["long_lines_cut"] = scan.cut_lines
    if not total:
        return Output(f"({target.rel} is empty)", meta)
    if start > total:
        raise ToolError(
            f"{target.path} has {total} lines; offset {start} is past the end", path=target.path
        )
    end = start - 1 + len(scan.shown)
    body = "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(scan.shown, start))
    of = str(total) if complete else f"more than {total} (not all counted in time)"
    if start > 1 or end < total or not complete:
        body += f"\n[lines {start}-{end} of {of}; use offset and limit for more]"
    return Output(body, meta)


class _Scan:
    """Counts the lines of a byte stream and keeps lines ``first``..``last``, each cut."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.lines = 0  # complete lines seen so far
        self.size = 0
        self.hash = hashlib.sha256()
        self.shown: list[str] = []
        self.kept = 0  # characters in shown
        self.cut_lines = 0
        self._line = bytearray()  # the kept start of the current line
        self._line_len = 0  # its full length in bytes
        self._open = False  # bytes seen since the last newline

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.hash.update(chunk)
        pos = 0
        while pos < len(chunk):
            if self._only_count(chunk, pos):
                return
            nl = chunk.find(b"\n", pos)
            piece = chunk[pos:] if nl < 0 else chunk[pos:nl]
            self._open = True
            self._take(piece)
            if nl < 0:
                return
            self._end_line()
            pos = nl + 1

    def _only_count(self, chunk: bytes, pos: int) -> bool:
        """Count the rest of ``chunk`` at C speed when none of it is to be shown."""
        newlines = chunk.count(b"\n", pos)
        before = self.first - 1 - self.lines  # whole lines still to pass before the window
        past = self.lines + 1 > self.last or self.kept >= MAX_READ_CHARS
        if not past and newlines >= before:
            return False
        self.lines += newlines
        self._open = newlines == 0 or not chunk.endswith(b"\n")
        return True

    def window_done(self) -> bool:
        """Every line asked for is in (or the text bound is reached)."""
        return self.lines >= self.last or self.kept >= MAX_READ_CHARS

    def close(self) -> None:
        if self._open:
            self._end_line()

    def _wanted(self) -> bool:
        number = self.lines + 1
        return self.first <= number <= self.last and self.kept < MAX_READ_CHARS

    def _take(self, piece: bytes) -> None:
        self._line_len += len(piece)
        room = MAX_LINE_CHARS * 4 - len(self._line)  # UTF-8: at most 4 bytes a character
        if room > 0 and self._wanted():
            self._line += piece[:room]

    def _end_line(self) -> None:
        if self._wanted():
            raw = bytes(self._line)
            whole = self._line_len == len(raw)
            if whole and raw.endswith(b"\r"):
                raw = raw[:-1]
            text = raw.decode("utf-8", errors="replace")
            if not whole or len(text) > MAX_LINE_CHARS:
                text = text[:MAX_LINE_CHARS] + f"… [line cut: {self._line_len} bytes in all]"
                self.cut_lines += 1
            self.shown.append(text)
            self.kept += len(text)
        self.lines += 1
        self._line.clear()
        self._line_len = 0
        self._open = False


def write(root: str, path: str, content: str) -> Output:
    """Create or replace a whole file (parents made as needed)."""
    target = confine.resolve(root, path, write=True)
    data = content.encode("utf-8")
    created = confine.write_atomic(root, target, data)
    verb = "created" if created else "replaced"
    return Output(
        f"{verb} {target.rel} ({len(data)} bytes written)",
        {"path": target.path, "created": created, "bytes": len(data)},
    )


def edit(root: str, path: str, old: str, new: str, replace_all: bool = False) -> Output:
    """Replace exact text; ``old`` must be unique unless ``replace_all``, so edits land once."""
    target = confine.resolve(root, path, write=True)
    if not old:
        raise ToolError("old must not be empty (use write to create a file)", path=target.path)
    if old == new:
        raise ToolError("old and new are the same: nothing to change", path=target.path)
    with confine.opened(root, target) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_EDIT_BYTES:
            raise ToolError(
                f"{target.path} is {size} bytes; edit takes files up to {MAX_EDIT_BYTES} "
                "bytes (use bash, e.g. sed, for bigger ones)",
                path=target.path,
            )
        data = fh.read()
    if is_binary(data):
        raise ToolError(f"{target.path} is a binary file", path=target.path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(f"{target.path} is not valid UTF-8: {exc}", path=target.path) from exc
    found = text.count(old)
    if found == 0:
        raise ToolError(f"old text not found in {target.path}", path=target.path)
    if found > 1 and not replace_all:
        raise ToolError(
            f"old text occurs {found} times in {target.path}: give more context or set replace_all",
            path=target.path,
            occurrences=found,
        )
    text = text.replace(old, new) if replace_all else text.replace(old, new, 1)
    confine.write_atomic(root, target, text.encode("utf-8"))
    done = found if replace_all else 1
    return Output(
        f"replaced {done} occurrence{'s' if done != 1 else ''} in {target.rel}",
        {"path": target.path, "replacements": done},
    )
