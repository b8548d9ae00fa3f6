"""A pipeline by name, and the branch it works against: what the process and preflight share.

Beside them both rather than in either, so preflight never imports the process that
runs it (nor the process preflight's checks) at import time.
"""

from __future__ import annotations

from agentctl.config import Config
from agentctl.config.schema import Pipeline
from agentctl.errors import NotFoundError
from agentctl.repo.gitops import current_branch


def find(config: Config, name: str) -> Pipeline:
    """The pipeline ``name``; an unknown one names those that exist and how to make one."""
    try:
        return config.pipeline(name)
    except NotFoundError as exc:
        known = ", ".join(sorted(config.pipelines))
        raise NotFoundError(
            f"{exc.message} ({exc.hint})"
            if exc.hint and "did you mean" in exc.hint
            else exc.message,
            hint=f"pipelines: {known}; make one with "
            f'`agentctl pipeline new {name} --from feature --task "..."`',
        ) from None


def base_branch(config: Config) -> str:
    """``[project] base_branch``, else the checked-out branch, else ``main``."""
    configured = config.settings.project.base_branch
    if configured:
        return configured
    return current_branch(config.workspace.git_root or config.workspace.root) or "main"
