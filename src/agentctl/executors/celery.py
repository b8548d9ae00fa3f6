"""Pipelines as Celery tasks on Redis: the submitting side (head, chat, ``runs resume``).

A task carries the run id only: never a key, never code. The run is on disk before
the task is sent; a broker that cannot be reached leaves it ``pending`` there
(``NotSubmittedError``), and the orchestrator's next tick submits it again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentctl.config import Config
from agentctl.errors import NotSubmittedError, ServiceUnavailableError
from agentctl.executors.celery_app import TASK, make_app
from agentctl.runs import Run, read_journal

if TYPE_CHECKING:
    from celery import Celery

HINT = "is redis-server running, and [executor.celery] broker_url (or broker_url_env) right?"


@dataclass
class CeleryExecutor:
    config: Config
    _app: Celery | None = field(default=None, repr=False)

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = make_app(self.config)
        return self._app

    def submit(self, run: Run, environ: Mapping[str, str] | None = None) -> None:
        """Send the run's task; ``environ`` is not used: each worker host has its keys."""
        app = self.app
        from kombu.exceptions import KombuError

        queue = self.config.settings.executor.celery.queue
        try:
            sent = app.send_task(
                TASK,
                args=[run.id],
                queue=queue,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            )
        except (KombuError, OSError) as exc:
            raise NotSubmittedError(
                f"run {run.id} is queued on disk only: the broker is unreachable "
                f"({type(exc).__name__}: {exc})",
                run_id=run.id,
                hint=HINT,
            ) from exc
        run.journal.append("executor.submitted", durable=True, task=sent.id, queue=queue)

    def cancel(self, run: Run) -> None:
        """Revoke the run's tasks and end the pool process running one (SIGTERM); the
        pipeline process dies with it. The run was recorded canceled before this."""
        tasks = [
            str(e["task"])
            for e in read_journal(run.paths.events).events
            if e.get("type") == "executor.submitted" and e.get("task")
        ]
        if tasks:
            from kombu.exceptions import KombuError

            with contextlib.suppress(KombuError, OSError):  # the broker may be down too
                self.app.control.revoke(tasks, terminate=True, signal="SIGTERM")

    def describe(self) -> str:
        settings = self.config.settings.executor.celery
        return f"Celery workers on queue {settings.queue!r}"

    def workers(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        """The live workers: name, concurrency, queues, the runs they are running now."""
        inspect = self.app.control.inspect(timeout=timeout)
        from kombu.exceptions import KombuError

        try:
            with self.app.connection_for_write() as connection:  # one try: fail fast
                connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
            stats = inspect.stats() or {}
            active = inspect.active() or {}
            queues = inspect.active_queues() or {}
        except (KombuError, OSError) as exc:
            raise ServiceUnavailableError(
                f"cannot ask the workers: {exc}", service="Celery broker", hint=HINT
            ) from exc
        rows = []
        for name in sorted(stats):
            pool = stats[name].get("pool") or {}
            rows.append(
                {
                    "name": name,
                    "concurrency": pool.get("max-concurrency"),
                    "queues": sorted(q.get("name") for q in queues.get(name, [])),
                    "running": [(t.get("args") or [None])[0] for t in active.get(name, []) if t],
                }
            )
        return rows
