"""Reports and ``agentctl cost``: grouping, run trees, what-if prices, exact JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agentctl.config.schema import Price
from agentctl.cost import Ledger, cost_of, descendants, parse_since, report
from agentctl.errors import UsageError
from agentctl.llm.types import Usage
from agentctl.runs import RunStore, utc_now
from tests.conftest import Invoke
from tests.test_cost_ledger import T0, make_entry

OPUS = Price(input=4.0, output=20.0, cache_write=5.0, cache_read=0.2)  # shipped defaults.toml
CENT = Price(input=12.5, output=0.0)  # one input token costs $0.0000125


def as_decimal(text: str) -> object:
    return json.loads(text, parse_float=Decimal)


def test_report_groups_and_totals() -> None:
    entries = [
        make_entry(T0, run_id="a1", root_id="a", role="dev", model="sonnet"),
        make_entry(T0 + timedelta(days=1), run_id="a2", root_id="a", role="review", model="opus"),
        make_entry(T0 + timedelta(days=1), run_id="b", role="dev", model="sonnet"),
    ]
    one = entries[0].cost
    by_model = report(entries, by="model")
    assert [(r.key, r.calls, r.cost) for r in by_model.rows] == [
        ("sonnet", 2, 2 * one),
        ("opus", 1, one),
    ]
    assert by_model.total.key == "total" and by_model.total.calls == 3
    assert by_model.total.usage == Usage(3_000, 300, 30, 60)
    assert by_model.total.what_if_cost is None
    assert [(r.key, r.calls) for r in report(entries, by="role").rows] == [
        ("dev", 2),
        ("review", 1),
    ]
    assert [(r.key, r.calls) for r in report(entries, by="day").rows] == [
        ("2026-11-25", 1),
        ("2026-11-26", 2),
    ]
    assert [(r.key, r.calls) for r in report(entries, by="run").rows] == [("a", 2), ("b", 1)]
    priced = report(entries, by="run", what_if=OPUS)
    assert priced.total.what_if_cost == 3 * cost_of(Usage(1_000, 100, 10, 20), OPUS)


def test_descendants_follow_parent_links(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    chat = store.create("chat", input={})
    orchestrator = store.create("orchestrator", input={}, parent=chat)
    pipeline = store.create("pipeline", input={}, parent=orchestrator)
    agents = [store.create("agent", input={}, parent=pipeline) for _ in range(2)]
    unrelated = store.create("agent", input={})
    broken = store.create("agent", input={}, parent=pipeline)
    broken.paths.run_json.write_text("{not json")  # a corrupt run never breaks the walk
    # ...and stays in its tree: its parent's children index named it before it existed.
    below = {*(a.id for a in agents), broken.id}
    tree = {chat.id, orchestrator.id, pipeline.id, *below}
    assert descendants(tmp_path, chat.id) == tree
    assert descendants(tmp_path, pipeline.id) == {pipeline.id, *below}
    assert descendants(tmp_path, unrelated.id) == {unrelated.id}


def test_parse_since() -> None:
    def clock() -> datetime:
        return T0

    assert parse_since("1d", clock=clock) == T0 - timedelta(days=1)
    assert parse_since("7d", clock=clock) == T0 - timedelta(days=7)
    assert parse_since("12h", clock=clock) == T0 - timedelta(hours=12)
    assert parse_since("30m", clock=clock) == T0 - timedelta(minutes=30)
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T12:00:00+01:00") == datetime(2026, 11, 1, 11, tzinfo=UTC)
    for bad in ("yesterday", "7x", "2026-13-01", "-1d", "", "2026-11-01T12:00"):
        with pytest.raises(UsageError, match="cannot read --since") as caught:
            parse_since(bad)
        assert caught.value.hint is not None and "2026-11-01" in caught.value.hint


@pytest.fixture
def trees(repo: Path) -> dict[str, str]:
    """Two run trees with ledger entries, recent ones and one from 10 days ago."""
    state = repo / ".agentctl"
    store = RunStore(state, clock=lambda: utc_now() - timedelta(days=11))
    chat = store.create("chat", input={}, role="main")
    orchestrator = store.create("orchestrator", input={}, parent=chat, role="orchestrator")
    agent = store.create("agent", input={}, parent=orchestrator, role="dev")
    other = store.create("pipeline", input={})
    ledger = Ledger(state)
    now = utc_now()
    calls = [
        (chat.id, chat.id, "main", "opus", now - timedelta(days=10)),
        (orchestrator.id, chat.id, "orchestrator", "sonnet", now - timedelta(hours=2)),
        (agent.id, chat.id, "dev", "coder-next", now - timedelta(hours=1)),
        (agent.id, chat.id, "dev", "sonnet", now - timedelta(hours=1)),
        (other.id, other.id, "dev", "sonnet", now - timedelta(minutes=5)),
    ]
    for run_id, root_id, role, model, ts in calls:
        ledger.record(
            make_entry(
                ts, run_id=run_id, root_id=root_id, role=role, model=model, usage=Usage(1, 0)
            )
        )
    return {"chat": chat.id, "orchestrator": orchestrator.id, "agent": agent.id, "other": other.id}


def test_cost_by_run_json_is_exact(repo: Path, cli: Invoke, trees: dict[str, str]) -> None:
    result = cli("cost", "--by", "run", "--json", cwd=repo)
    assert result.exit_code == 0, result.stderr
    data = as_decimal(result.stdout)
    assert isinstance(data, dict)
    assert data["by"] == "run" and data["since"].endswith("Z")
    one = make_entry(usage=Usage(1, 0)).cost  # 1 token at $2 per million
    assert one == Decimal("0.000002") and '"cost_usd":0.000002' in result.stdout
    rows = {row["key"]: row for row in data["rows"]}
    assert rows[trees["chat"]]["calls"] == 3  # the 10-day-old call is outside the 7 days
    assert rows[trees["chat"]]["cost_usd"] == 3 * one
    assert rows[trees["other"]]["cost_usd"] == one
    assert data["total"] == {
        "key": "total",
        "calls": 4,
        **Usage(4, 0).to_json(),
        "cost_usd": Decimal("0.000008"),
    }
    for number in re.findall(r'"cost_usd":([^,}]*)', result.stdout):
        assert re.fullmatch(r"\d+\.\d+", number), number  # exact, no exponent, not a string
    older = as_decimal(cli("cost", "--since", "30d", "--json").stdout)
    assert isinstance(older, dict) and older["total"]["calls"] == 5


def test_cost_of_a_run_includes_its_descendants_for_all_time(
    repo: Path, cli: Invoke, trees: dict[str, str]
) -> None:
    data = as_decimal(
        cli("cost", "--run", trees["chat"][-6:], "--by", "role", "--json", cwd=repo).stdout
    )
    assert isinstance(data, dict) and data["since"] is None
    assert {row["key"]: row["calls"] for row in data["rows"]} == {
        "dev": 2,
        "main": 1,
        "orchestrator": 1,
    }
    below = as_decimal(cli("cost", "--run", trees["orchestrator"], "--json").stdout)
    assert isinstance(below, dict) and below["total"]["calls"] == 3
    text = cli("cost", "--run", trees["agent"], "--by", "model", env={"COLUMNS": "200"}).stdout
    assert "coder-next" in text and "sonnet" in text and "total" in text and "opus" not in text


def test_what_if_prices_at_the_configured_model(
    repo: Path, cli: Invoke, trees: dict[str, str]
) -> None:
    data = as_decimal(cli("cost", "--by", "model", "--what-if", "opus", "--json", cwd=repo).stdout)
    assert isinstance(data, dict) and data["what_if"] == "opus"
    at_opus = cost_of(Usage(1, 0), OPUS)
    assert at_opus == Decimal("0.000004")
    assert all(row["what_if_cost_usd"] == row["calls"] * at_opus for row in data["rows"])
    assert data["total"]["what_if_cost_usd"] == 4 * at_opus
    table = cli("cost", "--what-if", "opus", "--by", "day", env={"COLUMNS": "200"}).stdout
    assert "if opus" in table and "$0.000016" in table and "total" in table
    missing = cli("cost", "--what-if", "gpt-9")
    assert missing.exit_code == 2 and "no model named 'gpt-9'" in missing.stderr


def test_bad_options_exit_2_with_one_line(repo: Path, cli: Invoke) -> None:
    for args, message in (
        (("--since", "yesterday"), "cannot read --since 'yesterday'"),
        (("--by", "colour"), "cannot group by 'colour'"),
        (("--run", "nosuchrun"), "no run matches 'nosuchrun'"),
    ):
        result = cli("cost", *args, cwd=repo)
        assert result.exit_code == 2
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("agentctl: error: ")
        assert message in lines[0]


def test_empty_and_damaged_ledgers(repo: Path, cli: Invoke) -> None:
    result = cli("cost", cwd=repo)
    assert result.exit_code == 0 and "no model calls" in result.stdout
    assert not (repo / ".agentctl").exists()  # a report never writes
    ledger = Ledger(repo / ".agentctl")
    entry = make_entry(utc_now(), usage=Usage(1, 0), price=CENT)
    ledger.record(entry)
    with ledger.path_for(entry.day).open("ab") as handle:
        handle.write(b'{"torn')
    result = cli("cost", "--json")
    assert result.exit_code == 0
    assert "torn last line skipped" in result.stderr
    data = as_decimal(result.stdout)
    assert isinstance(data, dict) and data["total"]["cost_usd"] == Decimal("0.0000125")
    assert '"cost_usd":0.0000125' in result.stdout


def test_the_table_shows_the_dearest_runs_and_sums_the_rest(
    repo: Path, cli: Invoke, trees: dict[str, str]
) -> None:
    """A run table of thousands of rows is unreadable and slow to draw; its total still adds up."""
    wide = {"COLUMNS": "200"}
    table = cli("cost", "--by", "run", "--limit", "1", cwd=repo, env=wide)
    assert table.exit_code == 0, table.stderr
    assert trees["chat"] in table.stdout  # 3 calls: the dearest
    assert trees["other"] not in table.stdout
    assert "1 more runs" in table.stdout and "$0.000002" in table.stdout  # the rest, summed
    assert "$0.000008" in table.stdout  # the total is every row's
    every = cli("cost", "--by", "run", "--limit", "1", "--all", cwd=repo, env=wide)
    assert trees["other"] in every.stdout and "more runs" not in every.stdout
    data = as_decimal(cli("cost", "--by", "run", "--limit", "1", "--json", cwd=repo).stdout)
    assert isinstance(data, dict) and len(data["rows"]) == 2  # JSON has every row
