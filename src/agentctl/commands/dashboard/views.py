"""What each page shows, as plain data: read from the state folder, nothing written.

The overview is ``agentctl status``'s snapshot (the unfinished-runs index, today's
ledger) plus the orchestrator's loop and the runs arranged as a tree; a run page is
``runs show``'s detail with its journal; the costs page is ``agentctl cost``'s report
by role, model and day, so the numbers are the same as ``cost --json``'s.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from agentctl import keystore
from agentctl.commands.status import snapshot
from agentctl.config import Config
from agentctl.cost.report import build_report
from agentctl.errors import AgentctlError
from agentctl.orchestrator.heartbeat import parse_heartbeat
from agentctl.orchestrator.home import Home
from agentctl.orchestrator.loop import loop_pid
from agentctl.runs import RunStore, parse_ts, read_journal
from agentctl.runs.summary import detail, list_rows
from agentctl.runs.timefmt import format_ts

TIERS = ("chat", "orchestrator", "pipeline", "agent")
RESULT_TEXT = 2000  # characters of a tool result shown on a run page
RECENT = 15  # runs in the overview's "recent" table (the newest; read by page, not all)


def overview(config: Config, now: datetime) -> dict[str, Any]:
    """The overview: the team's health and today's money at a glance."""
    data = snapshot(config, now)
    data["loop_pid"] = loop_pid(config)
    data["tree"] = tree(data.get("active_runs") or [])
    # Today's spend by model comes with status's one pass over today's ledger.
    data["models_today"] = (data.get("spend_today") or {}).get("models", [])
    data["heartbeat"] = _heartbeat(config, now)
    data["health"] = health(data)
    newest = list_rows(config.workspace.state_dir, limit=RECENT * 4, now=now)[0]
    data["recent"] = [row for row in newest if row["kind"] != "step"][:RECENT]
    return data


def health(data: dict[str, Any]) -> dict[str, Any]:
    """The one line a person reads first: is the team healthy, and if not, why."""
    worries = []
    stopped = data.get("stopped_runs") or []
    if stopped:
        worries.append(f"{len(stopped)} stopped run{'s' * (len(stopped) > 1)} need a look")
    if data.get("parked"):
        worries.append(f"{len(data['parked'])} parked ticket{'s' * (len(data['parked']) > 1)}")
    spend = data.get("spend_today") or {}
    caps = [(spend.get("total_usd"), spend.get("daily_usd"), "the day")]
    caps += [(r["spent_usd"], r["cap_usd"], f"role {r['role']}") for r in spend.get("roles", [])]
    caps += [(r["spent_usd"], r["cap_usd"], f"model {r['model']}") for r in spend.get("models", [])]
    for spent, cap, what in caps:
        if cap and spent is not None and spent >= 0.9 * float(cap):
            worries.append(f"{what} at {spent / float(cap):.0%} of its cap")
    for fell in spend.get("fallbacks", []):
        worries.append(
            f"role {fell['role']} is on paid fallback {fell['to']} "
            f"(its {fell['first']} does not answer)"
        )
    worries += [f"problem: {p}" for p in data.get("problems") or []]
    working = len(data.get("active_runs") or [])
    facts = [
        "loop running" if data.get("loop_pid") else "loop not running",
        f"{working} run{'s' * (working != 1)} working",
    ]
    return {"ok": not worries, "worries": worries, "facts": facts}


def tree(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs nested under their parents (a run whose parent is not active is a root)."""
    by_id = {run["id"]: {**run, "children": []} for run in runs}
    roots: list[dict[str, Any]] = []
    for run in by_id.values():
        parent = by_id.get(run.get("parent_id") or "")
        (parent["children"] if parent is not None else roots).append(run)
    return roots


def run_page(config: Config, run_id: str) -> dict[str, Any]:
    """A run: its header, children, and its events so far (the page then follows live)."""
    store = RunStore(config.workspace.state_dir)
    run = store.get(run_id)
    info = detail(run, recent=0)
    journal = read_journal(run.paths.events)
    info["events"] = [shown(event) for event in journal.events]
    info["last_seq"] = journal.events[-1]["seq"] if journal.events else 0
    info["children_rows"] = sorted(  # in the order they ran (ids sort by time)
        (_child(store, child) for child in info["children"]), key=lambda row: row["id"]
    )
    return info


def shown(event: dict[str, Any]) -> dict[str, Any]:
    """One journal event as a run page shows it: its kind, time and a bounded text."""
    kind = str(event.get("type", "?"))
    # Run files are redacted when written; this is the last line of defence again, with
    # every key this process knows (a journal written before a key was configured).
    rest = keystore.redactor().redact_obj(
        {k: v for k, v in event.items() if k not in ("seq", "ts", "type")}
    )
    if isinstance(rest.get("content"), str) and len(rest["content"]) > RESULT_TEXT:
        cut = len(rest["content"]) - RESULT_TEXT
        rest["content"] = rest["content"][:RESULT_TEXT] + f"… ({cut} more characters)"
    return {
        "seq": event.get("seq"),
        "ts": str(event.get("ts", ""))[11:23],
        "type": kind,
        "fields": rest,
    }


def _child(store: RunStore, run_id: str) -> dict[str, Any]:
    try:
        record = store.get(run_id).load()
    except Exception:  # a child being created or removed: shown by id only
        return {"id": run_id}
    return {
        "id": run_id,
        "kind": record.kind,
        "status": record.status,
        "role": record.role,
        "step": record.step,
        "model": record.model,
    }


def costs(config: Config, now: datetime, days: int = 30) -> dict[str, Any]:
    """Spend over the last ``days`` days by role (tier), model and day; ``total`` equals
    ``agentctl cost --since <days>d --json``'s."""
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    state_dir = config.workspace.state_dir
    out: dict[str, Any] = {"since": since.date().isoformat(), "days": days}
    total = Decimal(0)
    for by in ("role", "model", "day"):
        report = build_report(state_dir, by=by, since=since)
        out[by] = [
            {"key": row.key, "calls": row.calls, "cost_usd": row.cost} for row in report.rows
        ]
        total = report.total.cost
    out["total_usd"] = total
    return out


def _heartbeat(config: Config, now: datetime) -> list[dict[str, Any]]:
    """The HEARTBEAT.md duties and when each is next due (from when it last ran)."""
    path = config.workspace.root / config.settings.orchestrator.heartbeat_file
    try:
        duties = parse_heartbeat(path.read_text("utf-8"), str(path))
        state = Home.of(config.workspace.state_dir).load_state()
    except (OSError, AgentctlError):  # no file, or one `agentctl status` reports as bad
        return []
    last = {k: parse_ts(v) for k, v in (state.get("duties") or {}).items()}
    rows = []
    for duty in duties:
        ran = last.get(duty.id)
        if duty.every is not None:
            when = now if ran is None else max(ran + duty.every, now)
        elif duty.at is not None:
            today = datetime.combine(now.date(), duty.at, tzinfo=UTC)
            when = (
                today
                if now <= today and (ran is None or ran < today)
                else today + timedelta(days=1)
            )
        else:
            continue
        rows.append(
            {
                "text": duty.text.splitlines()[0],
                "next": format_ts(when)[:16].replace("T", " "),
                "last": format_ts(ran)[:16].replace("T", " ") if ran else "never",
            }
        )
    return rows
