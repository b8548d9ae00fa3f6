"""inbox/ and outbox/: numbered messages, never overwritten, damaged ones reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentctl.errors import StateError
from agentctl.runs import Mailbox

T0 = datetime(2026, 11, 25, 21, 24, 33, 482913, tzinfo=UTC)


def test_post_and_read(tmp_path: Path) -> None:
    box = Mailbox(tmp_path, lambda: T0)
    assert box.post({"type": "instruction", "text": "go"}) == 1
    assert box.post({"type": "cancel"}) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000001.json", "000002.json"]
    assert json.loads((tmp_path / "000001.json").read_text()) == {
        "seq": 1,
        "ts": "2026-11-25T21:24:33.482913Z",
        "type": "instruction",
        "text": "go",
    }
    messages = box.read()
    assert [(m.seq, m.body["type"], m.problem) for m in messages] == [
        (1, "instruction", None),
        (2, "cancel", None),
    ]
    assert messages[0].path == tmp_path / "000001.json"
    assert [m.seq for m in box.read(after=1)] == [2]
    assert box.read(after=2) == []


def test_numbering_continues_and_skips_taken(tmp_path: Path) -> None:
    (tmp_path / "000003.json").write_text('{"seq": 3}')
    box = Mailbox(tmp_path)
    assert box.post({"n": 1}) == 4
    assert Mailbox(tmp_path).post({"n": 2}) == 5
    assert json.loads((tmp_path / "000005.json").read_text())["seq"] == 5


def test_read_ignores_temp_files_and_reports_corrupt(tmp_path: Path) -> None:
    box = Mailbox(tmp_path)
    box.post({"a": 1})
    (tmp_path / ".post.tmp.123.abcd").write_text("{half")
    (tmp_path / "000002.json").write_bytes(b"{broken")
    (tmp_path / "000003.json").write_text("[1]")
    (tmp_path / "notes.txt").write_text("x")
    box.post({"a": 4})
    messages = box.read()
    assert [m.seq for m in messages] == [1, 2, 3, 4]
    assert messages[0].problem is None and messages[3].body["a"] == 4
    assert messages[1].body == {} and "unreadable" in (messages[1].problem or "")
    assert "not a JSON object" in (messages[2].problem or "")


def test_missing_directory(tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "nope")
    assert box.read() == []
    with pytest.raises(StateError):
        box.post({"a": 1})


def test_reserved_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Mailbox(tmp_path).post({"seq": 9})
    assert list(tmp_path.iterdir()) == []
