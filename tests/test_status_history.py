"""``status`` reads what it shows, not the history: 20,000 finished runs cost nothing.

The unfinished runs come from the live index and their trees from each run's
children index; the last report is one file of the outbox. Which files a real
``agentctl status`` process opens is watched with an audit hook (``sys.addaudithook``
sees every ``open``), so nothing in the product is replaced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentctl.config import load_config
from agentctl.cost.ledger import Ledger
from agentctl.llm.types import Usage
from agentctl.runs import Mailbox, RunStore
from agentctl.runs.run import LIVE
from agentctl.testing.runs import make_finished_runs
from agentctl.workspace import find_workspace
from tests.conftest import Invoke

OPENS = """
import json, sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0]))
                 if event == "open" and isinstance(args[0], str) else None)
from agentctl.cli import main
sys.argv = ["agentctl", "-w", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
print("OPENED", json.dumps(opened))
"""


def opens(workspace: Path, *args: str) -> tuple[Any, list[str]]:
    """``agentctl ARGS`` (printing JSON) in a real process: what it printed, and every
    file it opened."""
    done = subprocess.run(
        [sys.executable, "-c", OPENS, str(workspace), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    shown, _, opened = done.stdout.rpartition("OPENED ")
    return json.loads(shown), json.loads(opened)


def busy_history(workspace: Path, finished: int) -> dict[str, str]:
    """``finished`` old runs, then a running pipeline whose finished step started a
    running agent, each with a cost; and a long outbox of reports."""
    state_dir = workspace / ".agentctl"
    make_finished_runs(state_dir, finished, start=datetime.now(UTC) - timedelta(days=3))
    config = load_config(find_workspace(explicit=workspace))
    now = datetime.now(UTC)  # real time: a status process judges heartbeats by it
    at = [now - timedelta(minutes=10)]
    store = RunStore(state_dir, clock=lambda: at[0])
    pipeline = store.create("pipeline", input={}, pipeline="coding-pipeline", step="implement")
    at[0] += timedelta(minutes=1)
    step = store.create("step", input={}, parent=pipeline, step="implement")
    at[0] += timedelta(minutes=1)
    agent = store.create("agent", input={}, parent=step, role="dev", model="sonnet")
    at[0] = now
    for run in (pipeline, step, agent):
        run.mark_started(os.getpid(), os.getpgid(0))
        run.heartbeat()
    step.transition("succeeded")
    ledger = Ledger(state_dir, clock=lambda: at[0])
    usage = Usage(1_000_000, 100_000)  # sonnet: $3
    sonnet = config.model("sonnet")
    for run in (step, agent):
        ledger.charge(run=run.load(), model_name="sonnet", model=sonnet, usage=usage)
    outbox = Mailbox(state_dir / "orchestrator" / "outbox")
    outbox.directory.mkdir(parents=True)
    for n in range(30):
        outbox.post({"type": "report", "summary": f"report {n}"})
    return {"pipeline": pipeline.id, "step": step.id, "agent": agent.id}


def test_status_opens_no_finished_run_and_one_report(workspace: Path) -> None:
    old = make_finished_runs(workspace / ".agentctl", 200)
    runs = busy_history(workspace, 0)
    view, opened = opens(workspace, "status", "--json")

    assert [r["id"] for r in view["active_runs"]] == [runs["pipeline"], runs["agent"]]
    assert view["last_report"]["summary"] == "report 29"
    read_runs = {Path(p).parent.name for p in opened if p.endswith("run.json")}
    assert read_runs == {runs["pipeline"], runs["step"], runs["agent"]}
    assert not read_runs & set(old)
    reports = [p for p in opened if "outbox" in p and p.endswith(".json")]
    assert [Path(p).name for p in reports] == ["000030.json"]


def test_a_running_child_among_many_finished_runs_is_shown_with_its_tree_cost(
    workspace: Path, cli: Invoke
) -> None:
    runs = busy_history(workspace, 2000)
    result = cli("status", "--json", cwd=workspace)
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    active = {r["id"]: r for r in view["active_runs"]}
    assert list(active) == [runs["pipeline"], runs["agent"]]  # oldest first; the step ended
    assert active[runs["agent"]]["parent_id"] == runs["step"]
    # the pipeline's tree holds its finished step and the step's running agent
    assert active[runs["pipeline"]]["cost_usd"] == 6.0
    assert active[runs["agent"]]["cost_usd"] == 3.0
    assert view["stopped_runs"] == [] and view["problems"] == []


def test_the_children_index_is_checked_not_trusted(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    parent = store.create("pipeline", input={})
    first = store.create("step", input={}, parent=parent)
    second = store.create("step", input={}, parent=parent)
    assert [c.id for c in store.children(parent.id)] == [second.id, first.id]
    assert store.children(first.id) == []

    index = parent.dir / "children"
    (index / "20261125T120000.000000Z-step-abcdef").touch()  # a create that died unpublished
    stranger = store.create("agent", input={})
    (index / stranger.id).touch()  # names a run whose record says otherwise
    (index / "notes.txt").touch()
    assert [c.id for c in store.children(parent.id)] == [second.id, first.id]

    second.paths.run_json.write_text("{torn")  # unreadable: kept, with its problem
    listed = store.children(parent.id)
    assert [c.id for c in listed] == [second.id, first.id]
    assert listed[0].record is None and listed[0].problem


def test_a_run_from_before_the_index_finds_its_children_by_listing(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    parent = store.create("pipeline", input={})
    os.rmdir(parent.dir / "children")  # as an older agentctl made it
    child = store.create("step", input={}, parent=parent)
    assert not (parent.dir / "children").exists()  # not claimed complete afterwards either
    assert [c.id for c in store.children(parent.id)] == [child.id]
    grandchild = store.create("agent", input={}, parent=child)  # the child is indexed
    other = store.create("pipeline", input={})
    assert store.descendants(parent.id) == {parent.id, child.id, grandchild.id}
    assert store.descendants(child.id) == {child.id, grandchild.id}
    assert store.descendants(other.id) == {other.id}


def test_a_young_live_marker_without_its_run_is_kept(tmp_path: Path) -> None:
    """``create`` marks a run live just before renaming it into place: a reader in that
    moment must not drop the marker, or the reaper never sees the run."""
    store = RunStore(tmp_path)
    store.create("agent", input={})
    young = store.runs_dir / LIVE / "20261125T120000.000000Z-agent-aaaaaa"
    old = store.runs_dir / LIVE / "20261125T110000.000000Z-agent-bbbbbb"
    young.touch()
    old.touch()
    hours_ago = (datetime.now(UTC) - timedelta(hours=2)).timestamp()
    os.utime(old, (hours_ago, hours_ago))
    assert len(store.live()) == 1
    assert young.exists()
    assert not old.exists()  # a create that died long ago: forgotten


def test_a_listing_judges_names_as_parse_run_id_does() -> None:
    from agentctl.runs import parse_run_id
    from agentctl.runs.ids import run_ids_in

    names = [
        "20261125T212433.482913Z-agent-7f3a9c",
        "20261125T212433.482913Z-newkind_2-7f3a9c",  # a kind from a newer agentctl
        "20261325T212433.482913Z-agent-7f3a9c",  # month 13
        "20260230T212433.482913Z-agent-7f3a9c",  # 30 February
        "20240229T235959.000000Z-step-000000",  # a leap day
        "20261125T242433.482913Z-agent-7f3a9c",  # hour 24
        "20261125T216033.482913Z-agent-7f3a9c",  # minute 60
        "20261125T212460.482913Z-agent-7f3a9c",  # second 60
        "20261125T212433.482913Z-Agent-7f3a9c",
        "20261125T212433.482913Z-agent-7f3a9c.tmp",
        "x\n20261125T212433.482913Z-agent-7f3a9d",  # a newline cannot smuggle a name in
        ".live",
        "",
    ]
    assert run_ids_in(names) == [n for n in names if parse_run_id(n) is not None]
    parsed = [(n, parse_run_id(n)) for n in names]
    assert run_ids_in(names, "step") == [n for n, p in parsed if p is not None and p[1] == "step"]


def test_list_since_reads_no_older_run(tmp_path: Path) -> None:
    old = make_finished_runs(tmp_path, 3, start=datetime(2026, 11, 1, tzinfo=UTC))
    (tmp_path / "runs" / old[0] / "run.json").write_text("{torn")
    new = make_finished_runs(tmp_path, 2, start=datetime(2026, 11, 20, tzinfo=UTC))
    store = RunStore(tmp_path)
    since = datetime(2026, 11, 20, tzinfo=UTC)
    assert [x.id for x in store.list(since=since)] == new[::-1]
    assert all(x.problem is None for x in store.list(since=since))
    assert [x.id for x in store.list(since=since + timedelta(seconds=1))] == [new[1]]


def test_runs_list_of_unfinished_runs_opens_no_finished_run(workspace: Path) -> None:
    old = make_finished_runs(workspace / ".agentctl", 100)
    runs = busy_history(workspace, 0)
    shown, opened = opens(workspace, "runs", "list", "--json", "--status", "running")
    assert [r["id"] for r in shown] == [runs["agent"], runs["pipeline"]]  # newest first
    assert not {Path(p).parent.name for p in opened if p.endswith("run.json")} & set(old)
    shown, _ = opens(workspace, "runs", "list", "--json", "--status", "paused")
    assert shown == []
    shown, _ = opens(workspace, "runs", "list", "--json", "--status", "running", "--kind", "agent")
    assert [r["id"] for r in shown] == [runs["agent"]]
    shown, _ = opens(
        workspace, "runs", "list", "--json", "--status", "running", "--parent", runs["step"]
    )
    assert [r["id"] for r in shown] == [runs["agent"]]
