"""The tools' own bounds, on real files and real processes: streamed reads, stoppable
searches, the deadline cap, and a subreaper that kills only what a command left."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentctl.tools import files
from agentctl.tools.result import ToolError
from agentctl.tools.toolbox import Toolbox


def test_read_streams_lines_cut_to_a_bound_with_crlf_and_paging(repo: Path) -> None:
    long = "y" * (files.MAX_LINE_CHARS + 500)
    (repo / "f.txt").write_bytes(f"one\r\n{long}\r\nthree\nfour".encode())
    box = Toolbox(repo, ["read"])
    whole = box.run("read", {"path": "f.txt"})
    lines = whole.content.splitlines()
    assert lines[0] == "     1\tone" and lines[2:] == ["     3\tthree", "     4\tfour"]
    assert lines[1].endswith(f"… [line cut: {len(long) + 1} bytes in all]")
    assert whole.meta["lines"] == 4 and whole.meta["long_lines_cut"] == 1
    page = box.run("read", {"path": "f.txt", "offset": 3, "limit": 1})
    assert page.content.splitlines() == [
        "     3\tthree",
        "[lines 3-3 of 4; use offset and limit for more]",
    ]
    assert box.run("read", {"path": "f.txt", "offset": 5}).content.endswith(
        "has 4 lines; offset 5 is past the end"
    )


def test_a_glob_of_many_stars_over_a_deep_tree_is_stopped_at_the_tool_limit(repo: Path) -> None:
    deep = repo.joinpath(*["a"] * 60)
    deep.mkdir(parents=True)
    (deep / "b").write_text("x")
    box = Toolbox(repo, ["glob"], tool_timeout=1)
    assert "a/a/a" in box.run("glob", {"pattern": "**/**/**/**/b"}).content  # ** runs collapse
    started = time.monotonic()
    spun = box.run("glob", {"pattern": "**/a*/**/a*/**/a*/**/a*/**/a*/**/a*/**/c"})
    assert spun.is_error and spun.content.startswith("glob stopped after 1s")
    assert time.monotonic() - started < 5


def test_no_tool_runs_past_the_time_the_run_has_left(repo: Path) -> None:
    box = Toolbox(repo, ["bash", "read"], sandbox="none")
    assert box.run("read", {"path": "README.md"}, time_left=0).content == (
        "read not run: the run's deadline has passed"
    )
    started = time.monotonic()
    capped = box.run("bash", {"command": "sleep 30"}, time_left=0.5)
    assert capped.content.startswith("timed out after 0.5s") and time.monotonic() - started < 5


def test_a_subreaper_kills_what_a_command_left_and_only_that(repo: Path) -> None:
    """In its own process: becoming a subreaper is for the worker, not for pytest."""
    script = textwrap.dedent(
        f"""
        import os, subprocess
        from agentctl.tools import reaper, shell
        assert reaper.become_subreaper()
        mine = subprocess.Popen(["sleep", "961"])  # the process's own child, not the command's
        shell.run(["bash", "-c", "setsid sleep 962 & sleep 0.3"], cwd={str(repo)!r},
                  env={{"PATH": os.environ["PATH"]}}, timeout=10)
        alive = [p for p in reaper.descendants(os.getpid())]
        print(mine.pid in alive, len(alive))
        mine.kill()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.stdout.split() == ["True", "1"], done.stderr


def test_a_read_past_its_time_limit_keeps_what_was_asked_or_says_where_it_stopped(
    repo: Path,
) -> None:
    (repo / "big.txt").write_text("line\n" * 200_000)  # 1 MB: many chunks
    first = files.read(str(repo), "big.txt", limit=1, time_limit=1e-9)
    assert first.text.splitlines() == [
        "     1\tline",
        f"[lines 1-1 of more than {first.meta['lines']} (not all counted in time); "
        "use offset and limit for more]",
    ]
    assert first.meta["counted"] is False and "sha256" not in first.meta
    with pytest.raises(ToolError, match=r"read stopped after 1e-09s \(its time limit\) at line"):
        files.read(str(repo), "big.txt", offset=199_000, time_limit=1e-9)
    whole = files.read(str(repo), "big.txt", offset=199_999, time_limit=60)
    assert whole.meta["lines"] == 200_000 and len(whole.meta["sha256"]) == 64
