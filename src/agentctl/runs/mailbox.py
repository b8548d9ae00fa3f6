"""``inbox/`` and ``outbox/``: numbered message files between a run and its parent.

A message is written whole to a temp file and published with ``os.link`` to its
number, which fails if the number is taken: two posters can never overwrite each
other, and a reader never sees half a message.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agentctl import atomic, failpoints, keystore
from agentctl.atomic import TEMP_MARK
from agentctl.runs.oserrors import state_error
from agentctl.runs.timefmt import format_ts, utc_now

_NAME = re.compile(r"^(\d{6,})\.json$")
_RESERVED = frozenset({"seq", "ts"})


@dataclass(frozen=True, slots=True)
class Message:
    """One message; ``problem`` is set (and ``body`` empty) when its file is unreadable."""

    seq: int
    path: Path
    body: dict[str, Any]
    problem: str | None = None


class Mailbox:
    def __init__(self, directory: Path, clock: Callable[[], datetime] = utc_now) -> None:
        self.directory = directory
        self._clock = clock

    def post(self, body: dict[str, Any]) -> int:
        """Publish ``body`` as the next message and return its seq (1-based)."""
        clash = _RESERVED.intersection(body)
        if clash:
            raise ValueError(f"message fields may not be named {', '.join(sorted(clash))}")
        ts = format_ts(self._clock())
        tmp = self.directory / f".post{TEMP_MARK}{os.getpid()}.{os.urandom(4).hex()}"
        try:
            seq = self._last_seq() + 1
            while True:
                _write_new(tmp, {"seq": seq, "ts": ts, **body})
                try:
                    os.link(tmp, self.directory / f"{seq:06d}.json")
                    break
                except FileExistsError:  # someone else took it: go past the newest
                    seq = max(seq, self._last_seq()) + 1
            failpoints.hit("mailbox.after_post")
            tmp.unlink()
            atomic.fsync_dir(self.directory)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise state_error(exc, self.directory, "post a message in") from exc
        return seq

    def read(self, after: int = 0) -> list[Message]:
        """Messages with seq > ``after``, in order; unreadable ones carry a problem."""
        messages = []
        for seq, path in self._numbered():
            if seq <= after:
                continue
            message = _message(seq, path)
            if message is not None:
                messages.append(message)
        return messages

    def last(self) -> Message | None:
        """The newest message (as ``read()[-1]``), reading only its file: a mailbox
        that has had thousands of reports costs no more than one that has had one."""
        for seq, path in reversed(self._numbered()):
            message = _message(seq, path)
            if message is not None:
                return message
        return None

    def _numbered(self) -> list[tuple[int, Path]]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            match = _NAME.match(name)
            if match:
                found.append((int(match.group(1)), self.directory / name))
        found.sort()
        return found

    def _last_seq(self) -> int:
        numbered = self._numbered()
        return numbered[-1][0] if numbered else 0


def _message(seq: int, path: Path) -> Message | None:
    """One message file, or None if it was removed between listing and reading."""
    try:
        body = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return Message(seq, path, {}, f"{path}: unreadable message ({exc})")
    if not isinstance(body, dict):
        return Message(seq, path, {}, f"{path}: message is not a JSON object")
    return Message(seq, path, body)


def _write_new(path: Path, value: dict[str, Any]) -> None:
    value = keystore.redactor().redact_obj(value)  # the last line of defence, not the first
    data = (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
