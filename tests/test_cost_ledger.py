"""The ledger: day files, exact round trips, torn lines, concurrent writers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from agentctl.config.schema import Model, Price
from agentctl.cost import Entry, Ledger, cost_at, dumps, rates
from agentctl.llm.types import Usage
from agentctl.runs import RunStore
from tests.test_runs_concurrency import start_together

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SONNET = Price(input=2.0, output=10.0, cache_write=2.5, cache_read=0.1)


def make_entry(
    ts: datetime = T0,
    *,
    run_id: str = "run-a",
    root_id: str | None = None,
    parent_id: str | None = None,
    role: str | None = "dev",
    model: str = "sonnet",
    usage: Usage = Usage(1_000, 100, 10, 20),  # noqa: B008 - frozen value
    price: Price = SONNET,
) -> Entry:
    """An entry priced the way the agent loop prices one."""
    applied = rates(price, usage.prompt_tokens)
    return Entry(
        ts=ts,
        run_id=run_id,
        root_id=root_id or run_id,
        parent_id=parent_id,
        role=role,
        model=model,
        provider="anthropic",
        model_id=f"claude-{model}",
        request_id="req_1",
        usage=usage,
        price=applied,
        cost=cost_at(usage, applied),
    )


def test_round_trip_is_exact(tmp_path: Path) -> None:
    entry = make_entry(usage=Usage(7, 3, 0, 11), price=Price(input=0.1, output=0.3))
    assert entry.cost == Decimal("0.0000027")  # (7 + 11) × 0.1 + 3 × 0.3 per million
    line = dumps(entry.to_json())
    assert '"cost":0.0000027' in line and '"input":0.1' in line
    assert Entry.from_json(json.loads(line, parse_float=Decimal)) == entry
    ledger = Ledger(tmp_path)
    ledger.record(entry)
    assert list(ledger.entries()) == [entry]
    assert ledger.problems == []


def test_entries_land_in_their_utc_day_file(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    late = make_entry(T0.replace(hour=23, minute=59, second=59))
    midnight = make_entry(T0.replace(hour=0) + timedelta(days=1))
    # 01:30 at +05:00 is 20:30 UTC the day before
    offset = make_entry(datetime(2026, 11, 27, 1, 30, tzinfo=timezone(timedelta(hours=5))))
    for entry in (late, midnight, offset):
        ledger.record(entry)
    names = sorted(p.name for p in (tmp_path / "ledger").iterdir())
    assert names == ["2026-11-25.jsonl", "2026-11-26.jsonl"]
    second_day = (tmp_path / "ledger" / "2026-11-26.jsonl").read_text().splitlines()
    assert len(second_day) == 2
    assert [e.ts for e in ledger.entries()] == [late.ts, midnight.ts, offset.ts]


def test_since_and_until_read_only_the_days_in_range(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    days = [T0 + timedelta(days=n) for n in range(4)]
    for ts in days:
        ledger.record(make_entry(ts))
    with (tmp_path / "ledger" / "2026-11-25.jsonl").open("ab") as handle:
        handle.write(b"garbage\n")  # only seen by a read of the first day
    assert [e.ts for e in ledger.entries(since=days[1], until=days[3])] == days[1:3]
    assert ledger.problems == []
    assert [e.ts for e in ledger.entries(since=days[2])] == days[2:]
    # until is exclusive: midnight does not open the next day's file
    midnight = datetime(2026, 11, 27, tzinfo=UTC)
    assert [e.ts for e in ledger.entries(since=days[1], until=midnight)] == [days[1]]
    assert len(list(ledger.entries(until=days[1]))) == 1
    assert ledger.problems == ["2026-11-25.jsonl line 2: not JSON; skipped"]


def test_torn_last_line_is_skipped_and_the_next_record_lands_whole(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record(make_entry())
    path = tmp_path / "ledger" / "2026-11-25.jsonl"
    whole = dumps(make_entry(run_id="torn").to_json()).encode()
    with path.open("ab") as handle:
        handle.write(whole[: len(whole) // 2])  # a writer killed mid-line
    assert [e.run_id for e in ledger.entries()] == ["run-a"]
    assert ledger.problems == ["2026-11-25.jsonl: torn last line skipped"]
    ledger.record(make_entry(run_id="next"))
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    assert [json.loads(line)["run_id"] for line in lines[:-1]] == ["run-a", "next"]
    assert [e.run_id for e in ledger.entries()] == ["run-a", "next"]
    assert ledger.problems == []


def test_bad_lines_are_reported_never_raised(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record(make_entry())
    future = {**json.loads(dumps(make_entry().to_json())), "schema_version": 2}
    no_cost = {**json.loads(dumps(make_entry().to_json())), "cost": "1.0"}
    with (tmp_path / "ledger" / "2026-11-25.jsonl").open("a") as handle:
        handle.write(json.dumps(future) + "\n\n" + json.dumps(no_cost) + "\n[1]\n")
    ledger.record(make_entry(run_id="after"))
    assert [e.run_id for e in ledger.entries()] == ["run-a", "after"]
    assert ledger.problems == [
        "2026-11-25.jsonl line 2: schema_version 2 was written by a newer agentctl; skipped",
        "2026-11-25.jsonl line 4: cost must be a number, found '1.0'; skipped",
        "2026-11-25.jsonl line 5: not a JSON object; skipped",
    ]


def test_spent_filters_by_role_model_and_runs(tmp_path: Path) -> None:
    store = RunStore(tmp_path, clock=lambda: T0)
    first = store.create("agent", input={}).id
    second = store.create("agent", input={}).id
    ledger = Ledger(tmp_path)
    ledger.record(make_entry(T0 - timedelta(days=30), run_id="old"))  # before both runs
    ledger.record(make_entry(run_id=first, role="dev", model="sonnet"))
    ledger.record(make_entry(run_id=second, role="review", model="opus"))
    one = make_entry().cost
    assert ledger.spent(since=None) == 3 * one
    assert ledger.spent(since=T0) == 2 * one
    assert ledger.spent(since=None, role="review") == one
    assert ledger.spent(since=None, model="sonnet") == 2 * one
    assert ledger.spent(since=None, run_ids={first, second}) == 2 * one
    assert ledger.spent(since=None, run_ids=set()) == 0
    assert ledger.spent(since=None, run_ids={"old"}) == one  # not a run id: all days read


def test_charge_prices_and_records_a_call(tmp_path: Path) -> None:
    store = RunStore(tmp_path, clock=lambda: T0)
    parent = store.create("pipeline", input={})
    child = store.create("agent", input={}, parent=parent, role="dev")
    model = Model(provider="anthropic", name="claude-sonnet-5-5", price=SONNET)
    ledger = Ledger(tmp_path, clock=lambda: T0 + timedelta(seconds=5))
    usage = Usage(1_000_000, 0, 0, 0)
    entry = ledger.charge(
        run=child.load(), model_name="sonnet", model=model, usage=usage, request_id="req_9"
    )
    assert entry.cost == Decimal("2.0")
    assert entry.price["cache_read"] == Decimal("0.1")
    assert (entry.run_id, entry.parent_id, entry.root_id) == (child.id, parent.id, parent.id)
    assert (entry.role, entry.model_id, entry.ts) == (
        "dev",
        "claude-sonnet-5-5",
        T0 + timedelta(seconds=5),
    )
    assert list(ledger.entries()) == [entry]


def test_four_writers_lose_nothing(tmp_path: Path) -> None:
    body = """
