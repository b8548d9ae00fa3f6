"""``agentctl dashboard``: serve the live web dashboard of this workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from agentctl.cli.context import echo, single, state


def dashboard_command(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to bind; keep loopback and forward a port to reach it.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to serve on (0: any free one).")
    ] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            help="The access token (default: $AGENTCTL_DASHBOARD_TOKEN, else a new one).",
            show_default=False,
        ),
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the address in a browser.")
    ] = False,
) -> None:
    """Serve the team's live dashboard (runs, costs, actions) until Ctrl-C."""
    from agentctl.commands.dashboard import serve

    serve(
        state(ctx).config,
        host=host,
        port=port,
        token=token,
        open_browser=open_browser,
        say=echo,
    )


app = single(dashboard_command)
