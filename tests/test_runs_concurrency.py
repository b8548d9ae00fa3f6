"""Several real processes writing one run at once: nothing lost, nothing numbered twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from agentctl.atomic import is_temp
from agentctl.runs import Mailbox, Run, RunStore, read_journal

SRC = Path(__file__).resolve().parents[1] / "src"

WAIT_FOR_GO = """
import os, time
from pathlib import Path
go = Path(GO)
while not go.exists():
    time.sleep(0.001)
"""


def start_together(tmp_path: Path, bodies: list[str]) -> None:
    """Start one process per body, release them at the same moment, expect success."""
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(SRC), "AGENTCTL_FAILPOINT": ""}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WAIT_FOR_GO.replace("GO", repr(str(go))) + body],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for body in bodies
    ]
    time.sleep(0.05)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err


def test_four_posters_lose_nothing(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    body = """
from agentctl.runs import Mailbox
box = Mailbox(Path(INBOX))
for i in range(25):
    box.post({"writer": WRITER, "i": i})
"""
    start_together(
        tmp_path,
        [body.replace("INBOX", repr(str(inbox))).replace("WRITER", str(w)) for w in range(4)],
    )
    names = os.listdir(inbox)
    assert not [n for n in names if is_temp(n)]
    assert len(names) == 100
    messages = Mailbox(inbox).read()
    assert [m.seq for m in messages] == list(range(1, 101))
    assert all(m.problem is None and m.body["seq"] == m.seq for m in messages)
    sent = {(m.body["writer"], m.body["i"]) for m in messages}
    assert sent == {(w, i) for w in range(4) for i in range(25)}
    for writer in range(4):  # each writer's own messages stay in its order
        mine = [m.body["i"] for m in messages if m.body["writer"] == writer]
        assert mine == list(range(25))


def test_four_journal_writers_share_one_numbering(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    body = """
from agentctl.runs import Journal
journal = Journal(Path(EVENTS))
for i in range(50):
    journal.append("w", writer=WRITER, i=i, pad="p" * (WRITER * 300))
"""
    start_together(
        tmp_path,
        [body.replace("EVENTS", repr(str(path))).replace("WRITER", str(w)) for w in range(4)],
    )
    read = read_journal(path)
    assert read.problems == []
    assert [e["seq"] for e in read.events] == list(range(1, 201))


def test_concurrent_updates_keep_every_field(tmp_path: Path) -> None:
    run = RunStore(tmp_path).create("agent", input={})
    fields = ["role", "model", "pipeline", "ticket"]
    body = """
from agentctl.runs import Run
run = Run(Path(DIR))
for i in range(20):
    run.update(FIELD=str(i))
"""
    start_together(
        tmp_path,
        [body.replace("DIR", repr(str(run.dir))).replace("FIELD", f) for f in fields],
    )
    record = Run(run.dir).load()
    assert [getattr(record, f) for f in fields] == ["19"] * 4
