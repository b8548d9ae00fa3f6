"""``agentctl cost --impact`` over a ledger built by real scripted runs of every tier:
each figure equals the hand-computed sum of the ledger lines at the configured prices."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke

# USD per million tokens (input, output); cache prices default to the input price.
PRICES = {"big": (15, 75), "mid": (3, 15), "local": (0, 0)}


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def tiers(workspace: Path, server: LLMServer, cli: Invoke) -> Path:
    """A workspace whose main session, orchestrator, dev (on a free local model) and
    review each made real calls through the scripted server."""
    models = "".join(
        f'[models.{name}]\nprovider = "anthropic"\nname = "{name}-x"\n'
        f'base_url = "{server.anthropic_url}"\napi_key_env = ""\nmax_retries = 0\n'
        f"price = {{ input = {i}, output = {o} }}\n\n"
        for name, (i, o) in PRICES.items()
    )
    config = workspace / "agentctl.toml"
    config.write_text(config.read_text() + "\n" + models)
    chains = {"main": ("big", []), "orchestrator": ("mid", []), "dev": ("local", ["mid"])}
    chains["review"] = ("mid", [])
    for role, (model, fallback) in chains.items():  # `init` wrote roles/<name>.toml
        path = workspace / "roles" / f"{role}.toml"
        lines = path.read_text().splitlines(keepends=True)
        for n, line in enumerate(lines):
            if line.startswith("model = "):
                lines[n] = f'model = "{model}"\n'
            elif line.startswith("fallback = "):
                lines[n] = f"fallback = {json.dumps(fallback)}\n"
        path.write_text("".join(lines))
    server.script("big-x", Turn.text("The answer is 42."))
    server.script("mid-x", Turn.text("Nothing is due."))
    server.script("local-x", Turn.tool_call("read", {"path": "README.md"}), Turn.text("Read it."))
    server.script(
        "mid-x",
        Turn.tool_call("finish", {"verdict": "approve", "summary": "Fine.", "comments": []}),
    )
    assert cli("ask", "What is the answer?", cwd=workspace).exit_code == 0
    assert cli("agent", "run", "orchestrator", "Anything due?").exit_code == 0
    assert cli("agent", "run", "dev", "Read the README").exit_code == 0
    assert cli("agent", "run", "review", "Review it").exit_code == 0
    server.assert_complete()
    return workspace


def line_cost(usage: dict[str, int], model: str) -> Decimal:
    """Tokens × the configured price of ``model``, by hand (cache at the input price)."""
    i, o = PRICES[model]
    prompt = usage["input_tokens"] + usage["cache_write_tokens"] + usage["cache_read_tokens"]
    return (Decimal(prompt) * i + Decimal(usage["output_tokens"]) * o) / 1_000_000


def test_the_impact_table_equals_the_ledger_lines_priced_by_hand(tiers: Path, cli: Invoke) -> None:
    lines = [
        json.loads(text, parse_float=Decimal)  # the ledger's amounts, exactly
        for day in sorted((tiers / ".agentctl" / "ledger").glob("*.jsonl"))
        for text in day.read_text().splitlines()
    ]
    assert {line["role"] for line in lines} == {"main", "orchestrator", "dev", "review"}
    result = cli("cost", "--impact", "--json", cwd=tiers)
    assert result.exit_code == 0, result.stderr
    table = json.loads(result.stdout)
    rows = {row["tier"]: row for row in table["rows"]}
    assert [row["tier"] for row in table["rows"]][:2] == ["main", "orchestrator"]
    for tier, row in [*rows.items(), ("total", table["total"])]:
        mine = [line for line in lines if tier == "total" or line["role"] == tier]
        actual = sum((Decimal(line["cost"]) for line in mine), Decimal(0))
        all_big = sum((line_cost(line["usage"], "big") for line in mine), Decimal(0))
        all_mid = sum((line_cost(line["usage"], "mid") for line in mine), Decimal(0))
        paid = sum(
            (
                line_cost(line["usage"], "mid")
                if line["model"] == "local"
                else Decimal(line["cost"])
                for line in mine
            ),
            Decimal(0),
        )
        assert Decimal(row["actual_usd"]) == actual, tier
        assert Decimal(row["all_main_usd"]) == all_big, tier
        assert Decimal(row["all_orchestrator_usd"]) == all_mid, tier
        assert Decimal(row["paid_instead_of_free_usd"]) == paid, tier
        assert row["calls"] == len(mine)
    # The free local model cost nothing; on its paid fallback it would have.
    assert (
        Decimal(rows["dev"]["actual_usd"]) == 0 < Decimal(rows["dev"]["paid_instead_of_free_usd"])
    )
    conversation = Decimal(rows["main"]["actual_usd"]) / Decimal(table["total"]["actual_usd"])
    assert Decimal(table["conversation_share"]) == conversation
    assert Decimal(table["saved_vs_all_main_usd"]) == Decimal(
        table["total"]["all_main_usd"]
    ) - Decimal(table["total"]["actual_usd"])
    shown = cli("cost", "--impact", cwd=tiers, env={"COLUMNS": "200"}).stdout
    assert "what tiering costs you" in shown and "all on big" in shown and "saved against" in shown
