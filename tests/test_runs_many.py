"""A thousand runs list fast and right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentctl import atomic
from agentctl.runs import KINDS, RunRecord, RunStore, new_run_id

T0 = datetime(2026, 11, 25, 21, 24, 33, 482913, tzinfo=UTC)
STATUS_CYCLE = ["pending", "running", "succeeded", "failed", "canceled", "paused"]


@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[RunRecord]]:
    state = tmp_path_factory.mktemp("state")
    runs = state / "runs"
    runs.mkdir()
    records = []
    for i in range(1000):
        created = T0 + timedelta(minutes=i)
        run_id = new_run_id(KINDS[i % len(KINDS)], created)
        record = RunRecord(
            id=run_id,
            kind=KINDS[i % len(KINDS)],
            status=STATUS_CYCLE[(i // 7) % len(STATUS_CYCLE)],  # type: ignore[arg-type]
            created_at=created,
            updated_at=created,
            root_id=run_id,
            role="dev",
        )
        (runs / run_id).mkdir()
        atomic.write_json(runs / run_id / "run.json", record.to_json(), durable=False)
        records.append(record)
    return state, records


def test_list_thousand(thousand: tuple[Path, list[RunRecord]]) -> None:
    state, records = thousand
    store = RunStore(state)
    listings = store.list()
    assert len(listings) == 1000
    assert [item.record for item in listings] == records[::-1]  # newest first
    assert all(item.problem is None and item.heartbeat_at is None for item in listings)


def test_page_reads_only_what_it_shows(thousand: tuple[Path, list[RunRecord]]) -> None:
    state, records = thousand
    store = RunStore(state)
    newest = records[::-1]
    shown, total = store.page(limit=30)
    assert total == 1000 and [item.record for item in shown] == newest[:30]
    # A corrupt run beyond the page is not read, so it cannot slow or break the page.
    oldest = state / "runs" / records[0].id / "run.json"
    saved = oldest.read_bytes()
    oldest.write_text("garbage")
    try:
        assert store.page(limit=30)[1] == 1000
        shown, total = store.page(status="failed", limit=5)
        assert total == sum(r.status == "failed" for r in records)
        assert [item.record for item in shown] == [r for r in newest if r.status == "failed"][:5]
    finally:
        oldest.write_bytes(saved)


def test_filters(thousand: tuple[Path, list[RunRecord]]) -> None:
    store = RunStore(thousand[0])
    records = thousand[1]
    agents = store.list(kind="agent")
    assert len(agents) == sum(r.kind == "agent" for r in records)
    assert agents and all(item.id.split("-")[1] == "agent" for item in agents)
    failed = store.list(status="failed")
    assert [item.record for item in failed] == [r for r in records[::-1] if r.status == "failed"]
    both = store.list(kind="step", status="running")
    expected = [r for r in records[::-1] if r.kind == "step" and r.status == "running"]
    assert [item.record for item in both] == expected and expected
    assert store.list(parent_id="nobody") == []


def test_the_live_index_follows_every_status_change(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    a = store.create("agent", input={})
    b = store.create("pipeline", input={})
    assert {x.id for x in store.live()} == {a.id, b.id}
    a.transition("running")
    a.transition("paused", reason="budget")
    assert {x.id for x in store.live()} == {a.id, b.id}  # paused is unfinished
    a.transition("failed", reason="x")
    assert {x.id for x in store.live()} == {b.id}
    a.transition("running")  # resumed: back in the index
    assert {x.id for x in store.live()} == {a.id, b.id}
    b.transition("canceled")
    a.transition("succeeded")
    assert store.live() == []
    (tmp_path / "runs" / ".live" / "20990101T000000.000000Z-agent-abcdef").touch()
    assert store.live() == []  # a marker without a run is dropped
    assert len(store.list()) == 2  # the index is not a run
