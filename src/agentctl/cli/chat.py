"""``agentctl chat``: the main session, interactive or one message at a time.

At a terminal the prompt edits like a shell (``chat_prompt``, prompt_toolkit, imported
only then); from a pipe or with a message on the command line it reads plainly. However
the chat ends, its run ends honestly: ``succeeded`` when the person leaves (``/quit``,
end of input, Ctrl-C at the prompt), ``canceled`` when Ctrl-C or a signal stops it in
the middle of a reply, ``failed`` when an error does.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any, Protocol

import typer

from agentctl.cli.context import echo, single, state
from agentctl.errors import AgentctlError, UsageError
from agentctl.visible import visible

HELP = (
    "End a line with \\ (or press Alt-Enter) to go on to the next one; a paste is one message.\n"
    "/status  what runs and tickets look like     /runs   recent runs\n"
    "/cost    what this chat has cost             /model NAME  switch model\n"
    "/orchestrator start|stop                     /quit   leave (Ctrl-D, Ctrl-C too)"
)
COMMANDS = (
    "/help",
    "/status",
    "/runs",
    "/cost",
    "/model ",
    "/orchestrator start",
    "/orchestrator stop",
    "/quit",
)
HISTORY_FILE = "chat_history"  # under the state directory: one history per workspace


class Ended(BaseException):
    """The terminal went away (SIGHUP) or someone asked the chat to stop (SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Reader(Protocol):
    def read(self) -> str: ...

    def printing_above(self) -> contextlib.AbstractContextManager[None]: ...


class PlainReader:
    """A pipe (or a terminal-less run): one line at a time, ``\\`` at the end goes on."""

    def read(self) -> str:
        lines = [input("you> ")]
        while lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1]
            lines.append(input("...  "))
        return "\n".join(lines).strip()

    def printing_above(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def _raw(event: Any) -> None:
    from agentctl.llm.types import Restart, TextDelta

    if isinstance(event, TextDelta):
        sys.stdout.write(visible(event.text))
        sys.stdout.flush()
    elif isinstance(event, Restart):
        sys.stdout.write(visible(f"\n[{event.reason}]\n"))


def _show_notes(notes: list[str], prefix: str = "\n[report]") -> None:
    for note in notes:
        sys.stdout.write(visible(f"{prefix} {note}\n"))
    sys.stdout.flush()


def _tool_line(name: str, args: dict[str, Any]) -> str:
    """``↳ create_ticket title="Fix add()"``: what the model asked for, readably."""
    import json

    from agentctl.chat.session import readable

    shown = []
    for key, value in args.items():
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else readable(value)
        shown.append(f"{key}={text}")
    return " ".join(["  ↳", name, *shown])


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
        from agentctl.cli.status import render
        from agentctl.commands.status import snapshot
        from agentctl.runs import utc_now

        render(snapshot(session.config, utc_now()))
    elif command == "model" and rest.strip():
        from agentctl.chat.session import missing_key

        session.config.model(rest.strip())
        session.chain = [rest.strip()]
        echo(f"model: {rest.strip()}")
        warning = missing_key(session.config, session.chain)
        if warning:
            echo(warning)
    elif command == "orchestrator" and rest.strip() in ("start", "stop"):
        echo(session.delegation.run(f"orchestrator_{rest.strip()}", {})[0])
    else:
        echo(f"unknown command /{command}; /help lists them")
    return True


def chat_command(
    ctx: typer.Context,
    text: Annotated[
        str | None,
        typer.Argument(
            metavar="MESSAGE",
            help="Send this one message, print the reply, exit.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Talk to this model (default: main's).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option(help="Continue a chat: its run id, or 'last'.")
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", help="Send one message, print the reply, exit.")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="With a message: wait for the work it started, report it.")
    ] = False,
) -> None:
    """The main session: talk with the top model; it delegates, and reports come back here."""
    if text is not None and message is not None:
        raise UsageError(
            "give the message once: as an argument or with --message, not both",
            hint='agentctl chat "fix the flaky test"',
        )
    one = text if text is not None else message
    from agentctl.chat.session import ChatSession, missing_key

    config = state(ctx).config
    session = ChatSession.open(config, model=model, resume=resume)

    def show_tool(name: str, args: dict[str, Any]) -> None:
        sys.stderr.write(visible(_tool_line(name, args), one_line=True) + "\n")

    session.on_tool = show_tool
    ending: tuple[str, str | None] = ("failed", "the chat stopped on an unexpected error")
    try:
        with _signals_end_the_chat():
            if one is not None:
                _one(session, one, wait)
                ending = ("succeeded", None)
            else:
                warning = missing_key(config, session.chain)
                if warning:
                    echo(warning, err=True)
                ending = ("succeeded", _interactive(session))
    except KeyboardInterrupt:
        ending = ("canceled", "interrupted (Ctrl-C) during a reply")
        raise
    except Ended as ended:
        ending = ("canceled", f"stopped by {ended}")
        raise typer.Exit(128 + ended.signum) from None
    except AgentctlError as exc:
        ending = ("failed", exc.message)
        raise
    finally:
        session.close(*ending)


@contextlib.contextmanager
def _signals_end_the_chat() -> Iterator[None]:
    """SIGTERM and SIGHUP (the terminal closed) end the chat cleanly, not half-way."""

    def stop(signum: int, frame: object) -> None:
        raise Ended(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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


def _reader(session: Any) -> Reader:
    """prompt_toolkit's prompt at a terminal; plain reading from a pipe."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return PlainReader()
    from agentctl.cli.chat_prompt import TerminalPrompt

    commands = [*COMMANDS, *(f"/model {name}" for name in session.config.models)]
    return TerminalPrompt(session.state_dir / HISTORY_FILE, commands)


def _interactive(session: Any) -> str:
    """Talk until the person leaves; the way they left (for the run's reason)."""
    from agentctl.chat.session import signals_to_main_thread

    echo(f"agentctl chat · {session.chain[0]} · run {session.run.id} · /help for commands")
    _show_notes(session.collect_news(), "[unread report]")  # what came while no chat was open
    reader = _reader(session)
    idle = threading.Lock()  # held by the listener only while the person is typing
    idle.acquire()
    stop = threading.Event()

    def listen() -> None:  # reports appear without waiting for the person to type
        while not stop.wait(2.0):
            if idle.acquire(blocking=False):
                try:
                    with contextlib.suppress(AgentctlError):
                        _show_notes(session.collect_news())
                finally:
                    idle.release()

    with signals_to_main_thread():  # so that a signal interrupts the main thread's read
        threading.Thread(target=listen, daemon=True).start()
    try:
        while True:
            sys.stdout.write("\n")
            sys.stdout.flush()
            with reader.printing_above():
                idle.release()
                try:
                    line = reader.read()
                except EOFError:
                    return "the person ended the chat (end of input)"
                except KeyboardInterrupt:
                    return "the person ended the chat (Ctrl-C)"
                finally:
                    idle.acquire()
            if not line:
                continue
            if line.startswith("/"):
                try:
                    if not _slash(session, line):
                        return f"the person ended the chat ({line.split()[0]})"
                except AgentctlError as exc:
                    echo(f"agentctl: error: {exc}")
                continue
            _show_notes(session.collect_news())  # news the listener had not shown yet
            _turn(session, line, person_at_terminal=sys.stdin.isatty())
    finally:
        stop.set()


def _turn(session: Any, line: str, *, person_at_terminal: bool) -> None:
    """One message and its reply. At a terminal Ctrl-C stops the reply, not the session;
    from a pipe, where nobody can go on, it stops the chat (``canceled``)."""
    try:
        from agentctl.cli.ask import streamed

        with streamed(as_json=False) as on_event:  # markdown, live, at a terminal
            session.send(line, on_event=on_event)
    except KeyboardInterrupt:
        if not person_at_terminal:
            raise
        sys.stdout.write("\n[interrupted]\n")
    except AgentctlError as exc:  # one clear line; the session goes on
        sys.stdout.write(visible(f"\nagentctl: error: {exc}\n"))


app = single(chat_command)
