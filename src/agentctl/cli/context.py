"""What every command shares: global options, lazily found workspace and config, output.

Commands ask for ``state(ctx).config`` only when they need it, so a command such as
``runs list`` never pays for reading TOML, and nothing heavy is imported at start.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

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

    @property
    def config(self) -> Config:
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


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


def print_json(value: Any) -> None:
    """Indented for a person at a terminal; compact (and ~5x faster) into a pipe."""
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(value, indent=indent, ensure_ascii=False, default=str) + "\n")


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
    table = Table(title=title, title_justify="left", **options)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console().print(table)


def report_valid(kind: str, names: list[str], as_json: bool) -> None:
    """The success line of ``roles check`` / ``pipeline validate`` (errors raise before)."""
    if as_json:
        print_json({"ok": True, kind: names})
        return
    noun = kind if len(names) != 1 else kind.removesuffix("s")
    typer.echo(f"ok: {len(names)} {noun} valid ({', '.join(names)})")
