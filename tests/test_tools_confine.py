"""Path confinement: every escape form is refused before any I/O, naming the canonical path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentctl.tools import confine
from agentctl.tools.result import ToolError
from agentctl.tools.toolbox import Toolbox

FILE_TOOLS = ["read", "write", "edit", "glob", "grep"]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("outside secret\n")
    return path


@pytest.fixture
def box(repo: Path) -> Toolbox:
    return Toolbox(repo, FILE_TOOLS, sandbox="none")


def snapshot(*roots: Path) -> dict[str, object]:
    """Every entry under the roots: what it is and what it holds (links by their target)."""
    seen: dict[str, object] = {}
    for root in roots:
        for current, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(current, name)
                if os.path.islink(path):
                    seen[path] = ("link", os.readlink(path))
                elif os.path.isdir(path):
                    seen[path] = "dir"
                else:
                    seen[path] = Path(path).read_bytes()
    return seen


def refused(box: Toolbox, tool: str, path: str, **extra: object) -> str:
    result = box.run(tool, {"path": path, **extra})
    assert result.is_error, result.content
    assert result.content.startswith("refused: "), result.content
    return result.content


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("../x", "{parent}/x"),
        ("a/../../x", "{parent}/x"),
        ("./a/./../../x", "{parent}/x"),
        ("/etc/passwd", "/etc/passwd"),
    ],
)
def test_escapes_are_refused_with_the_canonical_path(
    box: Toolbox, repo: Path, outside: Path, raw: str, canonical: str
) -> None:
    expected = canonical.format(parent=os.path.realpath(repo.parent))
    before = snapshot(repo.parent)
    for tool, extra in [
        ("read", {}),
        ("write", {"content": "x"}),
        ("edit", {"old": "a", "new": "b"}),
    ]:
        message = refused(box, tool, raw, **extra)
        assert expected in message
    assert snapshot(repo.parent) == before


def test_home_nul_and_empty_are_refused(box: Toolbox, repo: Path) -> None:
    before = snapshot(repo)
    message = refused(box, "write", "~/x", content="x")
    assert os.path.expanduser("~/x") in message
    message = refused(box, "write", "a\x00b", content="x")
    assert "NUL" in message
    assert "a\\x00b" in message
    refused(box, "read", "")
    assert snapshot(repo) == before
    assert not (repo / "~").exists()


def test_absolute_paths_inside_the_workspace_are_fine(box: Toolbox, repo: Path) -> None:
    result = box.run("write", {"path": str(repo / "sub" / "n.txt"), "content": "hi\n"})
    assert not result.is_error, result.content
    assert (repo / "sub" / "n.txt").read_text() == "hi\n"
    assert box.run("read", {"path": str(repo / "README.md")}).content == "     1\t# demo"


def test_existing_symlink_to_a_directory_outside(box: Toolbox, repo: Path) -> None:
    (repo / "etc").symlink_to("/etc")
    before = snapshot(repo)
    message = refused(box, "read", "etc/passwd")
    assert "/etc/passwd" in message
    assert "symlink" in message
    refused(box, "write", "etc/agentctl-test-should-not-exist", content="x")
    assert not Path("/etc/agentctl-test-should-not-exist").exists()
    assert snapshot(repo) == before


def test_symlink_to_a_file_outside(box: Toolbox, repo: Path, outside: Path) -> None:
    (repo / "link.txt").symlink_to(outside / "secret.txt")
    before = snapshot(repo, outside)
    real = os.path.realpath(outside / "secret.txt")
    assert real in refused(box, "read", "link.txt")
    assert real in refused(box, "write", "link.txt", content="pwned")
    assert real in refused(box, "edit", "link.txt", old="outside", new="pwned")
    assert snapshot(repo, outside) == before


def test_symlink_inside_the_workspace_is_followed_to_its_canonical_path(
    box: Toolbox, repo: Path
) -> None:
    (repo / "alias.md").symlink_to("README.md")
    result = box.run("read", {"path": "alias.md"})
    assert not result.is_error
    assert result.meta["path"] == os.path.realpath(repo / "README.md")
    result = box.run("edit", {"path": "alias.md", "old": "demo", "new": "changed"})
    assert not result.is_error, result.content
    assert (repo / "README.md").read_text() == "# changed\n"
    assert (repo / "alias.md").is_symlink()


def test_a_symlink_planted_after_the_check_is_not_written_through(
    repo: Path, outside: Path
) -> None:
    root = confine.canonical_root(repo)
    target = confine.resolve(root, "planted.txt", write=True)
    (repo / "planted.txt").symlink_to(outside / "secret.txt")  # the swap, after the check
    before = snapshot(outside)
    with pytest.raises(ToolError, match="changed into a symlink"):
        confine.write_atomic(root, target, b"pwned")
    with pytest.raises(ToolError, match="changed into a symlink"):
        confine.read_bytes(root, target)
    assert snapshot(outside) == before


def test_a_parent_swapped_for_a_symlink_after_the_check_is_refused(
    repo: Path, outside: Path
) -> None:
    root = confine.canonical_root(repo)
    (repo / "dir").mkdir()
    target = confine.resolve(root, "dir/new.txt", write=True)
    (repo / "dir").rmdir()
    (repo / "dir").symlink_to(outside)
    before = snapshot(outside)
    with pytest.raises(ToolError, match="'dir' changed into a symlink"):
        confine.write_atomic(root, target, b"pwned")
    assert snapshot(outside) == before
    assert not (outside / "new.txt").exists()


@pytest.mark.parametrize(
    "path",
    [
        ".git/hooks/pre-commit",
        ".git/config",
        "sub/.git/config",
        ".GIT/config",
        "agentctl.toml",
        ".agentctl/runs/x",
        "roles/dev.toml",
        "pipelines/feature.toml",
        "HEARTBEAT.md",
    ],
)
def test_agentctl_and_git_files_cannot_be_written(box: Toolbox, repo: Path, path: str) -> None:
    (repo / "agentctl.toml").write_text("# config\n")
    (repo / "HEARTBEAT.md").write_text("- [ ] check\n")
    before = snapshot(repo)
    message = refused(box, "write", path, content="#!/bin/sh\necho pwned\n")
    assert os.path.join(os.path.realpath(repo), path) in message
    assert "read-only" in message
    if (repo / path).is_file():
        refused(box, "edit", path, old="#", new="x")
    assert snapshot(repo) == before


def test_protected_files_can_still_be_read(box: Toolbox, repo: Path) -> None:
    result = box.run("read", {"path": ".git/HEAD"})
    assert not result.is_error
    assert "refs/heads/main" in result.content


def test_a_symlink_to_git_config_is_refused_for_writes(box: Toolbox, repo: Path) -> None:
    (repo / "cfg").symlink_to(".git/config")
    before = snapshot(repo)
    message = refused(box, "write", "cfg", content="[core]\n")
    assert os.path.realpath(repo / ".git" / "config") in message
    assert snapshot(repo) == before


def test_dotdot_through_a_symlink_is_judged_on_the_real_path(
    box: Toolbox, repo: Path, outside: Path
) -> None:
    (repo / "out").symlink_to(outside)
    message = refused(box, "read", "out/../outside/secret.txt")
    assert os.path.realpath(outside / "secret.txt") in message


def test_glob_and_grep_paths_are_confined(box: Toolbox, repo: Path, outside: Path) -> None:
    assert box.run("glob", {"pattern": "*", "path": str(outside)}).is_error
    assert box.run("grep", {"pattern": "secret", "path": "../outside"}).is_error
    assert box.run("glob", {"pattern": "../*"}).is_error
    assert box.run("glob", {"pattern": "/etc/*"}).is_error
