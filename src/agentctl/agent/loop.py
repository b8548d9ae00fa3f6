"""The agent loop: model → tool calls → results → model, until one of its endings.

Every step is on disk before the next begins: each message in transcript.jsonl,
each model call (usage, cost) and each tool call (intent before, result after: the
bounded text the model saw, with the whole text's size and sha256) in events.jsonl,
each dollar in the ledger. A resumed loop reads them back: a tool
call whose result is journaled is never run again; one that was cut off by a crash
is reported to the model as interrupted, not silently redone.

Endings (each a distinct ``ending`` in output.json, with a reason): ``answer``,
``verdict``, ``max_turns``, ``budget`` (paused: resumable once raised),
``deadline``, ``loop``, ``malformed`` (too many bad tool calls), ``refusal``,
``canceled``, ``error`` (a model call failed after retries and fallbacks).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from agentctl import failpoints
from agentctl.agent.ending import Ending, failure_of
from agentctl.agent.transcript import Transcript
from agentctl.config import Config
from agentctl.config.schema import Role
from agentctl.cost.metered import Meter, journal_retries
from agentctl.cost.pricing import usd
from agentctl.cost.reserve import BudgetRefused
from agentctl.errors import MissingKeyError, ProviderError, QuotaError
from agentctl.llm.types import Message, Request, Response, ToolCall, ToolSpec
from agentctl.runs import Run, read_journal, utc_now
from agentctl.tools.toolbox import Toolbox

FINISH = ToolSpec(
    "finish",
    "Submit your verdict on the change. Call this exactly once, when you are done reviewing.",
    {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["approve", "request_changes"]},
            "summary": {"type": "string", "description": "one paragraph for the author"},
            "comments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string"},
                        "line": {"type": "integer"},
                        "body": {"type": "string"},
                    },
                    "required": ["body"],
                },
            },
        },
        "required": ["verdict", "summary"],
        "additionalProperties": False,
    },
)

NUDGE_VERDICT = "Submit your verdict with the finish tool (approve or request_changes)."
NUDGE_EMPTY = "Your reply was empty. Continue with a tool call, or give your final answer."


@dataclass
class Limits:
    """The role's limits, with the overrides given on the command line."""

    max_turns: int
    budget_usd: Decimal | None
    deadline: float
    loop_limit: int
    max_tool_errors: int

    @classmethod
    def of(cls, role: Role, overrides: Mapping[str, Any]) -> Limits:
        budget = overrides.get("budget_usd", role.budget_usd)
        return cls(
            max_turns=int(overrides.get("max_turns") or role.max_turns),
            budget_usd=usd(budget) if budget is not None else None,
            deadline=role.deadline,
            loop_limit=role.loop_limit,
            max_tool_errors=role.max_tool_errors,
        )


