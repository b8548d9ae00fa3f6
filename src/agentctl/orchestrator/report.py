"""What one tick did, said once: the tick journal and (when something changed) the outbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TickReport:
    started: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)  # past their attempts: a person decides
    unparked: list[str] = field(default_factory=list)  # a person asked for another try
    waiting: list[str] = field(default_factory=list)
    needs_person: list[str] = field(default_factory=list)  # PRs only a person may merge
    reaped: list[str] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    instructions: list[str] = field(default_factory=list)
    duties: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)  # paid fallbacks: once per role a day
    errors: list[str] = field(default_factory=list)  # tracker, forge, preflight: said once
    model_calls: int = 0
    skipped: str | None = None  # why the tick did nothing (another tick holds the lock)

    @property
    def changed(self) -> bool:
        return any(
            (
                self.started,
                self.merged,
                self.failed,
                self.parked,
                self.unparked,
                self.needs_person,
                self.reaped,
                self.canceled,
                self.instructions,
                self.duties,
                self.fallbacks,
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [])} | {
            "model_calls": self.model_calls
        }

    def summary(self) -> str:
        if self.skipped:
            return self.skipped
        parts = [f"{len(v)} {k}" for k, v in self.__dict__.items() if isinstance(v, list) and v]
        return ", ".join(parts) or "idle"
