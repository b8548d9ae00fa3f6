"""The main session's delegation tools: thin calls into the same core functions as the CLI.

Delegated work runs in separate, detached processes, so the chat never blocks on
it; runs started from the chat are its children, so their costs add up under the
chat's run. Each tool returns a short text for the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agentctl.agent.supervise import AgentRequest, start_agent
from agentctl.config import Config
from agentctl.cost.pricing import format_usd
from agentctl.cost.report import build_report
from agentctl.errors import AgentctlError
from agentctl.llm.types import ToolSpec
from agentctl.orchestrator.home import Home
from agentctl.orchestrator.loop import loop_pid, start_loop, stop_loop
from agentctl.pipeline.process import start_pipeline
from agentctl.runs import Run, RunStore
from agentctl.runs.summary import detail, list_rows
from agentctl.trackers import make_tracker


def _spec(name: str, description: str, properties: dict[str, Any], required: list[str]) -> ToolSpec:
    return ToolSpec(
        name,
        description,
        {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
    )


S = {"type": "string"}
SPECS = (
    _spec(
        "orchestrator_start",
        "Start the orchestrator loop (detached) so tickets get worked on.",
        {"interval": {"type": "string", "description": "e.g. 30s, 5m"}},
        [],
    ),
    _spec("orchestrator_stop", "Stop the orchestrator loop after its current tick.", {}, []),
    _spec(
        "orchestrator_instruct",
        "Send the orchestrator an instruction (its inbox).",
        {"text": S},
        ["text"],
    ),
    _spec(
        "create_ticket",
        "Create a ticket in the local tracker (state Todo).",
        {"title": S, "description": S},
        ["title"],
    ),
    _spec(
        "run_pipeline",
        "Run a pipeline now (detached) for a task or a ticket.",
        {"pipeline": S, "task": S, "ticket": S},
        ["pipeline"],
    ),
    _spec(
        "spawn_agent",
        "Start a role agent (detached) on a task in the workspace.",
        {"role": S, "task": S},
        ["role", "task"],
    ),
    _spec(
        "list_runs", "The most recent runs with their status.", {"limit": {"type": "integer"}}, []
    ),
    _spec("read_run", "A run's status, result and recent events.", {"id": S}, ["id"]),
    _spec("show_cost", "What this chat and everything it started has cost so far.", {}, []),
)


class Delegation:
    """Executes the tools for one chat run."""

    def __init__(self, config: Config, chat: Run) -> None:
        self.config = config
        self.chat = chat
        self.state_dir = config.workspace.state_dir
        self.home = Home.of(self.state_dir)
        self.handlers: Mapping[str, Callable[[dict[str, Any]], str]] = {
            spec.name: getattr(self, spec.name) for spec in SPECS
        }

    def run(self, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        """(text for the model, is_error)."""
        handler = self.handlers.get(name)
        if handler is None:
            return f"unknown tool {name!r}", True
        try:
            return handler(arguments), False
        except AgentctlError as exc:
            return f"error: {exc}", True

    # -- the orchestrator --------------------------------------------------------------

    def orchestrator_start(self, args: dict[str, Any]) -> str:
        running = loop_pid(self.config)
        if running is not None:
            return f"the orchestrator is already running (pid {running})"
        interval = str(args.get("interval") or "30s")
        pid = start_loop(self.config, interval=interval, parent_id=self.chat.id)
        self.chat.journal.append("orchestrator.started", durable=True, pid=pid)
        return f"orchestrator started (pid {pid}); its reports will reach this chat"

    def orchestrator_stop(self, args: dict[str, Any]) -> str:
        pid = stop_loop(self.config)
        if pid is None:
            return "the orchestrator is not running"
        return f"asked the orchestrator (pid {pid}) to stop after its current tick"

    def orchestrator_instruct(self, args: dict[str, Any]) -> str:
        seq = self.home.inbox.post(
            {"type": "instruction", "text": args["text"], "from": f"chat {self.chat.id}"}
        )
        return f"instruction {seq} is in the orchestrator's inbox"

    # -- work ------------------------------------------------------------------------------

    def create_ticket(self, args: dict[str, Any]) -> str:
        ticket = make_tracker(self.config).add(args["title"], args.get("description", ""))
        return f"created ticket {ticket.id} ({ticket.state}): {ticket.title}"

    def run_pipeline(self, args: dict[str, Any]) -> str:
        run = start_pipeline(
            self.config,
            args["pipeline"],
            task=args.get("task"),
            ticket_id=args.get("ticket"),
            parent=self.chat,
        )
        self._watch(run.id)
        return f"pipeline {args['pipeline']} started as run {run.id}"

    def spawn_agent(self, args: dict[str, Any]) -> str:
        run = start_agent(
            self.config,
            AgentRequest(args["role"], args["task"], Path(self.config.workspace.root)),
            parent=self.chat,
        )
        self._watch(run.id)
        return f"{args['role']} agent started as run {run.id}"

    def _watch(self, run_id: str) -> None:
        self.chat.journal.append("child.started", durable=True, run_id=run_id)

    # -- reading --------------------------------------------------------------------------

    def list_runs(self, args: dict[str, Any]) -> str:
        rows, total = list_rows(self.state_dir, limit=int(args.get("limit") or 10))
        lines = [
            f"{r['id']} {r['kind']} {r['display_status']} {r['role'] or r['pipeline'] or ''}"
            for r in rows
        ]
        return f"{total} runs; newest:\n" + "\n".join(lines)

    def read_run(self, args: dict[str, Any]) -> str:
        info = detail(RunStore(self.state_dir).get(args["id"]), recent=5)
        keep = {k: info[k] for k in ("id", "record", "output", "stale", "problem")}
        return json.dumps(keep, default=str)[:6000]

    def show_cost(self, args: dict[str, Any]) -> str:
        report = build_report(self.state_dir, by="role", since=None, run=self.chat.id)
        lines = [f"{row.key}: {format_usd(row.cost)} ({row.calls} calls)" for row in report.rows]
        return "\n".join([*lines, f"total: {format_usd(report.total.cost)}"])
