"""The live pipeline table: what the rows say, and that a terminal gets it."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from agentctl.cli.pipeline_view import PipelineView
from agentctl.commands.demo import prepare
from agentctl.cost.ledger import Ledger
from agentctl.cost.report import report
from agentctl.runs.timefmt import format_ts
from agentctl.testing.llm_server import LLMServer, Turn
from tests.terminal import Terminal

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return format_ts(T0 + timedelta(seconds=seconds))


def drawn(view: PipelineView, now: datetime) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(view.table(now, width=120))
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_rows_follow_the_journal() -> None:
    calls: list[int] = []

    def spend() -> Decimal:
        calls.append(1)
        return Decimal("0.0123")

    ticks = iter([0.0, 0.5, 2.0])
    view = PipelineView(
        "pipeline demo · run R",
        [("implement", "role"), ("test", "run"), ("merge", "uses")],
        spend=spend,
        clock=lambda: next(ticks),
    )
    events = [
        {"type": "step.start", "step": "implement", "kind": "role", "ts": at(0)},
        {
            "type": "step.finish",
            "step": "implement",
            "status": "ok",
            "ts": at(4),
            "outputs": {"model": "demo-coder", "cost": "0.01"},
        },
        {"type": "step.start", "step": "test", "kind": "run", "ts": at(5)},
        {"type": "step.goto", "step": "test", "to": "implement", "count": 1, "failure": "1 failed"},
        {"type": "step.start", "step": "implement", "kind": "role", "ts": at(6)},
    ]
    for event in events:
        view.apply(event)
    text = drawn(view, T0 + timedelta(seconds=9))
    # both rounds: 4 s and $0.01 done, 3 s of the second so far
    assert "▶ │ implement ×2 │ role │ demo-coder │ 7.0s │ $0.01" in text.replace("  ", " ")
    assert "↺" in text and "→ implement (1): 1 failed" in text
    assert "· │ merge" in text.replace("  ", " ")  # not started yet
    assert "spent $0.0123" in text
    drawn(view, T0)
    drawn(view, T0)
    assert len(calls) == 2  # the ledger is read at most once a second


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.mark.timeout(120)
def test_a_terminal_gets_the_live_table(tmp_path: Path, server: LLMServer) -> None:
    demo = prepare(tmp_path / "demo", server)
    terminal = Terminal(
        [sys.executable, "-m", "agentctl", "pipeline", "run", "demo", "--ticket", demo.ticket],
        demo.root,
    )
    try:
        terminal.expect(r"pipeline demo · run ")
        seen = terminal.expect(r"cost by role: ")
        code = terminal.process.wait(30)
    finally:
        terminal.close()
    assert "✓" in seen and "implement" in seen and "demo-coder" in seen
    assert "spent $" in seen and "succeeded (done)" in seen
    assert code == 0


def test_a_step_of_several_rounds_shows_their_sum_on_one_line() -> None:
    view = PipelineView("pipeline demo · run R", [("implement", "role"), ("review", "role")])
    asked = "review requested changes:\nNeeds a test.\n- calc.py:2: add one for negative numbers"
    for event in [
        {"type": "step.start", "step": "implement", "kind": "role", "ts": at(0)},
        {"type": "step.finish", "step": "implement", "ts": at(4), "outputs": {"cost": "0.01"}},
        {"type": "step.start", "step": "review", "kind": "role", "ts": at(5)},
        {
            "type": "step.goto",
            "step": "review",
            "to": "implement",
            "count": 1,
            "reason": "changes_requested",
            "failure": asked,
            "ts": at(7),
            "outputs": {"model": "demo-reviewer", "cost": "0.002"},
        },
        {"type": "step.start", "step": "implement", "kind": "role", "ts": at(8)},
        {"type": "step.finish", "step": "implement", "ts": at(9.5), "outputs": {"cost": "0.03"}},
        {"type": "step.start", "step": "review", "kind": "role", "ts": at(10)},
    ]:
        view.apply(event)
    text = " ".join(drawn(view, T0 + timedelta(seconds=11)).split())
    assert "✓ │ implement ×2 │ role │ │ 5.5s │ $0.04 │" in text
    assert "▶ │ review ×2 │ role │ demo-reviewer │ 3.0s │ $0.002 │" in text  # 2 s + 1 s now
    narrow = Console(file=io.StringIO(), width=100, color_system=None)
    view.rows["review"].status, view.rows["review"].started = "changes", None
    view.rows["review"].note = "changes requested → round 2: Needs a test. - calc.py:2: add"
    narrow.print(view.table(T0, width=100))
    lines = narrow.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 7  # title, 3 rules, header, two rows: no row wrapped
    (row,) = [line for line in lines if "review" in line]
    assert "round 2: Nee" in row and row.rstrip(" │").endswith("…")


@pytest.mark.timeout(120)
def test_the_live_table_adds_up_after_a_loop_back(
    tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A review asks for changes once: the rows sum both rounds, the total is the final one."""
    monkeypatch.setenv("COLUMNS", "120")  # the terminal's width, as rich reads it
    demo = prepare(tmp_path / "demo", server, scripted=False)
    usage = {"input_tokens": 1000, "output_tokens": 100}
    server.script(
        "demo-coder",
        Turn.tool_call(
            "edit", {"path": "calc.py", "old": "return a - b", "new": "return a + b"}, usage=usage
        ),
        Turn.text("Fixed.", usage=usage),
    )
    server.script_for(
        "demo-coder",
        "add one for negative numbers",  # only the second round's prompt carries the review
        Turn.tool_call("write", {"path": "test_neg.py", "content": NEG_TEST}, usage=usage),
        Turn.text("Added the test.", usage=usage),
    )
    comments = [{"file": "test_calc.py", "line": 1, "body": "add one for negative numbers"}]
    server.script(
        "demo-reviewer",
        Turn.tool_call(
            "finish",
            {"verdict": "request_changes", "summary": "Needs a test.", "comments": comments},
            usage=usage,
        ),
        Turn.tool_call("finish", {"verdict": "approve", "summary": "Good.", "comments": []}),
    )
    terminal = Terminal(
        [sys.executable, "-m", "agentctl", "pipeline", "run", "demo", "--ticket", demo.ticket],
        demo.root,
    )
    try:
        seen = terminal.expect(r"cost by role: [^\n]*\n")
        code = terminal.process.wait(30)
    finally:
        terminal.close()
    assert code == 0, seen
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen).replace("\r", "")
    frame = text[text.rindex("pipeline demo · run ") :]  # the last frame, then the summary
    final = re.search(r"succeeded \(done\) · [^\n]* · \$(\S+) · run", frame)
    assert final is not None, frame
    assert f"spent ${final.group(1)}" in frame  # the table's total is the final total
    rows = {line.split("│")[2].strip(): line for line in frame.splitlines() if "│" in line}
    implement, review = rows["implement ×2"], rows["review ×2"]
    ledger = Ledger(demo.root / ".agentctl")
    by_role = {r.key: r.cost for r in report(ledger.entries(), by="role").rows}
    assert f"${by_role['dev']:f}" in implement  # both rounds of the dev agent
    assert f"${by_role['review']:f}" in review  # the round that asked for changes too
    assert all(line.count("│") == 8 for line in rows.values())  # no row wrapped
    (asked, *_) = [line for line in text.splitlines() if "↺" in line and "review" in line]
    assert "changes requested → round 2: Needs a test. - test_cal" in asked
    assert asked.count("│") == 8  # its reason on the line of its colon, not wrapped below


NEG_TEST = """\
import unittest

from calc import add


class NegTest(unittest.TestCase):
    def test_negative(self):
        self.assertEqual(add(-2, -3), -5)
"""
