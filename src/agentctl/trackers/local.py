"""The local tracker: one TOML file per ticket, for people without a Linear account.

TOML because people open and edit these by hand (``$EDITOR .agentctl/tickets/T-3.toml``).
Ids are allocated and files rewritten under one ``flock``, so two processes adding
tickets never take the same id and a comment is never lost to a concurrent state
change; every file is replaced atomically.
"""

from __future__ import annotations

import builtins
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl import atomic
from agentctl.config import tomlsafe
from agentctl.errors import CorruptStateError, FutureStateError, NotFoundError, UsageError
from agentctl.runs.timefmt import format_ts, utc_now
from agentctl.trackers import Ticket

if TYPE_CHECKING:
    from agentctl.config import Config

SCHEMA_VERSION = 1
STATES = ("Todo", "In Progress", "In Review", "Blocked", "Done", "Canceled")
BLOCKED = "Blocked"  # parked by the orchestrator: a person decides what next
CLOSED = frozenset({"Done", "Canceled"})
_BY_NAME = {s.lower(): s for s in STATES} | {"cancelled": "Canceled"}
PREFIX = "T-"


def normalize_state(state: str) -> str:
    """``in_progress``, ``IN PROGRESS`` and ``In Progress`` are one state; others are refused."""
    name = " ".join(state.replace("_", " ").replace("-", " ").split()).lower()
    if name not in _BY_NAME:
        raise UsageError(f"unknown ticket state {state!r}: use one of {', '.join(STATES)}")
    return _BY_NAME[name]


