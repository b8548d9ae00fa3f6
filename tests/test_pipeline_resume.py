"""A failed pipeline, resumed once the cause is fixed, runs the failed step again.

Each step kind fails once for a reason outside the code (a missing API key, a
missing program, a missing base branch), is fixed, and ``runs resume`` re-runs
that same step, then carries on to a merge.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.commands.demo import prepare
from agentctl.runs import RunStore, read_journal
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke, git
from tests.test_pipeline_run import APPROVE, FIX, merged_once, unittest_passes


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    demo = prepare(tmp_path / "project", server, scripted=False)
    monkeypatch.chdir(demo.root)
    return demo.root


def pipeline_run(project: Path) -> tuple[str, Path]:
    (listing,) = RunStore(project / ".agentctl").list(kind="pipeline")
    return listing.id, listing.dir


def starts(run_dir: Path) -> list[str]:
    return [
        str(e["step"])
        for e in read_journal(run_dir / "events.jsonl").events
        if e["type"] == "step.start"
    ]


def test_a_role_step_failed_for_a_missing_key_runs_again_on_resume(
    project: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project / "agentctl.toml"
    config.write_text(
        config.read_text().replace(
            'name = "demo-coder"\n', 'name = "demo-coder"\napi_key_env = "SOME_KEY"\n'
        )
    )
    git(project, "commit", "-qam", "the coder's key is SOME_KEY")
    monkeypatch.delenv("SOME_KEY", raising=False)
    first = cli("pipeline", "run", "demo", "--ticket", "T-1")
    assert first.exit_code == 1
    assert "SOME_KEY" in first.stdout, first.stdout
    assert server.requests == []
    run_id, run_dir = pipeline_run(project)
    monkeypatch.setenv("SOME_KEY", "sk-test")
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", *APPROVE)
    resumed = cli("runs", "resume", run_id)
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    assert merged_once(project) and unittest_passes(project)
    assert starts(run_dir).count("implement") == 2  # the failed step, again
    assert starts(run_dir).count("commit") == 1
    children = [
        e for e in read_journal(run_dir / "events.jsonl").events if e["type"] == "step.child"
    ]
    assert [e["step"] for e in children].count("implement") == 1  # continued, not started anew
    server.assert_complete()


PLAIN = """\
description = "the feature flow without on_fail loops: a failure ends it"

[[steps]]
id = "worktree"
uses = "git.worktree"

[[steps]]
id = "implement"
role = "dev"

[[steps]]
id = "commit"
uses = "git.commit"

[[steps]]
id = "test"
run = "{project.test_command}"

[[steps]]
id = "review"
role = "review"

