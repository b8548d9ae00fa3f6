"""The main session: a conversation with the main role's model that can delegate.

The chat is a run (kind ``chat``): its transcript resumes it, its journal records
each call and tool, its costs go to the ledger under role ``main``, and the runs it
starts are its children. Between turns it hears back: orchestrator reports from
the outbox (a shared read cursor, so reports that came while no chat was open are
shown to the next one) and the results of runs it started, each added to the
model's context as a clearly marked note.

Long sessions stay bounded: at most ``KEEP`` messages are sent, cut in steps of
``KEEP/2`` at a user turn with a note saying how many were left out (the
transcript keeps everything); the system prompt, tools and the window's start
stay a stable prefix that is read from the prompt cache.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentctl import atomic
from agentctl.agent.transcript import Transcript
from agentctl.chat.tools import SPECS, Delegation
from agentctl.config import Config
from agentctl.cost.meter import Meter
from agentctl.errors import MissingKeyError, ProviderError
from agentctl.llm.call import Caller
from agentctl.llm.types import Message, OnEvent, Request, TextDelta
from agentctl.orchestrator.home import Home
from agentctl.runs import TERMINAL, Run, RunStore, read_journal

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
        self.caller = Caller(self.config.models, lock_dir=self.state_dir / "locks")
        self.home = Home.of(self.state_dir)
        self.pending: list[str] = []

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
            if resume == "last":
                chats = store.list(kind="chat")
                if not chats:
                    from agentctl.errors import NotFoundError

                    raise NotFoundError("no chat to resume", hint="start one with agentctl chat")
                run = store.get(chats[0].id)
            else:
                run = store.get(resume)
            if run.load().status != "running":
                run.mark_started(os.getpid(), os.getpgid(0))
        else:
            run = store.create(
                "chat",
                input={"models": chain},
                role="main",
                model=chain[0],
                workspace=str(config.workspace.root),
            )
            run.mark_started(os.getpid(), os.getpgid(0))
        return cls(config, run, chain)

    # -- hearing back -------------------------------------------------------------------

    def collect_news(self) -> list[str]:
        """New orchestrator reports and finished children, queued for the next turn."""
        notes = []
        cursor_file = self.home.dir / "outbox.read"
        try:
            seen = int(cursor_file.read_text())
        except (OSError, ValueError):
            seen = 0
        for message in self.home.outbox.read(after=seen):
            body = {k: v for k, v in message.body.items() if k not in ("seq", "ts")}
            notes.append(f"orchestrator report: {json.dumps(body)[:3000]}")
            seen = message.seq
        if notes:
            self.home.make()
            atomic.write_text(cursor_file, f"{seen}\n")
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
                text = output.get("text") or output.get("verdict") or output.get("reason", "")
                notes.append(
                    f"run {run_id} ({record.kind} {record.role or record.pipeline or ''})"
                    f" {record.status}: {str(text)[:1500]}"
                )
                self.run.journal.append("child.reported", durable=True, run_id=run_id)
        self.pending += notes
        return notes

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
            outcome, _ = Meter(self.config, self.run, "main", hint="raise [budgets]").complete(
                self.caller, request, self.chain, on_event=relay
            )
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

    def close(self) -> None:
        record = self.run.load()
        if record.status == "running":
            self.run.transition("paused", reason="chat closed; agentctl chat --resume continues it")


__all__ = ["ChatSession", "MissingKeyError", "ProviderError"]
