"""Reports for a person who is not in a chat: a webhook, a command, a daily digest.

Last in a tick (``Tick.run``, before the state is saved): each ``failed``, ``parked``,
``merged`` and ``fallbacks`` line of the report is one event of its kind, a top-level
run found paused on budget (its output's ``ending``) is one ``budget`` event, and the
daily digest (``notify_digest``) one ``digest`` event. The kinds ``[notify] on``
lists are queued, one delivery per event and destination, in ``notify/pending.json``
under the orchestrator's home, then sent: a line is said once, whatever the ticks
after it do. A delivery that fails stays queued and is tried again no sooner than
1, 2, 4, 8… minutes later on the tick's clock, ``max_attempts`` times in all, then
given up (said once). A failing destination is said once in the report's errors,
and not again until a delivery to it has gone through.

Each request carries one event (``json_body``: agentctl's own; ``slack_body``: an
incoming-webhook message); a command gets the JSON body on stdin. Nothing here fails
the tick (``Tick`` turns any exception into an error line): its merges have happened.
The webhook's URL is a key (``keystore``): read from the store at send time, never
written down, and taken out of every error said about it. An idle tick looks at the
live index and an absent queue file, and imports no HTTP client.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentctl import atomic, keystore
from agentctl.config.notify import Notify
from agentctl.errors import AgentctlError
from agentctl.orchestrator.context import TickContext
from agentctl.runs.timefmt import format_ts, parse_ts
from agentctl.tools.env import tool_env

PENDING = Path("notify") / "pending.json"
BACKOFF = 60.0  # seconds before the 2nd attempt, doubling after
MAX_BACKOFF = 3600.0
MAX_PENDING = 500  # deliveries kept queued at most (the oldest go first)
FROM_REPORT = {"failed": "failed", "parked": "parked", "merged": "merged", "fallbacks": "fallback"}
TITLES = {
    "failed": "Failed",
    "parked": "Parked: a person decides",
    "merged": "Merged",
    "fallback": "Paid fallback",
    "budget": "Paused on budget",
    "digest": "Daily digest",
}
SECTION_MAX, HEADER_MAX = 3000, 150  # Slack's limits on a block's text


@dataclass
class Event:
    kind: str
    text: str
    at: str
    digest: dict[str, Any] | None = None
    id: str = field(default_factory=lambda: os.urandom(6).hex())  # a receiver's dedup key


def destinations(settings: Notify) -> list[str]:
    """Where events go: none when ``[notify]`` names neither (then nothing is sent)."""
    pairs = (("webhook", settings.webhook_url_env), ("command", settings.command))
    return [dest for dest, configured in pairs if configured]


def notify(ctx: TickContext, state: dict[str, Any]) -> None:
    """Queue this tick's events and send what is due; problems go to the report's errors."""
    settings = ctx.config.settings.notify
    dests = destinations(settings)
    if ctx.dry_run or not dests:
        return
    mine: dict[str, Any] = state.setdefault("notify", {})
    now = ctx.clock()
    events = [
        Event(FROM_REPORT[name], line, format_ts(now))
        for name in FROM_REPORT
        if FROM_REPORT[name] in settings.on
        for line in getattr(ctx.report, name)
    ]
    if "budget" in settings.on:
        events += budget_events(ctx, mine)
    if "digest" in settings.on:
        # lazy: the ledger and its reports, only once a day when the digest is due
        from agentctl.orchestrator.notify_digest import digest_due, digest_event

        if digest_due(settings.digest_at, mine, now):
            events.append(digest_event(ctx, mine))
    path = ctx.home.dir / PENDING
    pending = load_pending(path)
    if not events and not pending:
        return  # the idle tick: nothing read but a stat
    if events:
        pending += [{**vars(e), "dest": d, "attempts": 0} for e in events for d in dests]
        save_pending(path, pending[-MAX_PENDING:])
        ctx.save(state)  # a crash from here sends again rather than never
    kept = deliver(ctx, settings, pending[-MAX_PENDING:], mine)
    save_pending(path, kept)


def budget_events(ctx: TickContext, mine: dict[str, Any]) -> list[Event]:
    """A top-level run paused on budget, said once while it stays paused."""
    said = set(mine.get("budget_paused", []))
    paused: list[str] = []
    events = []
    for listing in ctx.store.live():
        record = listing.record
        if record is None or record.status != "paused" or not ctx.tick_owns(record):
            continue
        if listing.id not in said:
            try:
                output = ctx.store.get(listing.id).read_output() or {}
            except AgentctlError:
                continue
            if output.get("ending") != "budget":
                continue
            who = f"{record.ticket}: " if record.ticket else ""
            reason = record.reason or output.get("reason") or "budget"
            line = f"{who}{record.kind} {listing.id} paused: {reason}"[:1000]
            events.append(Event("budget", line, format_ts(ctx.clock())))
        paused.append(listing.id)
    mine["budget_paused"] = paused  # resumed runs drop out: a second pause is said again
    return events


# -- the queue -------------------------------------------------------------------------


def load_pending(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return []  # a broken queue is lost, not a broken tick (it held no secret)
    items = data.get("pending") if isinstance(data, dict) else None
    return [x for x in items if isinstance(x, dict)] if isinstance(items, list) else []


def save_pending(path: Path, pending: list[dict[str, Any]]) -> None:
    if not pending and not path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, {"schema_version": 1, "pending": pending})


def deliver(
    ctx: TickContext, settings: Notify, pending: list[dict[str, Any]], mine: dict[str, Any]
) -> list[dict[str, Any]]:
    """Send each due delivery once; the ones that failed stay queued with their backoff.

    After one failure a destination is not tried again this tick: the deliveries due
    to it count the same failed attempt (a dead endpoint costs one timeout a tick).
    """
    now, dests = ctx.clock(), destinations(settings)
    failing: dict[str, str] = mine.setdefault("failing", {})
    broken: dict[str, str] = {}
    given_up: dict[str, int] = {}
    kept = []
    for entry in pending:
        dest = str(entry.get("dest"))
        if dest not in dests:
            continue  # its destination was taken out of the configuration
        if _not_before(entry) > now:
            kept.append(entry)
            continue
        problem = broken.get(dest) or send(ctx, settings, dest, entry)
        if problem is None:
            failing.pop(dest, None)
            continue
        broken[dest] = problem
        entry["attempts"] = int(entry.get("attempts", 0)) + 1
        if entry["attempts"] >= settings.max_attempts:
            given_up[dest] = given_up.get(dest, 0) + 1
            continue
        wait = min(BACKOFF * 2 ** (entry["attempts"] - 1), MAX_BACKOFF)
        entry["next_at"] = format_ts(now + timedelta(seconds=wait))
        kept.append(entry)
    for dest, problem in broken.items():
        if dest not in failing:  # said once, until a delivery goes through
            ctx.report.errors.append(f"notify {dest}: {problem}")
        failing[dest] = problem
    for dest, count in given_up.items():
        ctx.report.errors.append(
            f"notify {dest}: gave up {count} notification(s) after "
            f"{settings.max_attempts} attempts ({broken[dest]})"
        )
    return kept


def send(ctx: TickContext, settings: Notify, dest: str, entry: dict[str, Any]) -> str | None:
    """One delivery; None when it went through, else what went wrong (no secret in it)."""
    workspace = ctx.config.workspace.root.name
    if dest == "command":
        return run_command(ctx, settings, json_body(entry, workspace))
    name = settings.webhook_url_env or ""
    url = keystore.get(name)
    if not url:
        return f"{name} is not set (the webhook's URL)"
    slack = settings.format == "slack"
    body = slack_body(entry, workspace) if slack else json_body(entry, workspace)
    return _secretless(post(url, body, settings.timeout), url)


def post(url: str, body: dict[str, Any], timeout: float) -> str | None:
    import httpx2  # lazy: the HTTP client, only when a notification is sent

    try:
        with httpx2.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.post(url, json=body)
    except httpx2.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}: {response.text.strip()[:200]}"


def run_command(ctx: TickContext, settings: Notify, body: dict[str, Any]) -> str | None:
    """``command`` with the event as JSON on stdin, the tool environment, no shell."""
    try:
        process = subprocess.Popen(
            list(settings.command),
            cwd=ctx.config.workspace.root,
            env=tool_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its whole group goes on a timeout
        )
    except OSError as exc:
        return f"cannot run {settings.command[0]}: {exc.strerror or exc}"
    try:
        _, err = process.communicate(json.dumps(body).encode(), timeout=settings.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return f"{settings.command[0]} took more than {settings.timeout:g}s"
    if process.returncode == 0:
        return None
    last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return keystore.redact(f"{settings.command[0]} exited {process.returncode}: {last[0][:200]}")


def _not_before(entry: dict[str, Any]) -> datetime:
    try:
        return parse_ts(str(entry["next_at"]))
    except (KeyError, ValueError):
        return datetime.min.replace(tzinfo=UTC)


def _secretless(problem: str | None, url: str) -> str | None:
    return None if problem is None else keystore.redact(problem.replace(url, "<webhook url>"))


# -- the bodies --------------------------------------------------------------------------


def json_body(entry: dict[str, Any], workspace: str) -> dict[str, Any]:
    """agentctl's own: one event a request (a digest carries its figures)."""
    body = {
        "type": "agentctl.notification",
        "id": entry.get("id"),
        "event": entry.get("kind"),
        "text": entry.get("text"),
        "workspace": workspace,
        "at": entry.get("at"),
    }
    if entry.get("digest") is not None:
        body["digest"] = entry["digest"]
    return body


def slack_body(entry: dict[str, Any], workspace: str) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (the notification's) and Block Kit blocks."""
    kind, text = str(entry.get("kind")), str(entry.get("text"))
    title = TITLES.get(kind, kind)
    if entry.get("digest") is not None:
        # lazy: the digest's module (the ledger and its reports) only for a digest
        from agentctl.orchestrator.notify_digest import slack_digest_blocks

        blocks = [header(f"agentctl {title.lower()}: {workspace}")]
        blocks += slack_digest_blocks(entry["digest"])
    else:
        blocks = [section(f"*{title}* · {escape(workspace)}\n{escape(text)}")]
    fallback = escape(f"{title} ({workspace}): {text}")  # shown in the notification itself
    return {"text": fallback[:SECTION_MAX], "blocks": blocks}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:HEADER_MAX]}}


def section(text: str) -> dict[str, Any]:
    if len(text) > SECTION_MAX:
        text = text[: SECTION_MAX - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def escape(text: str) -> str:
    """Slack's three control characters in mrkdwn (``<`` starts a link or a mention)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
