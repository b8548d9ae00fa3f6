"""Pipelines end to end: real processes, real git, scripted models; crashes and resumes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.commands.demo import prepare
from agentctl.runs import RunStore, read_journal
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke, git


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


def unittest_passes(path: Path) -> bool:
    done = subprocess.run([sys.executable, "-m", "unittest", "-q"], cwd=path, capture_output=True)
    return done.returncode == 0


def merged_once(repo: Path) -> bool:
    """One PR, merged, and its merge SHA is what main points at (or an ancestor of it)."""
    (pr,) = pr_records(repo)
    sha = str(pr["merge_sha"])
    on_main = git(repo, "merge-base", "--is-ancestor", sha, "main") == ""
    return pr["state"] == "merged" and on_main


def pr_records(repo: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted((repo / ".agentctl" / "prs").glob("*.json"))]


def test_demo_runs_a_ticket_end_to_end(tmp_path: Path, cli: Invoke) -> None:
    target = tmp_path / "demo"
    result = cli("demo", "--dir", str(target), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "SCRIPTED" in result.stdout
    assert "↺ review: changes requested → round 2" in result.stderr
    assert "review failed" not in result.stderr
    assert "ticket T-1: Done" in result.stdout
    assert "what it cost" in result.stdout and "total" in result.stdout
    assert unittest_passes(target)  # main holds the fix and the new test, and passes
    assert "test_add_negative" in (target / "test_calc.py").read_text()
    (pr,) = pr_records(target)
    assert pr["state"] == "merged"
    assert [r["verdict"] for r in pr["reviews"]] == ["request_changes", "approve"]  # type: ignore[index]


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo's project and config, without the demo's script."""
    demo = prepare(tmp_path / "project", server, scripted=False)
    monkeypatch.chdir(demo.root)
    return demo.root


FIX = [
    Turn.tool_call("edit", {"path": "calc.py", "old": "return a - b", "new": "return a + b"}),
    Turn.text("Fixed."),
]
APPROVE = [
    Turn.tool_call("finish", {"verdict": "approve", "summary": "Good.", "comments": []}),
]


