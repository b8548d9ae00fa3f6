"""An idle tick (what cron pays every minute) loads none of what only work needs.

The orchestrator's parts import each other and the cheap seams at module level;
the pipeline engine, the merge queue and its gate sandbox, triage's model call and
the cost ledger stay behind the functions that start, merge, ask or report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentctl.commands.init import init_workspace
from agentctl.trackers.local import LocalTracker

HEAVY = (
    "anthropic",
    "openai",
    "gql",
    "git",
    "graphql",
    "httpx",
    "httpx2",
    "pydantic_core",
    "celery",
    "kombu",
    "redis",
    "starlette",  # the dashboard's, imported by `agentctl dashboard` alone
    "uvicorn",
    "jinja2",
)
WORK_ONLY = (
    "agentctl.pipeline.process",
    "agentctl.pipeline.preflight",
    "agentctl.pipeline.mergequeue",
    "agentctl.tools.gate",
    "agentctl.orchestrator.triage",
    "agentctl.cost.reserve",
    "agentctl.llm.call",
    "agentctl.executors.celery",
)


@pytest.mark.parametrize("executor", ["local", "celery"])
def test_an_idle_tick_imports_no_sdk_and_no_work_only_module(repo: Path, executor: str) -> None:
    init_workspace(repo, test_command="true", base_branch="main")
    with (repo / "agentctl.toml").open("a") as config:  # nothing to send: no broker asked
        config.write(f'\n[executor]\nkind = "{executor}"\n')
    tracker = LocalTracker(repo / ".agentctl")
    for ticket in tracker.list():
        tracker.set_state(ticket.id, "Done")
    tracker.set_state(tracker.add("not ready yet").id, "In Review")
    code = (
        "import sys\nfrom agentctl.cli import main\n"
        "sys.argv = ['agentctl', 'orchestrate', '--once']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})\n"
        f"work = sorted(set(sys.modules) & {set(WORK_ONLY)!r})\n"
        "print('LOADED', heavy, work, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=60
    )
    assert "tick: idle" in done.stdout, done.stdout + done.stderr
    assert "LOADED [] []" in done.stderr, done.stderr
