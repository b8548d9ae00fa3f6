"""The daily digest of ``[notify]``: the last 24 hours in one message, no model call.

Due once a UTC day, on the first tick past ``digest_at`` (the day it was queued is
kept in the tick's state, so a digest missed for hours is sent once). What merged,
failed, was parked or fell back to a paid model comes from the tick journal
(``ticks.jsonl``: each tick's report), read from where the last digest stopped, and
every pipeline that ended in the window from the run store (those run by hand too); the
spend is ``agentctl cost --since <since>``'s (``cost.report.build_report``), and the
impact totals ``cost --impact``'s, over the same window.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentctl.cost.pricing import format_usd, plain
from agentctl.cost.report import build_report
from agentctl.errors import AgentctlError
from agentctl.orchestrator.context import TickContext
from agentctl.orchestrator.notify import SECTION_MAX, Event, escape, section
from agentctl.runs import RunStore
from agentctl.runs.timefmt import format_ts, parse_ts

WINDOW = timedelta(hours=24)
LISTED = ("merged", "failed", "parked", "fallbacks")  # from the tick journal
SHOWN = (*LISTED, "pipelines")  # and every pipeline that ended, the orchestrator's or not
MAX_LINES = 100  # lines of each kind a digest carries (the count says the rest)


def digest_due(digest_at: str, mine: dict[str, Any], now: datetime) -> bool:
    hours, _, minutes = digest_at.partition(":")
    at = now.replace(hour=int(hours), minute=int(minutes), second=0, microsecond=0)
    return now >= at and mine.get("digest_day") != now.date().isoformat()


def digest_event(ctx: TickContext, mine: dict[str, Any]) -> Event:
    """The digest of the 24 hours before now; the day marked as done (it is queued)."""
    now = ctx.clock()
    since = now - WINDOW
    path = ctx.home.ticks.path
    ticks, offset = read_ticks(path, int(mine.get("digest_offset", 0)))
    lines: dict[str, list[str]] = {name: [] for name in SHOWN}
    count = 0
    for tick in ticks:
        try:
            at = parse_ts(str(tick.get("ts")))
        except ValueError:
            continue
        if tick.get("type") != "tick" or not since <= at <= now:
            continue
        count += 1
        for name in LISTED:
            lines[name] += [str(x) for x in tick.get(name) or []]
    lines["pipelines"] = ended_pipelines(ctx.store, since, now)
    report = build_report(ctx.state_dir, by="role", since=since)
    data: dict[str, Any] = {
        "since": format_ts(since),
        "until": format_ts(now),
        "ticks": count,
        **{name: value[:MAX_LINES] for name, value in lines.items()},
        "counts": {name: len(value) for name, value in lines.items()},
        "spend": {
            "total_usd": plain(report.total.cost),
            "calls": report.total.calls,
            "by_role": {row.key: plain(row.cost) for row in report.rows},
        },
    }
    totals = impact_totals(ctx, since)
    if totals is not None:
        data["impact"] = totals
    mine["digest_day"] = now.date().isoformat()
    mine["digest_offset"] = offset
    return Event("digest", summary(data), format_ts(now), digest=data)


def ended_pipelines(store: RunStore, since: datetime, until: datetime) -> list[str]:
    """Every pipeline that ended in the window — also those run by hand or from a chat,
    which the tick journal never saw: one line each, newest first."""
    found = []
    # Only runs created in the window or the one before are read (a pipeline that ends
    # in the window started at most a window earlier, in practice).
    for listing in store.list(kind="pipeline", since=since - WINDOW):
        record = listing.record
        if record is None or record.finished_at is None:
            continue
        if not since <= record.finished_at <= until:
            continue
        what = f"{record.pipeline or 'pipeline'}" + (f" {record.ticket}" if record.ticket else "")
        why = f" ({record.reason})" if record.reason else ""
        found.append(f"{what}: {record.status}{why} — {record.id}")
    return found


def read_ticks(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The journal's whole lines after ``offset``, and the offset after the last of them."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            start = offset if 0 <= offset <= size else 0  # a new journal: from its start
            handle.seek(start)
            data = handle.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1  # a line still being written waits for the next digest
    events = []
    for line in data[:end].splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            events.append(value)
    return events, start + end


def impact_totals(ctx: TickContext, since: datetime) -> dict[str, str] | None:
    """``cost --impact``'s totals over the window; None when its tiers are not configured."""
    # lazy: the impact table, only for the digest
    from agentctl.cost.impact import impact

    try:
        table = impact(ctx.config, since)
    except (AgentctlError, KeyError):
        return None
    full = table.to_json()
    out = {k: v for k, v in full["total"].items() if k.endswith("_usd")}
    out["saved_vs_all_main_usd"] = full["saved_vs_all_main_usd"]
    out["automation_share"] = full["automation_share"]
    return out


def summary(data: dict[str, Any]) -> str:
    counts, spend = data["counts"], data["spend"]
    return (
        f"last 24 h: {counts['merged']} merged, {counts['failed']} failed, "
        f"{counts['parked']} parked, {counts['fallbacks']} paid fallbacks, "
        f"{counts.get('pipelines', 0)} pipelines ended; "
        f"{format_usd(Decimal(spend['total_usd']))} spent on {spend['calls']} model calls"
    )


def slack_digest_blocks(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Sections after the header: the summary, each non-empty list, the spend by role."""
    blocks = [section(escape(summary(data)))]
    for name in SHOWN:
        if data.get(name):
            blocks.append(section(bullets(f"*{name.capitalize()}*", data[name], data["counts"])))
    spend = data["spend"]
    roles = ", ".join(f"{k} {format_usd(Decimal(v))}" for k, v in spend["by_role"].items())
    text = f"*Spend* {format_usd(Decimal(spend['total_usd']))}" + (f": {roles}" if roles else "")
    if "impact" in data:
        saved = Decimal(data["impact"]["saved_vs_all_main_usd"])
        text += f"\n{format_usd(saved)} saved against all on the main session's model"
    blocks.append(section(escape(text)))
    return blocks


def bullets(title: str, items: list[str], counts: dict[str, int]) -> str:
    text, shown = title, 0
    for item in items:
        line = f"\n• {escape(item)}"
        if len(text) + len(line) > SECTION_MAX - 40:
            break
        text += line
        shown += 1
    total = counts.get(title.strip("*").lower(), len(items))
    return text + (f"\n…and {total - shown} more" if total > shown else "")
