"""``doctor``'s checks of the GitHub account: token, repository, git remote.

Each names the one thing that is wrong (a refused token, a repository the token
cannot see, a missing git remote) and the setting to change. No retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from agentctl.checks import Check
from agentctl.errors import AgentctlError, GitError
from agentctl.forges.github.forge import GithubForge
from agentctl.repo import gitops

if TYPE_CHECKING:
    from agentctl.config import Config


def checks(config: Config, environ: Mapping[str, str] | None) -> list[Check]:
    settings = config.settings.forge.github
    try:
        forge = GithubForge.from_config(config, environ)
        forge.service.max_retries = 0
        login = forge.viewer()
    except AgentctlError as exc:
        return [Check("github", "fail", exc.without_hint(), exc.hint)]
    checks = [Check("github", "ok", f"{settings.url}: authenticated as {login}")]
    try:
        forge.repository_id()
        checks.append(Check("github repository", "ok", settings.repo))
    except AgentctlError as exc:
        checks.append(Check("github repository", "fail", exc.without_hint(), exc.hint))
    root = config.workspace.git_root
    if root is not None:
        try:
            url = gitops.run_git(gitops.open_repo(root), "remote", "get-url", settings.remote)
            checks.append(Check("github remote", "ok", f"{settings.remote} → {url}"))
        except GitError:
            checks.append(
                Check(
                    "github remote",
                    "fail",
                    f"this repository has no git remote {settings.remote!r}",
                    f"git remote add {settings.remote} https://github.com/{settings.repo}.git, "
                    "or set [forge.github] remote",
                )
            )
    return checks
