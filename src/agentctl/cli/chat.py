"""``agentctl chat``: the main session, interactive or one message at a time."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Annotated, Any

import typer

from agentctl.cli.context import echo, single, state
from agentctl.errors import AgentctlError
from agentctl.visible import visible

HELP = (
    "End a line with \\ to go on to the next one.\n"
    "/status  what runs and tickets look like     /runs   recent runs\n"
    "/cost    what this chat has cost             /model NAME  switch model\n"
    "/orchestrator start|stop                     /quit   leave (Ctrl-D too)"
)


def _raw(event: Any) -> None:
    from agentctl.llm.types import Restart, TextDelta

    if isinstance(event, TextDelta):
        sys.stdout.write(visible(event.text))
        sys.stdout.flush()
    elif isinstance(event, Restart):
        sys.stdout.write(visible(f"\n[{event.reason}]\n"))


def _show_notes(notes: list[str]) -> None:
    for note in notes:
        sys.stdout.write(visible(f"\n[report] {note}\n"))
    sys.stdout.flush()


def _slash(session: Any, line: str) -> bool:
    """Run a slash command; False when the chat should end."""
    command, _, rest = line[1:].partition(" ")
    if command in ("quit", "exit"):
        return False
    if command == "help":
        echo(HELP)
    elif command == "runs":
        echo(session.delegation.list_runs({}))
    elif command == "cost":
        echo(session.delegation.show_cost({}))
    elif command == "status":
        from agentctl.runs import utc_now
        from agentctl.statusview import snapshot

        view = snapshot(session.config, utc_now())
        echo(f"runs: {len(view['active_runs'] or [])} active · tickets: {view['tickets']}")
    elif command == "model" and rest.strip():
        session.config.model(rest.strip())
        session.chain = [rest.strip()]
        echo(f"model: {rest.strip()}")
    elif command == "orchestrator" and rest.strip() in ("start", "stop"):
        echo(session.delegation.run(f"orchestrator_{rest.strip()}", {})[0])
    else:
        echo(f"unknown command /{command}; /help lists them")
    return True


def chat_command(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Talk to this model (default: main's).")] = None,
    resume: Annotated[
        str | None, typer.Option(help="Continue a chat: its run id, or 'last'.")
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Send one message, print the reply, exit.")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="With --message: wait for the work it started, report it.")
    ] = False,
) -> None:
    """The main session: talk with the top model; it delegates, and reports come back here."""
    from agentctl.chat.session import ChatSession

    session = ChatSession.open(state(ctx).config, model=model, resume=resume)

    def show_tool(name: str, args: dict[str, Any]) -> None:
        sys.stderr.write(visible(f"  ↳ {name} {args}", one_line=True) + "\n")

    session.on_tool = show_tool
    try:
        if message is not None:
            _one(session, message, wait)
        else:
            _interactive(session)
    finally:
        session.close()


def _one(session: Any, message: str, wait: bool) -> None:
    reply = session.send(message, on_event=_raw)
    if not reply.endswith("\n"):
        sys.stdout.write("\n")
    if not wait:
        return
    from agentctl.runs import TERMINAL, RunStore, read_journal

    store = RunStore(session.state_dir)
    while True:
        events = read_journal(session.run.paths.events).events
        started = [e["run_id"] for e in events if e.get("type") == "child.started"]
        if all(store.get(r).load().status in (*TERMINAL, "paused") for r in started):
            break
        time.sleep(0.2)
    notes = session.collect_news()
    if notes:
        _show_notes(notes)
        reply = session.send(
            "(The work you started has reported back; tell me what happened.)", on_event=_raw
        )
        sys.stdout.write("\n")


def _read_message() -> str:
    """One message: a line, or several when each but the last ends with a backslash."""
    lines = [input("\nyou> ")]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        lines.append(input("...  "))
    return "\n".join(lines).strip()


def _interactive(session: Any) -> None:
    echo(f"agentctl chat · {session.chain[0]} · run {session.run.id} · /help for commands")
    for note in session.collect_news():  # what came while no chat was open
        sys.stdout.write(visible(f"[unread report] {note}\n"))
    stop = threading.Event()

    def listen() -> None:  # reports appear without waiting for the person to type
        while not stop.wait(2.0):
            with contextlib.suppress(AgentctlError):
                _show_notes(session.collect_news())

    threading.Thread(target=listen, daemon=True).start()
    try:
        while True:
            try:
                line = _read_message()
            except EOFError:
                break
            if not line:
                continue
            if line.startswith("/"):
                try:
                    if not _slash(session, line):
                        break
                except AgentctlError as exc:
                    echo(f"agentctl: error: {exc}")
                continue
            try:
                from agentctl.cli.ask import streamed

                with streamed(as_json=False) as on_event:  # markdown, live, at a terminal
                    session.send(line, on_event=on_event)
            except KeyboardInterrupt:
                sys.stdout.write("\n[interrupted]\n")
            except AgentctlError as exc:  # one clear line; the session goes on
                sys.stdout.write(visible(f"\nagentctl: error: {exc}\n"))
    finally:
        stop.set()


app = single(chat_command)