[[steps]]
id = "merge"
uses = "forge.merge"
"""


def plain_pipeline(project: Path, test_command: str | None = None) -> None:
    (project / "pipelines" / "plain.toml").write_text(PLAIN)
    if test_command is not None:
        config = project / "agentctl.toml"
        config.write_text(
            config.read_text().replace(
                'test_command = "python -m unittest -q"',
                f'test_command = "{test_command}"\ngate_sandbox = "none"',
            )
        )
    git(project, "add", ".")
    git(project, "commit", "-qm", "a plain pipeline")


def test_a_gate_failed_for_a_missing_program_runs_again_on_resume(
    project: Path, server: LLMServer, cli: Invoke, tmp_path: Path
) -> None:
    # The gate's own program is there (the preflight finds it), but the tool it runs is
    # not installed yet: the gate exits 127.
    tools = tmp_path / "tools"
    tools.mkdir()
    check, inner = tools / "check-calc", tools / "calc-tests"
    check.write_text(f"#!/bin/sh\nexec {inner}\n")
    check.chmod(0o755)
    plain_pipeline(project, str(check))
    server.script("demo-coder", *FIX)
    first = cli("pipeline", "run", "plain", "--task", "Fix add()")
    assert first.exit_code == 1
    assert "step 'test' failed" in first.stdout and "127" in first.stdout, first.stdout
    run_id, run_dir = pipeline_run(project)
    inner.write_text(f"#!/bin/sh\nexec {sys.executable} -m unittest -q\n")
    inner.chmod(0o755)
    server.script("demo-reviewer", *APPROVE)
    resumed = cli("runs", "resume", run_id)
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    assert merged_once(project) and unittest_passes(project)
    again = ["worktree", "implement", "commit", "test", "test", "review", "merge"]
    assert starts(run_dir) == again
    server.assert_complete()


def test_an_action_failed_for_a_refusing_hook_runs_again_on_resume(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    plain_pipeline(project)
    hook = project / ".git" / "hooks" / "pre-commit"  # worktrees share the repository's hooks
    hook.write_text("#!/bin/sh\necho 'lint service unreachable' >&2\nexit 1\n")
    hook.chmod(0o755)
    server.script("demo-coder", *FIX)
    first = cli("pipeline", "run", "plain", "--task", "Fix add()")
    assert first.exit_code == 1
    assert "step 'commit' failed" in first.stdout, first.stdout
    assert "lint service unreachable" in first.stdout
    run_id, run_dir = pipeline_run(project)
    hook.unlink()
    server.script("demo-reviewer", *APPROVE)
    resumed = cli("runs", "resume", run_id)
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    assert merged_once(project) and unittest_passes(project)
    assert starts(run_dir) == [
        "worktree",
        "implement",
        "commit",
        "commit",
        "test",
        "review",
        "merge",
    ]
    server.assert_complete()


def test_a_killed_dev_agent_fails_its_pipeline_saying_so_and_resume_continues_it(
    project: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every worker dies in its edit: the pipeline resumes it max_resumes (2) times, then fails.
    server.script("demo-coder", *[FIX[0]] * 3, *FIX)
    monkeypatch.setenv("AGENTCTL_FAILPOINT", "agent.after_tool_run")  # the dev agent's kill -9
    first = cli("pipeline", "run", "demo", "--ticket", "T-1")
    monkeypatch.delenv("AGENTCTL_FAILPOINT")
    assert first.exit_code == 1
    run_id, run_dir = pipeline_run(project)
    record = RunStore(project / ".agentctl").get(run_id).load()
    assert record.status == "failed" and record.reason is not None
    assert "None" not in record.reason and "None" not in first.stdout
    assert "the dev agent was killed 3 times (max_resumes 2)" in record.reason
    assert "the dev agent's process died (pid " in record.reason
    assert "before it finished" in first.stdout
    server.script("demo-reviewer", *APPROVE)
    resumed = cli("runs", "resume", run_id)
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    assert merged_once(project) and unittest_passes(project)
    assert starts(run_dir).count("implement") == 2
    server.assert_complete()


MERGE_GATE = """description = "a merge whose gate cannot pass, sent back to the dev agent once"

[[steps]]
id = "worktree"
uses = "git.worktree"

[[steps]]
id = "implement"
role = "dev"

[[steps]]
id = "commit"
uses = "git.commit"

[[steps]]
id = "review"
role = "review"

[[steps]]
id = "merge"
uses = "forge.merge"
with = { gate = "echo 'database unreachable' && exit 3" }
on_fail = { goto = "implement", max = 1 }
"""


def test_the_reason_names_the_merge_failure_not_the_empty_change_after_it(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    (project / "pipelines" / "merge-gate.toml").write_text(MERGE_GATE)
    git(project, "add", ".")
    git(project, "commit", "-qm", "a pipeline whose merge gate fails")
    server.script("demo-coder", *FIX, Turn.text("The code is right; nothing to change."))
    server.script("demo-reviewer", *APPROVE)
    result = cli("pipeline", "run", "merge-gate", "--task", "Fix add()")
    assert result.exit_code == 1
    run_id, _ = pipeline_run(project)
    reason = RunStore(project / ".agentctl").get(run_id).load().reason or ""
    assert reason.startswith("step 'merge' failed: merge "), reason
    assert "database unreachable" in result.stdout
    assert "then step 'commit' failed: the agent changed nothing" in result.stdout
    server.assert_complete()
