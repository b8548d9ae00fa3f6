"""``runs list|show|tail`` over run directories made through the library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agentctl.runs import RunStore
from agentctl.testing.runs import make_finished_runs
from tests.conftest import Invoke


def test_runs_list_json_over_1000_runs(repo: Path, cli: Invoke) -> None:
    ids = make_finished_runs(repo / ".agentctl", 1000)
    result = cli("runs", "list", "--json", "--all", cwd=repo)
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.output)
    assert [r["id"] for r in rows] == list(reversed(ids))
    assert {r["status"] for r in rows} == {"succeeded", "failed", "canceled"}
    assert all(r["duration_s"] == 4.0 for r in rows)
    newest = json.loads(cli("runs", "list", "--json").output)  # like the table: 50
    assert [r["id"] for r in newest] == list(reversed(ids))[:50]
    agents = json.loads(cli("runs", "list", "--json", "--kind", "agent", "--all").output)
    assert len(agents) == 334 and all(r["role"] == "dev" for r in agents)
    failed = json.loads(cli("runs", "list", "--json", "--status", "failed", "--limit", "5").output)
    assert len(failed) == 5 and all(r["status"] == "failed" for r in failed)
    table = cli("runs", "list", env={"COLUMNS": "200"}).output
    assert ids[-1] in table and "950 more (use --limit N or --all)" in table


def test_runs_list_marks_corrupt_and_stale_runs(repo: Path, cli: Invoke) -> None:
    store = RunStore(repo / ".agentctl")
    good = store.create("agent", input={"task": "t"}, role="dev")
    corrupt = store.create("agent", input={"task": "t"})
    corrupt.paths.run_json.write_text("{not json")
    gone = store.create("pipeline", input={})
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(child.stdout)
    gone.mark_started(dead_pid, dead_pid)
    rows = {r["id"]: r for r in json.loads(cli("runs", "list", "--json", cwd=repo).output)}
    assert rows[good.id]["display_status"] == "pending"
    assert rows[corrupt.id]["display_status"] == "corrupt"
    assert "run.json" in rows[corrupt.id]["problem"]
    assert rows[gone.id]["status"] == "running"
    assert rows[gone.id]["stale"] == f"process {dead_pid} is gone"
    shown = cli("runs", "show", corrupt.id)
    assert shown.exit_code == 0 and "problem:" in shown.output


def test_runs_show_and_tail(repo: Path, cli: Invoke) -> None:
    store = RunStore(repo / ".agentctl")
    parent = store.create("pipeline", input={"task": "fix the bug"}, pipeline="feature")
    child = store.create("agent", input={"task": "implement"}, parent=parent, role="dev")
    parent.mark_started(os.getpid(), os.getpgid(0))
    for turn in range(30):
        parent.journal.append("step.start", step=f"s{turn}")
    parent.write_output({"merged": "abc123"})
    parent.transition("succeeded")
    info = json.loads(cli("runs", "show", parent.id[-6:], "--json", cwd=repo).output)
    assert info["record"]["status"] == "succeeded"
    assert info["input"] == {"task": "fix the bug"}
    assert info["output"] == {"merged": "abc123"}
    assert info["children"] == [child.id]
    text = cli("runs", "show", parent.id).output
    assert "status:      succeeded" in text and "children:" in text
    tail = cli("runs", "tail", parent.id, "-n", "3").output.splitlines()
    assert len(tail) == 3 and "status" in tail[-1]
    lines = cli("runs", "tail", parent.id, "--json", "-n", "0").output.splitlines()
    assert lines == []
    events = [
        json.loads(x)
        for x in cli("runs", "tail", parent.id, "--json", "-n", "100").output.splitlines()
    ]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_runs_tail_follow_stops_when_the_run_ends(repo: Path, cli: Invoke) -> None:
    run = RunStore(repo / ".agentctl").create("agent", input={})
    run.mark_started(os.getpid(), os.getpgid(0))

    def work() -> None:
        for i in range(3):
            time.sleep(0.05)
            run.journal.append("tool.call", n=i)
        run.transition("succeeded")

    writer = threading.Thread(target=work)
    writer.start()
    result = cli("runs", "tail", run.id, "-f", "--json", cwd=repo)
    writer.join()
    types = [json.loads(x)["type"] for x in result.output.splitlines()]
    assert types.count("tool.call") == 3 and types[-1] == "status"


def test_unknown_and_ambiguous_run_refs(repo: Path, cli: Invoke) -> None:
    make_finished_runs(repo / ".agentctl", 3)
    result = cli("runs", "show", "nope", cwd=repo)
    assert result.exit_code == 2 and "agentctl runs list" in result.stderr
    result = cli("runs", "show", "2026")
    assert result.exit_code == 2 and "matches 3 runs" in result.stderr
    result = cli("runs", "list", "--status", "done")
    assert result.exit_code == 2 and "unknown status" in result.stderr


def test_no_runs_yet_does_not_create_state(repo: Path, cli: Invoke) -> None:
    result = cli("runs", "list", cwd=repo)
    assert result.exit_code == 0 and "no runs yet" in result.output
    assert not (repo / ".agentctl").exists()


HEAVY = ("anthropic", "openai", "gql", "git", "graphql", "httpx", "httpx2", "pydantic_core")


@pytest.mark.parametrize("argv", [["--help"], ["runs", "list"], ["runs", "list", "--json"]])
def test_fast_commands_import_no_sdk(repo: Path, argv: list[str]) -> None:
    """--help and runs list must not pay for a model SDK, gql or GitPython (~1 s of imports)."""
    make_finished_runs(repo / ".agentctl", 5)
    code = (
        "import sys\nfrom agentctl.cli import main\nsys.argv = ['agentctl', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=repo, capture_output=True, text=True, timeout=30
    )
    assert "HEAVY []" in done.stderr, done.stderr
