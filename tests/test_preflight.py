"""Preflight: what would make the gate or the merge impossible is refused at $0, first.

Through the real CLI with scripted models: a refused pipeline sends no request, makes
no run and costs nothing; the orchestrator says a refusal once and claims nothing; a
gate that cannot run its program (exit 127) stops the pipeline without a dev round.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.commands.demo import prepare
from agentctl.config import load_config
from agentctl.errors import MergeRefusedError
from agentctl.forges import Review
from agentctl.forges.local import LocalForge
from agentctl.orchestrator.home import Home
from agentctl.orchestrator.tick import Tick
from agentctl.pipeline.mergequeue import merge_pr
from agentctl.pipeline.preflight import missing_programs
from agentctl.repo import gitops
from agentctl.runs import TERMINAL, RunStore
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.trackers.local import LocalTracker
from agentctl.workspace import find_workspace
from tests.conftest import Invoke, git, make_repo

FIX = [
    Turn.tool_call("edit", {"path": "calc.py", "old": "return a - b", "new": "return a + b"}),
    Turn.text("Fixed."),
]
APPROVE = [Turn.tool_call("finish", {"verdict": "approve", "summary": "Good.", "comments": []})]
MISSING = "agentctl-no-such-tool"


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo's project and config (committed), without the demo's script."""
    root = prepare(tmp_path / "project", server, scripted=False).root
    monkeypatch.chdir(root)
    return root


def configure(root: Path, old: str, new: str) -> None:
    """Change agentctl.toml and commit it (an uncommitted config is itself refused)."""
    config = root / "agentctl.toml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))
    git(root, "commit", "-qam", "config")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def assert_refused_at_no_cost(root: Path, server: LLMServer, cli: Invoke, result: object) -> str:
    """Exit 2, one line on stderr, no request, no run, nothing in the ledger."""
    assert result.exit_code == 2, result.stdout + result.stderr  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("agentctl: error: preflight: "), lines
    assert server.requests == []
    assert RunStore(root / ".agentctl").list() == []
    cost = json.loads(cli("cost", "--json").stdout)
    assert cost["total"]["calls"] == 0 and cost["total"]["cost_usd"] == 0
    return str(lines[0])


