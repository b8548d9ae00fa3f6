"""What ``agentctl status`` shows: one JSON-ready snapshot of the whole workspace.

Everything is read from files (the orchestrator's tick journal, outbox and state,
run directories, the ledger, local tickets and pull requests); nothing calls a network
service, so the screen is cheap enough to redraw every second. A section that cannot
be read is shown as ``None`` with its problem listed, never a traceback: status is
what a person looks at when something is wrong.

"Active" runs are those with a live process (or about to start one); an unfinished
run whose process is gone (stale) or that waits for a person (paused) is listed
apart, so "active runs 0" means nothing is running.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agentctl.config.convert import to_data
from agentctl.cost import fallback
from agentctl.cost.ledger import Ledger, report_once
from agentctl.errors import AgentctlError
from agentctl.forges.local import LocalForge
from agentctl.orchestrator.attempts import Attempts
from agentctl.orchestrator.home import Home
from agentctl.runs.journal import last_event
from agentctl.runs.liveness import this_host
from agentctl.runs.mailbox import Mailbox
from agentctl.runs.record import TERMINAL
from agentctl.runs.store import RunStore
from agentctl.runs.summary import row
from agentctl.runs.timefmt import format_ts
from agentctl.trackers.local import STATES, LocalTracker

if TYPE_CHECKING:
    from agentctl.config import Config

T = TypeVar("T")


def snapshot(config: Config, now: datetime) -> dict[str, Any]:
    """The status screen as data: last tick and report, runs, tickets, PRs, spend today."""
    workspace = config.workspace
    state_dir = workspace.state_dir
    home = state_dir / "orchestrator"
    problems: list[str] = []
    out: dict[str, Any] = {
        "now": format_ts(now),
        "workspace": str(workspace.root),
        "last_tick": _last_tick(home / "ticks.jsonl", problems),
        "last_report": _guard("reports", problems, _last_report, home / "outbox"),
        "active_runs": None,
        "stopped_runs": None,
        "parked": _guard("orchestrator state", problems, _parked, config),
        "tickets": None,
        "prs": None,
        "spend_today": None,
        "problems": problems,
    }
    runs = _guard("runs", problems, _unfinished_runs, state_dir, now, problems)
    if runs is not None:
        out["active_runs"], out["stopped_runs"] = runs
    settings = config.settings
    if settings.tracker.kind == "local":
        out["tickets"] = _guard("tickets", problems, _tickets, config)
    if settings.forge.kind == "local":
        out["prs"] = _guard("pull requests", problems, _prs, config)
    out["spend_today"] = _guard("ledger", problems, _spend_today, config, now, problems)
    out["problems"] = list(dict.fromkeys(problems))  # a torn ledger line once, not per read
    return out


def _guard(section: str, problems: list[str], read: Callable[..., T], *args: Any) -> T | None:
    """``read(*args)``, or None with the reason in ``problems`` (a corrupt file, git)."""
    try:
        return read(*args)
    except AgentctlError as exc:
        problems.append(f"{section}: {exc}")
        return None


def _last_tick(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        event, found = last_event(path)  # from the end: the journal only grows
    except AgentctlError as exc:
        problems.append(f"ticks: {exc}")
        return None
    problems.extend(f"ticks: {p}" for p in found)
    return event


def _last_report(outbox: Path) -> dict[str, Any] | None:
    last = Mailbox(outbox).last()  # one file, however many reports came before
    if last is None:
        return None
    if last.problem is not None:
        return {"seq": last.seq, "problem": last.problem}
    return {**last.body, "seq": last.seq}


def _unfinished_runs(
    state_dir: Path, now: datetime, problems: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Runs not finished, with their tree's cost: (active, stopped). Active ones have a
    live process (or are pending, about to start one); stopped ones are stale (process
    gone: they need a look) or paused (waiting for budget or a person).

    Read from the unfinished-runs index and each run's children index, so a workspace
    with 20,000 finished runs costs what one with none does.
    """
    store = RunStore(state_dir)
    host = this_host()
    rows = [row(listing, now, host) for listing in store.live()]
    rows = [r for r in rows if r["status"] is not None and r["status"] not in TERMINAL]
    trees = {r["id"]: store.descendants(r["id"]) for r in rows}
    by_run: dict[str, Decimal] = {}
    ledger = Ledger(state_dir)
    if trees:  # one pass over the ledger for every tree
        for entry in ledger.entries(run_ids=set().union(*trees.values())):
            by_run[entry.run_id] = by_run.get(entry.run_id, Decimal(0)) + entry.cost
        problems.extend(f"ledger: {p}" for p in report_once(ledger.problems))
    active: list[dict[str, Any]] = []
    stopped: list[dict[str, Any]] = []
    for r in reversed(rows):  # oldest first: the order they were started
        spent = sum((by_run.get(run_id, Decimal(0)) for run_id in trees[r["id"]]), Decimal(0))
        alive = not r["stale"] and r["status"] != "paused"
        (active if alive else stopped).append(
            {
                "id": r["id"],
                "kind": r["kind"],
                "status": r["status"],
                "display_status": r["display_status"],
                "role": r["role"],
                "pipeline": r["pipeline"],
                "step": r["step"],
                "model": r["model"],
                "ticket": r["ticket"],
                "parent_id": r["parent_id"],
                "host": r.get("host"),  # a Celery worker's name, or this machine's
                "age_s": r["age_s"],
                "stale": r["stale"],
                "cost_usd": _usd(spent),
            }
        )
    return active, stopped


