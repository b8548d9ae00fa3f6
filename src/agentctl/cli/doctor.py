"""``agentctl doctor``."""

from __future__ import annotations

from typing import Annotated

import typer

from agentctl.cli.context import echo, print_json, single, state
from agentctl.errors import EXIT_FAILED, EXIT_USAGE

_MARK = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def doctor_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check the config, API keys, git and the sandbox; say what to fix."""
    from agentctl.commands.doctor import run_doctor

    app_state = state(ctx)
    report = run_doctor(lambda: app_state.workspace, lambda: app_state.config_only)
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "checks": [
                    {"name": c.name, "status": c.status, "detail": c.detail, "hint": c.hint}
                    for c in report.checks
                ],
            }
        )
    else:
        for check in report.checks:
            hint = f" — {check.hint}" if check.hint and check.status != "ok" else ""
            echo(f"[{_MARK[check.status]}] {check.name}: {check.detail}{hint}")
    if report.config_error:
        raise typer.Exit(EXIT_USAGE)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


app = single(doctor_command)
