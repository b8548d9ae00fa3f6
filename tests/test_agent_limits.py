"""Tools that never return, huge tool results and escaped children, through the real CLI.

A scripted model makes the hostile calls (a 1,500-level path, a catastrophic regex,
a 20 MB one-line file, ``setsid sleep``); the limits come from the role's config
(``--set``), so every case ends in seconds, and the process table is checked after.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentctl.runs import Run, RunStore, read_journal
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke, git, make_repo
from tests.test_agent_run import only_run, process_running

CHAT = ("--model", "chat")
SPIN = "a" * 40 + "!\n"  # '(a+)+$' backtracks 2**40 ways on this line


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def working_in(folder: Path) -> list[int]:
    """Processes (other than this test) whose current directory is inside ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if cwd == str(folder) or cwd.startswith(f"{folder}/"):
                found.append(int(entry.name))
    return found


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer(api_key="sk-limits-test") as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A git repo whose chat model is the scripted server; what a failed run left is killed."""
    repo = make_repo(tmp_path / "project")
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "agentctl.toml").write_text(
        f'[models.chat]\nprovider = "openai"\napi = "chat"\nname = "chat-x"\n'
        f'base_url = "{server.openai_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
        "price = { input = 1.0, output = 2.0 }\n"
    )
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "start")
    monkeypatch.setenv("TEST_KEY", "sk-limits-test")
    monkeypatch.chdir(repo)
    yield repo
    for pid in working_in(repo):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def detached(cli: Invoke, project: Path, *sets: str) -> Run:
    run_id = cli(*sets, "agent", "run", "dev", "x", *CHAT, "--detach").stdout.strip()
    return RunStore(project / ".agentctl").get(run_id)


def finished(run: Run) -> Callable[[], bool]:
    return lambda: run.load().status not in ("pending", "running")


def results(run: Run) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in read_journal(run.paths.events).events if e["type"] == "tool.result"]


def deep_tree(top: Path, levels: int) -> None:
    """``top/e/e/.../e/deep.txt``, made one level at a time from directory descriptors."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(levels):
        os.mkdir("e", dir_fd=fd)
        inner = os.open("e", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    os.close(fd)


def test_a_deep_path_is_refused_and_searches_survive_a_deep_tree(
    project: Path, server: LLMServer, cli: Invoke, request: pytest.FixtureRequest
) -> None:
    deep_tree(project / "tree", 1500)  # made by bash, say: searches must still work
    # rm (fts) copes with any depth; pytest's own clean-up (shutil.rmtree) recurses.
    deep = [str(project / "tree"), str(project / "d")]
    request.addfinalizer(lambda: subprocess.run(["rm", "-rf", *deep], check=True))
    too_deep = "/".join(["d"] * 1500) + "/x.py"
    server.script(
        "chat-x",
        Turn.tool_call("write", {"path": too_deep, "content": "x = 1\n"}),
        Turn.tool_call("glob", {"pattern": "**/*.py"}),
        Turn.tool_call("grep", {"pattern": "def add"}),
        Turn.text("done"),
    )
    result = cli("agent", "run", "dev", "x", *CHAT)
    assert result.exit_code == 0, result.stderr
    write, glob, grep = results(only_run(project))
    assert write["is_error"] and "1501 levels deep; at most 64" in write["content"]
    assert not (project / "d").exists()
    assert not glob["is_error"] and "calc.py" in glob["content"]
    assert not grep["is_error"] and "calc.py:1: def add(a, b):" in grep["content"]
    for found in (glob, grep):
        assert "[skipped 1 folder deeper than 64 levels, e.g. tree/e/e/" in found["content"]
        assert found["meta"]["skipped_deep"] == 1


def test_a_catastrophic_regex_is_stopped_at_the_tool_limit(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    (project / "spin.txt").write_text(SPIN)
    server.script(
        "chat-x", Turn.tool_call("grep", {"pattern": "(a+)+$"}), Turn.text("gave up on it")
    )
    started = time.monotonic()
    run = detached(cli, project, "--set", "roles.dev.tool_timeout=1s")
    assert wait_for(finished(run), timeout=30), "the grep was never stopped"
    assert time.monotonic() - started < 15  # a 1 s limit, with room for a loaded machine
    assert run.load().status == "succeeded"  # the agent went on after the tool error
    (grep,) = results(run)
    assert grep["is_error"] and grep["content"].startswith("grep stopped after 1s")
    assert grep["meta"]["timed_out"] is True
    assert wait_for(lambda: not working_in(project), timeout=5)


def test_the_deadline_ends_a_run_whose_tool_spins_and_nothing_is_left(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    (project / "spin.txt").write_text(SPIN)
    server.script("chat-x", Turn.tool_call("grep", {"pattern": "(a+)+$"}), Turn.text("never"))
    started = time.monotonic()
    run = detached(cli, project, "--set", "roles.dev.deadline=2s")
    assert wait_for(finished(run), timeout=30), "the run outlived its deadline"
    assert time.monotonic() - started < 15  # a 2 s limit, with room for a loaded machine
    assert run.load().status == "failed"
    assert run.read_output()["ending"] == "deadline"
    assert wait_for(lambda: not working_in(project), timeout=5)


def test_the_supervisor_ends_the_run_at_the_deadline_whatever_the_agent_does(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    """A model call that stalls is beyond the loop's own checks: the process above stops it."""
    server.script("chat-x", Turn.stall(after=1, seconds=60))
    started = time.monotonic()
    run = detached(cli, project, "--set", "roles.dev.deadline=2s")
    assert wait_for(finished(run), timeout=30), "the run outlived its deadline"
    assert time.monotonic() - started < 15  # a 2 s limit, with room for a loaded machine
    record = run.load()
    output = run.read_output()
    assert record.status == "failed" and output["ending"] == "deadline"
    assert "deadline of 2 s passed" in output["reason"] and output["model"] == "chat"
    assert wait_for(lambda: not working_in(project), timeout=5)
    assert not process_running(f"agent worker {run.id}")


def agent_process(run: Run) -> int:
    """The process running the loop: the worker's child of the same command line, or itself."""
    pid = run.load().pid or 0
    mine = Path(f"/proc/{pid}/cmdline").read_bytes()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if Path(f"/proc/{child}/cmdline").read_bytes() == mine:
                return int(child)
    return pid


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_huge_one_line_read_stays_bounded_in_journal_transcript_and_memory(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    big = b"x" * (20 * 1024 * 1024)  # one 20 MB line, no newline
    (project / "big.txt").write_bytes(big)
    server.script(
        "chat-x", Turn.tool_call("read", {"path": "big.txt"}), Turn.text("read it", delay=1.5)
    )
    run = detached(cli, project)
    assert wait_for(lambda: len(server.requests) == 2, timeout=20)
    peak = peak_rss_mb(agent_process(run))  # the read is over; the answer is still coming
    # (about 55 MB with the read streamed; 138 MB when it loaded the 20 MB file whole)
    assert wait_for(finished(run), timeout=30)
    assert run.load().status == "succeeded"
    assert run.paths.events.stat().st_size < 100_000
    assert run.paths.transcript.stat().st_size < 100_000
    assert peak < 100, f"the agent process peaked at {peak:.0f} MB"
    (read,) = results(run)
    assert len(read["content"]) <= 16_000
    assert read["content"].startswith("     1\txxxx")
    assert f"[line cut: {len(big)} bytes in all]" in read["content"]
    assert read["size"] == len(read["content"])  # the tool itself already cut the line
    assert len(read["sha256"]) == 64
    assert read["meta"]["bytes"] == len(big)
    assert read["meta"]["sha256"] == hashlib.sha256(big).hexdigest()
    assert len(server.requests[1].body["messages"][-1]["content"]) <= 16_000


def test_setsid_children_of_a_command_do_not_outlive_the_agent(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script(
        "chat-x",
        Turn.tool_call(
            "bash", {"command": "setsid sleep 979 & setsid -f sleep 978; sleep 0.3; echo up"}
        ),
        Turn.text("done"),
    )
    result = cli("--set", "roles.dev.sandbox=none", "agent", "run", "dev", "x", *CHAT)
    assert result.exit_code == 0, result.stderr
    (bash,) = results(only_run(project))
    assert "up" in bash["content"] and bash["meta"]["sandboxed"] is False
    assert wait_for(lambda: not process_running("sleep 97"), timeout=3), "setsid sleep survived"
    assert wait_for(lambda: not working_in(project), timeout=5)  # the workers exit too


def test_setsid_children_of_a_gate_do_not_outlive_the_pipeline(project: Path, cli: Invoke) -> None:
    (project / "pipelines").mkdir()
    (project / "pipelines" / "gate.toml").write_text(
        'description = "one gate"\n\n[[steps]]\nid = "gate"\ntimeout = "20s"\n'
        'run = "setsid sleep 976 >/dev/null 2>&1 & sleep 0.3; echo gate ran"\n'
    )
    result = cli("pipeline", "run", "gate")
    assert result.exit_code == 0, result.stderr
    assert wait_for(lambda: not process_running("sleep 976"), timeout=3), "setsid sleep survived"
    assert wait_for(lambda: not working_in(project), timeout=5)  # the workers exit too
