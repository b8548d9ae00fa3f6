"""Ledger reads that do not grow with history: day summaries, the run index, --rebuild.

Every report must be exactly the one the raw lines give, whatever derived files exist.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agentctl.config.schema import LongContextPrice, Price
from agentctl.cost import Ledger, build_report, daytotals, descendants, dumps, report, runindex
from agentctl.cost import entry as entry_module
from agentctl.cost import ledger as ledger_module
from agentctl.cost.report import check_by
from agentctl.llm.types import Usage
from agentctl.runs import RunStore, format_ts, utc_now
from tests.conftest import Invoke
from tests.test_cost_ledger import make_entry
from tests.test_runs_concurrency import start_together

HAIKU = Price(  # shipped defaults.toml: a long-context band above 100K prompt tokens
    input=0.1,
    output=0.5,
    cache_write=0.125,
    cache_read=0.01,
    long_context=LongContextPrice(
        above_tokens=100_000, input=0.5, output=2.5, cache_write=0.625, cache_read=0.05
    ),
)
WIDE = {"COLUMNS": "250"}


def midnight(days_ago: int) -> datetime:
    now = utc_now()
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days_ago)


@pytest.fixture
def history(repo: Path) -> dict[str, str]:
    """Six days of calls by two run trees, with the damage a real ledger may hold."""
    state = repo / ".agentctl"
    store = RunStore(state, clock=lambda: utc_now() - timedelta(days=7))
    chat = store.create("chat", input={}, role="main")
    agent = store.create("agent", input={}, parent=chat, role="dev")
    review = store.create("agent", input={}, parent=chat, role="review")
    other = store.create("pipeline", input={})
    ledger = Ledger(state)
    calls = 0
    for days_ago in range(5, -1, -1):
        start = midnight(days_ago)
        hours = range(1, 24, 2) if days_ago else range(utc_now().hour + 1)
        for hour in hours:
            ts = start + timedelta(hours=hour, minutes=calls % 7)
            prompt = 20_000 * (hour % 9)  # 0..160K: both sides of haiku's 100K band
            for run, model in ((agent, "sonnet"), (review, "opus"), (chat, "haiku")):
                record = run.load()
                ledger.record(
                    make_entry(
                        ts,
                        run_id=run.id,
                        root_id=chat.id,
                        parent_id=record.parent_id,
                        role=record.role,
                        model=model,
                        usage=Usage(prompt + hour, 100 + hour, hour, 3 * hour),
                    )
                )
                calls += 1
            if hour % 4 == 1:
                ledger.record(make_entry(ts, run_id=other.id, role=None, model="coder-next"))
    damaged = ledger.path_for(midnight(3).date())
    with damaged.open("ab") as handle:  # a bad line mid-file, a wrong cost, a torn tail
        handle.write(b'{"schema_version": 1, "ts": "then"}\n')
        line = json.loads(dumps(make_entry(midnight(3), run_id=agent.id).to_json()))
        line["cost"] = 0.5
        handle.write(json.dumps(line).encode() + b"\n")
    ledger.record(make_entry(midnight(3) + timedelta(hours=23), run_id=agent.id, role="dev"))
    with damaged.open("ab") as handle:
        handle.write(b'{"torn')
    with ledger.path_for(midnight(0).date()).open("ab") as handle:
        handle.write(b"not json\n")
    return {"chat": chat.id, "agent": agent.id, "review": review.id, "other": other.id}


def raw(state: Path, *, by: str, since: datetime | None, run_ids: set[str] | None) -> str:
    """The JSON report read the way the ledger was always read: every line of every file."""
    ledger = Ledger(state)
    found = []
    problems: list[str] = []
    for path in ledger.day_files(since, None, run_ids):
        found.extend(
            e
            for e in ledger.read_day(path)  # no run_ids: the raw lines
            if (since is None or e.ts >= since) and (run_ids is None or e.run_id in run_ids)
        )
        problems.extend(ledger.problems)
        ledger.problems = []
    result = replace(report(found, by=check_by(by), what_if=HAIKU), since=since)
    return dumps({**result.to_json(), "problems": problems})


def ours(state: Path, *, by: str, since: datetime | None, run: str | None) -> str:
    result = build_report(state, by=by, since=since, run=run, what_if=HAIKU)
    return dumps({**result.to_json(), "problems": list(result.problems)})


def cases(ids: dict[str, str]) -> Iterator[tuple[str, datetime | None, str | None]]:
    cut = midnight(2) + timedelta(hours=11, minutes=30)  # in the middle of a day and of runs
    for by in ("model", "role", "day", "run"):
        for since in (None, midnight(4), cut):
            for run in (None, ids["chat"], ids["agent"], ids["other"]):
                yield by, since, run


def test_reports_from_summaries_are_the_reports_from_the_lines(
    repo: Path, history: dict[str, str]
) -> None:
    state = repo / ".agentctl"
    derived = state / "ledger" / "derived"
    for by, since, run in cases(history):
        run_ids = None if run is None else descendants(state, run)
        expected = raw(state, by=by, since=since, run_ids=run_ids)
        assert '"problems":[]' not in expected
        first = ours(state, by=by, since=since, run=run)  # summaries built on the way
        assert first == expected, (by, since, run)
        assert ours(state, by=by, since=since, run=run) == expected, (by, since, run)
    closed = sorted(p.name for p in derived.glob("*.summary.json"))
    assert closed == [f"{midnight(d).date().isoformat()}.summary.json" for d in range(5, 0, -1)]
    saved = json.loads((derived / f"{midnight(3).date().isoformat()}.summary.json").read_text())
    assert len(saved["problems"]) == 3 and "torn last line" in saved["problems"][0]


def test_the_cli_prints_the_same_with_without_and_after_deleting_summaries(
    repo: Path, cli: Invoke, history: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = repo / ".agentctl"
    month = midnight(30).date().isoformat()  # fixed: a duration would move with the clock
    commands = [
        ("cost", "--since", month),
        ("cost", "--since", month, "--by", "run", "--what-if", "haiku"),
        ("cost", "--since", midnight(4).date().isoformat(), "--by", "day", "--json"),
        ("cost", "--run", history["chat"], "--by", "role"),
        ("cost", "--since", format_ts(midnight(2) + timedelta(hours=11)), "--by", "day"),
    ]

    def outputs() -> list[tuple[int, str, str]]:
        found = []
        for args in commands:
            monkeypatch.setattr(entry_module, "_reported", set())  # warn again each time
            result = cli(*args, cwd=repo, env=WIDE)
            found.append((result.exit_code, result.stdout, result.stderr))
        return found

    before = outputs()
    assert all(code == 0 for code, _, _ in before)
    assert ": not JSON; skipped" in before[0][2] and "torn last line" in before[0][2]
    assert (state / "ledger" / "derived").is_dir()
    assert outputs() == before  # from the summaries now
    shutil.rmtree(state / "ledger" / "derived")
    assert outputs() == before
    orphan = state / "ledger" / "derived" / "1999-01-01.summary.json"
    orphan.write_text("{}")  # its day file is gone
    rebuilt = cli("cost", "--rebuild", cwd=repo)
    assert rebuilt.exit_code == 0, rebuilt.stderr
    assert rebuilt.stdout.splitlines() == [
        f"rebuilt 5 day summaries and 6 run indexes from the day files in {state / 'ledger'}"
        ", removed 1 derived files of no day file"
    ]
    assert not orphan.exists()
    assert len(list((state / "ledger" / "derived").glob("*.summary.json"))) == 5
    assert outputs() == before


def test_a_closed_day_written_after_its_summary_is_summarised_again(
    repo: Path, cli: Invoke, history: dict[str, str]
) -> None:
    state = repo / ".agentctl"
    first = json.loads(cli("cost", "--since", "30d", "--json", cwd=repo).stdout)
    # a late writer whose clock is behind: a call lands in a day already summarised
    late = make_entry(midnight(4) + timedelta(hours=5), run_id=history["other"], model="late")
    Ledger(state).record(late)
    second = json.loads(cli("cost", "--since", "30d", "--json").stdout)
    assert second["total"]["calls"] == first["total"]["calls"] + 1
    assert next(r for r in second["rows"] if r["key"] == "late")["calls"] == 1
    day = midnight(4).date().isoformat()
    saved = json.loads((state / "ledger" / "derived" / f"{day}.summary.json").read_text())
    assert saved["source"]["size"] == (state / "ledger" / f"{day}.jsonl").stat().st_size


def test_closed_days_and_indexed_lines_are_not_parsed_again(
    repo: Path, history: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = repo / ".agentctl"
    parsed: list[int] = []
    real = entry_module.parse_line

    def counting(name: str, number: int, line: bytes) -> object:
        parsed.append(number)
        return real(name, number, line)

    for module in (daytotals, runindex, ledger_module):
        monkeypatch.setattr(module, "parse_line", counting)
    since = midnight(10)
    build_report(state, by="model", since=since)
    files = sorted((state / "ledger").glob("*.jsonl"))
    assert len(parsed) == sum(p.read_bytes().count(b"\n") for p in files)  # each line once
    today = files[-1].read_bytes().count(b"\n")
    parsed.clear()
    build_report(state, by="model", since=since)
    assert parsed == []  # closed days from their totals, the open day from its partial
    ledger = Ledger(state)
    ids = {history["agent"]}
    spent = ledger.spent(since=None, run_ids=ids)
    assert spent == sum(e.cost for e in ledger.entries(run_ids=ids))
    parsed.clear()
    ledger.record(make_entry(utc_now(), run_id=history["other"]))
    assert ledger.spent(since=None, run_ids=ids) == spent
    lines = files[-1].read_bytes().split(b"\n")
    mine = [n for n, line in enumerate(lines, 1) if history["agent"].encode() in line]
    assert parsed == [today + 1, *mine]  # the new line indexed, the run's lines counted


def test_the_run_index_survives_torn_tails_and_rewrites(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    now = utc_now()
    ledger.record(make_entry(now, run_id="a"))
    ledger.record(make_entry(now, run_id="b"))
    one = make_entry(now).cost
    assert ledger.spent(since=None, run_ids={"a"}) == one
    path = ledger.path_for(now.date())
    with path.open("ab") as handle:  # a writer killed mid-line, after the index caught up
        handle.write(dumps(make_entry(now, run_id="a").to_json()).encode()[:40])
    assert ledger.spent(since=None, run_ids={"a"}) == one
    assert ledger.problems == [f"{path.name}: torn last line skipped"]
    ledger.record(make_entry(now, run_id="a"))  # cuts the torn tail, appends whole
    assert ledger.spent(since=None, run_ids={"a"}) == 2 * one
    assert [e.run_id for e in ledger.entries(run_ids={"a"})] == ["a", "a"]
    assert ledger.problems == []
    # the file replaced by another whose lines sit elsewhere: the index is not trusted
    path.unlink()
    ledger.record(make_entry(now, run_id="b", usage=Usage(1, 0)))
    ledger.record(make_entry(now, run_id="a", usage=Usage(3, 0)))
    assert ledger.spent(since=None, run_ids={"a"}) == make_entry(usage=Usage(3, 0)).cost
    assert [e.usage for e in ledger.entries(run_ids={"a"})] == [Usage(3, 0)]
    with path.open("r+b") as handle:  # edited in place: same inode, same size, last line kept
        data = handle.read()
        handle.seek(0)
        handle.write(data.replace(b'"input_tokens":1,', b'"input_tokens":7,', 1))
    ledger.record(make_entry(now, run_id="b"))
    edited = [e for e in ledger.read_day(path) if e.run_id == "b"]
    assert edited[0].usage == Usage(7, 0)  # and its cost is recomputed from its tokens
    assert ledger.spent(since=None, run_ids={"b"}) == sum(e.cost for e in edited)
    shutil.rmtree(tmp_path / "ledger" / "derived")
    (tmp_path / "ledger" / "derived").write_text("")  # derived files cannot be written: still read
    ledger.record(make_entry(now, run_id="a", usage=Usage(3, 0)))
    assert ledger.spent(since=None, run_ids={"a"}) == 2 * make_entry(usage=Usage(3, 0)).cost


def test_spent_by_run_equals_the_full_scan_with_concurrent_writers(tmp_path: Path) -> None:
    body = """
