"""``agentctl roles``: which model, tools, limits and prompt each role has."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agentctl.cli.context import echo, new_group, print_json, print_table, report_valid, state, usd

app = new_group("Roles: which model, which tools, which limits, which prompt.")


def _models(models: tuple[str, ...]) -> str:
    return " → ".join(models)


@app.command("list")
def list_roles(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the roles with their models (fallbacks after →), limits and purpose."""
    from agentctl.config.convert import to_data

    config = state(ctx).config
    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "models": list(role.models),
            "backend": role.backend,
            "mcp_servers": sorted(role.mcp_servers),
            "tools": list(role.tools),
            "result": role.result,
            "max_turns": role.max_turns,
            "budget_usd": to_data(role.budget_usd),
            "description": role.description,
            "source": config.origin("roles", name),
        }
        for name, role in sorted(config.roles.items())
    ]
    if as_json:
        print_json(rows)
        return
    print_table(
        "roles",
        ("name", "models", "turns", "budget", "description"),
        [
            (
                r["name"],
                _models(tuple(r["models"]))
                + ("" if r["backend"] == "agentctl" else f" on {r['backend']}"),
                str(r["max_turns"]),
                usd(r["budget_usd"]),
                r["description"],
            )
            for r in rows
        ],
    )


@app.command("show")
def show_role(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The role's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show one role in full, prompt included, and the file it came from."""
    from agentctl.config.convert import to_data

    config = state(ctx).config
    role = config.role(name)
    data = to_data(role)
    if as_json:
        print_json({"name": name, "source": config.origin("roles", name), **data})
        return
    echo(f"role {name}  ({config.origin('roles', name)})")
    for key, value in data.items():
        if key != "prompt":
            echo(f"  {key}: {value}")
    echo("  prompt: |")
    for line in role.prompt.splitlines():
        echo(f"    {line}")


@app.command("check")
def check_roles(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Roles to check (default: all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Validate every role file (and the config they depend on); exit 2 on a mistake."""
    config = state(ctx).config
    for name in names or []:
        config.role(name)
    report_valid("roles", sorted(names or config.roles), as_json)
