"""``agentctl init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentctl.cli.context import echo, print_json, single, state


def init_command(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite existing files with the shipped ones.")
    ] = False,
    test_command: Annotated[
        str | None,
        typer.Option("--test-command", help="The gate command (default: guessed from the repo)."),
    ] = None,
    base_branch: Annotated[
        str | None,
        typer.Option("--base-branch", help="Where work merges (default: the current branch)."),
    ] = None,
    commit: Annotated[
        bool, typer.Option("--commit", help="Commit the files it wrote (and only those).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Make this git repository an agentctl workspace (idempotent; --force to overwrite)."""
    from agentctl.commands.init import commit_files, init_workspace, shown, uncommitted

    option = state(ctx).workspace_option
    report = init_workspace(
        option or Path.cwd(), force=force, test_command=test_command, base_branch=base_branch
    )
    pending = uncommitted(report)
    sha = commit_files(report) if commit and pending else None
    left = uncommitted(report) if sha else pending
    if as_json:
        print_json(
            {
                "root": str(report.root),
                "test_command": report.test_command,
                "base_branch": report.base_branch,
                "pythonpath": list(report.pythonpath),
                "setup_command": report.setup_command,
                "files": [{"path": p, "action": a} for p, a in report.files],
                "commit": sha,
                "uncommitted": left,
            }
        )
        return
    for path, action in report.files:
        echo(f"{action:>11}  {path}")
    echo(f"workspace: {report.root}")
    echo(f"test command: {report.test_command or '(not guessed: set [project] test_command)'}")
    echo(f"base branch: {report.base_branch or '(detached HEAD: set [project] base_branch)'}")
    if report.pythonpath:
        paths = ", ".join(report.pythonpath)
        echo(f"pythonpath: {paths} (src layout: worktrees use their own code)")
    if report.setup_command:
        echo(f"setup command: {report.setup_command} ({report.setup_note})")
    elif report.setup_note:
        echo(f"setup command: (not guessed) {report.setup_note}")
    if sha:
        echo(f"committed: {shown(pending)} ({sha[:12]})")
    if left:  # a merge refuses a base checkout with uncommitted changes to tracked files
        echo(
            f"not committed yet: {shown(left)} — commit them before running a pipeline "
            f"(git add {shown(left)} && git commit -m 'agentctl workspace'), "
            "or run `agentctl init --commit`"
        )
    echo("next: agentctl doctor")


app = single(init_command)
