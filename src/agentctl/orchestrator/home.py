"""``.agentctl/orchestrator/``: the orchestrator's fixed address, whether a tick runs or not.

``inbox/`` (instructions from the main session), ``outbox/`` (reports to it),
``state.json`` (the last state digest, when each heartbeat duty last ran, the
inbox cursor, the fencing counter), ``ticks.jsonl`` (one entry per tick) and
``tick.lock`` (``flock``: a second tick exits at once; the kernel frees it when a
holder dies, even on kill -9). Leases (``.agentctl/leases/<ticket>.json``) make
"one active pipeline per ticket" hold across racing ticks; a lease is only written
under the tick lock, so one without a run seen under that lock is a dead tick's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentctl import atomic
from agentctl.errors import CorruptStateError
from agentctl.runs import Journal, Mailbox
from agentctl.runs.journal import read_journal
from agentctl.runs.locking import try_lock

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Home:
    dir: Path
    leases: Path

    @classmethod
    def of(cls, state_dir: Path) -> Home:
        return cls(state_dir / "orchestrator", state_dir / "leases")

    @property
    def inbox(self) -> Mailbox:
        return Mailbox(self.dir / "inbox")

    @property
    def outbox(self) -> Mailbox:
        return Mailbox(self.dir / "outbox")

    @property
    def ticks(self) -> Journal:
        return Journal(self.dir / "ticks.jsonl")

    def make(self) -> None:
        for path in (self.dir / "inbox", self.dir / "outbox", self.leases):
            path.mkdir(parents=True, exist_ok=True)

    def load_state(self) -> dict[str, Any]:
        path = self.dir / "state.json"
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return {"schema_version": STATE_VERSION}
        except (OSError, ValueError) as exc:
            raise CorruptStateError(
                f"{path}: unreadable orchestrator state ({exc})", path=path
            ) from exc
        if not isinstance(data, dict):
            raise CorruptStateError(f"{path}: not a JSON object", path=path)
        return data

    def save_state(self, state: dict[str, Any]) -> None:
        atomic.write_json(self.dir / "state.json", {**state, "schema_version": STATE_VERSION})

    @contextmanager
    def tick_lock(self) -> Iterator[bool]:
        """Yield True while this process holds the tick lock, False if another tick does."""
        self.make()
        with try_lock(self.dir / "tick.lock") as held:
            yield held

    def claim(self, ticket: str, token: int, run_id: str | None = None) -> bool:
        """Create the ticket's lease; False when one exists (another tick claimed it)."""
        self.make()
        path = self.lease_path(ticket)
        tmp = path.with_name(f".{path.name}{atomic.TEMP_MARK}{os.getpid()}")
        atomic.write_json(tmp, {"ticket": ticket, "token": token, "run_id": run_id})
        try:
            os.link(tmp, path)  # atomic create-if-absent, like the mailboxes
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def release(self, ticket: str, token: int) -> None:
        """Drop the ticket's lease if it is still ours (``token``) and nothing runs under it."""
        lease = self.lease(ticket)
        if lease is not None and lease.get("token") == token and not lease.get("run_id"):
            self.lease_path(ticket).unlink(missing_ok=True)

    def lease(self, ticket: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.lease_path(ticket).read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def set_lease(self, ticket: str, data: dict[str, Any]) -> None:
        atomic.write_json(self.lease_path(ticket), data)

    def next_token(self, state: dict[str, Any]) -> int:
        """A fencing token above every one ever handed out.

        The counter in ``state.json`` alone is lost with that file; the leases (a
        reclaimed lease is overwritten, never dropped, so its token stays) and the
        tick journal (every tick records its counter; read only when state.json has
        none, so a long journal costs nothing on an ordinary tick) keep it too.
        """
        highest = int(state.get("fence", 0) or 0)
        if self.leases.is_dir():
            for path in self.leases.glob("*.json"):
                lease = self.lease(path.stem) or {}
                highest = max(highest, _int(lease.get("token")))
        if "fence" not in state:  # state.json lost: the journal (read only then) remembers
            for event in read_journal(self.ticks.path).events:
                highest = max(highest, _int(event.get("fence")))
        return highest + 1

    def lease_path(self, ticket: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in ticket)
        return self.leases / f"{safe}.json"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
