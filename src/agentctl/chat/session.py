"""The main session: a conversation with the main role's model that can delegate.

The chat is a run (kind ``chat``): its transcript resumes it, its journal records
each call and tool, its costs go to the ledger under role ``main``, and the runs it
starts are its children. Between turns it hears back: orchestrator reports from
the outbox (a shared read cursor, so reports that came while no chat was open are
shown to the next one) and the results of runs it started, each added to the
model's context as a clearly marked note.

An open chat heartbeats like an agent (waiting for a person is not being wedged),
and its run ends when the chat does: ``succeeded``, ``canceled`` or ``failed``,
never left ``paused``. ``--resume`` of an ended chat goes on in a new chat run, its
child, that starts from the same transcript.

Long sessions stay bounded: at most ``KEEP`` messages are sent, cut in steps of
``KEEP/2`` at a user turn with a note saying how many were left out (the
transcript keeps everything); the system prompt, tools and the window's start
stay a stable prefix that is read from the prompt cache.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from agentctl import atomic, keystore
from agentctl.agent.supervise import Heartbeat
from agentctl.agent.transcript import Transcript
from agentctl.chat.tools import SPECS, Delegation
from agentctl.config import Config
from agentctl.cost.metered import Meter
from agentctl.errors import MissingKeyError, NotFoundError, ProviderError, UsageError
from agentctl.llm.types import Message, OnEvent, Request, TextDelta
from agentctl.orchestrator.home import Home
from agentctl.runs import TERMINAL, Run, RunStore, read_journal
from agentctl.runs.liveness import pid_alive

KEEP = 40  # messages sent to the model; older ones are cut (the transcript keeps all)
MAX_TOOL_ROUNDS = 12
NOTE = "[note from agentctl, not from the person] "
GUIDE = (
    "\n\nYou can delegate with your tools: create a ticket and start the orchestrator for "
    "work that should be done on its own, run a pipeline or an agent directly, read runs and "
    "costs. Delegated work runs in the background; its reports reach you as notes."
)


@dataclass
class ChatSession:
    config: Config
    run: Run
    chain: list[str]
    on_tool: Callable[[str, dict[str, Any]], None] = field(default=lambda name, args: None)

    def __post_init__(self) -> None:
        self.state_dir = self.config.workspace.state_dir
        self.transcript = Transcript(self.run.paths.transcript)
        self.messages: list[Message] = self.transcript.load()
        self.delegation = Delegation(self.config, self.run)
        self.meter = Meter(self.config, self.run, "main", hint="raise [budgets]")
        self.home = Home.of(self.state_dir)
        self.pending: list[str] = []
        self.heartbeat = Heartbeat(self.run)

    @classmethod
    def open(
        cls, config: Config, *, model: str | None = None, resume: str | None = None
    ) -> ChatSession:
        store = RunStore(config.workspace.state_dir)
        role = config.role("main")
        chain = [model] if model else list(role.models)
        for name in chain:
            config.model(name)
        if resume:
            run = _reopen(store, resume, chain, str(config.workspace.root))
        else:
            run = store.create(
                "chat",
                input={"models": chain},
                role="main",
                model=chain[0],
                workspace=str(config.workspace.root),
            )
        if run.load().status != "running":
            run.mark_started(os.getpid(), os.getpgid(0))
        session = cls(config, run, chain)
        with signals_to_main_thread():
            session.heartbeat.start()  # an open chat is alive, however long the person thinks
        return session

    # -- hearing back -------------------------------------------------------------------

    def collect_news(self) -> list[str]:
        """New orchestrator reports and finished children, queued for the next turn.

        Returns the news as a person reads it (one line each); the model gets the
        same news in full, as notes before its next turn.
        """
        shown: list[str] = []
        notes: list[str] = []
        cursor_file = self.home.dir / "outbox.read"
        try:
            seen = int(cursor_file.read_text())
        except (OSError, ValueError):
            seen = 0
        last = seen
        for message in self.home.outbox.read(after=seen):
            body = {k: v for k, v in message.body.items() if k not in ("seq", "ts")}
            notes.append(f"orchestrator report: {json.dumps(body)[:3000]}")
            shown.append(f"orchestrator report: {report_line(body)}")
            last = message.seq
        if last != seen:
            self.home.make()
            atomic.write_text(cursor_file, f"{last}\n")
        events = read_journal(self.run.paths.events).events
        started = [e["run_id"] for e in events if e.get("type") == "child.started"]
        reported = {e["run_id"] for e in events if e.get("type") == "child.reported"}
        store = RunStore(self.state_dir)
        for run_id in started:
            if run_id in reported:
                continue
            child = store.get(run_id)
            record = child.load()
            if record.status in TERMINAL or record.status == "paused":
                output = child.read_output() or {}
                text = output.get("text") or output.get("verdict") or output.get("reason") or ""
                what = " ".join(p for p in (record.kind, record.role or record.pipeline) if p)
                line = f"run {run_id} ({what}) {record.status}: {readable(text)[:1500]}"
                notes.append(line)
                shown.append(line)
                self.run.journal.append("child.reported", durable=True, run_id=run_id)
        self.pending += notes
        return shown

    # -- a turn ----------------------------------------------------------------------------

    def send(self, text: str, on_event: OnEvent | None = None) -> str:
        """The person's message in, the model's reply out (tools run in between)."""
        self.collect_news()
        for note in self.pending:
            self._keep(Message("user", NOTE + note))
        self.pending = []
        self._keep(Message("user", text))
        parts: list[str] = []
        try:
            for _ in range(MAX_TOOL_ROUNDS):
                response = self._call(on_event)
                if response is None:
                    return "".join(parts)
                parts.append(response.text)
                self._keep(response.message())
                if not response.tool_calls:
                    return str(response.text)
                for call in response.tool_calls:
                    if call.error is not None:
                        self._keep(
                            Message(
                                "tool", f"error: {call.error}", tool_call_id=call.id, is_error=True
                            )
                        )
                        continue
                    self.on_tool(call.name, dict(call.arguments or {}))
                    result, failed = self.delegation.run(call.name, dict(call.arguments or {}))
                    self.run.journal.append(
                        "tool.result",
                        durable=True,
                        name=call.name,
                        is_error=failed,
                        content=result[:4000],
                    )
                    self._keep(Message("tool", result, tool_call_id=call.id, is_error=failed))
            return "".join(parts) + "\n[stopped: too many tool rounds in one reply]"
        except KeyboardInterrupt:
            self._keep(Message("assistant", "".join(parts) + " [interrupted]"))
            self.run.journal.append("reply.interrupted", durable=True)
            raise

    def _call(self, on_event: OnEvent | None) -> Any:
        model = self.config.models[self.chain[0]]
        request = Request(
            messages=tuple(self._window()),
            system=self.config.role("main").prompt + GUIDE,
            tools=SPECS,
            max_tokens=model.max_tokens,
        )
        streamed: list[str] = []

        def relay(event: Any) -> None:
            if isinstance(event, TextDelta):
                streamed.append(event.text)
            if on_event is not None:
                on_event(event)

        try:
            outcome, _ = self.meter.call(request, self.chain, on_event=relay)
        except KeyboardInterrupt:
            self._keep(Message("assistant", "".join(streamed) + " [interrupted]"))
            self.run.journal.append("reply.interrupted", durable=True)
            raise
        return outcome.response

    def _window(self) -> list[Message]:
        """At most KEEP messages, cut in steps of KEEP/2 at a person's (or note's) message.

        The cut moves in steps rather than one message a turn, so the prefix stays the
        same for KEEP/2 turns at a time and keeps being read from the prompt cache.
        """
        if len(self.messages) <= KEEP:
            return self.messages
        step = KEEP // 2
        start = ((len(self.messages) - KEEP) // step + 1) * step
        while start < len(self.messages) and self.messages[start].role != "user":
            start += 1
        cut = Message("user", f"{NOTE}{start} earlier messages of this chat are not shown.")
        return [cut, *self.messages[start:]]

    def _keep(self, message: Message) -> None:
        self.messages.append(message)
        self.transcript.append(message)

    def close(self, status: str = "succeeded", reason: str | None = None) -> None:
        """End the chat's run honestly: ``succeeded`` when the person left, ``canceled``
        when Ctrl-C ended it mid-reply, ``failed`` when an error did. ``--resume`` still
        continues a finished chat (in a new run that carries its history)."""
        self.heartbeat.stop()
        record = self.run.load()
        if record.status == "running":
            self.run.transition(status, reason=reason)


@contextmanager
def signals_to_main_thread() -> Iterator[None]:
    """Threads started inside never take SIGINT, SIGTERM or SIGHUP (they inherit the mask).

    The kernel gives a process's signal to any thread that does not block it; Python
    runs handlers only in the main thread, so a signal taken by a helper thread would
    wait until the main thread's blocking read returned.
    """
    stopping = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)


def _reopen(store: RunStore, ref: str, chain: list[str], workspace: str) -> Run:
    """The chat ``ref`` names ('last': the newest), to continue.

    A chat that ended (succeeded, canceled) stays ended: its conversation goes on in a
    new chat run, its child, that starts with the same transcript, so ``cost --run``
    of the first chat still adds up everything said since.
    """
    if ref == "last":
        chats, _ = store.page(kind="chat", limit=1)
        if not chats:
            raise NotFoundError("no chat to resume", hint="start one with agentctl chat")
        ref = chats[0].id
    old = store.get(ref)
    record = old.load()
    if record.status == "running":
        if record.pid is not None and pid_alive(record.pid, record.pid_start):
            raise UsageError(
                f"chat {old.id} is open in process {record.pid}",
                hint="go on there, or end it first (agentctl runs cancel)",
            )
        old.transition("failed", reason="its process is gone")  # then resumed below
    if record.status not in ("succeeded", "canceled"):
        return old  # paused or failed: go on in it
    run = store.create(
        "chat",
        input={"models": chain, "resumed_from": old.id},
        role="main",
        model=chain[0],
        workspace=workspace,
        parent=old,
    )
    if old.paths.transcript.exists():
        atomic.write_bytes(run.paths.transcript, old.paths.transcript.read_bytes())
    return run


def missing_key(config: Config, chain: list[str]) -> str | None:
    """A one-line warning when the chat's first model has no API key, else None."""
    name = chain[0]
    env = config.models[name].key_env
    if env is None or _has_key(config, name):
        return None
    answering = next((m for m in chain[1:] if _has_key(config, m)), None)
    then = f"; {answering} answers instead" if answering else ""
    return (
        f"warning: the chat's model {name} needs an API key in ${env}, which is not set{then}: "
        f"export {env}=... (or put it in the [secrets] file), or chat with another model "
        "(agentctl chat --model NAME)"
    )


def _has_key(config: Config, model: str) -> bool:
    env = config.models[model].key_env
    return env is None or bool(keystore.get(env))


def readable(value: object) -> str:
    """A value as a person reads it: no Python reprs, no braces, no None."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {readable(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(readable(v) for v in value)
    return str(value)


def report_line(body: dict[str, Any]) -> str:
    """An orchestrator report on one line: its summary, then what each list holds."""
    parts = [readable(body.get("summary") or body.get("text") or body.get("type") or "report")]
    for key, value in body.items():
        if key in ("summary", "text", "type") or value in (None, [], {}, ""):
            continue
        label = key.replace("_", " ")
        parts.append(f"{label}: {readable(value)}")
    return " · ".join(parts)


__all__ = [
    "ChatSession",
    "MissingKeyError",
    "ProviderError",
    "missing_key",
    "readable",
    "report_line",
]