def _parked(config: Config) -> list[dict[str, Any]]:
    """Items the orchestrator gave up on, oldest first, with the reason it last gave."""
    orch = config.settings.orchestrator
    home = Home.of(config.workspace.state_dir)
    state = home.load_state()
    attempts = Attempts(state, orch.max_attempts, orch.retry_backoff)
    asked = {  # `tickets retry` posted, the next tick has not read it yet
        message.body.get("ticket")
        for message in home.inbox.read(after=int(state.get("inbox_seen", 0)))
        if message.body.get("type") == "retry"
    }
    return [
        {
            "item": parked.key,
            "ticket": parked.ticket,
            "branch": parked.key.removeprefix("branch:")
            if parked.key.startswith("branch:")
            else None,
            "reason": parked.reason,
            "at": parked.at,
            "failure": parked.failure,
            "attempts": attempts.count(parked.key),
            "retry_asked": parked.ticket is not None and parked.ticket in asked,
        }
        for parked in attempts.all_parked()
    ]


def _tickets(config: Config) -> dict[str, int] | None:
    """Local tickets by state; a remote tracker is not polled here (``--watch`` would
    spend its rate limit): ``agentctl tickets list`` asks it."""
    if config.settings.tracker.kind != "local":
        return None
    tracker = LocalTracker.from_config(config)
    counts = dict.fromkeys(STATES, 0)
    for ticket in tracker.list(states=STATES):
        counts[ticket.state] = counts.get(ticket.state, 0) + 1
    return counts


def _prs(config: Config) -> list[dict[str, Any]] | None:
    if config.settings.forge.kind != "local":
        return None  # not polled on every refresh; the orchestrator's report has them
    forge = LocalForge.from_config(config)
    return [
        {
            "number": pr.number,
            "title": pr.title,
            "branch": pr.branch,
            "base": pr.base,
            "review_state": pr.review_state,
            "needs_person": pr.needs_person,
            "ticket": pr.ticket,
            "head_sha": pr.head_sha,
        }
        for pr in forge.list_prs()
    ]


def _spend_today(config: Config, now: datetime, problems: list[str]) -> dict[str, Any]:
    """Spend since midnight UTC by role (= tier) and model, each against its daily cap if
    one is set, and the day's paid fallbacks of free or local models (one pass)."""
    budgets = config.settings.budgets
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    ledger = Ledger(config.workspace.state_dir)
    by_role: dict[str, Decimal] = {}
    by_model: dict[str, Decimal] = {}
    by_fallback: dict[str, Decimal] = {}
    total = Decimal(0)
    for entry in ledger.entries(midnight, midnight + timedelta(days=1)):
        role = entry.role or "-"
        by_role[role] = by_role.get(role, Decimal(0)) + entry.cost
        by_model[entry.model] = by_model.get(entry.model, Decimal(0)) + entry.cost
        chain = config.roles[role].models if role in config.roles else ()
        if fallback.paid_fallback(config, chain, entry.model):
            by_fallback[role] = by_fallback.get(role, Decimal(0)) + entry.cost
        total += entry.cost
    problems.extend(f"ledger: {p}" for p in report_once(ledger.problems))
    names = sorted(set(by_role) | set(budgets.roles), key=lambda r: (-by_role.get(r, 0), r))
    marks = fallback.marked(config.workspace.state_dir, now)
    return {
        "day": midnight.date().isoformat(),
        "total_usd": _usd(total),
        "daily_usd": to_data(budgets.daily_usd),
        "roles": [
            {
                "role": name,
                "spent_usd": _usd(by_role.get(name, Decimal(0))),
                "cap_usd": to_data(budgets.roles.get(name)),
            }
            for name in names
        ],
        "models": [
            {
                "model": name,
                "spent_usd": _usd(spent),
                "cap_usd": to_data(budgets.models.get(name)),
            }
            for name, spent in sorted(by_model.items(), key=lambda item: (-item[1], item[0]))
        ],
        "fallbacks": [
            {
                "role": role,
                "first": marks.get(role, {}).get("first"),
                "to": marks.get(role, {}).get("to"),
                "spent_usd": _usd(by_fallback.get(role, Decimal(0))),
            }
            for role in sorted(set(marks) | set(by_fallback))
        ],
        "fallback_cap_usd": to_data(budgets.fallback_usd),
    }


def _usd(value: Decimal) -> float:
    """A float for JSON: the view shows money; the ledger keeps the exact figure."""
    return float(value)
