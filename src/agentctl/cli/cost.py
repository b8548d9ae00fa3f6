"""``agentctl cost``: what model calls cost, from the ledger, by model, role, day or run."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from agentctl.cli.context import echo, print_table, single, state

if TYPE_CHECKING:
    from agentctl.cost.impact import Impact
    from agentctl.cost.report import Report


def cost_command(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN",
            help="From when: a duration back from now (12h, 1d, 7d) or a date (2026-11-01, "
            "from midnight UTC). Default: 7d; with --run, all time.",
            show_default=False,
        ),
    ] = None,
    by: Annotated[
        str,
        typer.Option(
            metavar="model|role|day|run",
            help="One row per model, role, day or run (a run and all it started).",
        ),
    ] = "model",
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            metavar="ID",
            help="Only this run and every run below it (an id, prefix or suffix).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON (exact USD).")] = False,
    what_if: Annotated[
        str | None,
        typer.Option(
            "--what-if",
            metavar="MODEL",
            help="Add a column pricing the same tokens at this configured model's price.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            min=1,
            help="At most this many rows in the table (the dearest), the rest summed in one.",
        ),
    ] = 50,
    show_all: Annotated[
        bool, typer.Option("--all", help="Every row in the table. --json always has every row.")
    ] = False,
    impact: Annotated[
        bool,
        typer.Option(
            "--impact",
            help="What tiering saved: each tier's cost beside the same tokens all on the "
            "main session's model, all on the orchestrator's, and with free (local) "
            "models on their paid fallbacks.",
        ),
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Rebuild the ledger's day summaries and run indexes from its raw day "
            "files, then exit (they are also rebuilt on read when missing or stale).",
        ),
    ] = False,
) -> None:
    """Show what model calls cost (from .agentctl/ledger/), with totals."""
    from agentctl.cost.ledger import dumps, report_once
    from agentctl.cost.report import build_report, parse_since

    app_state = state(ctx)
    if rebuild:
        from agentctl.cost.ledger import Ledger
        from agentctl.cost.summary import rebuild as rebuild_derived

        ledger = Ledger(app_state.workspace.state_dir)
        summaries, indexes, removed = rebuild_derived(ledger)
        gone = f", removed {removed} derived files of no day file" if removed else ""
        echo(
            f"rebuilt {summaries} day summaries and {indexes} run indexes "
            f"from the day files in {ledger.dir}{gone}"
        )
        return
    start = parse_since(since) if since is not None else None
    if since is None and run is None:
        start = parse_since("7d")
    if impact:
        from agentctl.cost.impact import impact as build_impact

        table = build_impact(app_state.config, start)
        for problem in report_once(table.problems):
            echo(f"agentctl: warning: ledger: {problem}", err=True)
        if as_json:
            sys.stdout.write(dumps(table.to_json(), indent=2 if sys.stdout.isatty() else None))
            sys.stdout.write("\n")
            return
        print_impact(table)
        return
    price = app_state.config.model(what_if).price if what_if is not None else None
    result = build_report(app_state.workspace.state_dir, by=by, since=start, run=run, what_if=price)
    for problem in report_once(list(result.problems)):
        echo(f"agentctl: warning: ledger: {problem}", err=True)
    if as_json:
        value = result.to_json()
        if what_if is not None:
            value["what_if"] = what_if
        indent = 2 if sys.stdout.isatty() else None
        sys.stdout.write(dumps(value, indent=indent) + "\n")
        return
    scope = f"since {start:%Y-%m-%d %H:%M} UTC" if start is not None else "all time"
    if run is not None:
        scope = f"run tree of {run} ({len(result.run_ids)} runs), {scope}"
    if not result.rows:
        echo(f"no model calls ({scope})")
        return
    print_report(result, f"cost, {scope}", what_if, limit=None if show_all else limit)


def print_report(
    result: Report, title: str, what_if: str | None = None, *, limit: int | None = None
) -> None:
    """The cost table: one row per group (the ``limit`` dearest, the rest summed) and a total."""
    from agentctl.cost.pricing import format_usd

    columns: tuple[str, ...] = (
        result.by,
        "calls",
        "input",
        "output",
        "cache write",
        "cache read",
        "cost",
    )
    if what_if is not None:
        columns += (f"if {what_if}",)
    rows: list[tuple[str, ...]] = []
    shown, rest = result.top(limit)
    for row in (*shown, *((rest,) if rest is not None else ()), result.total):
        usage = row.usage
        cells: tuple[str, ...] = (
            row.key,
            f"{row.calls:,}",
            f"{usage.input_tokens:,}",
            f"{usage.output_tokens:,}",
            f"{usage.cache_write_tokens:,}",
            f"{usage.cache_read_tokens:,}",
            format_usd(row.cost),
        )
        if row.what_if_cost is not None:
            cells += (format_usd(row.what_if_cost),)
        rows.append(cells)
    print_table(title, columns, rows)


def print_impact(table: Impact) -> None:
    """The impact table: each tier's cost beside the counterfactuals, then the shares."""
    from agentctl.cost.pricing import format_usd

    data = table.to_json()
    columns = (
        "tier",
        "calls",
        "cost",
        f"all on {table.main_model}",
        f"all on {table.orchestrator_model}",
        "paid, not local",
        "cache saved",
    )
    rows = [
        (
            row.tier,
            f"{row.calls:,}",
            format_usd(row.actual),
            format_usd(row.would["all_main"]),
            format_usd(row.would["all_orchestrator"]),
            format_usd(row.would["paid_instead_of_free"]),
            format_usd(row.cache_saved),
        )
        for row in (*table.rows, table.total)
    ]
    scope = f"since {table.since:%Y-%m-%d %H:%M} UTC" if table.since else "all time"
    print_table(f"what tiering costs you, {scope}", columns, rows)
    share = float(data["conversation_share"])
    saved = table.total.would["all_main"] - table.total.actual
    echo(
        f"conversation {share:.0%} of the spend, automation {1 - share:.0%}; "
        f"{format_usd(saved)} saved against everything on {table.main_model}"
    )


app = single(cost_command)
