"""``agentctl runs``: list, show and tail run directories."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from agentctl.cli.context import echo, new_group, print_columns, print_json, state, with_hosts

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


def plain(value: Any, width: int = 200) -> str:
    """A value as a person reads it: text as is, JSON for the rest, on one bounded line."""
    import json

    from agentctl.tools.feedback import one_line

    if value is None:
        return "-"
    if isinstance(value, str):
        text = value
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        text = ", ".join(value)
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return one_line(text, width)


def _echo_value(label: str, value: Any) -> None:
    """``label:`` then a mapping's keys one per line; any other value on the same line."""
    if isinstance(value, dict) and value:
        echo(f"  {label + ':'}")
        for key, item in value.items():
            echo(f"    {str(key) + ':':<10} {plain(item)}")
    else:
        echo(f"  {label + ':':<12} {plain(value)}")


@app.command("list")
def list_runs(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind.")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only runs shown with this status: pending, running, succeeded, failed, "
            "canceled, paused, stale (its process is gone), corrupt."
        ),
    ] = None,
    parent: Annotated[str | None, typer.Option(help="Only children of this run.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, help="At most N runs, newest first (table and JSON).")
    ] = 50,
    show_all: Annotated[bool, typer.Option("--all", help="Every run (overrides --limit).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List runs, newest first; stale and corrupt runs are marked, never hidden."""
    from agentctl.runs.summary import list_rows
    from agentctl.tools.feedback import one_line

    rows, total = list_rows(
        state(ctx).workspace.state_dir,
        kind=kind,
        status=status,
        parent=parent,
        limit=None if show_all else limit,  # newest first, read no further than shown
    )
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo("no runs" + (" match" if kind or status or parent else " yet"))
        return
    columns, table = with_hosts(
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
                one_line(row["stale"] or row["problem"] or row["reason"]),
            )
            for row in rows
        ],
        rows,
        5,
    )
    print_columns(
        columns,
        table,
        styles=[_STYLE.get(row["display_status"]) for row in rows],
    )
    if total > len(rows):
        echo(f"… {total - len(rows)} more (use --limit N or --all)")


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
    echo(f"run {run.id}")
    for key in (
        "kind",
        "status",
        "reason",
        "failure",
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
            echo(f"  {key + ':':<12} {plain(value, 500)}")
    if info["stale"]:
        echo(f"  {'stale:':<12} {info['stale']}")
    if info["problem"]:
        echo(f"  {'problem:':<12} {info['problem']}")
    echo(f"  {'dir:':<12} {run.dir}")
    if info["input"]:
        _echo_value("input", info["input"])
    if info["output"] is not None:
        _echo_value("output", info["output"])
    if info["children"]:
        echo(f"  {'children:':<12} {', '.join(info['children'])}")
    echo(f"  {'events:':<12} {info['events']}")
    for event in info["recent_events"]:
        echo("    " + format_event(event))


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
    from agentctl.visible import visible

    run = RunStore(state(ctx).workspace.state_dir).get(run_id)

    def emit(event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False) if as_json else visible(format_event(event))
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        for event in tail_events(run, lines=lines, follow_=follow):
            emit(event)
    except BrokenPipeError:  # `runs tail ID | head` ends quietly
        sys.stderr.close()


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="Run id, or a unique prefix/suffix.")],
    grace: Annotated[
        float, typer.Option(min=0, help="Seconds to wait after SIGTERM before SIGKILL.")
    ] = 3.0,
) -> None:
    """Cancel a run: ask it to stop, then kill its whole process group and its tools'."""
    from agentctl.executors import cancel as cancel_run
    from agentctl.runs import RunStore

    app_state = state(ctx)
    run = RunStore(app_state.workspace.state_dir).get(run_id)
    echo(f"{run.id}: {cancel_run(run, grace=grace, config=lambda: app_state.config_only)}")


@app.command("resume")
def resume(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="Run id, or a unique prefix/suffix.")],
    detach: Annotated[bool, typer.Option(help="Print the run id and return at once.")] = False,
    budget: Annotated[
        float | None, typer.Option(min=0, help="A new USD cap for the run (e.g. after a pause).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Continue an interrupted, failed or paused agent or pipeline where it stopped."""
    from agentctl.cli.agent import follow_run
    from agentctl.executors import resume as resume_run
    from agentctl.runs import RunStore

    app_state = state(ctx)
    run = RunStore(app_state.workspace.state_dir).get(run_id)
    previous = resume_run(app_state.config, run, budget_usd=budget)
    if detach:
        echo(f"{run.id}: resumed (was {previous})")
        return
    if run.load().kind == "pipeline":
        from agentctl.cli.pipeline import follow_pipeline

        code = follow_pipeline(run, as_json)
    else:
        code = follow_run(run, as_json)
    if code:
        raise typer.Exit(code)


@app.command("gc")
def gc(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option(help="Age of finished runs to remove, e.g. 7d, 12h.")
    ] = "7d",
    dry_run: Annotated[bool, typer.Option(help="Only say what would be removed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Remove finished runs older than a given age, with their worktrees, branches and homes."""
    from datetime import timedelta

    from agentctl.agent.leftovers import gc_runs
    from agentctl.config.convert import parse_duration
    from agentctl.errors import UsageError

    seconds = parse_duration(older_than)
    if seconds is None:
        raise UsageError(f"--older-than {older_than!r} is not a duration", hint="e.g. 7d or 12h")
    notes: list[str] = []
    removed = gc_runs(
        state(ctx).workspace.state_dir,
        timedelta(seconds=seconds),
        dry_run=dry_run,
        leftovers=notes,
    )
    if as_json:
        print_json({"removed": removed, "dry_run": dry_run, "leftovers": notes})
        return
    verb = "would remove" if dry_run else "removed"
    echo(f"{verb} {len(removed)} run{'s' if len(removed) != 1 else ''}")
    for note in notes:
        echo(f"  {note}")


@app.command("send")
def send(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="Run id, or a unique prefix/suffix.")],
    text: Annotated[str, typer.Argument(help="The message; the agent's model reads it next turn.")],
) -> None:
    """Send a message to a running agent (its inbox); it is given to the model at the next turn."""
    from agentctl.agent.messages import send_message
    from agentctl.runs import RunStore

    app_state = state(ctx)
    run = RunStore(app_state.workspace.state_dir).get(run_id)
    seq = send_message(app_state.config, run, text)
    echo(f"{run.id}: message {seq} queued")
