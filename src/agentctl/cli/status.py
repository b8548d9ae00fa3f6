"""``agentctl status``: one screen of what the team is doing and what it has cost today."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer

from agentctl.cli.context import echo as echo_visible
from agentctl.cli.context import print_columns, print_json, single, state, with_hosts
from agentctl.errors import UsageError

_CLEAR = "\x1b[H\x1b[2J"
_STYLE = {"running": "cyan", "pending": "dim", "paused": "yellow", "stale": "red"}
_REPORT_LINES = 8

# Replaced in tests, so --watch runs without waiting.
sleep: Callable[[float], None] = time.sleep


def status_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    watch: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help="Redraw every SECONDS until Ctrl-C (with --json: one object per line).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show the last orchestrator tick and report, runs, parked items, tickets, PRs, spend today."""
    from agentctl.commands.status import snapshot
    from agentctl.runs.timefmt import utc_now

    if watch is not None and watch <= 0:
        raise UsageError(f"--watch {watch:g}: give a positive number of seconds", hint="e.g. 2")
    config = state(ctx).config

    def draw() -> None:
        view = snapshot(config, utc_now())
        if as_json:
            print_json(view)
        else:
            render(view)
        sys.stdout.flush()

    if watch is None:
        draw()
        return
    tty = sys.stdout.isatty() and not as_json
    try:
        while True:
            if tty:
                sys.stdout.write(_CLEAR)
            draw()
            sleep(watch)
    except KeyboardInterrupt:  # the way to leave --watch: not an error
        return


def render(view: dict[str, Any]) -> None:
    """The plain-text screen, section by section; empty sections say so."""
    from agentctl.runs.timefmt import parse_ts

    now = parse_ts(view["now"])
    echo = echo_visible
    echo(f"agentctl status  {now:%Y-%m-%d %H:%M:%S} UTC  {view['workspace']}")
    echo("")

    tick = view["last_tick"]
    if tick is None:
        echo("last tick    none yet (agentctl orchestrate --once runs one)")
    else:
        echo(f"last tick    {_when(tick.get('ts'), now)}: {tick.get('summary', '?')}")
    report = view["last_report"]
    if report is None:
        echo("last report  none")
    else:
        echo(f"last report  #{report['seq']} {_when(report.get('ts'), now)}")
        for line in _report_lines(report)[:_REPORT_LINES]:
            echo(f"  {line}")
    echo("")

    runs = view["active_runs"]
    if runs is None:
        echo("active runs  unreadable (see problems)")
    elif not runs:
        echo("active runs  none")
    else:
        echo(f"active runs  {len(runs)}")
        _run_table(runs)
    stopped = view.get("stopped_runs") or []
    if stopped:
        echo(f"stopped runs {len(stopped)} (process gone or paused; agentctl runs show ID)")
        _run_table(stopped)
    echo("")

    parked = view.get("parked")
    if parked is None:
        echo("parked       unreadable (see problems)")
    elif not parked:
        echo("parked       none")
    else:
        echo(f"parked       {len(parked)} (agentctl tickets retry ID tries a ticket again)")
        print_columns(
            ("item", "since", "attempts", "reason"),
            [
                (
                    item["ticket"] or item["branch"] or item["item"],
                    _when(item["at"], now),
                    str(item["attempts"]),
                    item["reason"]
                    + (" (retry asked: the next tick tries it)" if item.get("retry_asked") else ""),
                )
                for item in parked
            ],
        )
    echo("")

    tickets = view["tickets"]
    if tickets is None:
        echo("tickets      not shown (a remote tracker is not polled here, or unreadable)")
    else:
        counts = "  ".join(f"{name} {count}" for name, count in tickets.items())
        echo(f"tickets      {counts}" if sum(tickets.values()) else "tickets      none")

    prs = view["prs"]
    if prs is None:
        echo("open PRs     not shown (a remote forge is not polled here, or unreadable)")
    elif not prs:
        echo("open PRs     none")
    else:
        echo(f"open PRs     {len(prs)}")
        print_columns(
            ("#", "branch", "review", "ticket", "title"),
            [
                (
                    str(pr["number"]),
                    pr["branch"],
                    "needs a person" if pr.get("needs_person") else pr["review_state"],
                    pr["ticket"] or "",
                    pr["title"],
                )
                for pr in prs
            ],
        )
    echo("")

    spend = view["spend_today"]
    if spend is None:
        echo("spend today  unreadable (see problems)")
    else:
        cap = spend["daily_usd"]
        against = f" of {_usd(cap)} daily cap" if cap is not None else " (no daily cap)"
        echo(f"spend today  {_usd(spend['total_usd'])}{against}  ({spend['day']} UTC)")
        if spend["roles"]:
            print_columns(
                ("role", "spent", "cap"),
                [
                    (
                        role["role"],
                        _usd(role["spent_usd"]),
                        _usd(role["cap_usd"]) if role["cap_usd"] is not None else "-",
                    )
                    for role in spend["roles"]
                ],
            )
        for fell in spend.get("fallbacks", []):
            cap = spend.get("fallback_cap_usd")
            limit = f" of {_usd(cap)} a day" if cap is not None else ""
            echo(
                f"paid fallback  {fell['role']}: {fell['first'] or '?'} → {fell['to'] or '?'}, "
                f"{_usd(fell['spent_usd'])}{limit}"
            )
    for problem in view["problems"]:
        echo(f"warning: {problem}")


def _run_table(runs: list[dict[str, Any]]) -> None:
    columns, table = with_hosts(
        ("id", "kind", "status", "role/pipeline", "step", "model", "ticket", "age", "cost"),
        [
            (
                run["id"],
                run["kind"] or "?",
                run["display_status"],
                run["role"] or run["pipeline"] or "",
                run["step"] or "",
                run["model"] or "",
                run["ticket"] or "",
                _age(run["age_s"]),
                _usd(run["cost_usd"]),
            )
            for run in runs
        ],
        runs,
        7,
    )
    print_columns(
        columns,
        table,
        styles=[_STYLE.get(run["display_status"]) for run in runs],
    )


def _report_lines(report: dict[str, Any]) -> list[str]:
    """A report's summary, then each non-empty list it carries (started, merged, ...)."""
    if "problem" in report:
        return [str(report["problem"])]
    lines = [str(report[key]) for key in ("summary", "text") if report.get(key)]
    for key, value in report.items():
        if isinstance(value, list) and value:
            lines.extend(f"{key}: {item}" for item in value)
    return lines


def _when(ts: object, now: datetime) -> str:
    from agentctl.runs.timefmt import parse_ts

    if not isinstance(ts, str):
        return "at an unknown time"
    try:
        at = parse_ts(ts)
    except ValueError:
        return ts
    return f"{at:%Y-%m-%d %H:%M:%S} ({_age((now - at).total_seconds())} ago)"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _usd(value: object) -> str:
    from agentctl.cost.pricing import format_usd, usd

    return format_usd(usd(value))


app = single(status_command)
