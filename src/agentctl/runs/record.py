"""``run.json``: who a run is, what it is doing, and the rules for changing its status.

The file is the single source of truth about a run. Reading it is strict: a file that
is not what this version wrote is reported as corrupt (never read as "not started"),
and a file from a newer agentctl is refused rather than half-understood.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeGuard, get_args

from agentctl.errors import CorruptStateError, FutureStateError, TransitionError
from agentctl.runs.timefmt import format_ts, parse_ts

SCHEMA_VERSION = 1

Status = Literal["pending", "running", "succeeded", "failed", "canceled", "paused"]
STATUSES: tuple[Status, ...] = get_args(Status)
TERMINAL: frozenset[Status] = frozenset({"succeeded", "failed", "canceled"})
# Why a failed run failed, for whoever decides on a retry: ``transient`` (a retry may
# pass: an endpoint down, a process killed, a full disk), ``permanent`` (it cannot: no
# usable verdict, a missing key or program, a refused request). None: not known.
Failure = Literal["transient", "permanent"]
FAILURES: tuple[Failure, ...] = get_args(Failure)

TRANSITIONS: dict[Status, frozenset[Status]] = {
    "pending": frozenset({"running", "failed", "canceled"}),
    "running": frozenset({"succeeded", "failed", "canceled", "paused"}),
    "paused": frozenset({"running", "canceled", "failed"}),
    "failed": frozenset({"running"}),  # resume
    "succeeded": frozenset(),
    "canceled": frozenset(),
}


def check_transition(old: Status, new: str) -> Status:
    """Return ``new`` as a Status if ``old -> new`` is allowed; else TransitionError."""
    allowed = TRANSITIONS.get(old, frozenset())
    if new in allowed:
        return new
    if new not in STATUSES:
        raise TransitionError(f"cannot move a run from {old} to {new}: {new!r} is not a status")
    choices = ", ".join(sorted(allowed)) or "nothing (it is final)"
    raise TransitionError(
        f"cannot move a run from {old} to {new}; from {old} it may go to {choices}"
    )


@dataclass(frozen=True, slots=True)
class RunRecord:
    """The contents of ``run.json``."""

    id: str
    kind: str
    status: Status
    created_at: datetime
    updated_at: datetime
    root_id: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    parent_id: str | None = None
    role: str | None = None
    model: str | None = None
    pipeline: str | None = None
    step: str | None = None
    ticket: str | None = None
    workspace: str | None = None
    worktree: str | None = None
    pid: int | None = None
    pgid: int | None = None
    pid_start: str | None = None
    host: str | None = None
    reason: str | None = None
    failure: Failure | None = None  # absent in older run.json files: read as None
    schema_version: int = SCHEMA_VERSION

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = format_ts(value) if isinstance(value, datetime) else value
        return out

    @classmethod
    def from_json(cls, data: object, path: Path | str) -> RunRecord:
        """Validate parsed JSON from ``path``; CorruptStateError/FutureStateError if unusable."""
        if not isinstance(data, dict):
            raise _corrupt(path, f"expected a JSON object, found {_json_type(data)}")
        version = data.get("schema_version")
        if not _is_int(version) or version < 1:
            raise _corrupt(path, f"schema_version must be a positive integer, found {version!r}")
        if version > SCHEMA_VERSION:
            raise FutureStateError(
                f"{path}: schema_version {version} was written by a newer agentctl "
                f"(this one reads up to {SCHEMA_VERSION}); upgrade agentctl",
                path=Path(path),
            )
        values: dict[str, Any] = {}
        for name, required in _FIELDS:
            if name not in data or data[name] is None:
                if required:
                    what = "is missing" if name not in data else "is null"
                    raise _corrupt(path, f"required field {name!r} {what}")
                values[name] = None
                continue
            values[name] = _decode(name, data[name], path)
        values["schema_version"] = version
        return cls(**values)


# (name, required) for every field, computed once: listing 1,000 runs reads 1,000 records.
_FIELDS: tuple[tuple[str, bool], ...] = tuple(
    (field.name, field.default is dataclasses.MISSING) for field in dataclasses.fields(RunRecord)
)

# Field name -> the JSON type it must have ("time" = an ISO 8601 string).
_FIELD_TYPES: dict[str, str] = {
    "created_at": "time",
    "updated_at": "time",
    "started_at": "time",
    "finished_at": "time",
    "pid": "int",
    "pgid": "int",
    "schema_version": "int",
}


def field_type(name: str) -> str:
    """What a RunRecord field holds: "time", "int" or "str" (for validating updates)."""
    return _FIELD_TYPES.get(name, "str")


def _decode(name: str, value: object, path: Path | str) -> object:
    kind = field_type(name)
    if kind == "int":
        if not _is_int(value):
            raise _corrupt(path, f"field {name!r} must be an integer, found {_json_type(value)}")
        return value
    if not isinstance(value, str):
        raise _corrupt(path, f"field {name!r} must be a string, found {_json_type(value)}")
    if kind == "time":
        try:
            return parse_ts(value)
        except ValueError as exc:
            raise _corrupt(path, f"field {name!r}: {exc}") from exc
    if name == "status" and value not in STATUSES:
        raise _corrupt(path, f"unknown status {value!r}")
    if name == "failure" and value not in FAILURES:
        raise _corrupt(path, f"unknown failure class {value!r}")
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _corrupt(path: Path | str, what: str) -> CorruptStateError:
    return CorruptStateError(f"{path}: {what}", path=Path(path))
