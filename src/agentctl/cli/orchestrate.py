"""``agentctl orchestrate``: one tick (``--once``, for cron) or a loop of ticks."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from agentctl.cli.context import echo, print_json, state

app = typer.Typer(
    help="The orchestrator: tickets to pipelines, PRs to the merge queue, reports out.",
    rich_markup_mode=None,
    add_completion=False,
    pretty_exceptions_enable=False,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def orchestrate(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option(help="Run one tick and exit (for cron).")] = False,
    interval: Annotated[
        str | None, typer.Option(help="Loop mode: time between ticks (default: [orchestrator]).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Say what a tick would do; change nothing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each tick's report as JSON.")
    ] = False,
    parent: Annotated[
        str | None, typer.Option(hidden=True, help="The chat run that started this loop.")
    ] = None,
) -> None:
    """Run orchestrator ticks: --once for cron, else a loop until SIGTERM or Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()  # finish the tick under way, then leave

    if not once:
        signal.signal(signal.SIGTERM, on_term)
    from agentctl.config.convert import parse_duration
    from agentctl.errors import EXIT_FAILED, UsageError
    from agentctl.orchestrator.tick import Tick

    state(ctx).repository()  # refused outside git, before .agentctl/ is made
    config = state(ctx).config
    seconds = config.settings.orchestrator.interval
    if interval is not None:
        parsed = parse_duration(interval)
        if parsed is None or parsed <= 0:
            raise UsageError(f"--interval {interval!r} is not a duration", hint="e.g. 5m or 90s")
        seconds = parsed
    while True:
        report = Tick(config, dry_run=dry_run, parent_id=parent).run()
        if as_json:
            print_json(report.to_json())
        else:
            echo(f"tick: {report.summary()}")
            for kind in (
                "started",
                "merged",
                "failed",
                "parked",
                "unparked",
                "waiting",
                "reaped",
                "canceled",
                "fallbacks",
            ):
                for line in getattr(report, kind):
                    echo(f"  {kind}: {line}")
            for line in report.errors:
                echo(f"error: {line}", err=True)
        sys.stdout.flush()
        if once and report.errors:
            raise typer.Exit(EXIT_FAILED)  # cron sees it; the loop carries on to the next tick
        if once or stop.is_set() or stop.wait(seconds):
            return


@app.command("cron-line")
def cron_line(ctx: typer.Context) -> None:
    """Print a crontab entry that runs one tick a minute (flock, a timeout, this workspace)."""
    root = state(ctx).workspace.root
    agentctl = Path(sys.executable).parent / "agentctl"
    command = agentctl if agentctl.exists() else Path(sys.executable)
    tick = f"{shlex.quote(str(command))} --workspace {shlex.quote(str(root))} orchestrate --once"
    if not agentctl.exists():
        tick = tick.replace(" --workspace", " -m agentctl --workspace", 1)
    home = root / ".agentctl" / "orchestrator"
    lock, log = shlex.quote(str(home / "cron.lock")), shlex.quote(str(home / "cron.log"))
    echo(
        f"* * * * * mkdir -p {shlex.quote(str(home))} && flock -n {lock} timeout 600 {tick} "
        f">> {log} 2>&1"
    )
