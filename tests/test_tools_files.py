"""read, write, edit, glob and grep on real files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agentctl.tools.toolbox import Toolbox

ALL = ["read", "write", "edit", "glob", "grep"]


@pytest.fixture
def box(repo: Path) -> Toolbox:
    return Toolbox(repo, ALL, sandbox="none")


def test_read_numbers_lines_and_pages(box: Toolbox, repo: Path) -> None:
    (repo / "f.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    result = box.run("read", {"path": "f.txt"})
    assert result.content.splitlines()[0] == "     1\tline 1"
    assert len(result.content.splitlines()) == 10
    assert result.meta["path"] == os.path.realpath(repo / "f.txt")
    page = box.run("read", {"path": "f.txt", "offset": 4, "limit": 2})
    assert page.content.splitlines() == [
        "     4\tline 4",
        "     5\tline 5",
        "[lines 4-5 of 10; use offset and limit for more]",
    ]
    past = box.run("read", {"path": "f.txt", "offset": 11})
    assert past.is_error
    assert "10 lines" in past.content
    assert box.run("read", {"path": "f.txt", "offset": 0}).is_error


def test_read_errors(box: Toolbox, repo: Path) -> None:
    (repo / "bin.dat").write_bytes(b"\x7fELF\x00\x01\x02")
    assert box.run("read", {"path": "bin.dat"}).content.endswith("is a binary file")
    missing = box.run("read", {"path": "no/such.txt"})
    assert missing.is_error
    assert missing.content == f"{os.path.realpath(repo)}/no/such.txt does not exist"
    assert "is a directory" in box.run("read", {"path": ".git"}).content
    os.mkfifo(repo / "pipe")
    assert "not a regular file" in box.run("read", {"path": "pipe"}).content
    (repo / "empty.txt").write_text("")
    assert box.run("read", {"path": "empty.txt"}).content == "(empty.txt is empty)"


def test_write_creates_parents_then_replaces_keeping_the_mode(box: Toolbox, repo: Path) -> None:
    first = box.run("write", {"path": "a/b/run.sh", "content": "#!/bin/sh\necho 1\n"})
    assert first.content == "created a/b/run.sh (17 bytes written)"
    assert first.meta["created"] is True
    script = repo / "a" / "b" / "run.sh"
    script.chmod(0o755)
    second = box.run("write", {"path": "a/b/run.sh", "content": "#!/bin/sh\necho 2\n"})
    assert second.content.startswith("replaced a/b/run.sh")
    assert script.read_text() == "#!/bin/sh\necho 2\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert sorted(p.name for p in script.parent.iterdir()) == ["run.sh"]  # no temp left
    assert box.run("write", {"path": "a", "content": "x"}).content.endswith("is a directory")


def test_edit_needs_exactly_one_occurrence_unless_replace_all(box: Toolbox, repo: Path) -> None:
    (repo / "e.py").write_text("x = 1\ny = 1\nz = 2\n")
    missing = box.run("edit", {"path": "e.py", "old": "w = 1", "new": "w = 2"})
    assert missing.is_error
    assert "not found" in missing.content
    many = box.run("edit", {"path": "e.py", "old": "= 1", "new": "= 3"})
    assert many.is_error
    assert "2 times" in many.content
    assert "give more context or set replace_all" in many.content
    assert (repo / "e.py").read_text() == "x = 1\ny = 1\nz = 2\n"
    one = box.run("edit", {"path": "e.py", "old": "y = 1", "new": "y = 5"})
    assert one.content == "replaced 1 occurrence in e.py"
    both = box.run("edit", {"path": "e.py", "old": "= ", "new": "== ", "replace_all": True})
    assert both.content == "replaced 3 occurrences in e.py"
    assert (repo / "e.py").read_text() == "x == 1\ny == 5\nz == 2\n"
    assert box.run("edit", {"path": "e.py", "old": "", "new": "a"}).is_error
    assert box.run("edit", {"path": "nope.py", "old": "a", "new": "b"}).is_error


def test_glob_is_sorted_relative_and_skips_git_and_state(
    box: Toolbox, repo: Path, tmp_path: Path
) -> None:
    for rel in ["src/b.py", "src/a.py", "src/pkg/c.py", "docs/x.md", ".agentctl/runs/r.py"]:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("pass\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "leak.py").write_text("secret\n")
    (repo / "linked").symlink_to(outside)
    assert box.run("glob", {"pattern": "**/*.py"}).content.splitlines() == [
        "src/a.py",
        "src/b.py",
        "src/pkg/c.py",
    ]
    assert box.run("glob", {"pattern": "*.py", "path": "src"}).content.splitlines() == [
        "src/a.py",
        "src/b.py",
    ]
    assert box.run("glob", {"pattern": "src/[ab].py"}).content.splitlines() == [
        "src/a.py",
        "src/b.py",
    ]
    assert box.run("glob", {"pattern": "**/HEAD"}).content.startswith("no files match")
    assert "leak" not in box.run("glob", {"pattern": "**"}).content


def test_glob_stops_at_a_thousand(box: Toolbox, repo: Path) -> None:
    many = repo / "many"
    many.mkdir()
    for i in range(1005):
        (many / f"f{i:04d}.txt").write_text("")
    result = box.run("glob", {"pattern": "many/*.txt"})
    lines = result.content.splitlines()
    assert len(lines) == 1001
    assert lines[-1] == "[first 1000 of 1005 files; narrow the pattern]"
    assert result.meta["matches"] == 1005


def test_grep(box: Toolbox, repo: Path) -> None:
    (repo / "src").mkdir()
    (repo / "src" / "m.py").write_text("def main():\n    return TODO\n# todo later\n")
    (repo / "src" / "n.txt").write_text("TODO in text\n")
    (repo / "blob.bin").write_bytes(b"TODO\x00\x01")
    assert box.run("grep", {"pattern": "TODO"}).content.splitlines() == [
        "src/m.py:2:     return TODO",
        "src/n.txt:1: TODO in text",
    ]
    assert box.run("grep", {"pattern": "todo", "ignore_case": True, "glob": "*.py"}).content == (
        "src/m.py:2:     return TODO\nsrc/m.py:3: # todo later"
    )
    capped = box.run("grep", {"pattern": "TODO", "max_results": 1})
    assert capped.content.splitlines()[0] == "src/m.py:2:     return TODO"
    assert "stopped at 1 matches" in capped.content
    assert capped.meta["truncated"] is True
    assert box.run("grep", {"pattern": "refs/heads"}).content.startswith("no matches")
    bad = box.run("grep", {"pattern": "("})
    assert bad.is_error
    assert "bad regex" in bad.content
    one_file = box.run("grep", {"pattern": "main", "path": "src/m.py"})
    assert one_file.content == "src/m.py:1: def main():"