from datetime import UTC, datetime
from decimal import Decimal
from agentctl.cost import Entry, Ledger
from agentctl.llm.types import Usage
ledger = Ledger(Path(STATE))
one = {kind: Decimal(1) for kind in ("input", "output", "cache_write", "cache_read")}
for i in range(25):
    ledger.record(Entry(
        ts=datetime(2026, 11, 25, 12, tzinfo=UTC), run_id="wWRITER", root_id="wWRITER",
        parent_id=None, role="dev", model="m", provider="openai", model_id="m",
        request_id="p" * (WRITER * 3000), usage=Usage(i, 1), price=one,
        cost=Decimal(i + 1) / 1_000_000,
    ))
"""
    start_together(
        tmp_path,
        [body.replace("STATE", repr(str(tmp_path))).replace("WRITER", str(w)) for w in range(4)],
    )
    ledger = Ledger(tmp_path)
    entries = list(ledger.entries())
    assert ledger.problems == []
    assert len(entries) == 100
    for writer in range(4):  # each writer's own lines whole and in its order
        mine = [e.usage.input_tokens for e in entries if e.run_id == f"w{writer}"]
        assert mine == list(range(25))
    assert ledger.spent(since=None) == 4 * Decimal(sum(range(1, 26))) / 1_000_000
