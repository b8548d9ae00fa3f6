"""events.jsonl: numbering, reading damaged files, following a live journal."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentctl.runs import Journal, follow, read_journal
from agentctl.runs.journal import last_event

T0 = datetime(2026, 11, 25, 21, 24, 33, 482913, tzinfo=UTC)


def clock() -> datetime:
    return T0


def test_append_format(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    journal = Journal(path, clock)
    assert journal.append("tool.call", tool="shell", args={"cmd": "ls\nrm"}) == 1
    assert journal.append("llm.call", durable=True, cost=0.25, text="héllo") == 2
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    first = json.loads(lines[0])
    assert first == {
        "seq": 1,
        "ts": "2026-11-25T21:24:33.482913Z",
        "type": "tool.call",
        "tool": "shell",
        "args": {"cmd": "ls\nrm"},
    }
    assert list(first)[:3] == ["seq", "ts", "type"]
    assert json.loads(lines[1])["text"] == "héllo"


def test_reserved_field_names(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "e.jsonl")
    for name in ("seq", "ts", "type"):
        with pytest.raises(ValueError):
            fields: dict[str, Any] = {name: 1}
            journal.append("x", **fields)
    assert not (tmp_path / "e.jsonl").exists()


def test_seq_continues_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    one, two = Journal(path), Journal(path)
    assert one.append("a") == 1
    assert two.append("b") == 2
    assert one.append("c") == 3  # notices two's append, no duplicate seq
    assert Journal(path).append("d") == 4
    assert [e["seq"] for e in read_journal(path).events] == [1, 2, 3, 4]


def test_seq_found_behind_long_lines_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    Journal(path).append("big", blob="x" * 200_000)
    with path.open("ab") as handle:
        handle.write(b"not json\n[1,2]\n")
    assert Journal(path).append("next") == 2


def test_read_missing_file(tmp_path: Path) -> None:
    read = read_journal(tmp_path / "none.jsonl")
    assert read.events == [] and read.problems == []


def test_read_damaged_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b'{"seq":1,"type":"a"}\n'
        b"garbage\n"
        b"\n"
        b'["not", "an", "object"]\n'
        b'{"seq":2,"type":"b"}\n'
        b'{"seq":3,"type":"c"'  # torn: no newline
    )
    read = read_journal(path)
    assert [e["seq"] for e in read.events] == [1, 2]
    assert read.problems == [
        "line 2: not a JSON object, skipped",
        "line 4: not a JSON object, skipped",
        "torn last line skipped",
    ]


def test_unparsable_last_line_with_newline(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"seq":1}\n{"seq":2,"ty\n')
    read = read_journal(path)
    assert [e["seq"] for e in read.events] == [1]
    assert read.problems == ["torn last line skipped"]
    assert Journal(path).append("x") == 2


def test_follow_yields_complete_lines_as_they_come(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    seen: list[dict[str, Any]] = []
    done = threading.Event()
    first_seen = threading.Event()

    def reader() -> None:
        for event in follow(path, poll=0.01, stop=done.is_set):
            seen.append(event)
            first_seen.set()

    thread = threading.Thread(target=reader)
    thread.start()
    journal = Journal(path)
    journal.append("one")
    assert first_seen.wait(5)
    with path.open("ab") as handle:  # half a line: must not be yielded yet
        handle.write(b'{"seq":2,"type":"tw')
    with path.open("ab") as handle:
        handle.write(b'o"}\n')
    journal.append("three")
    done.set()
    thread.join(5)
    assert [e["type"] for e in seen] == ["one", "two", "three"]


def test_follow_reads_once_more_after_stop(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    Journal(path).append("a")
    Journal(path).append("b")
    assert [e["seq"] for e in follow(path, poll=0.01, stop=lambda: True)] == [1, 2]
    assert list(follow(tmp_path / "missing", poll=0.01, stop=lambda: True)) == []


def test_ts_uses_the_clock(tmp_path: Path) -> None:
    now = [T0]
    journal = Journal(tmp_path / "e.jsonl", lambda: now[0])
    journal.append("a")
    now[0] = T0 + timedelta(hours=1)
    journal.append("b")
    assert [e["ts"] for e in read_journal(tmp_path / "e.jsonl").events] == [
        "2026-11-25T21:24:33.482913Z",
        "2026-11-25T22:24:33.482913Z",
    ]


@pytest.mark.parametrize("block", [7, 64, 65536])
def test_last_event_reads_back_from_the_end_across_blocks(tmp_path: Path, block: int) -> None:
    path = tmp_path / "ticks.jsonl"
    lines = [json.dumps({"seq": n, "text": "x" * (n % 13)}) for n in range(1, 200)]
    path.write_text("not json at the start\n" + "\n".join(lines) + "\n")
    event, problems = last_event(path, block=block)
    assert event == json.loads(lines[-1]) == read_journal(path).events[-1]
    assert problems == []  # the garbled first line was never read


def test_last_event_skips_a_torn_tail_and_garbled_lines_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "ticks.jsonl"
    path.write_text('{"seq": 1}\n{"seq": 2}\n[1, 2]\n{"seq": 3, "tor')
    event, problems = last_event(path, block=5)
    assert event == {"seq": 2}
    assert problems == ["torn last line skipped", "a line that is not a JSON object, skipped"]


def test_last_event_of_an_empty_or_missing_journal(tmp_path: Path) -> None:
    assert last_event(tmp_path / "missing.jsonl") == (None, [])
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert last_event(tmp_path / "empty.jsonl") == (None, [])
    (tmp_path / "blank.jsonl").write_bytes(b"\n\n")
    assert last_event(tmp_path / "blank.jsonl") == (None, [])
