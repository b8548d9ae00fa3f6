"""``agentctl pipeline``: the declarative pipelines, their steps and models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentctl.cli.context import (
    echo,
    follow_events,
    new_group,
    print_json,
    print_table,
    report_valid,
    state,
    usd,
)

if TYPE_CHECKING:
    from agentctl.config.schema import Step

app = new_group("Pipelines: declarative steps (role, run, uses) run in one worktree.")


def _what(step: Step) -> str:
    if step.role is not None:
        return f"role {step.role}"
    if step.run is not None:
        return f"run {step.run}"
    return f"uses {step.uses}"


@app.command("list")
def list_pipelines(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the pipelines with their steps."""
    from agentctl.config.convert import to_data

    config = state(ctx).config
    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "description": p.description,
            "extends": p.extends,
            "steps": [s.id for s in p.steps],
            "budget_usd": to_data(p.budget_usd),
            "source": config.origin("pipelines", name),
        }
        for name, p in sorted(config.pipelines.items())
    ]
    if as_json:
        print_json(rows)
        return
    print_table(
        "pipelines",
        ("name", "steps", "budget", "description"),
        [(r["name"], " → ".join(r["steps"]), usd(r["budget_usd"]), r["description"]) for r in rows],
    )


@app.command("show")
def show_pipeline(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The pipeline's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show a pipeline's steps with the role and model of each."""
    from agentctl.config.convert import to_data

    config = state(ctx).config
    pipeline = config.pipeline(name)
    steps = []
    for step in pipeline.steps:
        data = to_data(step)
        if step.role is not None:
            data["models"] = [step.model] if step.model else list(config.role(step.role).models)
        steps.append(data)
    if as_json:
        print_json(
            {
                "name": name,
                "source": config.origin("pipelines", name),
                **to_data(pipeline),
                "steps": steps,
            }
        )
        return
    echo(f"pipeline {name}  ({config.origin('pipelines', name)})")
    if pipeline.description:
        echo(f"  {pipeline.description}")
    if pipeline.inputs:
        echo("  inputs: " + ", ".join(f"{k}={v!r}" for k, v in pipeline.inputs.items()))
    print_table(
        None,
        ("#", "id", "does", "models", "on fail", "when"),
        [
            (
                str(i),
                step.id,
                _what(step),
                " → ".join(data.get("models", [])),
                f"goto {step.on_fail.goto} (max {step.on_fail.max})" if step.on_fail else "",
                step.when or "",
            )
            for i, (step, data) in enumerate(zip(pipeline.steps, steps, strict=True), 1)
        ],
        show_edge=False,
    )


@app.command("validate")
def validate_pipelines(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Pipelines to check (default: all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Validate every pipeline (steps, roles, actions, goto, templates); exit 2 on a mistake."""
    config = state(ctx).config
    for name in names or []:
        config.pipeline(name)
    report_valid("pipelines", sorted(names or config.pipelines), as_json)


def _inputs(items: list[str] | None) -> dict[str, str]:
    from agentctl.errors import UsageError

    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r} is not key=value", hint="e.g. --set branch=feature-x")
        out[key.strip()] = value
    return out


