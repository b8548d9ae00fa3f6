"""``agentctl demo``: a ticket end to end — fix, gate, review, merge, Done — scripted models."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from agentctl.cli.context import echo, single


def demo_command(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to make the scratch project (default: a new temp dir)."),
    ] = None,
) -> None:
    """Run a local ticket through the whole team on a scratch project (models are scripted)."""
    from agentctl import keystore
    from agentctl.cli.cost import print_report
    from agentctl.cli.pipeline import follow_pipeline
    from agentctl.commands.demo import prepare, scripted_models
    from agentctl.config import load_config
    from agentctl.cost.report import build_report
    from agentctl.errors import UsageError
    from agentctl.pipeline.process import start_pipeline
    from agentctl.trackers.local import LocalTracker
    from agentctl.workspace import find_workspace

    target = directory or Path(tempfile.mkdtemp(prefix="agentctl-demo-"))
    if directory is not None and directory.exists() and any(directory.iterdir()):
        raise UsageError(f"--dir {directory} is not empty", hint="give a new or empty directory")
    echo(
        "agentctl demo: the models are SCRIPTED (agentctl.testing on 127.0.0.1): no account,\n"
        "no network, no cost. Everything else is real: processes, git, tools, the test gate,\n"
        f"the merge queue, the ticket and the ledger. Project: {target}\n"
    )
    with scripted_models() as server:
        demo = prepare(target, server)
        echo(f"ticket {demo.ticket}: add() returns the wrong sum (test_calc fails)\n")
        config = load_config(find_workspace(explicit=demo.root))
        keystore.load_configured(config)
        run = start_pipeline(config, "demo", ticket_id=demo.ticket)
        code = follow_pipeline(run, as_json=False)
    log = subprocess.run(
        ["git", "log", "--oneline", "-4", "main"],
        cwd=demo.root,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    ticket = LocalTracker(demo.root / ".agentctl").get(demo.ticket)
    echo(f"\nmain now:\n{log}\nticket {ticket.id}: {ticket.state}\n")
    report = build_report(demo.root / ".agentctl", by="role", since=None, run=run.id)
    print_report(report, "what it cost (scripted models priced as configured)")
    echo(f"\nLook around: cd {demo.root} && agentctl runs list")
    if code:
        raise typer.Exit(code)


app = single(demo_command)
