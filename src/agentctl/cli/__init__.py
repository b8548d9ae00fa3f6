"""The ``agentctl`` command: a small root app with command groups from cli/<group>.py.

Only this package imports Typer. Each command parses its arguments, calls one core
function and renders the result. ``AgentctlError`` is caught once, in
``AgentctlGroup.invoke``, printed as one line per mistake, and turned into the
documented exit code (0 ok, 1 failed, 2 usage or config, 130 interrupted).

Groups are mounted lazily from ``COMMANDS`` (name → module:app): Typer builds a
group by introspecting every signature, which costs more than the imports, so
``agentctl runs list`` builds only ``runs`` and ``--help`` builds none.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click import Command, Context, HelpFormatter
from typer._click.utils import make_default_short_help
from typer.core import TyperGroup

from agentctl import __version__
from agentctl.cli import fastparams
from agentctl.cli.context import state
from agentctl.errors import EXIT_INTERRUPTED, AgentctlError, ConfigError
from agentctl.visible import visible


def report(error: AgentctlError) -> None:
    """Print an error as ``agentctl: error: ...`` lines on stderr (no traceback)."""
    errors = error.all if isinstance(error, ConfigError) else (error,)
    for item in errors:
        sys.stderr.write(visible(f"agentctl: error: {item}") + "\n")


# The commands, in the order --help lists them: name → "module:Typer app".
COMMANDS: dict[str, str] = {
    "demo": "agentctl.cli.demo:app",
    "init": "agentctl.cli.init:app",
    "doctor": "agentctl.cli.doctor:app",
    "ask": "agentctl.cli.ask:app",
    "chat": "agentctl.cli.chat:app",
    "agent": "agentctl.cli.agent:app",
    "cost": "agentctl.cli.cost:app",
    "status": "agentctl.cli.status:app",
    "roles": "agentctl.cli.roles:app",
    "pipeline": "agentctl.cli.pipeline:app",
    "models": "agentctl.cli.models:app",
    "runs": "agentctl.cli.runs:app",
    "orchestrate": "agentctl.cli.orchestrate:app",
    "tickets": "agentctl.cli.tickets:app",
    "worker": "agentctl.cli.worker:worker_app",
    "workers": "agentctl.cli.worker:workers_app",
    "dashboard": "agentctl.cli.dashboard:app",
}


def _app(name: str) -> typer.Typer:
    module, _, attribute = COMMANDS[name].partition(":")
    sub: typer.Typer = getattr(importlib.import_module(module), attribute)
    return sub


def _short_help(sub: typer.Typer) -> str:
    """The first line of a group's help, or of a one-command app's docstring."""
    text = sub.info.help if isinstance(sub.info.help, str) else ""
    if not text and sub.registered_commands:
        command = sub.registered_commands[0]
        text = command.help or (command.callback.__doc__ if command.callback else "") or ""
    return text


class AgentctlGroup(TyperGroup):
    """The root group: builds subcommands on demand; turns agentctl's errors into exit codes."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*self.commands, *(name for name in COMMANDS if name not in self.commands)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            command = typer.main.get_command(_app(cmd_name))
            command.name = cmd_name
            self.commands[cmd_name] = command
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = [(name, make_default_short_help(_short_help(_app(name)), limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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


def main() -> None:
    """Console-script entry point."""
    import os

    if "AGENTCTL_KEYS_FD" in os.environ:  # a child: take its keys from the pipe at once
        from agentctl import keystore

        keystore.receive()
    app(prog_name="agentctl")
