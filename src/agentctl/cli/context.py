"""What every command shares: global options, lazily found workspace and config, output.

Commands ask for ``state(ctx).config`` only when they need it, so a command such as
``runs list`` never pays for reading TOML, and nothing heavy is imported at start.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from agentctl.visible import visible

if TYPE_CHECKING:
    from rich.console import Console

    from agentctl.config import Config
    from agentctl.workspace import Workspace


@dataclass
class AppState:
    """Global options plus the workspace and config, each loaded at most once."""

    workspace_option: Path | None = None
    sets: list[str] = field(default_factory=list)
    _workspace: Workspace | None = None
    _config: Config | None = None

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            from agentctl.workspace import find_workspace

            self._workspace = find_workspace(explicit=self.workspace_option)
        return self._workspace

    def repository(self) -> Workspace:
        """The workspace of a command that works on git (pipelines, the orchestrator):
        refused outside a repository, before anything is written there."""
        workspace = self.workspace
        if workspace.git_root is None:
            from agentctl.errors import WorkspaceError

            raise WorkspaceError(
                f"{workspace.root} is not inside a git repository",
                hint="agentctl works on git repositories: run `git init` first",
            )
        return workspace

    @property
    def config(self) -> Config:
        """The config, its keys taken into the key store (and out of the environment)."""
        from agentctl import keystore

        config = self.config_only
        keystore.load_configured(config)
        return config

    @property
    def config_only(self) -> Config:
        """The config without loading keys (``doctor`` reports a bad secrets file itself)."""
        if self._config is None:
            from agentctl.config import load_config

            self._config = load_config(self.workspace, sets=self.sets)
        return self._config


def new_group(help: str) -> typer.Typer:
    """A command group with the root's settings (plain, fast help)."""
    return typer.Typer(
        help=help,
        rich_markup_mode=None,
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def single(command: Any) -> typer.Typer:
    """A one-command app (``agentctl init``, ``ask`` ...), mounted lazily by the root."""
    app = typer.Typer(
        rich_markup_mode=None,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.command()(command)
    return app


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


def print_json(value: Any) -> None:
    """Indented for a person at a terminal; compact (and ~5x faster) into a pipe."""
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(value, indent=indent, ensure_ascii=False, default=str) + "\n")


def echo(message: object = "", *, err: bool = False) -> None:
    """``typer.echo`` for human-facing text: control characters shown, never sent."""
    typer.echo(visible(str(message)), err=err)


def console() -> Console:
    """A rich console on the current stdout (rich is imported on first use: it costs time)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def usd(value: float | None) -> str:
    return "-" if value is None else f"${value:g}"


def print_table(
    title: str | None, columns: tuple[str, ...], rows: Sequence[Sequence[str]], **options: Any
) -> None:
    """A rich table of plain strings on stdout."""
    from rich import box
    from rich.table import Table

    options.setdefault("box", box.SIMPLE_HEAD)
    options.setdefault("pad_edge", False)
    from rich.text import Text

    table = Table(title=title, title_justify="left", **options)
    for column in columns:
        table.add_column(column)
    for row in rows:  # Text: a cell's "[red]" is text, not rich markup
        table.add_row(*(Text(visible(cell)) for cell in row))
    console().print(table)


_ANSI = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "dim": "2", "bold": "1"}


def print_columns(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    styles: Sequence[str | None] | None = None,
) -> None:
    """A plain aligned table, like ``docker ps``: ~100x cheaper than a rich table.

    The last column is cut to the terminal width; ``styles`` (one per row) colours a
    row's third cell (the status) when stdout is a terminal.
    """
    import shutil

    tty = sys.stdout.isatty()
    rows = [[visible(cell, one_line=True) for cell in row] for row in rows]
    width = shutil.get_terminal_size((160, 24)).columns
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    fixed = sum(widths[:-1]) + 2 * (len(columns) - 1)
    widths[-1] = max(len(columns[-1]), min(widths[-1], width - fixed))

    def line(cells: Sequence[str], style: str | None = None) -> str:
        parts = []
        for i, cell in enumerate(cells):
            text = cell if len(cell) <= widths[i] else cell[: max(widths[i] - 1, 0)] + "…"
            padded = text.ljust(widths[i]) if i < len(cells) - 1 else text
            if tty and style and i == 2:
                padded = f"\x1b[{_ANSI[style]}m{padded}\x1b[0m"
            parts.append(padded)
        return "  ".join(parts).rstrip()

    out = [line(columns, None)]
    if tty:
        out[0] = f"\x1b[1m{out[0]}\x1b[0m"
    out += [line(row, (styles or [None] * len(rows))[n]) for n, row in enumerate(rows)]
    sys.stdout.write("\n".join(out) + "\n")


def report_valid(kind: str, names: list[str], as_json: bool) -> None:
    """The success line of ``roles check`` / ``pipeline validate`` (errors raise before)."""
    if as_json:
        print_json({"ok": True, kind: names})
        return
    noun = kind if len(names) != 1 else kind.removesuffix("s")
    typer.echo(f"ok: {len(names)} {noun} valid ({', '.join(names)})")


def follow_events(run: Any, handle: Callable[[dict[str, Any]], None]) -> bool:
    """Hand ``run``'s events to ``handle`` until it ends; False if Ctrl-C canceled it.

    Ctrl-C in a foreground run cancels the run (and every process of its group)
    instead of leaving it running without anyone watching.
    """
    from agentctl.agent.supervise import cancel_run, watch

    try:
        for event in watch(run):
            handle(event)
    except KeyboardInterrupt:
        cancel_run(run)
        sys.stderr.write(f"agentctl: canceled {run.id}\n")
        return False
    return True


def with_hosts(
    columns: Sequence[str], rows: Sequence[Sequence[str]], found: Sequence[dict[str, Any]], at: int
) -> tuple[Sequence[str], Sequence[Sequence[str]]]:
    """Add a ``host`` column (at index ``at``) when a running run is on another host (a
    Celery worker); one machine's tables stay as they were."""
    from agentctl.runs.liveness import this_host

    def where(run: dict[str, Any]) -> str:
        return str(run.get("host") or "") if run.get("status") == "running" else ""

    if not {where(r) for r in found} - {"", this_host()}:
        return columns, rows
    return (
        [*columns[:at], "host", *columns[at:]],
        [[*row[:at], where(r), *row[at:]] for row, r in zip(rows, found, strict=True)],
    )
