"""One ledger line: an ``Entry``, its exact JSON, and the checks a line must pass.

Shared by the raw reader (``ledger``), the per-day summaries (``summary``) and the
run index (``runindex``), so every reader skips the same lines with the same words.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from agentctl.cost.pricing import RATE_KINDS, cost_at, plain
from agentctl.llm.types import Usage
from agentctl.runs.timefmt import format_ts, parse_ts

SCHEMA_VERSION = 1

# Bounds of a believable line. One call of a million-token prompt at today's dearest
# prices costs tens of dollars; a thousand is far past any real call and far below
# what would overflow a report.
MAX_CALL_USD = Decimal(1000)
MAX_PRICE = Decimal(10_000)  # USD per million tokens
MAX_TOKENS = 10**9
USAGE_KINDS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")

_reported: set[str] = set()  # problems already reported by this process


def report_once(problems: list[str]) -> list[str]:
    """The ``problems`` this process has not reported yet (then remembered as reported)."""
    fresh = [p for p in dict.fromkeys(problems) if p not in _reported]
    _reported.update(fresh)
    return fresh


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON text in which every Decimal is an exact JSON number (``0.0000125``)."""
    mark = "dec" + os.urandom(8).hex()

    def default(obj: object) -> str:
        if isinstance(obj, Decimal):
            return mark + plain(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    separators = (",", ": ") if indent is not None else (",", ":")
    text = json.dumps(
        value,
        default=default,
        indent=indent,
        separators=separators,
        ensure_ascii=False,
        allow_nan=False,
    )
    return re.sub(f'"{mark}([-0-9.]+)"', r"\1", text)


def _decimal(value: object, name: str, bound: Decimal) -> Decimal:
    """A finite amount in ``0..bound``, or ValueError naming the field."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    else:
        raise ValueError(f"{name} must be a number, found {value!r}")
    if not number.is_finite() or number < 0 or number > bound:
        raise ValueError(f"{name} must be between 0 and {bound}, found {value}")
    return number


def _usage(data: Mapping[str, Any]) -> Usage:
    counts = {}
    for kind in USAGE_KINDS:
        value = data.get(kind, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TOKENS:
            raise ValueError(f"usage.{kind} must be an integer in 0..{MAX_TOKENS}, found {value!r}")
        counts[kind] = value
    return Usage(**counts)


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, found {value!r}")
    return value


def _optional_text(data: Mapping[str, Any], name: str) -> str | None:
    return None if data.get(name) is None else _text(data, name)


@dataclass(frozen=True, slots=True)
class Entry:
    """One priced model call. ``price`` holds the four per-million figures applied."""

    ts: datetime
    run_id: str
    root_id: str
    parent_id: str | None
    role: str | None
    model: str  # the configured name, e.g. "sonnet"
    provider: str
    model_id: str  # the API's model id that answered
    request_id: str | None
    usage: Usage
    price: Mapping[str, Decimal]
    cost: Decimal
    schema_version: int = SCHEMA_VERSION

    @property
    def computed_cost(self) -> Decimal:
        """The line's tokens × the prices recorded in it: the figure that counts."""
        return cost_at(self.usage, dict(self.price))

    @property
    def day(self) -> date:
        return self.ts.astimezone(UTC).date()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "ts": format_ts(self.ts),
            "run_id": self.run_id,
            "root_id": self.root_id,
            "parent_id": self.parent_id,
            "role": self.role,
            "model": self.model,
            "provider": self.provider,
            "model_id": self.model_id,
            "request_id": self.request_id,
            "usage": self.usage.to_json(),
            "price": {kind: self.price[kind] for kind in RATE_KINDS},
            "cost": self.cost,
        }

    @classmethod
    def from_json(cls, data: object) -> Entry:
        """Parse a ledger line (read with ``parse_float=Decimal``); ValueError if unusable.

        ``cost`` is the recorded figure, checked; ``Ledger`` counts ``computed_cost``.
        """
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"schema_version must be a positive integer, found {version!r}")
        if version > SCHEMA_VERSION:
            raise ValueError(f"schema_version {version} was written by a newer agentctl")
        price = data.get("price")
        usage = data.get("usage")
        if not isinstance(price, dict) or not isinstance(usage, dict):
            raise ValueError("price and usage must be objects")
        return cls(
            ts=parse_ts(_text(data, "ts")),
            run_id=_text(data, "run_id"),
            root_id=_text(data, "root_id"),
            parent_id=_optional_text(data, "parent_id"),
            role=_optional_text(data, "role"),
            model=_text(data, "model"),
            provider=_text(data, "provider"),
            model_id=_text(data, "model_id"),
            request_id=_optional_text(data, "request_id"),
            usage=_usage(usage),
            price={
                kind: _decimal(price.get(kind), f"price.{kind}", MAX_PRICE) for kind in RATE_KINDS
            },
            cost=_decimal(data.get("cost"), "cost", MAX_CALL_USD),
            schema_version=version,
        )


# One decoder for every line: ``json.loads(line, parse_float=...)`` builds a new one
# per call, a quarter of the time of reading a large ledger.
_DECODER = json.JSONDecoder(parse_float=Decimal)


def parse_line(name: str, number: int, line: bytes) -> tuple[Entry | None, str | None]:
    """Line ``number`` of day file ``name``: the entry it counts as (None: skipped) and
    the problem to report (None: none). A blank line is neither."""
    if not line.strip():
        return None, None
    try:
        value = _DECODER.decode(line.decode("utf-8"))
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        return None, f"{name} line {number}: not JSON; skipped"
    try:
        entry = Entry.from_json(value)
    except (ValueError, TypeError, ArithmeticError) as exc:
        return None, f"{name} line {number}: {exc}; skipped"
    computed = entry.computed_cost
    if computed == entry.cost:
        return entry, None
    if computed > MAX_CALL_USD:
        return None, (
            f"{name} line {number}: tokens × prices come to "
            f"{plain(computed)}, more than {MAX_CALL_USD}; skipped"
        )
    return replace(entry, cost=computed), (
        f"{name} line {number}: cost {plain(entry.cost)} disagrees with its "
        f"tokens × prices; counted as {plain(computed)}"
    )
