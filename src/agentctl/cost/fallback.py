"""Paid fallbacks of free or local models: never silent, never unbounded.

A role whose first model is free or local (price 0, or a ``base_url`` on this machine or
network) and whose chain goes on to a paid model pays the moment its local server goes
down — overnight, for every call. So such a call is a *paid fallback*: it is journaled
(``llm.fallback``), the orchestrator's report and ``status`` say so, and the day's
spend on paid fallbacks is capped by ``[budgets] fallback_usd``; past it, the call is
not sent and fails as a transient failure (the work waits, backed off, for the local
model) instead of paying.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from agentctl.config import Config
from agentctl.config.schema import Model
from agentctl.cost.entry import Entry
from agentctl.cost.ledger import Ledger
from agentctl.cost.pricing import format_usd


def is_local(url: str) -> bool:
    """A loopback, private or link-local address (or ``localhost``)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


def free(model: Model) -> bool:
    """Costs nothing per token."""
    p = model.price
    return not any((p.input, p.output, p.cache_write, p.cache_read))


def free_or_local(model: Model) -> bool:
    return free(model) or (model.base_url is not None and is_local(model.base_url))


def paid_fallback(config: Config, chain: Sequence[str], name: str) -> bool:
    """Whether answering with ``name`` is a paid fallback of ``chain``'s first model."""
    if not chain or name == chain[0]:
        return False
    first, this = config.models.get(chain[0]), config.models.get(name)
    return first is not None and this is not None and free_or_local(first) and not free(this)


def fallback_entries(config: Config, entries: Iterable[Entry]) -> Iterable[Entry]:
    """The paid-fallback calls among ``entries`` (by each role's configured chain)."""
    for entry in entries:
        role = config.roles.get(entry.role or "")
        if role is not None and paid_fallback(config, role.models, entry.model):
            yield entry


def spent_today(config: Config, now: datetime) -> Decimal:
    """Today's (UTC) spend on paid fallbacks."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    ledger = Ledger(config.workspace.state_dir)
    today = ledger.entries(midnight, midnight + timedelta(days=1))
    return sum((e.cost for e in fallback_entries(config, today)), Decimal(0))


def refusal(
    config: Config, chain: Sequence[str], name: str, estimate: Decimal, now: datetime
) -> str | None:
    """Why a paid fallback may not be sent now (the day's cap), or None."""
    cap = config.settings.budgets.fallback_usd
    if cap is None or not paid_fallback(config, chain, name):
        return None
    spent = spent_today(config, now)
    if spent + estimate <= cap:
        return None
    return (
        f"paid fallback {name} of {chain[0]} not sent: {format_usd(spent)} spent on paid "
        f"fallbacks today, cap {format_usd(cap)} ([budgets] fallback_usd); waiting for "
        f"{chain[0]} to answer again"
    )


def _marks(state_dir: Path, day: str) -> Path:
    return state_dir / "ledger" / "fallbacks" / day


def mark(state_dir: Path, role: str, first: str, to: str, now: datetime) -> None:
    """Note (once a day per role) that ``role`` fell back from ``first`` to paid ``to``:
    a file the orchestrator's tick can list without reading the ledger."""
    folder = _marks(state_dir, now.astimezone(UTC).date().isoformat())
    path = folder / role
    if path.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process of the role was first
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps({"first": first, "to": to}) + "\n")


def marked(state_dir: Path, now: datetime) -> dict[str, dict[str, str]]:
    """Today's roles that fell back to a paid model: role → {first, to}."""
    folder = _marks(state_dir, now.astimezone(UTC).date().isoformat())
    found: dict[str, dict[str, str]] = {}
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return found
    for name in names:
        try:
            found[name] = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            found[name] = {"first": "?", "to": "?"}
    return found


def spent_by_role(config: Config, now: datetime) -> dict[str, Decimal]:
    """Today's paid-fallback spend by role."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    ledger = Ledger(config.workspace.state_dir)
    out: dict[str, Decimal] = {}
    for entry in fallback_entries(config, ledger.entries(midnight, midnight + timedelta(days=1))):
        role = entry.role or "-"
        out[role] = out.get(role, Decimal(0)) + entry.cost
    return out
