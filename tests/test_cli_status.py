"""``agentctl status``: one screen from the files, on an empty and on a busy workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentctl.config import load_config
from agentctl.cost.ledger import Ledger
from agentctl.forges import Review
from agentctl.forges.local import LocalForge
from agentctl.llm.types import Usage
from agentctl.runs import Journal, Mailbox, RunStore
from agentctl.trackers.local import LocalTracker
from agentctl.workspace import find_workspace
from tests.conftest import Invoke, git

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BUDGETS = ("--set", "budgets.daily_usd=20", "--set", "budgets.roles.dev=5")


def clock() -> datetime:
    return NOW - timedelta(seconds=30)


@pytest.fixture
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The CLI's clock: status reads "now" once and passes it down."""
    monkeypatch.setattr("agentctl.runs.timefmt.utc_now", lambda: NOW)
    return NOW


def status_json(cli: Invoke, workspace: Path, *args: str) -> dict[str, Any]:
    result = cli(*args, "status", "--json", cwd=workspace)
    assert result.exit_code == 0, result.output
    value: dict[str, Any] = json.loads(result.stdout)
    return value


@pytest.fixture
def busy(workspace: Path) -> dict[str, str]:
    """A ticket, a running pipeline with a running dev agent, costs, PRs, ticks and reports."""
    state_dir = workspace / ".agentctl"
    config = load_config(find_workspace(explicit=workspace))
    tracker = LocalTracker(state_dir, clock=clock)
    ticket = tracker.add("Fix the login page")
    tracker.set_state(tracker.add("Old work").id, "Done")

    at = [NOW - timedelta(minutes=10)]  # runs made a minute apart, started just now
    store = RunStore(state_dir, clock=lambda: at[0])
    pipeline = store.create(
        "pipeline",
        input={"ticket": ticket.id},
        pipeline="coding-pipeline",
        step="implement",
        ticket=ticket.id,
    )
    at[0] += timedelta(minutes=1)
    agent = store.create(
        "agent", input={"task": "fix it"}, parent=pipeline, role="dev", model="sonnet"
    )
    at[0] += timedelta(minutes=1)
    done = store.create("agent", input={"task": "review"}, role="review", model="haiku")
    at[0] = clock()
    for run in (pipeline, agent, done):
        run.mark_started(os.getpid(), os.getpgid(0))
        run.heartbeat()
    done.transition("succeeded")

    usage = Usage(1_000_000, 100_000)  # sonnet: $2 + $1 = $3; haiku (long band): $0.75
    today = Ledger(state_dir, clock=clock)
    today.charge(run=agent.load(), model_name="sonnet", model=config.model("sonnet"), usage=usage)
    today.charge(run=done.load(), model_name="haiku", model=config.model("haiku"), usage=usage)
    yesterday = Ledger(state_dir, clock=lambda: NOW - timedelta(days=1))
    yesterday.charge(
        run=agent.load(), model_name="sonnet", model=config.model("sonnet"), usage=usage
    )

    git(workspace, "branch", "agentctl/t-1")
    forge = LocalForge(workspace, state_dir, clock=clock)
    pr = forge.open_pr(
        branch="agentctl/t-1", base="main", title="Fix the login page", body="", ticket=ticket.id
    )
    forge.add_review(pr.number, Review("approve", "looks right", head_sha=pr.head_sha))

    home = state_dir / "orchestrator"
    home.mkdir()
    ticks = Journal(home / "ticks.jsonl", clock=clock)
    ticks.append("tick", summary="idle", model_calls=0)
    ticks.append("tick", summary="1 started", started=[ticket.id], model_calls=1)
    with (home / "ticks.jsonl").open("ab") as torn:  # a tick killed mid-line
        torn.write(b'{"seq":3,"ts":"2026-11-')
    outbox = Mailbox(home / "outbox", clock=clock)
    (home / "outbox").mkdir()
    outbox.post({"type": "report", "summary": "1 failed", "failed": ["T-0"]})
    outbox.post({"type": "report", "summary": "1 started", "started": [ticket.id]})
    return {"ticket": ticket.id, "pipeline": pipeline.id, "agent": agent.id, "done": done.id}


def test_an_empty_workspace_shows_empty_sections(workspace: Path, cli: Invoke) -> None:
    view = status_json(cli, workspace)
    assert view["last_tick"] is None
    assert view["last_report"] is None
    assert view["active_runs"] == []
    assert view["stopped_runs"] == []
    assert view["parked"] == []
    assert view["tickets"] == {
        "Todo": 0,
        "In Progress": 0,
        "In Review": 0,
        "Blocked": 0,
        "Done": 0,
        "Canceled": 0,
    }
    assert view["prs"] == []
    assert view["spend_today"]["total_usd"] == 0
    assert view["spend_today"]["roles"] == []
    assert view["problems"] == []

    result = cli("status", cwd=workspace)
    assert result.exit_code == 0, result.output
    for line in (
        "last tick    none yet",
        "last report  none",
        "active runs  none",
        "parked       none",
        "tickets      none",
        "open PRs     none",
        "spend today  $0 (no daily cap)",
    ):
        assert line in result.stdout


