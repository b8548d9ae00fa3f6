"""One run directory and every operation on it.

``run.json`` is only ever replaced whole (``atomic.write_json``) and only under an
exclusive ``flock`` on ``<run>/.lock``, so a parent cancelling a run and the run
finishing itself cannot lose each other's change. The kernel drops the lock when a
holder dies, so there is no stale lock to clean up.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agentctl import atomic, keystore
from agentctl.errors import CorruptStateError, StateError
from agentctl.runs.ids import parse_run_id
from agentctl.runs.journal import Journal
from agentctl.runs.liveness import process_start_token, this_host
from agentctl.runs.mailbox import Mailbox
from agentctl.runs.oserrors import state_error
from agentctl.runs.record import (
    TERMINAL,
    Failure,
    RunRecord,
    check_transition,
    field_type,
)
from agentctl.runs.timefmt import compact_ts, format_ts, from_ns, parse_ts, to_ns, utc_now

# Fields that only this module changes, through transition()/mark_started()/quarantine().
_PROTECTED = frozenset(
    {"id", "kind", "status", "created_at", "updated_at", "started_at", "finished_at"}
    | {"root_id", "parent_id", "schema_version"}
)


@dataclass(frozen=True, slots=True)
class RunPaths:
    run_json: Path
    input_json: Path
    events: Path
    transcript: Path
    output_json: Path
    process_log: Path
    inbox: Path
    outbox: Path
    heartbeat: Path
    lock: Path

    @classmethod
    def of(cls, directory: Path) -> RunPaths:
        return cls(
            run_json=directory / "run.json",
            input_json=directory / "input.json",
            events=directory / "events.jsonl",
            transcript=directory / "transcript.jsonl",
            output_json=directory / "output.json",
            process_log=directory / "process.log",
            inbox=directory / "inbox",
            outbox=directory / "outbox",
            heartbeat=directory / "heartbeat",
            lock=directory / ".lock",
        )


class Run:
    """A handle on ``<state>/runs/<id>/``; cheap to make, reads nothing until asked."""

    def __init__(self, directory: Path, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.dir = directory
        self.id = directory.name
        self.paths = RunPaths.of(directory)
        self._clock = clock
        self.journal = Journal(self.paths.events, clock)
        self.inbox = Mailbox(self.paths.inbox, clock)
        self.outbox = Mailbox(self.paths.outbox, clock)

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"

    def load(self) -> RunRecord:
        """The current record; CorruptStateError or FutureStateError if unusable."""
        return load_record(self.paths.run_json, self.id)

    def update(self, **changes: Any) -> RunRecord:
        """Change descriptive fields (pid, step, worktree, ...); status goes via transition()."""
        refused = _PROTECTED.intersection(changes)
        if refused:
            raise ValueError(
                f"update() cannot change {', '.join(sorted(refused))}; "
                "use transition() for status changes"
            )
        _check_types(changes)
        with self._locked():
            record = self.load()
            new = dataclasses.replace(record, **changes, updated_at=self._clock())
            self._write(new)
            return new

    def note_reason(self, reason: str, *, status: str) -> bool:
        """Say why the run is ``status`` (a pending run waiting), unless it moved on.

        Checked under the lock: a cancel recorded meanwhile keeps its own reason.
        """
        with self._locked():
            record = self.load()
            if record.status != status:
                return False
            self._write(dataclasses.replace(record, reason=reason, updated_at=self._clock()))
            return True

    def transition(
        self, status: str, *, reason: str | None = None, failure: Failure | None = None
    ) -> RunRecord:
        """Move to ``status`` if the state machine allows it (TransitionError if not).

        ``failure`` classes a failure (transient or permanent) for whoever retries it;
        every transition sets it afresh, so a resumed run carries none.
        """
        with self._locked():
            return self._move(self.load(), status, reason, failure=failure)

    def mark_started(self, pid: int, pgid: int) -> RunRecord:
        """Record the process now running this run (with its start token) and go running."""
        identity: dict[str, Any] = {
            "pid": pid,
            "pgid": pgid,
            "pid_start": process_start_token(pid),
            "host": this_host(),
        }
        with self._locked():
            return self._move(self.load(), "running", None, failure=None, **identity)

    def heartbeat(self) -> None:
        """Say "still alive": the time goes in the file and in its mtime (for cheap stats)."""
        now = self._clock()
        atomic.write_text(self.paths.heartbeat, format_ts(now) + "\n", durable=False)
        ns = to_ns(now)
        try:
            os.utime(self.paths.heartbeat, ns=(ns, ns))
        except OSError as exc:
            raise state_error(exc, self.paths.heartbeat, "write") from exc

    def heartbeat_at(self) -> datetime | None:
        try:
            return parse_ts(self.paths.heartbeat.read_text("utf-8").strip())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return mtime_of(self.paths.heartbeat)

    def read_input(self) -> dict[str, Any]:
        value = _read_json_object(self.paths.input_json)
        if value is None:
            raise CorruptStateError(f"{self.paths.input_json}: missing", path=self.paths.input_json)
        return value

    def write_output(self, value: dict[str, Any]) -> None:
        atomic.write_json(self.paths.output_json, keystore.redactor().redact_obj(value))

    def last_words(self) -> str:
        """Why the run's process ended without recording it, from the end of process.log.

        On a full disk nothing else may be writable: the worker's "disk full: <path>"
        line on stderr is then the only record (and even that may be lost).
        """
        try:
            with self.paths.process_log.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 16384))
                tail = log.read().decode("utf-8", "replace").splitlines()
        except OSError:
            tail = []
        for line in reversed(tail):
            if "disk full: " in line:
                return line[line.index("disk full: ") :].strip()
        said = [line.strip() for line in tail if line.startswith("agentctl: ")]
        if said:
            return said[-1].removeprefix("agentctl: ")
        return "its process ended without recording an ending (see process.log)"

    def read_output(self) -> dict[str, Any] | None:
        """The final result, or None while the run has not produced one."""
        return _read_json_object(self.paths.output_json)

    def quarantine(self, problem: str) -> RunRecord:
        """Set a corrupt ``run.json`` aside (bytes kept) and mark the run failed.

        Refused when ``run.json`` is readable, and for a file from a newer agentctl
        (FutureStateError): that one is not corrupt, and overwriting it would lose it.
        """
        with self._locked():
            try:
                self.load()
            except CorruptStateError:
                pass
            else:
                raise StateError(f"{self.paths.run_json} is readable; nothing to set aside")
            parsed = parse_run_id(self.id)
            if parsed is None:
                raise StateError(f"{self.dir} is not a run directory", path=self.dir)
            created, kind, _ = parsed
            now = self._clock()
            kept = self.dir / f"run.json.corrupt-{compact_ts(now)}"
            kept_as: str | None = kept.name
            try:
                os.rename(self.paths.run_json, kept)
            except FileNotFoundError:
                kept_as = None  # nothing there to keep
            except OSError as exc:
                raise state_error(exc, self.paths.run_json, "set aside") from exc
            record = RunRecord(
                id=self.id,
                kind=kind,
                status="failed",
                created_at=created,
                updated_at=now,
                root_id=self.id,
                finished_at=now,
                reason=f"corrupt state set aside: {problem}",
            )
            self._write(record)
            mark_live(self.dir, False)
            self.journal.append(
                "run.quarantined",
                durable=True,
                problem=problem,
                kept_as=kept_as,
            )
            return record

    def _move(
        self, record: RunRecord, status: str, reason: str | None, **changes: Any
    ) -> RunRecord:
        new_status = check_transition(record.status, status)
        now = self._clock()
        started_at, finished_at = record.started_at, record.finished_at
        if new_status == "running":
            started_at = started_at or now
            finished_at = None
        elif new_status in TERMINAL:
            finished_at = now
        new = dataclasses.replace(
            record,
            **changes,
            status=new_status,
            reason=reason,
            started_at=started_at,
            finished_at=finished_at,
            updated_at=now,
        )
        if new_status not in TERMINAL:
            mark_live(self.dir, True)  # before the state: a live run is never missing from it
        self._write(new)
        if new_status in TERMINAL:
            mark_live(self.dir, False)
        said = {"failure": changes["failure"]} if changes.get("failure") else {}
        self.journal.append(
            "status",
            durable=True,
            **{"from": record.status, "to": new_status, "reason": reason},
            **said,
        )
        return new

    def _write(self, record: RunRecord) -> None:
        atomic.write_json(self.paths.run_json, keystore.redactor().redact_obj(record.to_json()))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError as exc:
            raise StateError(f"no run directory at {self.dir}", path=self.dir) from exc
        except OSError as exc:
            raise state_error(exc, self.paths.lock, "lock") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


LIVE = ".live"  # <runs>/.live/<id>: an index of unfinished runs, so a tick reads only those


def mark_live(run_dir: Path, live: bool) -> None:
    """Add or remove ``run_dir`` in the index of unfinished runs (a hint, checked on read)."""
    marker = run_dir.parent / LIVE / run_dir.name
    if live:
        marker.parent.mkdir(exist_ok=True)
        marker.touch()
    else:
        marker.unlink(missing_ok=True)


def load_record(path: Path | str, expected_id: str) -> RunRecord:
    """Read and validate one ``run.json`` (whose directory is named ``expected_id``).

    ``path`` may be a plain string: listing a thousand runs skips building Paths.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as exc:
        raise CorruptStateError(f"{path}: missing", path=Path(path)) from exc
    except OSError as exc:
        raise state_error(exc, Path(path), "read") from exc
    if not data.strip():
        raise CorruptStateError(f"{path}: empty file", path=Path(path))
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise CorruptStateError(f"{path}: not valid JSON ({exc})", path=Path(path)) from exc
    record = RunRecord.from_json(value, path)
    if record.id != expected_id:
        raise CorruptStateError(
            f"{path}: id {record.id!r} does not match its directory {expected_id!r}",
            path=Path(path),
        )
    return record


def mtime_of(path: Path | str) -> datetime | None:
    try:
        return from_ns(os.stat(path).st_mtime_ns)
    except OSError:
        return None


def _read_json_object(path: Path) -> dict[str, Any] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise state_error(exc, path, "read") from exc
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise CorruptStateError(f"{path}: not valid JSON ({exc})", path=path) from exc
    if not isinstance(value, dict):
        raise CorruptStateError(f"{path}: expected a JSON object", path=path)
    return value


def _check_types(changes: dict[str, Any]) -> None:
    names = {field.name for field in dataclasses.fields(RunRecord)}
    for name, value in changes.items():
        if name not in names:
            raise TypeError(f"RunRecord has no field {name!r}")
        if value is None:
            continue
        expected = field_type(name)
        ok = (
            isinstance(value, datetime)
            if expected == "time"
            else isinstance(value, int) and not isinstance(value, bool)
            if expected == "int"
            else isinstance(value, str)
        )
        if not ok:
            raise TypeError(f"{name} must be a {expected}, not {type(value).__name__}")
