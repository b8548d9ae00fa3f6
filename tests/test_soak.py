"""Issue 14's soak: 20 tickets through cron ticks while a chaos thread kills processes.

Every ticket ends Done with one merge, or parked (Blocked) with a reason; nothing moves
back after Done; no run left running, no process left; the ledger equals the runs.
Replay a failure with AGENTCTL_SOAK_SEED=<the printed seed>.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentctl.testing.soak import SoakSettings, run_soak, seed_from_env

pytestmark = [pytest.mark.slow]


@pytest.mark.timeout(240)
def test_twenty_tickets_survive_random_kill_9_and_fail_points(tmp_path: Path) -> None:
    settings = SoakSettings(
        tickets=20, seed=seed_from_env(14), chaos_seconds=35.0, min_kills=8, max_quiet_ticks=45
    )
    print(f"soak seed {settings.seed} (AGENTCTL_SOAK_SEED={settings.seed} replays it)")
    result = run_soak(tmp_path, settings)
    report = "\n".join(result.lines())
    assert sum(result.kills.values()) >= settings.min_kills, report
    if not (result.quiet and result.ok):
        pytest.fail(report, pytrace=False)
