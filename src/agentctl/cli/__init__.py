"""The ``agentctl`` command: a small root app with command groups mounted from cli/<group>.py.

Only this package imports Typer. Each command parses its arguments, calls one core
function and renders the result. ``AgentctlError`` is caught once, in
``AgentctlGroup.invoke``, printed as one line per mistake, and turned into the
documented exit code (0 ok, 1 failed, 2 usage or config, 130 interrupted).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from agentctl import __version__
from agentctl.cli import ask, cost, doctor, fastparams, init, models, pipeline, roles, runs
from agentctl.cli.context import state
from agentctl.errors import EXIT_INTERRUPTED, AgentctlError, ConfigError


def report(error: AgentctlError) -> None:
    """Print an error as ``agentctl: error: ...`` lines on stderr (no traceback)."""
    errors = error.all if isinstance(error, ConfigError) else (error,)
    for item in errors:
        sys.stderr.write(f"agentctl: error: {item}\n")


class AgentctlGroup(TyperGroup):
    """The root group: the one place where agentctl's errors become exit codes."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AgentctlError as error:
            report(error)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            sys.stderr.write("agentctl: interrupted\n")
            raise typer.Exit(EXIT_INTERRUPTED) from None


fastparams.install()

app = typer.Typer(
    name="agentctl",
    cls=AgentctlGroup,
    help=(
        "Run a team of LLM agents on real software work: tickets in, reviewed, tested, "
        "merged changes out, every dollar accounted for.\n\n"
        "Exit codes: 0 ok, 1 failed, 2 usage or configuration error, 130 interrupted."
    ),
    # Plain help: rich-formatted help alone costs ~150 ms of imports on every --help.
    rich_markup_mode=None,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"agentctl {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace directory (default: found upward from here by agentctl.toml).",
            show_default=False,
        ),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a config value, e.g. --set roles.dev.model=sonnet (repeatable).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Global options apply to every command."""
    app_state = state(ctx)
    app_state.workspace_option = workspace
    app_state.sets = list(sets or [])


app.command("init")(init.init_command)
app.command("doctor")(doctor.doctor_command)
app.command("ask")(ask.ask_command)
app.add_typer(roles.app, name="roles")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(models.app, name="models")
app.add_typer(runs.app, name="runs")
app.command("cost")(cost.cost_command)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="agentctl")
