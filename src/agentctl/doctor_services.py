"""``doctor``'s checks of the tracker and forge accounts: key, team, states, repository.

Each names the one thing that is wrong (a refused key, a team key that does not
exist, a state name the team does not have, a repository the token cannot see, a
missing git remote) and the setting to change. No retries: doctor answers at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from agentctl.errors import AgentctlError

if TYPE_CHECKING:
    from agentctl.config import Config
    from agentctl.doctor import Check

STATE_SETTINGS = ("ready_state", "in_progress_state", "review_state", "done_state")


def service_checks(config: Config, environ: Mapping[str, str] | None = None) -> list[Check]:
    """``environ`` stands in for the key store when given."""
    checks: list[Check] = []
    if config.settings.tracker.kind == "linear":
        checks += _linear(config, environ)
    if config.settings.forge.kind == "github":
        checks += _github(config, environ)
    return checks


def _linear(config: Config, environ: Mapping[str, str] | None) -> list[Check]:
    from agentctl.doctor import Check
    from agentctl.linear.tracker import LinearTracker

    settings = config.settings.tracker.linear
    try:
        tracker = LinearTracker.from_config(config, environ)
        tracker.service.max_retries = 0
        viewer = tracker.viewer()
    except AgentctlError as exc:
        return [Check("linear", "fail", exc.without_hint(), exc.hint)]
    checks = [Check("linear", "ok", f"{settings.url}: authenticated as {viewer.get('name')}")]
    try:
        states = tracker.team_states()
    except AgentctlError as exc:
        return [*checks, Check("linear team", "fail", exc.without_hint(), exc.hint)]
    names = {s["name"].lower() for s in states}
    checks.append(Check("linear team", "ok", f"{settings.team}: {len(states)} workflow states"))
    for setting in STATE_SETTINGS:
        name = str(getattr(settings, setting))
        if name.lower() not in names:
            checks.append(
                Check(
                    "linear state",
                    "fail",
                    f"team {settings.team} has no state {name!r} ([tracker.linear] {setting})",
                    f"use one of: {', '.join(s['name'] for s in states)}",
                )
            )
    return checks


def _github(config: Config, environ: Mapping[str, str] | None) -> list[Check]:
    from agentctl import gitops
    from agentctl.doctor import Check
    from agentctl.errors import GitError
    from agentctl.github.forge import GithubForge

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
