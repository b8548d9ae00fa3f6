"""The Toolbox contract: specs, error results instead of exceptions, cutting, git views."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import agentctl.tools
from agentctl.config.agents import TOOLS
from agentctl.errors import NotFoundError, UsageError, WorkspaceError
from agentctl.tools.result import ToolResult, cut
from agentctl.tools.toolbox import Toolbox

ALL = list(TOOLS)


def test_public_names() -> None:
    assert agentctl.tools.__all__ == ["ToolResult", "Toolbox", "bwrap_available"]


def test_specs_cover_the_enabled_tools(repo: Path) -> None:
    box = Toolbox(repo, ALL)
    assert [s.name for s in box.specs] == list(TOOLS)
    for spec in box.specs:
        schema = spec.parameters
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) <= set(schema["properties"])
        assert spec.description
    assert [s.name for s in Toolbox(repo, ["read", "grep"]).specs] == ["read", "grep"]


def test_constructor_rejects_what_config_should_have_caught(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="unknown tool 'rm'"):
        Toolbox(repo, ["rm"])
    with pytest.raises(UsageError):
        Toolbox(repo, ["bash"], sandbox="loose")
    with pytest.raises(WorkspaceError):
        Toolbox(tmp_path / "missing", ["read"])


def test_tool_problems_are_results_not_exceptions(repo: Path) -> None:
    box = Toolbox(repo, ["read"])
    cases = [
        ("bash", {"command": "ls"}, "not enabled"),
        ("web_fetch", {"url": "https://example.com"}, "not enabled"),
        ("teleport", {}, "unknown tool 'teleport'"),
        ("read", "README.md", "must be a JSON object"),
        ("read", {}, "missing the required property 'path'"),
        ("read", {"path": "README.md", "lines": 3}, "unexpected property 'lines'"),
        ("read", {"path": "README.md", "limit": "3"}, "must be integer"),
    ]
    for name, args, expected in cases:
        result = box.run(name, args)
        assert isinstance(result, ToolResult)
        assert result.is_error
        assert expected in result.content, result.content


def test_cut_keeps_head_and_tail() -> None:
    text = "".join(f"{i:04d}\n" for i in range(1000))
    short, truncated = cut(text, 200)
    assert truncated
    assert len(short) <= 200
    assert short.startswith("0000\n0001\n")
    assert short.endswith("0998\n0999\n")
    head, rest = short.split("[... ")
    count, tail = rest.split(" characters cut ...]\n")
    assert text == head + text[len(head) : len(text) - len(tail)] + tail
    assert len(head) + int(count) + len(tail) == len(text)
    assert cut("small", 200) == ("small", False)


def test_git_status_and_diff(repo: Path) -> None:
    box = Toolbox(repo, ["git_status", "git_diff", "write"], env={"PATH": "/usr/bin:/bin"})
    assert box.run("git_status", {}).content == "## main\n"
    assert box.run("git_diff", {}).content == "(no changes)"
    box.run("write", {"path": "README.md", "content": "# changed\n"})
    box.run("write", {"path": "new.txt", "content": "new\n"})
    assert box.run("git_status", {}).content == "## main\n M README.md\n?? new.txt\n"
    diff = box.run("git_diff", {"path": "README.md"})
    assert "-# demo\n+# changed" in diff.content
    assert box.run("git_diff", {"staged": True}).content == "(no changes)"
    subprocess.run(["git", "add", "README.md"], cwd=repo, check=True)
    assert "+# changed" in box.run("git_diff", {"staged": True}).content
    assert box.run("git_diff", {"path": "../elsewhere"}).content.startswith("refused: ")


def test_git_views_do_not_rewrite_the_index(repo: Path) -> None:
    """A stat-dirty file makes a plain ``git status`` rewrite the index; ours must not."""
    readme = repo / "README.md"
    os.utime(readme, (1_000_000_000, 1_000_000_000))
    index = repo / ".git" / "index"
    before = (index.stat().st_ino, index.stat().st_mtime_ns)
    box = Toolbox(repo, ["git_status", "git_diff"], env={"PATH": "/usr/bin:/bin"})
    assert box.run("git_status", {}).content == "## main\n"
    assert box.run("git_diff", {}).content == "(no changes)"
    assert (index.stat().st_ino, index.stat().st_mtime_ns) == before
    subprocess.run(["git", "status"], cwd=repo, check=True, capture_output=True)
    assert (index.stat().st_ino, index.stat().st_mtime_ns) != before  # the test can tell


def test_git_status_answers_while_a_commit_holds_the_index_lock(repo: Path) -> None:
    (repo / "README.md").write_text("# touched\n")
    lock = repo / ".git" / "index.lock"
    lock.write_text("")
    box = Toolbox(repo, ["git_status"], env={"PATH": "/usr/bin:/bin"})
    result = box.run("git_status", {})
    assert result.content == "## main\n M README.md\n"
    assert lock.read_text() == ""
