"""Dollars for tokens: exact prices of one call, from a model's configured ``Price``.

Prices are USD per million tokens, and a cost is ``tokens × price / 1_000_000`` in
``Decimal`` (never float), so a thousand calls add up to the cent the vendor bills.

Billing notes. Vendors count cached prompt tokens differently: Anthropic reports
``cache_creation_input_tokens`` and ``cache_read_input_tokens`` *beside*
``input_tokens`` (which excludes them); OpenAI's ``prompt_tokens`` *include*
``cached_tokens``, and OpenAI charges nothing extra for a cache write (its models set
``cache_write`` to the input price). Providers normalise both into ``Usage`` with the
uncached input in ``input_tokens``, so pricing here is one formula for every vendor.

A long-context band (``Price.long_context``) applies to the whole request, output
included, once the prompt (input + cache tokens) exceeds its ``above_tokens``; an
unset cache price falls back to the input price of the band in use.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from agentctl.llm.types import Usage

if TYPE_CHECKING:
    from agentctl.config.schema import LongContextPrice, Price

MILLION = Decimal(1_000_000)
RATE_KINDS = ("input", "output", "cache_write", "cache_read")

_CENT_DIGITS = Decimal("0.0001")


def usd(value: object) -> Decimal:
    """An amount of USD as a Decimal: the config's already is one (converted at load);
    a JSON string (``"0.0123"``) is read exactly; a float (a JSON number, a schema
    object built in code) as the figure it was written as, not its binary expansion.
    Raises ``decimal.InvalidOperation`` for what is no number."""
    if isinstance(value, Decimal):
        return value
    return Decimal(value) if isinstance(value, str) else Decimal(str(value))


def rates(price: Price, prompt_tokens: int) -> dict[str, Decimal]:
    """The four per-million prices that apply to a call with ``prompt_tokens`` of prompt."""
    band: Price | LongContextPrice = price
    if price.long_context is not None and prompt_tokens > price.long_context.above_tokens:
        band = price.long_context
    base = usd(band.input)
    return {
        "input": base,
        "output": usd(band.output),
        "cache_write": base if band.cache_write is None else usd(band.cache_write),
        "cache_read": base if band.cache_read is None else usd(band.cache_read),
    }


def cost_at(usage: Usage, rates: dict[str, Decimal]) -> Decimal:
    """What ``usage`` costs at the given per-million ``rates`` (see ``rates``)."""
    total = (
        usage.input_tokens * rates["input"]
        + usage.output_tokens * rates["output"]
        + usage.cache_write_tokens * rates["cache_write"]
        + usage.cache_read_tokens * rates["cache_read"]
    )
    return total / MILLION


def cost_of(usage: Usage, price: Price) -> Decimal:
    """What one call with ``usage`` costs at ``price`` (long band chosen by prompt size)."""
    return cost_at(usage, rates(price, usage.prompt_tokens))


def upper_bound(prompt_tokens: int, max_output_tokens: int, price: Price) -> Decimal:
    """The most a call can cost: the "may this call go?" estimate, made before sending.

    Nothing is assumed cached: every prompt token is billed at the dearest of the
    input and cache prices of its band (a cache write usually costs more than plain
    input), and the model writes all ``max_output_tokens``. So the bound is never
    below the real cost of any call with this prompt size and output limit.
    """
    band = rates(price, prompt_tokens)
    dearest = max(band["input"], band["cache_write"], band["cache_read"])
    return (prompt_tokens * dearest + max_output_tokens * band["output"]) / MILLION


def plain(value: Decimal) -> str:
    """A Decimal as plain digits, exact, without exponent or trailing zeros: ``0.0000125``."""
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {value}")
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def format_usd(value: Decimal) -> str:
    """For people: ``$20``, ``$19.98``, ``$0.0123``; below a cent, three significant digits."""
    if abs(value) >= Decimal("0.01") or value == 0:
        return "$" + plain(value.quantize(_CENT_DIGITS))
    digits = value.adjusted() - 2  # keep three significant digits
    return "$" + plain(value.quantize(Decimal(1).scaleb(digits)))
