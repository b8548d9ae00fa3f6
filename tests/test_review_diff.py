"""The reviewer sees the change: git_diff against the base, through the real CLI.

The pipeline commits before it reviews, so a diff of uncommitted changes alone would
show the reviewer nothing. These drive scripted models through `agentctl` and read
what the model was sent next.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.commands.demo import prepare
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke, git

FIX = [
    Turn.tool_call("edit", {"path": "calc.py", "old": "return a - b", "new": "return a + b"}),
    Turn.text("Fixed."),
]
APPROVE = Turn.tool_call("finish", {"verdict": "approve", "summary": "Good.", "comments": []})


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo's project and config (dev: demo-coder, review: demo-reviewer), no script."""
    demo = prepare(tmp_path / "project", server, scripted=False)
    monkeypatch.chdir(demo.root)
    return demo.root


def sent(server: LLMServer, model: str) -> list[str]:
    """Each request ``model`` was sent, as JSON text."""
    return [json.dumps(r.body) for r in server.requests if r.model == model]


def tool_results(server: LLMServer, model: str) -> list[dict[str, object]]:
    """The tool results in the last request to an Anthropic-shaped ``model``."""
    last = [r for r in server.requests if r.model == model][-1].body
    return [
        block
        for message in last["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


def text_of(result: dict[str, object]) -> str:
    content = result["content"]
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content)
    return str(content)


@pytest.fixture
def branch(project: Path, tmp_path: Path) -> Path:
    """A worktree on branch feature-x: one commit, one uncommitted edit, one new file."""
    path = tmp_path / "wt"
    git(project, "worktree", "add", "-q", "-b", "feature-x", str(path), "main")
    (path / "calc.py").write_text((path / "calc.py").read_text().replace("a - b", "a + b"))
    git(path, "commit", "-q", "-am", "fix add")
    (path / "README.md").write_text("# calc\n\nNo longer buggy.\n")
    (path / "NOTES.txt").write_text("a brand new file\n")
    return path


def test_the_feature_pipeline_reviewer_sees_the_committed_change(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("demo-coder", *FIX)
    server.script("demo-reviewer", Turn.tool_call("git_diff", {}), APPROVE)
    result = cli("pipeline", "run", "feature", "--task", "Fix add()")
    assert result.exit_code == 0, result.stdout + result.stderr
    first, _ = sent(server, "demo-reviewer")
    # The prompt names the branch and the base and carries the stat.
    assert "Change under review: branch agentctl/" in first
    assert "against base main" in first
    assert re.search(r"calc\.py +\| +2 \+-", first)
    # git_diff answers with the committed change, stat first: not "(no changes)".
    (diff,) = tool_results(server, "demo-reviewer")
    text = text_of(diff)
    assert not diff.get("is_error")
    assert "(no changes)" not in text
    stat = re.search(r"calc\.py +\| +2 \+-", text)
    assert stat is not None and stat.start() < text.index("+    return a + b")
    assert "-    return a - b" in text
    server.assert_complete()


def test_git_diff_with_a_base_shows_the_branch_whole_change(
    branch: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script(
        "demo-coder",
        Turn.tool_call("git_diff", {"base": "main"}),
        Turn.tool_call("git_diff", {}),  # a plain branch, no base given: uncommitted only
        Turn.text("Seen."),
    )
    result = cli("agent", "run", "dev", "look at the change", "--cwd", str(branch))
    assert result.exit_code == 0, result.stdout + result.stderr
    last = json.loads(sent(server, "demo-coder")[-1])
    with_base, plain = [m["content"] for m in last["messages"] if m["role"] == "tool"]
    assert "Change against main" in with_base
    assert "+    return a + b" in with_base  # committed
    assert "+No longer buggy." in with_base  # uncommitted
    assert "NOTES.txt" in with_base and "+a brand new file" in with_base  # new, untracked
    assert "3 files changed" in with_base
    assert "return a + b" not in plain and "+No longer buggy." in plain
    # Still read-only: the new file is not added to the worktree's real index.
    assert git(branch, "status", "--short") == "M README.md\n?? NOTES.txt"
    server.assert_complete()


def test_a_reviewer_on_an_agentctl_branch_compares_with_the_base_by_itself(
    project: Path, tmp_path: Path, server: LLMServer, cli: Invoke
) -> None:
    path = tmp_path / "wt"
    git(project, "worktree", "add", "-q", "-b", "agentctl/T-9", str(path), "main")
    (path / "calc.py").write_text((path / "calc.py").read_text().replace("a - b", "a + b"))
    git(path, "commit", "-q", "-am", "fix add")
    server.script("demo-reviewer", Turn.tool_call("git_diff", {}), APPROVE)
    result = cli("agent", "run", "review", "review the change", "--cwd", str(path))
    assert result.exit_code == 0, result.stdout + result.stderr
    (diff,) = tool_results(server, "demo-reviewer")
    assert "Change against main" in text_of(diff)
    assert "+    return a + b" in text_of(diff)
    server.assert_complete()


def test_a_huge_change_is_cut_with_a_line_that_says_what_was_left_out(
    branch: Path, server: LLMServer, cli: Invoke
) -> None:
    for i in range(30):
        lines = [f"line {n} of file {i}\n" for n in range(400)]
        (branch / f"big{i:02}.txt").write_text("".join(lines))
    (branch / "zz.txt").write_text("tiny\n")  # after the huge ones, still shown
    git(branch, "add", "-A")
    git(branch, "commit", "-q", "-m", "a huge change")
    server.script("demo-reviewer", Turn.tool_call("git_diff", {"base": "main"}), APPROVE)
    result = cli("agent", "run", "review", "review the change", "--cwd", str(branch))
    assert result.exit_code == 0, result.stdout + result.stderr
    (diff,) = tool_results(server, "demo-reviewer")
    text = text_of(diff)
    assert "34 files changed" in text  # the stat is whole
    assert "[diff cut: " in text and "bytes of the patch not shown" in text
    line = text.split("[diff cut: ")[1]
    assert "of 34 files left out: big01.txt, " in line
    assert "+tiny" in text and "big29.txt\n" not in text.split("[diff cut: ")[0]
    assert len(text) < 16_000
    assert "characters cut" not in text  # the diff's own bound, not the toolbox's blind cut
    server.assert_complete()


def test_a_bad_base_is_a_tool_error_not_a_crash(
    branch: Path, tmp_path: Path, server: LLMServer, cli: Invoke
) -> None:
    target = tmp_path / "x"
    server.script(
        "demo-reviewer",
        Turn.tool_call("git_diff", {"base": f"--output={target}"}),
        Turn.tool_call("git_diff", {"base": "no-such-branch"}),
        Turn.tool_call("git_diff", {"base": "main"}),
        APPROVE,
    )
    result = cli("agent", "run", "review", "review the change", "--cwd", str(branch))
    assert result.exit_code == 0, result.stdout + result.stderr
    option, missing, good = tool_results(server, "demo-reviewer")
    assert option.get("is_error") and "is not a branch, tag or commit name" in text_of(option)
    assert missing.get("is_error") and "does not name a commit" in text_of(missing)
    assert not good.get("is_error") and "+    return a + b" in text_of(good)
    assert not target.exists()
    server.assert_complete()


def test_the_review_role_has_the_tools_to_read_a_diff(project: Path, cli: Invoke) -> None:
    from agentctl.config import load_config

    tools = set(load_config(cwd=project).role("review").tools)
    assert {"git_diff", "read", "grep", "glob"} <= tools
    assert not {"write", "edit", "bash"} & tools
