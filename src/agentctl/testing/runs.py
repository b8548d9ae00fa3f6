"""Make many finished run directories quickly, for listing tests and benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agentctl import atomic
from agentctl.runs import SCHEMA_VERSION, format_ts, new_run_id

EPOCH = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)
KINDS = ("agent", "pipeline", "chat")
STATUSES = ("succeeded", "failed", "canceled")


def make_finished_runs(state_dir: Path, count: int, *, start: datetime = EPOCH) -> list[str]:
    """``count`` finished runs, one second apart, oldest first; kinds and statuses rotate.

    Written straight to disk without fsync (a fixture, not state that must survive a
    crash); each run took 4 s, agents have role ``dev``. Returns the ids.
    """
    runs_dir = state_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(count):
        created = start + timedelta(seconds=i)
        kind = KINDS[i % len(KINDS)]
        run_id = new_run_id(kind, created)
        directory = runs_dir / run_id
        directory.mkdir()
        atomic.write_json(directory / "input.json", {"task": f"task {i}"}, durable=False)
        atomic.write_json(
            directory / "run.json",
            {
                "schema_version": SCHEMA_VERSION,
                "id": run_id,
                "kind": kind,
                "status": STATUSES[i % len(STATUSES)],
                "created_at": format_ts(created),
                "updated_at": format_ts(created + timedelta(seconds=5)),
                "started_at": format_ts(created + timedelta(seconds=1)),
                "finished_at": format_ts(created + timedelta(seconds=5)),
                "root_id": run_id,
                "role": "dev" if kind == "agent" else None,
            },
            durable=False,
        )
        (directory / "events.jsonl").write_bytes(b"")
        ids.append(run_id)
    return ids
