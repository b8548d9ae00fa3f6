"""``agentctl tickets``: list and show tickets of the configured tracker; add; un-park."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from agentctl.cli.context import echo, new_group, print_columns, print_json, state

if TYPE_CHECKING:
    from agentctl.trackers import Tracker

app = new_group("Tickets of the configured tracker: the local folder (default) or Linear.")


def _tracker(ctx: typer.Context) -> Tracker:
    from agentctl.trackers import make_tracker

    return make_tracker(state(ctx).config)


@app.command("add")
def add(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(metavar="TITLE", help="What needs doing, in a line.")],
    description: Annotated[
        str, typer.Option("--description", "-d", help="The details an agent will read.")
    ] = "",
    labels: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="A label (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Add a ticket in the ready state (Todo), locally or in Linear."""
    ticket = _tracker(ctx).add(title, description, labels or ())
    if as_json:
        print_json(ticket.to_json())
        return
    echo(f"added {ticket.id}: {ticket.title}")


@app.command("list")
def list_tickets(
    ctx: typer.Context,
    states: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            "-s",
            help="Only tickets in this state (repeatable): todo, in_progress, in_review, "
            "blocked, done, canceled, a Linear state name, or all. Default: open tickets.",
        ),
    ] = None,
    labels: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="Only tickets with this label.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List open tickets (not Done or Canceled), oldest first; --state all lists every one."""
    from agentctl.trackers.states import resolve_states

    tracker = _tracker(ctx)
    tickets = tracker.list(states=resolve_states(tracker, states), labels=labels or ())
    if as_json:
        print_json([t.to_json() for t in tickets])
        return
    if not tickets:
        echo("no tickets" + (" match" if states or labels else " open"))
        return
    print_columns(
        ("id", "state", "labels", "title"),
        [(t.key, t.state, ",".join(t.labels), t.title) for t in tickets],
    )


@app.command("retry")
def retry(
    ctx: typer.Context,
    ticket_id: Annotated[str, typer.Argument(metavar="ID", help="Ticket id, e.g. T-3.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Un-park a ticket the orchestrator gave up on: back to ready, a full attempt budget."""
    from agentctl.orchestrator.retry import retry_ticket

    config = state(ctx).config
    outcome = retry_ticket(config, ticket_id, _tracker(ctx))
    if as_json:
        print_json(outcome.to_json())
        return
    echo(outcome.message)


@app.command("show")
def show(
    ctx: typer.Context,
    ticket_id: Annotated[str, typer.Argument(metavar="ID", help="Ticket id, e.g. T-3.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show one ticket with its description and comments."""
    tracker = _tracker(ctx)
    ticket = tracker.get(ticket_id)
    record = tracker.record(ticket.id)
    if as_json:
        print_json(
            {
                **ticket.to_json(),
                "comments": record["comments"],
                "created": record.get("created"),
                "updated": record.get("updated"),
            }
        )
        return
    echo(f"{ticket.id}  {ticket.title}")
    echo(f"state: {ticket.state}")
    if ticket.labels:
        echo(f"labels: {', '.join(ticket.labels)}")
    if record.get("created"):
        echo(f"created: {record['created']}")
    if ticket.description:
        echo("")
        echo(ticket.description.rstrip())
    if ticket.url:
        echo(f"url: {ticket.url}")
    for link in record.get("links", []):
        echo(f"link: {link['title']}  {link['url']}")
    if record["comments"]:
        echo("")
        echo(f"comments ({len(record['comments'])}):")
        for comment in record["comments"]:
            echo(f"  {comment['at']}  {comment['body']}")