class LocalTracker:
    """Tickets under ``<state_dir>/tickets/`` (or ``tickets_dir``), ids ``T-1``, ``T-2``, ..."""

    def __init__(
        self,
        state_dir: Path,
        *,
        tickets_dir: Path | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.dir = tickets_dir if tickets_dir is not None else state_dir / "tickets"
        self._clock = clock

    @classmethod
    def from_config(cls, config: Config, **_: object) -> LocalTracker:
        workspace = config.workspace
        path = config.settings.tracker.local.path
        return cls(workspace.state_dir, tickets_dir=workspace.root / path)

    # -- the Tracker protocol -------------------------------------------------------

    def list(
        self, *, states: Sequence[str] | None = None, labels: Sequence[str] = ()
    ) -> builtins.list[Ticket]:
        """Open tickets (not Done or Canceled) unless ``states`` says; oldest first."""
        wanted = {normalize_state(s) for s in states} if states is not None else None
        need = {label.lower() for label in labels}
        found = []
        for data in self._all():
            state = data["state"]
            if (state in CLOSED) if wanted is None else (state not in wanted):
                continue
            if not need <= {label.lower() for label in data["labels"]}:
                continue
            found.append(_ticket(data))
        return found

    def get(self, ticket_id: str) -> Ticket:
        return _ticket(self._load(ticket_id))

    def set_state(self, ticket_id: str, state: str) -> Ticket:
        target = normalize_state(state)
        with self._locked():
            data = self._load(ticket_id)
            if data["state"] != target:
                data["state"] = target
                self._save(data)
            return _ticket(data)

    def block(self, ticket_id: str) -> Ticket:
        """Parked by the orchestrator: the ticket says so until a person acts."""
        return self.set_state(ticket_id, BLOCKED)

    def unblock(self, ticket_id: str, state: str) -> Ticket:
        return self.set_state(ticket_id, state)

    def is_blocked(self, ticket: Ticket) -> bool:
        return ticket.state == BLOCKED

    def state_names(self) -> builtins.list[str]:
        """Every state a local ticket can be in (``tickets list --state all``)."""
        return list(STATES)

    def state_name(self, state: str) -> str:
        """``in_progress`` → ``In Progress``; a name that is no state passes through."""
        try:
            return normalize_state(state)
        except UsageError:
            return state

    def comment(self, ticket_id: str, body: str) -> None:
        with self._locked():
            data = self._load(ticket_id)
            now = format_ts(self._clock())
            data["comments"].append({"at": now, "body": body})
            data["updated"] = now
            self._save(data, touch=False)

    def link(self, ticket_id: str, url: str, title: str) -> None:
        with self._locked():
            data = self._load(ticket_id)
            if any(link["url"] == url for link in data["links"]):
                return
            data["links"].append({"url": url, "title": title})
            self._save(data)

    # -- more than the protocol -------------------------------------------------------

    def add(self, title: str, description: str = "", labels: Sequence[str] = ()) -> Ticket:
        if not title.strip():
            raise UsageError("a ticket needs a title")
        with self._locked():
            number = max((_number(p.stem) for p in self._paths()), default=0) + 1
            now = format_ts(self._clock())
            data: dict[str, Any] = {
                "schema_version": SCHEMA_VERSION,
                "id": f"{PREFIX}{number}",
                "title": title.strip(),
                "description": description,
                "state": "Todo",
                "labels": list(dict.fromkeys(labels)),
                "created": now,
                "updated": now,
                "comments": [],
                "links": [],
            }
            self._save(data, touch=False)
            return _ticket(data)

    def comment_log(self, ticket_id: str) -> builtins.list[dict[str, str]]:
        """The comments with their UTC times (``Ticket.comments`` holds the bodies)."""
        return [dict(c) for c in self._load(ticket_id)["comments"]]

    def record(self, ticket_id: str) -> dict[str, Any]:
        """The whole file as data: times included, for ``tickets show``."""
        return self._load(ticket_id)

    # -- internals --------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _paths(self) -> builtins.list[Path]:
        if not self.dir.is_dir():
            return []
        return [p for p in self.dir.glob(f"{PREFIX}*.toml") if _number(p.stem) > 0]

    def _all(self) -> builtins.list[dict[str, Any]]:
        return [_read(p) for p in sorted(self._paths(), key=lambda p: _number(p.stem))]

    def _path(self, ticket_id: str) -> Path:
        key = ticket_id.strip().upper()
        if key.isdigit():
            key = f"{PREFIX}{key}"  # `tickets show 3` means T-3
        if _number(key) <= 0:
            raise NotFoundError(f"no ticket {ticket_id!r}", hint="ticket ids look like T-3")
        return self.dir / f"{key}.toml"

    def _load(self, ticket_id: str) -> dict[str, Any]:
        path = self._path(ticket_id)
        if not path.is_file():
            raise NotFoundError(f"no ticket {ticket_id!r}", hint="see `agentctl tickets list`")
        return _read(path)

    def _save(self, data: dict[str, Any], *, touch: bool = True) -> None:
        import tomli_w

        if touch:
            data["updated"] = format_ts(self._clock())
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic.write_text(
            self.dir / f"{data['id']}.toml", tomli_w.dumps(data, multiline_strings=True)
        )


def _number(stem: str) -> int:
    """``T-12`` → 12; anything else → 0."""
    digits = stem.removeprefix(PREFIX)
    return int(digits) if stem.startswith(PREFIX) and digits.isdigit() else 0


def _read(path: Path) -> dict[str, Any]:
    try:
        data = tomlsafe.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptStateError(
            f"ticket file {path} is unreadable: {exc}", path=path, hint="fix or move it aside"
        ) from exc
    if int(data.get("schema_version", 1)) > SCHEMA_VERSION:
        raise FutureStateError(
            f"{path} was written by a newer agentctl (schema {data['schema_version']})",
            path=path,
            hint="upgrade agentctl",
        )
    if not isinstance(data.get("title"), str):
        raise CorruptStateError(f"ticket file {path} has no title", path=path)
    data["id"] = path.stem
    try:
        data["state"] = normalize_state(str(data.get("state", "Todo")))
    except UsageError as exc:
        raise CorruptStateError(f"{path}: {exc.message}", path=path) from exc
    data.setdefault("description", "")
    data["labels"] = [str(label) for label in data.get("labels", [])]
    data["comments"] = [
        {"at": str(c.get("at", "")), "body": str(c.get("body", ""))}
        for c in data.get("comments", [])
        if isinstance(c, dict)
    ]
    data["links"] = [
        {"url": str(link.get("url", "")), "title": str(link.get("title", ""))}
        for link in data.get("links", [])
        if isinstance(link, dict)
    ]
    return data


def _ticket(data: dict[str, Any]) -> Ticket:
    return Ticket(
        id=data["id"],
        title=data["title"],
        description=str(data.get("description", "")),
        state=data["state"],
        labels=tuple(data["labels"]),
        key=data["id"],
        comments=tuple(c["body"] for c in data["comments"]),
        closed=data["state"] in CLOSED,
    )