from decimal import Decimal
from agentctl.cost import Entry, Ledger
from agentctl.llm.types import Usage
from agentctl.runs import utc_now
ledger = Ledger(Path(STATE))
one = {kind: Decimal(1) for kind in ("input", "output", "cache_write", "cache_read")}
mine = Decimal(0)
for i in range(30):
    cost = Decimal(i + 1) / 1_000_000
    ledger.record(Entry(
        ts=utc_now(), run_id="wWRITER", root_id="wWRITER", parent_id=None, role="dev",
        model="m", provider="openai", model_id="m", request_id="p" * (WRITER * 700),
        usage=Usage(i, 1), price=one, cost=cost,
    ))
    mine += cost
    spent = ledger.spent(since=None, run_ids={"wWRITER"})  # indexes as the others write
    assert spent == mine, (i, spent, mine)
"""
    start_together(
        tmp_path,
        [body.replace("STATE", repr(str(tmp_path))).replace("WRITER", str(w)) for w in range(4)],
    )
    ledger = Ledger(tmp_path)
    everything = list(ledger.read_day(ledger.path_for(utc_now().date())))
    assert len(everything) == 120 and ledger.problems == []
    for writer in range(4):
        ids = {f"w{writer}"}
        full = sum((e.cost for e in everything if e.run_id in ids), Decimal(0))
        assert full == Decimal(sum(range(1, 31))) / 1_000_000
        assert ledger.spent(since=None, run_ids=ids) == full
        assert sum(e.cost for e in ledger.entries(run_ids=ids)) == full
    index = runindex.load(ledger.path_for(utc_now().date()))
    assert len(index) == 120 and not index.torn


def plain(state: Path, by: str, since: datetime | None) -> tuple[str, str]:
    """(ours, the raw lines') JSON report, without a what-if price."""
    ledger = Ledger(state)
    found, problems = [], []
    for path in ledger.day_files(since, None, None):
        found.extend(e for e in ledger.read_day(path) if since is None or e.ts >= since)
        problems.extend(ledger.problems)
        ledger.problems = []
    expected = replace(report(found, by=check_by(by)), since=since)
    result = build_report(state, by=by, since=since)
    return (
        dumps({**result.to_json(), "problems": list(result.problems)}),
        dumps({**expected.to_json(), "problems": problems}),
    )


def test_the_open_day_is_summed_as_it_grows_torn_tails_and_rewrites_included(
    repo: Path, history: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = repo / ".agentctl"
    ledger = Ledger(state)
    today = ledger.path_for(utc_now().date())
    partial = state / "ledger" / "derived" / f"{utc_now().date().isoformat()}.partial.json"
    since = midnight(4)
    for by in ("model", "role", "day"):
        mine, lines = plain(state, by, since)
        assert mine == lines, by
    assert partial.exists()
    parsed: list[int] = []
    real = entry_module.parse_line

    def counting(name: str, number: int, line: bytes) -> object:
        parsed.append(number)
        return real(name, number, line)

    monkeypatch.setattr(daytotals, "parse_line", counting)
    count = today.read_bytes().count(b"\n")
    ledger.record(make_entry(utc_now(), run_id=history["agent"], role="dev", model="opus"))
    with today.open("ab") as handle:
        handle.write(b'{"torn')  # a writer died mid-line
    mine, lines = plain(state, "model", since)
    torn = f"{today.name}: torn last line"
    assert mine == lines and torn in mine
    assert parsed == [count + 1]  # only the new complete line
    ledger.record(make_entry(utc_now(), run_id=history["other"], model="haiku"))  # cuts it
    parsed.clear()
    mine, lines = plain(state, "role", since)
    assert mine == lines and torn not in mine and parsed == [count + 2]
    rewritten = today.read_bytes().split(b"\n")
    today.unlink()  # a new file under the same name: the partial no longer fits
    today.write_bytes(b"\n".join(rewritten[:2]) + b"\n")
    mine, lines = plain(state, "model", since)
    assert mine == lines
