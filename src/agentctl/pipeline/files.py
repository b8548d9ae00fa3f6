"""``agentctl pipeline new``: a per-feature pipeline is a few lines extending another."""

from __future__ import annotations

import json
import re
from pathlib import Path

from agentctl import atomic
from agentctl.config import Config
from agentctl.errors import UsageError, WorkspaceError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def new_pipeline(config: Config, name: str, base: str, task: str, *, force: bool = False) -> Path:
    if not _NAME.match(name):
        raise UsageError(f"{name!r} is not a valid pipeline name", hint="letters, digits, - _ .")
    config.pipeline(base)  # a clear error when the base does not exist
    workspace = config.workspace
    if workspace.config_file is None:
        raise WorkspaceError(
            "no agentctl.toml here: the workspace's pipelines/ folder is not read without one",
            hint="run `agentctl init` first",
        )
    path = workspace.pipelines_dir / f"{name}.toml"
    if path.exists() and not force:
        raise UsageError(f"{path} exists", hint="pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        f"# Made by `agentctl pipeline new {name} --from {base}`.\n"
        f"extends = {json.dumps(base)}\n\n[inputs]\ntask = {json.dumps(task)}\n"
    )
    atomic.write_text(path, text)
    return path