def test_a_new_feature_pipeline_runs_to_a_merge(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    result = cli("pipeline", "new", "fix-add", "--from", "feature", "--task", "Fix add()")
    assert result.exit_code == 0, result.stderr
    assert 'extends = "feature"' in (project / "pipelines" / "fix-add.toml").read_text()
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", *APPROVE)
    result = cli("pipeline", "run", "fix-add")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "merged" in result.stdout
    assert unittest_passes(project)
    assert merged_once(project)
    server.assert_complete()


def test_a_red_gate_loops_back_with_its_output_then_fails_clearly(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    attempts = [
        Turn.tool_call("write", {"path": f"note{i}.txt", "content": "not a fix"}) for i in range(3)
    ]
    server.script("demo-coder", *[t for a in attempts for t in (a, Turn.text("done?"))])
    head = git(project, "rev-parse", "main")
    result = cli("pipeline", "run", "feature", "--task", "Fix add()")
    assert result.exit_code == 1
    assert "step 'test' failed 3 times (on_fail max 2)" in result.stdout
    assert "FAILED" in result.stdout  # the unittest output is in the reason
    second = [r for r in server.requests if r.model == "demo-coder"][2].body["messages"]
    assert "Step 'test' failed with" in second[1]["content"]  # the failure went to the dev agent
    assert git(project, "rev-parse", "main") == head  # main untouched
    server.assert_complete()


@pytest.mark.parametrize(
    "failpoint",
    ["pipeline.after_action", "pipeline.after_child_start", "pipeline.after_gate"],
)
def test_kill_9_in_a_step_then_resume_makes_one_pr_and_one_merge(
    project: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch, failpoint: str
) -> None:
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", *APPROVE)
    monkeypatch.setenv("AGENTCTL_FAILPOINT", failpoint)
    first = cli("pipeline", "run", "demo", "--ticket", "T-1")
    monkeypatch.delenv("AGENTCTL_FAILPOINT")
    (listing,) = RunStore(project / ".agentctl").list(kind="pipeline")
    assert first.exit_code == 1 and listing.record and listing.record.status == "running"
    resumed = cli("runs", "resume", listing.id)
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    assert merged_once(project)
    assert unittest_passes(project)
    events = read_journal(listing.dir / "events.jsonl").events
    assert sum(e["type"] == "merge.result" for e in events) == 1
    # The step the kill interrupted is not left `running` for ever.
    left = [
        r.id
        for r in RunStore(project / ".agentctl").list()
        if r.record and r.record.status == "running"
    ]
    assert left == []
    server.assert_complete()


def test_dry_run_prints_steps_models_and_a_cost_range(project: Path, cli: Invoke) -> None:
    result = cli("pipeline", "run", "demo", "--ticket", "T-1", "--dry-run", "--json")
    plan = json.loads(result.stdout)
    assert [s["id"] for s in plan["steps"]][:3] == ["worktree", "start", "implement"]
    assert plan["steps"][2]["model"] == "demo-coder"
    assert 0 < plan["cost_usd"]["low"] < plan["cost_usd"]["high"] <= 2.0
    assert RunStore(project / ".agentctl").list() == []  # nothing ran


def test_an_unknown_pipeline_lists_what_exists(project: Path, cli: Invoke) -> None:
    result = cli("pipeline", "run", "featur")
    assert result.exit_code == 2 and "did you mean 'feature'?" in result.stderr


def test_a_budget_reached_mid_pipeline_pauses_and_resume_completes_after_raising_it(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    demo = project / "pipelines" / "demo.toml"
    demo.write_text(demo.read_text().replace("budget_usd = 2.0", "budget_usd = 0.00001"))
    git(project, "commit", "-qam", "a tiny budget")  # the merge refuses uncommitted changes
    result = cli("pipeline", "run", "demo", "--ticket", "T-1")
    assert result.exit_code == 1 and "paused (budget)" in result.stdout
    assert server.requests == []  # no call that could pass the budget was sent
    demo.write_text(demo.read_text().replace("budget_usd = 0.00001", "budget_usd = 2.0"))
    git(project, "commit", "-qam", "the budget raised")
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", *APPROVE)
    (listing,) = RunStore(project / ".agentctl").list(kind="pipeline")
    resumed = cli("runs", "resume", listing.id)
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    assert merged_once(project) and unittest_passes(project)
    server.assert_complete()


CONFLICTING = """\
description = "implement, then a change lands on main, then merge"

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

[[steps]]
id = "review"
role = "review"

[[steps]]
id = "meanwhile"
run = "cd {project.root} && sed -i 's/a - b/b + a/' calc.py && git commit -qam 'fixed on main'"

[[steps]]
id = "merge"
uses = "forge.merge"
"""


def test_a_conflict_with_main_fails_clearly_and_never_breaks_main(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    (project / "pipelines" / "conflict.toml").write_text(
        CONFLICTING.replace("{project.root}", str(project))
    )
    # The "meanwhile" step stands for a person committing on main: outside any sandbox.
    config = project / "agentctl.toml"
    config.write_text(
        config.read_text().replace("[project]\n", '[project]\ngate_sandbox = "none"\n')
    )
    git(project, "commit", "-qam", "gates unsandboxed")  # preflight: a clean base checkout
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", *APPROVE)
    result = cli("pipeline", "run", "conflict", "--task", "Fix add()")
    assert result.exit_code == 1
    assert "merge conflict" in result.stdout and "calc.py" in result.stdout
    assert git(project, "log", "-1", "--format=%s", "main") == "fixed on main"
    assert unittest_passes(project)  # main is whole: the other fix, not a half-merge
    assert git(project, "status", "--porcelain", "--untracked-files=no") == ""


def test_coding_pipeline_stops_at_a_reviewed_pr_for_the_orchestrator(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", *APPROVE)
    result = cli("pipeline", "run", "coding-pipeline", "--ticket", "T-1")
    assert result.exit_code == 0, result.stdout + result.stderr
    (pr,) = pr_records(project)
    assert pr["state"] == "open" and pr["branch"] == "agentctl/T-1"
    assert [r["verdict"] for r in pr["reviews"]] == ["approve"]  # type: ignore[index]
    shown = json.loads(cli("tickets", "show", "T-1", "--json").stdout)
    assert shown["state"] == "In Review"
    assert "fixed" not in git(project, "log", "--format=%s", "main").lower()  # not merged
    server.assert_complete()


def test_review_pr_records_its_verdict_on_the_branch_pr(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    git(project, "branch", "topic")
    verdict = {
        "verdict": "request_changes",
        "summary": "Needs tests.",
        "comments": [{"file": "calc.py", "line": 5, "body": "test this"}],
    }
    server.script("demo-reviewer", Turn.tool_call("finish", verdict))
    result = cli("pipeline", "run", "review-pr", "--set", "branch=topic")
    assert result.exit_code == 1  # request_changes: the review step did not pass
    (pr,) = pr_records(project)
    assert pr["branch"] == "topic"
    assert pr["reviews"][0]["verdict"] == "request_changes"  # type: ignore[index]
    assert pr["reviews"][0]["comments"] == [{"body": "calc.py:5: test this"}]  # type: ignore[index]


def test_research_writes_its_answer_into_a_report(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    (project / "roles" / "research.toml").write_text(
        (project / "roles" / "research.toml")
        .read_text()
        .replace('model = ["qwen3-32b", "haiku", "sonnet"]', 'model = "demo-coder"')
    )
    server.script("demo-coder", Turn.text("# Answer\n\nadd() subtracts (calc.py:5)."))
    result = cli("pipeline", "run", "research", "--task", "Why does test_add fail?", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)["steps"]["report"]["path"]
    assert Path(report).read_text() == "# Answer\n\nadd() subtracts (calc.py:5).\n"


def test_coding_pipeline_run_again_continues_from_the_pr_review(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    changes = {
        "verdict": "request_changes",
        "summary": "Also test negatives.",
        "comments": [{"file": "test_calc.py", "line": 8, "body": "add a negative case"}],
    }
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", Turn.tool_call("finish", changes))
    assert cli("pipeline", "run", "coding-pipeline", "--ticket", "T-1").exit_code == 1
    server.script(
        "demo-coder",
        Turn.tool_call("write", {"path": "test_negative.py", "content": "# a negative case\n"}),
        Turn.text("Added."),
    )
    server.script("demo-reviewer", *APPROVE)
    again = cli("pipeline", "run", "coding-pipeline", "--ticket", "T-1")
    assert again.exit_code == 0, again.stdout + again.stderr
    (pr,) = pr_records(project)  # the same PR, not a second one
    assert [r["verdict"] for r in pr["reviews"]] == ["request_changes", "approve"]  # type: ignore[index]
    first_prompt = [r for r in server.requests if r.model == "demo-coder"][2].body["messages"][1]
    assert "add a negative case" in first_prompt["content"]
    server.assert_complete()


def test_a_branch_that_conflicts_with_main_goes_to_the_dev_agent_to_resolve(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    """A second round on a ticket's branch after main moved: the agent resolves, git commits."""
    git(project, "switch", "-q", "-c", "agentctl/T-1")
    calc = project / "calc.py"
    calc.write_text(calc.read_text().replace("return a - b", "return a + b  # branch"))
    git(project, "commit", "-qam", "round one on the branch")
    git(project, "switch", "-q", "main")
    calc.write_text(calc.read_text().replace("return a - b", "return b + a  # main"))
    git(project, "commit", "-qam", "fixed on main meanwhile")
    resolved = calc.read_text().replace("return b + a  # main", "return a + b")
    server.script(
        "demo-coder",
        Turn.text("I looked at it."),  # leaves the markers: the commit step refuses
        Turn.tool_call("write", {"path": "calc.py", "content": resolved}),
        Turn.text("Resolved the conflict."),
    )
    server.script("demo-reviewer", *APPROVE)
    result = cli("pipeline", "run", "coding-pipeline", "--ticket", "T-1")
    assert result.exit_code == 0, result.stdout + result.stderr
    asked = [json.dumps(r.body) for r in server.requests if r.model == "demo-coder"]
    assert "conflicted in: calc.py" in asked[0]  # the first attempt is told why
    assert "conflict markers are still in calc.py" not in asked[0]
    assert "conflict markers are still in calc.py" in asked[1]  # the second, what is left
    head = git(project, "rev-parse", "agentctl/T-1")
    assert len(git(project, "rev-list", "--parents", "-n", "1", head).split()) == 3  # a merge
    merged_file = git(project, "show", "agentctl/T-1:calc.py")
    assert "<<<<<<<" not in merged_file and "return a + b" in merged_file
    assert git(project, "merge-base", "--is-ancestor", "main", "agentctl/T-1") == ""
    server.assert_complete()
