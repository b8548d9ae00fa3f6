"""``agentctl worker`` (run pipelines for a Celery head) and ``agentctl workers`` (list them)."""

from __future__ import annotations

from typing import Annotated

import typer

from agentctl.cli.context import echo, print_columns, print_json, single, state


def worker_command(
    ctx: typer.Context,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Pipelines at once on this worker (default: CPU count)."),
    ] = None,
    hostname: Annotated[
        str | None,
        typer.Option(help="This worker's name; its runs record it as their host."),
    ] = None,
    queue: Annotated[
        str | None, typer.Option(help="The queue to take pipelines from (default: config's).")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery's log level.")] = "INFO",
) -> None:
    """Run pipelines from the Celery queue in this host's clone, until stopped."""
    from agentctl.executors.worker import start_worker

    start_worker(
        state(ctx).config,
        hostname=hostname,
        concurrency=concurrency,
        queue=queue,
        loglevel=loglevel,
    )


def workers_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for answers.")] = 1.0,
) -> None:
    """List the live Celery workers: name, concurrency, queues, the runs they run now."""
    from agentctl.executors import list_workers

    rows = list_workers(state(ctx).config_only, timeout=timeout)
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo("no live workers")
        return
    print_columns(
        ("WORKER", "CONCURRENCY", "QUEUES", "RUNNING"),
        [
            (
                str(r["name"]),
                str(r["concurrency"] or "-"),
                ",".join(r["queues"]) or "-",
                " ".join(str(x) for x in r["running"]) or "-",
            )
            for r in rows
        ],
    )


worker_app = single(worker_command)
workers_app = single(workers_command)
