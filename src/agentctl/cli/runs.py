"""``agentctl runs``: list, show and tail run directories."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from agentctl.cli.context import new_group, print_columns, print_json, state

app = new_group("Runs: every agent, pipeline and chat is a run directory under .agentctl/runs/.")

_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "canceled": "yellow",
    "paused": "yellow",
    "running": "cyan",
    "pending": "dim",
    "stale": "red",
    "corrupt": "red",
}


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


@app.command("list")
def list_runs(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind.")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only runs with this status: pending, running, succeeded, failed, "
            "canceled, paused."
        ),
    ] = None,
    parent: Annotated[str | None, typer.Option(help="Only children of this run.")] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="At most N runs, newest first (table default: 30; JSON: all)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List runs, newest first; stale and corrupt runs are marked, never hidden."""
    from agentctl.runs.summary import list_rows

    rows, total = list_rows(
        state(ctx).workspace.state_dir,
        kind=kind,
        status=status,
        parent=parent,
        limit=limit if limit is not None or as_json else 30,
    )
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no runs" + (" match" if kind or status or parent else " yet"))
        return
    print_columns(
        ("id", "kind", "status", "role/pipeline", "model", "age", "took", "reason"),
        [
            (
                row["id"],
                row["kind"] or "?",
                row["display_status"],
                row["role"] or row["pipeline"] or "",
                row["model"] or "",
                _age(row["age_s"]),
                _age(row["duration_s"]),
                row["stale"] or row["problem"] or row["reason"] or "",
            )
            for row in rows
        ],
        styles=[_STYLE.get(row["display_status"]) for row in rows],
    )
    if total > len(rows):
        typer.echo(f"… {total - len(rows)} more (use --limit N or --json)")


@app.command("show")
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="Run id, or a unique prefix/suffix.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show one run: who and what, status, input, output, children and recent events."""
    from agentctl.runs import RunStore
    from agentctl.runs.summary import detail, format_event

    run = RunStore(state(ctx).workspace.state_dir).get(run_id)
    info = detail(run)
    if as_json:
        print_json(info)
        return
    record: dict[str, Any] = info["record"] or {}
    typer.echo(f"run {run.id}")
    for key in (
        "kind",
        "status",
        "reason",
        "role",
        "model",
        "pipeline",
        "step",
        "ticket",
        "parent_id",
        "root_id",
        "workspace",
        "worktree",
        "pid",
        "pgid",
        "host",
        "created_at",
        "started_at",
        "finished_at",
    ):
        value = record.get(key)
        if value is not None:
            typer.echo(f"  {key + ':':<12} {value}")
    if info["stale"]:
        typer.echo(f"  {'stale:':<12} {info['stale']}")
    if info["problem"]:
        typer.echo(f"  {'problem:':<12} {info['problem']}")
    typer.echo(f"  {'dir:':<12} {run.dir}")
    if info["input"]:
        typer.echo(f"  {'input:':<12} {info['input']}")
    if info["output"] is not None:
        typer.echo(f"  {'output:':<12} {info['output']}")
    if info["children"]:
        typer.echo(f"  {'children:':<12} {', '.join(info['children'])}")
    typer.echo(f"  {'events:':<12} {info['events']}")
    for event in info["recent_events"]:
        typer.echo("    " + format_event(event))


@app.command("tail")
def tail_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="Run id, or a unique prefix/suffix.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until the run ends.")
    ] = False,
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="Last N events first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print a run's journal (events.jsonl); -f follows it live, like tail -f."""
    import json

    from agentctl.runs import RunStore
    from agentctl.runs.summary import format_event, tail_events

    run = RunStore(state(ctx).workspace.state_dir).get(run_id)

    def emit(event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False) if as_json else format_event(event)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        for event in tail_events(run, lines=lines, follow_=follow):
            emit(event)
    except BrokenPipeError:  # `runs tail ID | head` ends quietly
        sys.stderr.close()