@app.command("run")
def run_pipeline(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The pipeline, e.g. feature.")],
    task: Annotated[str | None, typer.Option(help="The task text ({inputs.task}).")] = None,
    ticket: Annotated[str | None, typer.Option(help="A ticket id ({ticket.*}).")] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Set an input (repeatable)."),
    ] = None,
    detach: Annotated[bool, typer.Option(help="Print the run id and return at once.")] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Print the steps, models and a cost range; run nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run a pipeline as its own process, with its steps shown live."""
    from agentctl.pipeline.estimate import dry_run as plan
    from agentctl.pipeline.preflight import require, run_checks
    from agentctl.pipeline.process import resolve_inputs, start_pipeline

    app_state = state(ctx)
    app_state.repository()  # refused outside git, before anything is written
    config = app_state.config
    # The command line first (unknown pipeline or ticket, no task): a dry run refuses
    # exactly what a real run refuses, with the same words, before any preflight.
    resolve_inputs(config, name, task=task, ticket_id=ticket, inputs=_inputs(sets))
    if dry_run:
        steps, low, high = plan(config, name)
        checks = run_checks(config, name)
        if as_json:
            from agentctl.cost.ledger import dumps

            value = {
                "pipeline": name,
                "steps": steps,
                "cost_usd": {"low": low, "high": high},
                "preflight": [
                    {"check": c.check, "status": c.status, "detail": c.detail, "hint": c.hint}
                    for c in checks
                ],
            }
            typer.echo(dumps(value))  # USD as exact JSON numbers
            return
        print_table(
            f"pipeline {name} (dry run: nothing runs)",
            ("#", "step", "does", "model", "on fail"),
            [
                (str(i), s["id"], s["does"], " → ".join(s["models"]), s["on_fail"])
                for i, s in enumerate(steps, 1)
            ],
        )
        echo(f"estimated cost: ${low:f} to ${high:f} (one pass, up to every loop and cap)")
        for check in checks:
            echo(f"preflight {check.status}: {check.line()}")
        return
    for warning in require(config, name):  # a refusal is one line and exit 2, at $0
        echo(f"preflight: {warning.line()}", err=True)
    run = start_pipeline(
        config,
        name,
        task=task,
        ticket_id=ticket,
        inputs=_inputs(sets),
        sets=tuple(app_state.sets),
        preflight=False,
    )
    if detach:
        print_json({"run_id": run.id}) if as_json else echo(run.id)
        return
    plan_steps = [(step.id, step.kind) for step in config.pipeline(name).steps]
    code = follow_pipeline(run, as_json, plan_steps)
    if code:
        raise typer.Exit(code)


def follow_pipeline(run: Any, as_json: bool, steps: Sequence[tuple[str, str]] = ()) -> int:
    """Steps as they happen (a live table at a terminal, lines otherwise), then the summary."""
    import sys

    from agentctl.cli.pipeline_view import goto_note
    from agentctl.errors import EXIT_INTERRUPTED
    from agentctl.runs import parse_ts
    from agentctl.tools.feedback import one_line

    if not as_json and sys.stderr.isatty():
        if not _follow_live(run, steps):
            return EXIT_INTERRUPTED
        return _summary(run, as_json)
    started: dict[str, Any] = {}

    def show(event: dict[str, Any]) -> None:
        kind = event.get("type")
        if as_json:
            return
        if kind == "step.start":
            started[event["step"]] = parse_ts(event["ts"])
            echo(f"▶ {event['step']} ({event.get('kind')})", err=True)
        elif kind == "step.finish":
            mark = {"ok": "✓", "skipped": "–"}.get(event.get("status", ""), "✗")
            out = event.get("outputs") or {}
            took = ""
            if event["step"] in started:
                took = f" {(parse_ts(event['ts']) - started[event['step']]).total_seconds():.1f}s"
            extra = "".join(
                f" · {label}{str(out[key])[:12] if key == 'sha' else out[key]}"
                for key, label in (
                    ("model", ""),
                    ("cost", "$"),
                    ("verdict", ""),
                    ("exit_code", "exit "),
                    ("sha", ""),
                )
                if out.get(key) not in (None, "", "0")
            )
            why = f": {one_line(str(out['failure']), 120)}" if out.get("failure") else ""
            echo(f"{mark} {event['step']} {event.get('status')}{took}{extra}{why}", err=True)
        elif kind == "process.waiting":
            from agentctl.runs.procslots import waiting_text

            echo(f"… {waiting_text(event.get('running'), event.get('limit'))}", err=True)
        elif kind == "step.needs_person":
            paths = ", ".join(str(p) for p in event.get("paths") or [])
            echo(f"✋ stopped before {event['step']}: protected paths ({paths})", err=True)
        elif kind == "step.goto":
            if event.get("reason") == "changes_requested":  # a normal round, not a failure
                echo(f"↺ {event['step']}: {goto_note(event, 120)}", err=True)
            else:
                failure = one_line(str(event.get("failure", "")))
                echo(
                    f"↺ {event['step']} failed → back to {event['to']} ({event['count']}): "
                    f"{failure}",
                    err=True,
                )

    if not follow_events(run, show):
        return EXIT_INTERRUPTED
    return _summary(run, as_json)


def _follow_live(run: Any, steps: Sequence[tuple[str, str]]) -> bool:
    """The live table on stderr until the run ends; False if Ctrl-C canceled it."""
    from rich.console import Console
    from rich.live import Live

    from agentctl.cli.pipeline_view import PipelineView
    from agentctl.cost.ledger import Ledger
    from agentctl.cost.report import descendants
    from agentctl.runs import utc_now

    state_dir = run.dir.parent.parent
    name = run.read_input().get("pipeline", "")
    view = PipelineView(
        f"pipeline {name} · run {run.id}",
        steps,
        spend=lambda: Ledger(state_dir).spent(since=None, run_ids=descendants(state_dir, run.id)),
    )

    class Redrawn:
        def __rich_console__(self, console: Any, options: Any) -> Any:
            # rebuilt on every refresh: running times keep ticking; the terminal's width
            # bounds the notes, so that no row wraps
            yield view.table(utc_now(), width=options.max_width)

    with Live(Redrawn(), console=Console(stderr=True), refresh_per_second=4):
        followed = follow_events(run, view.apply)
        view.last_frame()  # drawn as Live stops: its total is the summary's
        return followed


def _summary(run: Any, as_json: bool) -> int:
    """The run's result: JSON, or status, branch, merge, cost and cost by role."""
    from agentctl.errors import EXIT_FAILED
    from agentctl.runs.record import TERMINAL

    record = run.load()
    if record.status not in TERMINAL and record.status != "paused":  # it died unrecorded
        reason = run.last_words()
        if as_json:
            print_json({"run_id": run.id, "status": record.status, "reason": reason})
        else:
            echo(
                f"ended without a final status: {reason} · run {run.id} (runs resume continues it)"
            )
        return EXIT_FAILED
    output = run.read_output() or {}
    if as_json:
        print_json({"run_id": run.id, "status": record.status, **output})
    else:
        details = [f"{record.status} ({output.get('ending', '')})"]
        if output.get("branch"):
            details.append(f"branch {output['branch']}")
        if output.get("merged"):
            details.append(f"merged {str(output['merged'])[:12]}")
        details.append(f"${output.get('cost_usd', '0')}")
        echo(" · ".join(details) + f" · run {run.id}")
        from agentctl.cost.report import build_report

        by_role = build_report(run.dir.parent.parent, by="role", since=None, run=run.id)
        if by_role.rows:
            echo("cost by role: " + ", ".join(f"{r.key} ${r.cost:f}" for r in by_role.rows))
        if record.status != "succeeded" and output.get("reason"):
            from agentctl.tools.feedback import bound

            echo(bound(str(output["reason"]), 1500))  # whole lines, head and tail
    return 0 if record.status == "succeeded" else EXIT_FAILED


@app.command("new")
def new_pipeline(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The new pipeline's name, e.g. feature-x.")],
    base: Annotated[str, typer.Option("--from", help="The pipeline it extends.")] = "feature",
    task: Annotated[str, typer.Option(help="The task text it runs with.")] = "",
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write pipelines/NAME.toml extending another pipeline with its own task."""
    from agentctl.pipeline.files import new_pipeline as write

    path = write(state(ctx).config, name, base, task, force=force)
    echo(f"wrote {path}; run it with: agentctl pipeline run {name}")


@app.command("worker", hidden=True)
def worker(
    ctx: typer.Context, run_id: Annotated[str, typer.Argument(help="The pipeline run.")]
) -> None:
    """The pipeline process (spawned by agentctl)."""
    import os
    import sys

    from agentctl.pipeline.process import work

    code = work(state(ctx).config, run_id)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
