"""``agentctl pipeline``: the declarative pipelines, their steps and models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentctl.cli.context import new_group, print_json, print_table, report_valid, state, usd

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
    config = state(ctx).config
    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "description": p.description,
            "extends": p.extends,
            "steps": [s.id for s in p.steps],
            "budget_usd": p.budget_usd,
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
    typer.echo(f"pipeline {name}  ({config.origin('pipelines', name)})")
    if pipeline.description:
        typer.echo(f"  {pipeline.description}")
    if pipeline.inputs:
        typer.echo("  inputs: " + ", ".join(f"{k}={v!r}" for k, v in pipeline.inputs.items()))
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