def test_status_json_shows_each_section(
    workspace: Path, cli: Invoke, busy: dict[str, str], fixed_now: datetime
) -> None:
    view = status_json(cli, workspace, *BUDGETS)
    assert view["now"] == "2026-11-25T12:00:00.000000Z"

    assert view["last_tick"]["summary"] == "1 started"
    assert view["last_tick"]["ts"] == "2026-11-25T11:59:30.000000Z"
    assert view["problems"] == ["ticks: torn last line skipped"]
    assert view["last_report"]["seq"] == 2
    assert view["last_report"]["started"] == [busy["ticket"]]

    runs = {run["id"]: run for run in view["active_runs"]}
    assert list(runs) == [busy["pipeline"], busy["agent"]]  # not the finished one
    pipeline, agent = runs[busy["pipeline"]], runs[busy["agent"]]
    assert (pipeline["kind"], pipeline["status"], pipeline["display_status"]) == (
        "pipeline",
        "running",
        "running",
    )
    assert (pipeline["pipeline"], pipeline["step"], pipeline["ticket"]) == (
        "coding-pipeline",
        "implement",
        busy["ticket"],
    )
    assert (agent["role"], agent["model"], agent["parent_id"]) == ("dev", "sonnet", pipeline["id"])
    # all time, for the run and every run below it: today's $3 and yesterday's
    assert agent["cost_usd"] == pipeline["cost_usd"] == 6.0

    assert view["tickets"]["Todo"] == 1
    assert view["tickets"]["Done"] == 1
    (pr,) = view["prs"]
    assert (pr["number"], pr["branch"], pr["review_state"], pr["ticket"]) == (
        1,
        "agentctl/t-1",
        "approved",
        busy["ticket"],
    )

    spend = view["spend_today"]
    assert spend["day"] == "2026-11-25"
    assert spend["daily_usd"] == 20.0
    assert spend["total_usd"] == 3.75
    assert spend["roles"] == [
        {"role": "dev", "spent_usd": 3.0, "cap_usd": 5.0},
        {"role": "review", "spent_usd": 0.75, "cap_usd": None},
    ]


def test_status_text_has_every_section(
    workspace: Path, cli: Invoke, busy: dict[str, str], fixed_now: datetime
) -> None:
    result = cli(*BUDGETS, "status", cwd=workspace)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "last tick    2026-11-25 11:59:30 (30s ago): 1 started" in out
    assert "last report  #2 2026-11-25 11:59:30 (30s ago)" in out
    assert f"started: {busy['ticket']}" in out
    assert "active runs  2" in out
    assert busy["done"] not in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line}
    assert rows[busy["pipeline"]] == [
        "pipeline", "running", "coding-pipeline", "implement", "T-1", "10m", "$6"
    ]  # fmt: skip
    assert rows[busy["agent"]] == ["agent", "running", "dev", "sonnet", "9m", "$6"]
    assert "tickets      Todo 1  In Progress 0  In Review 0  Blocked 0  Done 1  Canceled 0" in out
    assert "agentctl/t-1  approved" in out
    assert "spend today  $3.75 of $20 daily cap  (2026-11-25 UTC)" in out
    assert "dev     $3     $5" in out
    assert "warning: ticks: torn last line skipped" in out


def test_watch_redraws_until_ctrl_c(
    workspace: Path, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentctl.cli import status

    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(status, "sleep", nap)
    result = cli("status", "--watch", "2.5", cwd=workspace)
    assert result.exit_code == 0, result.output
    assert naps == [2.5, 2.5, 2.5]
    assert result.stdout.count("agentctl status  ") == 3
    assert "\x1b[" not in result.stdout  # not a terminal: no clearing

    naps.clear()
    result = cli("status", "--json", "--watch", "1", cwd=workspace)
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(json.loads(line)["active_runs"] == [] for line in lines)

    result = cli("status", "--watch", "0", cwd=workspace)
    assert result.exit_code == 2
    assert "positive number of seconds" in result.stderr


def test_status_starts_without_heavy_imports(workspace: Path) -> None:
    code = (
        "import sys\n"
        "from agentctl.cli import main\n"
        f"sys.argv = ['agentctl', '-w', {str(workspace)!r}, 'status']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "heavy = ('git', 'rich', 'anthropic', 'openai', 'pydantic')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert "HEAVY []" in out