def test_uncommitted_changes_on_the_base_checkout_are_refused_before_any_model_call(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", *APPROVE)
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\nedited by hand\n")
    line = assert_refused_at_no_cost(
        project, server, cli, cli("pipeline", "run", "feature", "--task", "Fix add()")
    )
    assert f"main is checked out in {project} with uncommitted changes" in line
    assert "README.md" in line and "commit or stash them" in line
    git(project, "commit", "-qam", "the edit, committed")  # the fix the line asks for
    result = cli("pipeline", "run", "feature", "--task", "Fix add()")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "merged" in result.stdout
    server.assert_complete()


def test_a_test_command_whose_program_is_missing_is_refused_before_any_model_call(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("demo-coder", *FIX)
    old = 'test_command = "python -m unittest -q"'
    configure(project, old, f'test_command = "{MISSING} ./..."')
    line = assert_refused_at_no_cost(
        project, server, cli, cli("pipeline", "run", "feature", "--task", "Fix add()")
    )
    assert f"`{MISSING} ./...` cannot run: '{MISSING}' is not on PATH" in line
    assert f"install {MISSING}, or fix [project] test_command in agentctl.toml" in line


def test_an_unreachable_local_endpoint_is_refused_naming_its_url(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    configure(project, f'base_url = "{server.openai_url}"', f'base_url = "{url}"')
    line = assert_refused_at_no_cost(
        project, server, cli, cli("pipeline", "run", "demo", "--ticket", "T-1")
    )
    assert f"model demo-coder's endpoint {url} does not answer" in line
    assert "role dev cannot run" in line and f"start the server at {url}" in line
    shown = json.loads(cli("tickets", "show", "T-1", "--json").stdout)
    assert shown["state"] == "Todo"  # nothing started, nothing moved


def test_dry_run_shows_the_preflight(project: Path, server: LLMServer, cli: Invoke) -> None:
    (project / "calc.py").write_text("# changed\n")
    plan = json.loads(
        cli("pipeline", "run", "feature", "--task", "x", "--dry-run", "--json").stdout
    )
    found = {c["check"]: c for c in plan["preflight"]}
    assert found["base checkout"]["status"] == "fail"
    assert found["test command"]["status"] == "ok"
    assert server.requests == [] and RunStore(project / ".agentctl").list() == []


def test_a_gate_that_exits_127_stops_the_pipeline_without_another_dev_round(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    """A program the preflight cannot see (a script of the repository) is missing."""
    configure(
        project,
        'test_command = "python -m unittest -q"',
        'test_command = "python -m unittest -q && tools/lint"',
    )
    server.script("demo-coder", *FIX)  # one round only: a second would find no turn
    result = cli("pipeline", "run", "feature", "--task", "Fix add()")
    assert result.exit_code == 1, result.stdout + result.stderr
    assert (
        "`python -m unittest -q && tools/lint` could not run (exit 127: command not found): "
        "make tools/lint exist and executable or fix [project] test_command"
    ) in result.stdout
    assert [r.model for r in server.requests] == ["demo-coder", "demo-coder"]
    server.assert_complete()


def test_the_orchestrator_reports_a_refusal_once_and_claims_nothing(
    project: Path, server: LLMServer
) -> None:
    with (project / "agentctl.toml").open("a") as config:
        config.write('\n[orchestrator]\ntriage = "none"\nmax_parallel = 1\n')
    git(project, "commit", "-qam", "orchestrator settings")
    gitignore = project / ".gitignore"
    gitignore.write_text(gitignore.read_text() + "*.log\n")  # tracked, now modified
    home = Home.of(project / ".agentctl")

    def tick():  # type: ignore[no-untyped-def]
        return Tick(load_config(find_workspace(project))).run()

    first = tick()
    assert first.started == [] and len(first.errors) == 1, first
    assert first.errors[0].startswith("coding-pipeline: preflight: main is checked out in ")
    assert "(.gitignore)" in first.errors[0] and "agentctl init --commit" in first.errors[0]
    second = tick()
    assert second.started == [] and second.errors == first.errors
    reports = [m.body for m in home.outbox.read()]
    assert len(reports) == 1 and reports[0]["errors"] == first.errors  # said once
    assert home.lease("T-1") is None  # never claimed
    ticket = LocalTracker(project / ".agentctl").get("T-1")
    assert ticket.state == "Todo" and not ticket.comments
    assert RunStore(project / ".agentctl").list() == [] and server.requests == []
    git(project, "commit", "-qam", "ignore logs")  # fixed: the next tick starts the ticket
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", *APPROVE)
    third = tick()
    assert len(third.started) == 1 and third.errors == [], third
    store = RunStore(project / ".agentctl")
    (listing,) = store.list(kind="pipeline")
    for _ in range(900):
        record = store.get(listing.id).load()
        if record.status in TERMINAL:
            break
        time.sleep(0.1)
    assert store.get(listing.id).load().status == "succeeded"
    server.assert_complete()


def test_init_says_what_to_commit_and_init_commit_leaves_a_clean_status(
    tmp_path: Path, cli: Invoke
) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / ".gitignore").write_text("*.pyc\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-qm", "ignore bytecode")
    result = cli("init", cwd=repo)
    assert result.exit_code == 0, result.output
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == "M .gitignore"
    assert (
        "not committed yet: .gitignore HEARTBEAT.md agentctl.toml pipelines/ roles/"
        in result.stdout
    )
    assert "agentctl init --commit" in result.stdout
    refused = cli("pipeline", "run", "feature", "--task", "x")  # spent nothing, said why
    assert refused.exit_code == 2 and "uncommitted changes to tracked files (.gitignore)" in (
        refused.stderr
    )
    (repo / "notes.txt").write_text("mine, not agentctl's\n")
    committed = cli("init", "--commit", "--json")
    assert committed.exit_code == 0, committed.output
    data = json.loads(committed.stdout)
    assert data["commit"] and data["uncommitted"] == []
    assert git(repo, "status", "--porcelain") == "?? notes.txt"  # only what init wrote
    assert git(repo, "log", "-1", "--format=%s") == "agentctl workspace: config, roles, pipelines"
    shown = git(repo, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert ".gitignore" in shown and "agentctl.toml" in shown and "roles/dev.toml" in shown


def test_doctor_runs_the_same_preflight(project: Path, server: LLMServer, cli: Invoke) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    configure(project, f'base_url = "{server.openai_url}"', f'base_url = "{url}"')
    configure(project, 'test_command = "python -m unittest -q"', f'test_command = "{MISSING}"')
    (project / "README.md").write_text("edited\n")
    result = cli("doctor", "--json")
    assert result.exit_code == 1, result.output
    checks = [c for c in json.loads(result.stdout)["checks"] if c["name"].startswith("preflight")]
    by_name = {c["name"]: c for c in checks}
    assert by_name["preflight base branch"]["status"] == "ok"
    assert by_name["preflight base checkout"]["status"] == "warn"
    assert "README.md" in by_name["preflight base checkout"]["detail"]
    assert by_name["preflight test command"]["status"] == "fail"
    assert f"install {MISSING}" in by_name["preflight test command"]["hint"]
    endpoint = [c for c in checks if url in c["detail"]]
    assert len(endpoint) == 1 and endpoint[0]["status"] == "warn"
    assert server.requests == []


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        (f"{MISSING} test ./...", [MISSING]),
        (f"FOO=1 {MISSING} test", [MISSING]),
        (f"cd sub && {MISSING} test", [MISSING]),
        (f"python -m pytest -q 2>&1 | {MISSING}", [MISSING]),
        (f"env -i LANG=C {MISSING}", [MISSING]),
        (f"{MISSING} || true", [MISSING]),  # the first command still runs
        (f". .venv/bin/activate && {MISSING}", []),  # PATH may change: not ours to judge
        (f"command -v {MISSING} || exit 0", []),
        (f"if true; then {MISSING}; fi", []),
        (f"PATH=/opt/bin:$PATH; {MISSING}", []),
        (f"PATH=/opt/bin {MISSING}", []),
        (f"$TOOL {MISSING}", []),
        (f"python -m pytest && ./{MISSING}", []),  # relative to a worktree not made yet
        (f"/nonexistent/{MISSING} run", [f"/nonexistent/{MISSING}"]),
        ("exit 127", []),
        ("echo 'unbalanced", []),
    ],
)
def test_which_programs_a_command_needs(command: str, missing: list[str]) -> None:
    assert missing_programs(command) == missing


def test_the_merge_queue_says_its_gate_could_not_run_and_merges_nothing(repo: Path) -> None:
    """Exit 127 is the machine's problem: refused as such, not a red gate for a dev round."""
    state = repo / ".agentctl"
    forge = LocalForge(repo, state)
    tree = gitops.ensure_worktree(repo, state, "topic", "main")
    (tree / "feature.txt").write_text("done\n")
    assert gitops.commit_all(tree, "topic: work") is not None
    pr = forge.open_pr(branch="topic", base="main", title="topic", body="")
    forge.add_review(pr.number, Review("approve", "looked at it"))
    main = git(repo, "rev-parse", "main")
    with pytest.raises(MergeRefusedError) as refused:
        merge_pr(forge, pr.number, repo_root=repo, state_dir=state, gate=f"{MISSING} run")
    assert (
        f"the merge queue's gate cannot run: `{MISSING} run` could not run "
        f"(exit 127: command not found): install {MISSING} or fix [project] test_command"
    ) in str(refused.value)
    assert forge.get_pr(pr.number).state == "open" and git(repo, "rev-parse", "main") == main


REVIEW_THEN_MERGE = """\
description = "a change, its review, the merge queue (whose gate is the test command)"

[[steps]]
id = "worktree"
uses = "git.worktree"

[[steps]]
id = "implement"
role = "dev"
prompt = "{inputs.task}"

[[steps]]
id = "commit"
uses = "git.commit"
with = { message = "{inputs.task}" }

[[steps]]
id = "review"
role = "review"
prompt = "Review it."

[[steps]]
id = "merge"
uses = "forge.merge"
on_fail = { goto = "implement", max = 2 }
"""


def test_a_merge_the_queue_refuses_sends_no_dev_round(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    """The merge gate's program cannot run (127): the machine's problem, not the change's."""
    (project / "gate.sh").write_text("exit 127\n")
    (project / "pipelines" / "merge-only.toml").write_text(REVIEW_THEN_MERGE)
    git(project, "add", "-A")
    configure(project, 'test_command = "python -m unittest -q"', 'test_command = "sh gate.sh"')
    server.script(
        "demo-coder",
        Turn.tool_call("edit", {"path": "calc.py", "old": "a - b", "new": "a + b"}),
        Turn.text("Fixed."),
    )
    server.script(
        "demo-reviewer",
        Turn.tool_call("finish", {"verdict": "approve", "summary": "Good.", "comments": []}),
    )
    head = git(project, "rev-parse", "main")
    result = cli("pipeline", "run", "merge-only", "--task", "Fix add()")
    assert result.exit_code == 1
    assert "could not run (exit 127" in result.stdout, result.stdout
    assert "back to implement" not in result.stderr
    assert git(project, "rev-parse", "main") == head
    server.assert_complete()  # one dev round, one review, and nothing after the refusal


def test_a_setup_command_that_cannot_run_stops_before_any_agent(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    """126 (not executable) from the setup command: said as such, no model call."""
    (project / "build.sh").write_text("#!/bin/sh\necho built\n")  # not executable
    git(project, "add", "build.sh")
    configure(
        project,
        'base_branch = "main"\n',
        'base_branch = "main"\nsetup_command = "./build.sh"\ngate_sandbox = "none"\n',
    )
    result = cli("pipeline", "run", "feature", "--task", "Fix add()")
    assert result.exit_code == 1
    assert "could not run (exit 126: not executable)" in result.stdout, result.stdout
    assert server.requests == []
