"""The schema of where pipelines run: ``[executor]`` and ``[executor.celery]``.

Kept beside ``schema.py`` (which imports these) so each stays a few hundred lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

Duration = Annotated[float, "duration"]  # as in schema.py: 90, "90s", "5m"
ExecutorKind = Literal["local", "celery"]
SpawnKind = Literal["zygote", "exec"]


def doc(text: str, **extra: object) -> dict[str, object]:
    return {"doc": text, **extra}


@dataclass(frozen=True, slots=True)
class CeleryExecutor:
    broker_url: str = field(
        default="redis://127.0.0.1:6379/0", metadata=doc("the Redis broker (no password here)")
    )
    broker_url_env: str | None = field(
        default=None, metadata=doc("env var holding the broker URL (wins; may hold a password)")
    )
    queue: str = field(default="agentctl", metadata=doc("the queue pipelines are sent to"))
    visibility_timeout: Duration = field(
        default=14400.0,
        metadata=doc(
            "unacknowledged this long, a task is delivered again: > longest pipeline", min=1
        ),
    )
    workspace: str | None = field(
        default=None,
        metadata=doc("on a worker: its own clone of the repository, where its pipelines work"),
    )


@dataclass(frozen=True, slots=True)
class Executor:
    kind: ExecutorKind = field(
        default="local", metadata=doc("local: processes on this machine | celery: worker hosts")
    )
    celery: CeleryExecutor = field(
        default_factory=CeleryExecutor, metadata=doc("[executor.celery]")
    )
    max_processes: int = field(
        default=8, metadata=doc("agent and pipeline processes at once in this workspace", min=1)
    )
    spawn: SpawnKind = field(
        default="zygote",
        metadata=doc("zygote: fork agents from a warm process | exec: a new interpreter each"),
    )
    zygote_idle: Duration = field(
        default=600.0, metadata=doc("the zygote exits after this long without a spawn", min=1)
    )
