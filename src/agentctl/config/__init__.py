"""Load the configuration once into typed, frozen objects — or fail with file:line.

``load_config`` layers shipped defaults < user config dir < workspace < ``--set``,
converts the tree into ``schema`` objects (unknown keys and wrong types are
errors), checks the references between them, and resolves ``extends``. Every
mistake found is reported, each as one ``ConfigError`` naming file, line and fix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from agentctl.config.convert import Invalid, Issue, convert, suggest
from agentctl.config.layers import Layers, Source, add_file, add_folder, add_sets
from agentctl.config.schema import Model, Pipeline, Role, Settings
from agentctl.config.validate import check_settings, resolve_pipelines
from agentctl.errors import ConfigError, NotFoundError
from agentctl.workspace import (
    STATE_NAME,
    Workspace,
    find_workspace,
    shipped_defaults,
    shipped_dir,
    user_config_dir,
)

__all__ = ["Config", "load_config"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Config:
    """Everything configured, validated; ``pipelines`` have ``extends`` resolved."""

    settings: Settings
    pipelines: Mapping[str, Pipeline]
    workspace: Workspace
    files: tuple[str, ...]
    origins: Mapping[tuple[str | int, ...], Source]

    @property
    def models(self) -> Mapping[str, Model]:
        return self.settings.models

    @property
    def roles(self) -> Mapping[str, Role]:
        return self.settings.roles

    @property
    def worktree_home(self) -> Path:
        """Where pipelines make their worktrees (``<here>/worktrees``): the state folder,
        or on a Celery worker its own clone's, never the state folder the hosts share."""
        if self.settings.executor.celery.workspace and self.workspace.git_root:
            return self.workspace.git_root / STATE_NAME
        return self.workspace.state_dir

    def model(self, name: str) -> Model:
        return _pick("model", name, self.settings.models, "agentctl models list")

    def role(self, name: str) -> Role:
        return _pick("role", name, self.settings.roles, "agentctl roles list")

    def pipeline(self, name: str) -> Pipeline:
        return _pick("pipeline", name, self.pipelines, "agentctl pipeline list")

    def origin(self, *path: str | int) -> str | None:
        """The file that set ``path`` last (e.g. ``origin("roles", "dev")``)."""
        source = self.origins.get(path)
        return source.label if source else None


def _pick(kind: str, name: str, table: Mapping[str, _T], listing: str) -> _T:
    try:
        return table[name]
    except KeyError:
        hint = suggest(name, table) or f"see `{listing}`"
        raise NotFoundError(f"no {kind} named {name!r}", hint=hint) from None


def gather(workspace: Workspace, sets: Sequence[str] = ()) -> Layers:
    """Read and layer every config source for ``workspace`` (no validation yet)."""
    layers = Layers()
    add_file(layers, shipped_defaults(), replace_models=False, shipped=True)
    add_folder(layers, shipped_dir("roles"), "roles", shipped=True)
    add_folder(layers, shipped_dir("pipelines"), "pipelines", shipped=True)
    user = user_config_dir()
    if (user / "config.toml").is_file():
        add_file(layers, user / "config.toml", replace_models=True)
    add_folder(layers, user / "roles", "roles")
    add_folder(layers, user / "pipelines", "pipelines")
    if workspace.config_file is not None:
        add_file(layers, workspace.config_file, replace_models=True)
        add_folder(layers, workspace.roles_dir, "roles")
        add_folder(layers, workspace.pipelines_dir, "pipelines")
    add_sets(layers, list(sets))
    return layers


def _errors(layers: Layers, issues: list[Issue]) -> ConfigError:
    errors = [layers.error(i.path, i.message, i.hint) for i in issues]
    first = errors[0]
    return ConfigError(
        first.message, source=first.source, line=first.line, hint=first.hint, more=tuple(errors[1:])
    )


def load_config(
    workspace: Workspace | None = None,
    *,
    sets: Sequence[str] = (),
    cwd: Path | None = None,
) -> Config:
    """Load and validate the configuration; raise ``ConfigError`` listing every mistake."""
    workspace = workspace or find_workspace(cwd)
    layers = gather(workspace, sets)
    try:
        settings = convert(Settings, layers.tree)
    except Invalid as exc:
        raise _errors(layers, exc.issues) from None
    pipelines, owners, issues = resolve_pipelines(settings.pipelines)
    issues += list(check_settings(settings, pipelines, owners))
    if issues:
        raise _errors(layers, issues)
    checkout = settings.executor.celery.workspace
    if checkout:  # a Celery worker: its pipelines work in its own clone, state stays shared
        path = Path(checkout).expanduser()
        workspace = dataclasses.replace(
            workspace, git_root=(path if path.is_absolute() else workspace.root / path).resolve()
        )
    return Config(settings, pipelines, workspace, tuple(layers.files), dict(layers.origins))
