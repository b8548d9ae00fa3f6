"""The live pipeline table: what the rows say, and that a terminal gets it."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from agentctl.cli.pipeline_view import PipelineView
from agentctl.demo import prepare
from agentctl.runs.timefmt import format_ts
from agentctl.testing.llm_server import LLMServer
from tests.terminal import Terminal

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return format_ts(T0 + timedelta(seconds=seconds))


def drawn(view: PipelineView, now: datetime) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(view.table(now))
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
    assert "▶ │ implement ×2 │ role │ demo-coder │ 3.0s" in text.replace("  ", " ")
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
