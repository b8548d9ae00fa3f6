"""``agentctl worker``: a real Celery worker that runs this workspace's pipelines.

It names itself (``--hostname``, else ``$AGENTCTL_HOST``, else the machine's name):
the name goes into ``$AGENTCTL_HOST``, so every run it starts records it as its host,
and two workers on one machine judge each other's runs as another host's would.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentctl.config import Config
from agentctl.errors import UsageError
from agentctl.executors import forge_spans_clones
from agentctl.runs.liveness import HOST_ENV, this_host


def check_checkout(config: Config) -> None:
    """A worker's ``[executor.celery] workspace`` must be a clone it can work in."""
    if config.settings.executor.kind != "celery":
        raise UsageError(
            'agentctl worker runs pipelines for [executor] kind = "celery" only',
            hint='set [executor] kind = "celery" and [executor.celery] broker_url',
        )
    if (spans := forge_spans_clones(config)) is not None:
        raise spans
    checkout = config.workspace.git_root
    if checkout is None or not (Path(checkout) / ".git").exists():
        raise UsageError(
            f"{checkout or config.workspace.root} is not a git clone this worker can work in",
            hint="set [executor.celery] workspace to this host's clone of the repository",
        )


def start_worker(
    config: Config,
    *,
    hostname: str | None = None,
    concurrency: int | None = None,
    queue: str | None = None,
    loglevel: str = "INFO",
) -> None:
    """Run a Celery worker in this process until it is stopped (SIGTERM: a warm stop)."""
    check_checkout(config)
    if hostname:
        os.environ[HOST_ENV] = hostname
    name = this_host()
    # lazy: Celery, only in a worker
    from agentctl.executors.celery_app import make_app, serve

    app = make_app(config)
    serve(config, app)
    argv = [
        "worker",
        f"--hostname={name}@{name}" if "@" not in name else f"--hostname={name}",
        f"--queues={queue or config.settings.executor.celery.queue}",
        f"--loglevel={loglevel}",
        "--pool=prefork",
        "--without-gossip",
        "--without-mingle",
    ]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    app.worker_main(argv)
