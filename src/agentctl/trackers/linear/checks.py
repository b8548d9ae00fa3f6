"""``doctor``'s checks of the Linear account: key, team, workflow states.

Each names the one thing that is wrong (a refused key, a team key that does not
exist, a state name the team does not have) and the setting to change. No retries:
doctor answers at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from agentctl.checks import Check
from agentctl.errors import AgentctlError
from agentctl.trackers.linear.tracker import LinearTracker

if TYPE_CHECKING:
    from agentctl.config import Config

STATE_SETTINGS = ("ready_state", "in_progress_state", "review_state", "done_state")


def checks(config: Config, environ: Mapping[str, str] | None) -> list[Check]:
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
