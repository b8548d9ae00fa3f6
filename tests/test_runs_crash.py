"""Real processes killed (SIGKILL) at named fail points leave state that still reads right."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from agentctl import atomic
from agentctl.errors import StateError
from agentctl.runs import Journal, RunStore, read_journal

SRC = Path(__file__).resolve().parents[1] / "src"


def python(code: str, failpoint: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "AGENTCTL_FAILPOINT": failpoint}
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )


def run_python(code: str, *, failpoint: str = "", check_killed: bool = True) -> None:
    done = python(code, failpoint)
    if check_killed:
        assert done.returncode == -9, (done.returncode, done.stderr)
    else:
        assert done.returncode == 0, done.stderr


def leftovers(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if atomic.is_temp(name))


REWRITE = """
import sys
from pathlib import Path
from agentctl.runs import RunStore
RunStore(Path(sys.argv[1])).get(sys.argv[2]).update(step="after-crash")
"""


def rewrite_in_child(state: Path, run_id: str, failpoint: str) -> None:
    code = REWRITE.replace("sys.argv[1]", repr(str(state))).replace("sys.argv[2]", repr(run_id))
    run_python(code, failpoint=failpoint)


@pytest.mark.parametrize("failpoint", ["atomic.after_temp_write", "atomic.before_rename"])
def test_kill_before_rename_keeps_old_run_json(tmp_path: Path, failpoint: str) -> None:
    store = RunStore(tmp_path)
    run = store.create("agent", input={}, step="before")
    old = run.paths.run_json.read_bytes()
    rewrite_in_child(tmp_path, run.id, failpoint)
    assert run.paths.run_json.read_bytes() == old
    assert run.load().step == "before"
    assert len(leftovers(run.dir)) == 1  # the dead writer's temp file
    [listing] = store.list()
    assert listing.problem is None and listing.record is not None
    assert listing.record.step == "before"
    # the next writer is not disturbed by the leftover
    assert run.update(step="next").step == "next"


def test_kill_after_rename_has_new_run_json(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run = store.create("agent", input={}, step="before")
    rewrite_in_child(tmp_path, run.id, "atomic.after_rename")
    assert run.load().step == "after-crash"
    assert leftovers(run.dir) == []


CREATE = """
from pathlib import Path
from agentctl.runs import RunStore
RunStore(Path(STATE)).create("agent", input={"task": "t"})
"""


def test_kill_during_create_leaves_no_half_run(tmp_path: Path) -> None:
    code = CREATE.replace("STATE", repr(str(tmp_path)))
    # The first atomic rename is input.json's: the run directory is still a temp one,
    # holding input.json and no run.json yet.
    run_python(code, failpoint="atomic.after_rename")
    [tmp_dir] = (tmp_path / "runs").iterdir()
    assert atomic.is_temp(tmp_dir.name)
    assert sorted(p.name for p in tmp_dir.iterdir()) == ["input.json"]
    # Complete but not yet renamed into place.
    run_python(code, failpoint="runs.before_publish")
    store = RunStore(tmp_path)
    assert store.list() == []
    # And a normal create still works beside the leftovers.
    run_python(code, check_killed=False)
    [listing] = store.list()
    assert listing.record is not None and listing.record.status == "pending"
    assert store.get(listing.id).read_input() == {"task": "t"}


APPEND = """
from pathlib import Path
from agentctl.runs import Journal
journal = Journal(Path(PATH))
for i in range(COUNT):
    journal.append("work", i=i, text="x" * 50)
"""


def append_in_child(path: Path, count: int, failpoint: str) -> None:
    code = APPEND.replace("PATH", repr(str(path))).replace("COUNT", str(count))
    run_python(code, failpoint=failpoint, check_killed=bool(failpoint))


def test_torn_journal_tail(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    append_in_child(path, 3, "")
    append_in_child(path, 1, "journal.mid_append")
    raw = path.read_bytes()
    assert not raw.endswith(b"\n")

    read = read_journal(path)
    assert [e["seq"] for e in read.events] == [1, 2, 3]
    assert read.problems == ["torn last line skipped"]

    journal = Journal(path)
    assert journal.append("resumed") == 5
    read = read_journal(path)
    assert read.problems == []
    assert [e["seq"] for e in read.events] == [1, 2, 3, 4, 5]
    dropped = read.events[3]
    assert dropped["type"] == "journal.torn_tail_dropped"
    assert dropped["bytes"] == len(raw) - raw.rfind(b"\n") - 1
    assert read.events[4]["type"] == "resumed"
    # another process continues the numbering too
    append_in_child(path, 2, "")
    assert [e["seq"] for e in read_journal(path).events] == [1, 2, 3, 4, 5, 6, 7]


def test_kill_after_append_keeps_the_event(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    append_in_child(path, 5, "journal.after_append")
    read = read_journal(path)
    assert [e["seq"] for e in read.events] == [1] and read.problems == []


def test_torn_first_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    append_in_child(path, 1, "journal.mid_append")
    assert read_journal(path).events == []
    assert Journal(path).append("first") == 2  # 1 = torn_tail_dropped
    assert [e["type"] for e in read_journal(path).events] == ["journal.torn_tail_dropped", "first"]


def test_disk_full_in_atomic_write(tmp_path: Path, mocker: MockerFixture) -> None:
    target = tmp_path / "run.json"
    target.write_text('{"old": true}\n')
    mocker.patch(
        "agentctl.atomic.os.write", side_effect=OSError(errno.ENOSPC, "No space left on device")
    )
    with pytest.raises(StateError) as info:
        atomic.write_json(target, {"new": True})
    mocker.stopall()
    assert "disk full" in str(info.value) and info.value.path == target
    assert json.loads(target.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["run.json"]


def test_disk_full_in_journal_append(tmp_path: Path, mocker: MockerFixture) -> None:
    path = tmp_path / "events.jsonl"
    journal = Journal(path)
    journal.append("one")
    mocker.patch(
        "agentctl.runs.journal.os.write",
        side_effect=OSError(errno.ENOSPC, "No space left on device"),
    )
    with pytest.raises(StateError, match="disk full"):
        journal.append("two")
    mocker.stopall()
    assert journal.append("three") == 2
    assert [e["type"] for e in read_journal(path).events] == ["one", "three"]


FILE_LIMIT = """
import resource, signal
from pathlib import Path
from agentctl import atomic
from agentctl.errors import StateError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
try:
    atomic.write_bytes(Path(PATH), b"x" * 5000)
except StateError as exc:
    print("StateError", exc)
"""


def test_file_too_large_without_mocks(tmp_path: Path) -> None:
    """A real failing write (RLIMIT_FSIZE) leaves the old file and no temp file."""
    target = tmp_path / "run.json"
    target.write_bytes(b"old")
    code = FILE_LIMIT.replace("PATH", repr(str(target)))
    done = python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("StateError cannot write")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["run.json"]