@dataclass
class AgentLoop:
    run: Run
    config: Config
    role_name: str
    role: Role
    chain: list[str]
    toolbox: Toolbox
    limits: Limits
    redact: Callable[[Any], Any] = field(default=lambda value: value)
    clock: Callable[[], datetime] = utc_now
    cancelled: Callable[[], bool] = field(default=lambda: False)

    def __post_init__(self) -> None:
        self.transcript = Transcript(self.run.paths.transcript, self.redact)
        self.meter = Meter(
            self.config,
            self.run,
            self.role_name,
            self.limits.budget_usd,
            clock=self.clock,
            on_attempt=journal_retries(self.run, self.redact),
        )
        self.tools = (*self.toolbox.specs, *((FINISH,) if self.role.result == "verdict" else ()))
        self.current = 0  # index into chain of the model now answering
        self.bad_turns = 0
        self.repeats: list[str] = []

    # -- the loop -----------------------------------------------------------------

    def run_to_end(self, task: str) -> Ending:
        """Run (or resume) until an ending; never raises for an agent-level outcome."""
        messages = self.transcript.load()
        if not messages:
            messages = [self._keep(Message("user", task))]
        messages = self._repair(messages)
        try:
            while True:
                self._check_limits(messages)
                self._deliver_inbox(messages)
                response = self._call(messages)
                messages.append(self._keep(response.message()))
                self._handle(response, messages)
        except Ending as ending:
            return ending

    def _check_limits(self, messages: list[Message]) -> None:
        if self.cancelled():
            raise Ending("canceled", "canceled", "canceled on request")
        turns = sum(m.role == "assistant" for m in messages)
        if turns >= self.limits.max_turns:
            raise Ending("failed", "max_turns", f"max_turns reached: {turns} model calls")
        if self._time_left() <= 0:
            raise Ending("failed", "deadline", f"deadline of {self.limits.deadline:g} s passed")

    def _time_left(self) -> float:
        """Seconds until the deadline, counted from the run's first start (resumes too)."""
        record = self.run.load()
        started = record.started_at or record.created_at
        return self.limits.deadline - (self.clock() - started).total_seconds()

    def _call(self, messages: list[Message]) -> Response:
        """One model call, reserved within every cap before it is sent (see ``Meter``).

        A model's own daily cap running out moves a model list on to its next model;
        any other cap (the run's, the role's, the day's) pauses the run, resumable
        once the budget is raised.
        """
        name = self.chain[self.current]
        request = Request(
            messages=tuple(messages),
            system=self.role.prompt,
            tools=self.tools,
            max_tokens=self.config.models[name].max_tokens,
        )
        self.run.journal.append("llm.request", model=name, turn=len(messages))
        try:
            outcome, _ = self.meter.call(request, self.chain[self.current :])
        except BudgetRefused as exc:
            reason = exc.decision.reason
            self.run.journal.append("budget.stop", durable=True, reason=reason)
            raise Ending("paused", "budget", f"budget: {reason}") from exc
        except QuotaError as exc:
            raise Ending("paused", "budget", f"provider spend limit: {exc}") from exc
        except (ProviderError, MissingKeyError) as exc:
            raise Ending("failed", "error", str(exc), failure=failure_of(exc)) from exc
        if outcome.model != name:
            self.current = self.chain.index(outcome.model)
            self.run.journal.append(
                "model.switch",
                durable=True,
                to=outcome.model,
                reason=self.meter.skipped.get(name, "failure"),
            )
        failpoints.hit("agent.after_llm_call")
        return outcome.response

    # -- one answer ---------------------------------------------------------------

    def _handle(self, response: Response, messages: list[Message]) -> None:
        if response.truncated_tool_call:
            self._bad(
                messages,
                response.tool_calls,
                "the output limit cut this tool call off; "
                "nothing was run. Make smaller steps (e.g. several small edits).",
            )
            return
        if not response.tool_calls:
            self._no_tools(response, messages)
            return
        valid = True
        for call in response.tool_calls:
            if call.error is not None:
                valid = False
                messages.append(
                    self._keep(
                        Message("tool", f"error: {call.error}", tool_call_id=call.id, is_error=True)
                    )
                )
                self.run.journal.append(
                    "tool.invalid",
                    call_id=call.id,
                    name=call.name,
                    error=call.error,
                    raw=self.redact(call.raw_arguments),
                )
                continue
            if call.name == FINISH.name:
                self._finish(call)
            self._detect_loop(call)
            messages.append(self._keep(self._run_tool(call)))
        if valid:
            self.bad_turns = 0
        else:
            self._count_bad()

    def _no_tools(self, response: Response, messages: list[Message]) -> None:
        if response.stop_reason == "refusal" or response.empty:
            why = "refusal" if response.stop_reason == "refusal" else "empty answer"
            if self.current + 1 < len(self.chain):
                self.current += 1
                self.run.journal.append(
                    "model.switch", durable=True, to=self.chain[self.current], reason=why
                )
                messages.pop()  # ask the next model the same question
                return
            if why == "refusal":
                raise Ending(
                    "failed",
                    "refusal",
                    f"the model refused: {response.text[:200]}",
                    failure="permanent",  # asked again, it refuses again
                )
            messages.append(self._keep(Message("user", NUDGE_EMPTY)))
            self._count_bad()
            return
        if self.role.result == "verdict":
            messages.append(self._keep(Message("user", NUDGE_VERDICT)))
            self._count_bad()
            return
        raise Ending("succeeded", "answer", "final answer", {"text": response.text})

    def _finish(self, call: ToolCall) -> None:
        args = dict(call.arguments or {})
        raise Ending(
            "succeeded",
            "verdict",
            f"verdict: {args['verdict']}",
            {
                "verdict": args["verdict"],
                "summary": args.get("summary", ""),
                "comments": args.get("comments", []),
                "text": args.get("summary", ""),
            },
        )

    def _run_tool(self, call: ToolCall) -> Message:
        arguments = dict(call.arguments or {})
        self.run.journal.append(
            "tool.start",
            durable=True,
            call_id=call.id,
            name=call.name,
            arguments=self.redact(arguments),
        )
        failpoints.hit("agent.after_tool_start")
        result = self.toolbox.run(call.name, arguments, time_left=self._time_left())
        failpoints.hit("agent.after_tool_run")
        # Bounded like what the model saw; the whole text only by its size and hash.
        self.run.journal.append(
            "tool.result",
            durable=True,
            call_id=call.id,
            name=call.name,
            is_error=result.is_error,
            content=self.redact(result.content),
            size=result.size,
            sha256=result.sha256,
            meta=self.redact(result.meta),
        )
        return Message("tool", result.content, tool_call_id=call.id, is_error=result.is_error)

    def _detect_loop(self, call: ToolCall) -> None:
        key = call.name + json.dumps(call.arguments, sort_keys=True)
        self.repeats = [*self.repeats, key][-self.limits.loop_limit :]
        if len(self.repeats) == self.limits.loop_limit and len(set(self.repeats)) == 1:
            raise Ending(
                "failed",
                "loop",
                f"loop: the same {call.name} call {self.limits.loop_limit} times in a row",
            )

    def _bad(self, messages: list[Message], calls: tuple[ToolCall, ...], text: str) -> None:
        for call in calls:
            messages.append(
                self._keep(Message("tool", f"error: {text}", tool_call_id=call.id, is_error=True))
            )
        self._count_bad()

    def _count_bad(self) -> None:
        self.bad_turns += 1
        if self.bad_turns > self.limits.max_tool_errors:
            raise Ending(
                "failed",
                "malformed",
                f"{self.bad_turns} answers in a row were unusable (malformed or missing tool "
                "calls); giving up",
                failure="permanent",  # a model that cannot call the tools will not next time
            )

    def _deliver_inbox(self, messages: list[Message]) -> None:
        """A parent's messages reach the model at the next turn, each exactly once."""
        events = read_journal(self.run.paths.events).events
        seen = max((e["seq_in"] for e in events if e.get("type") == "inbox.delivered"), default=0)
        for message in self.run.inbox.read(after=seen):
            body = message.body
            if body.get("type") == "message" and body.get("text"):
                sender = body.get("from", "your parent")
                messages.append(
                    self._keep(Message("user", f"Message from {sender}: {body['text']}"))
                )
            self.run.journal.append(
                "inbox.delivered", durable=True, seq_in=message.seq, kind=body.get("type")
            )

    # -- resume -------------------------------------------------------------------

    def _repair(self, messages: list[Message]) -> list[Message]:
        """Finish a tool round a crash cut short, from the journal, without rerunning tools."""
        if not messages or messages[-1].role != "assistant" or not messages[-1].tool_calls:
            return messages
        results: dict[str, dict[str, Any]] = {}
        started: set[str] = set()
        for event in read_journal(self.run.paths.events).events:
            if event.get("type") == "tool.result":
                results[event["call_id"]] = event
            elif event.get("type") == "tool.start":
                started.add(event["call_id"])
        calls = messages[-1].tool_calls
        for call in calls:
            if call.id in results:
                done = results[call.id]
                text, failed = str(done.get("content", "")), bool(done.get("is_error"))
            elif call.error is not None:
                text, failed = f"error: {call.error}", True
            else:
                what = "was interrupted before it finished" if call.id in started else "did not run"
                text = (
                    f"error: this {call.name} call {what} (agentctl restarted); its effects, "
                    "if any, are unknown: check before repeating it"
                )
                failed = True
            messages.append(
                self._keep(Message("tool", text, tool_call_id=call.id, is_error=failed))
            )
        self.run.journal.append(
            "resume.repaired",
            durable=True,
            reused=sum(c.id in results for c in calls),
            interrupted=sum(c.id in started and c.id not in results for c in calls),
        )
        return messages

    def _keep(self, message: Message) -> Message:
        self.transcript.append(message)
        return message
