"""Prices: exact Decimal costs, cache fallbacks, the long-context band, the upper bound."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from pathlib import Path

import pytest

from agentctl.config.schema import LongContextPrice, Price
from agentctl.cost import cost_of, dumps, format_usd, plain, rates, upper_bound
from agentctl.llm.types import Usage
from tests import test_cli_runs

OPUS = Price(input=4.0, output=20.0, cache_write=5.0, cache_read=0.2)
HAIKU = Price(
    input=0.1,
    output=0.5,
    cache_write=0.125,
    cache_read=0.01,
    long_context=LongContextPrice(
        above_tokens=100_000, input=0.5, output=2.5, cache_write=0.625, cache_read=0.05
    ),
)


def test_cost_is_exact() -> None:
    usage = Usage(
        input_tokens=1_000, output_tokens=500, cache_write_tokens=200, cache_read_tokens=3
    )
    # 1000×4 + 500×20 + 200×5 + 3×0.2 = 15000.6 per million
    assert cost_of(usage, OPUS) == Decimal("0.0150006")
    assert cost_of(Usage(1, 0), Price(input=12.5, output=0)) == Decimal("0.0000125")
    # 0.1 as a float is not 0.1; the configured figure is used as written.
    assert cost_of(Usage(3, 0), Price(input=0.1, output=0)) == Decimal("0.0000003")
    assert cost_of(Usage(), OPUS) == 0


def test_cache_prices_fall_back_to_the_input_price() -> None:
    price = Price(input=3.0, output=15.0)
    usage = Usage(input_tokens=10, output_tokens=0, cache_write_tokens=100, cache_read_tokens=1000)
    assert cost_of(usage, price) == Decimal("0.00333")
    long = Price(
        input=1.0, output=2.0, long_context=LongContextPrice(above_tokens=10, input=7.0, output=9.0)
    )
    assert rates(long, 11) == {
        "input": Decimal("7.0"),
        "output": Decimal("9.0"),
        "cache_write": Decimal("7.0"),
        "cache_read": Decimal("7.0"),
    }


def test_long_band_switches_exactly_above_the_threshold() -> None:
    # The prompt counts cache tokens: 60,000 + 30,000 + 10,000 = 100,000, not above.
    at = Usage(60_000, 1_000, 30_000, 10_000)
    assert at.prompt_tokens == 100_000
    assert cost_of(at, HAIKU) == Decimal("0.01035")  # 6000 + 500 + 3750 + 100 per million
    above = Usage(60_001, 1_000, 30_000, 10_000)
    # Long band for everything, output included: 30000.5 + 2500 + 18750 + 500.
    assert cost_of(above, HAIKU) == Decimal("0.0517505")
    assert rates(HAIKU, 100_000)["output"] == Decimal("0.5")
    assert rates(HAIKU, 100_001)["output"] == Decimal("2.5")


@pytest.mark.parametrize("price", [OPUS, HAIKU, Price(input=3.0, output=15.0)])
@pytest.mark.parametrize("prompt", [0, 1, 99_999, 100_000, 100_001, 250_000])
def test_upper_bound_is_never_below_a_real_cost(price: Price, prompt: int) -> None:
    max_output = 4_096
    bound = upper_bound(prompt, max_output, price)
    for output, (a, b) in itertools.product(
        (0, 1, max_output), [(1, 0), (0, 1), (0, 0), (2, 1), (1, 1)]
    ):
        # every split of the prompt into uncached input, cache writes and cache reads
        writes = prompt * a // 3
        reads = (prompt - writes) * b // 2
        usage = Usage(prompt - writes - reads, output, writes, reads)
        assert usage.prompt_tokens == prompt
        assert cost_of(usage, price) <= bound
    assert cost_of(Usage(0, max_output, prompt, 0), price) <= bound


def test_upper_bound_counts_cache_writes_at_their_dearer_price() -> None:
    assert upper_bound(1_000_000, 0, OPUS) == Decimal(5)  # cache write $5 > input $4
    assert upper_bound(1_000, 1_000, Price(input=3.0, output=15.0)) == Decimal("0.018")


def test_exact_json_numbers_and_display() -> None:
    value = {"cost": Decimal("1.25E-5"), "big": Decimal("1E+2"), "zero": Decimal("0E-9"), "n": 1}
    text = dumps(value)
    assert text == '{"cost":0.0000125,"big":100,"zero":0,"n":1}'
    assert json.loads(text, parse_float=Decimal)["cost"] == Decimal("0.0000125")
    assert dumps({"a": [Decimal("2.50")]}, indent=2) == '{\n  "a": [\n    2.5\n  ]\n}'
    with pytest.raises(ValueError, match="finite"):
        plain(Decimal("NaN"))
    with pytest.raises(TypeError):
        dumps({"x": object()})
    assert [format_usd(Decimal(v)) for v in ("20", "19.98", "19.98123", "0.004567", "0")] == [
        "$20",
        "$19.98",
        "$19.9812",
        "$0.00457",
        "$0",
    ]


@pytest.mark.parametrize("argv", [["cost"], ["cost", "--json", "--by", "run"]])
def test_cost_command_imports_no_sdk(repo: Path, argv: list[str]) -> None:
    test_cli_runs.test_fast_commands_import_no_sdk(repo, argv)
