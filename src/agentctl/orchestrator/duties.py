"""HEARTBEAT.md duties that are due, handed to the orchestrator role (one agent each).

The file is parsed every tick (``orchestrator.heartbeat``); a duty's last run is kept
in the tick's state under ``duties``, so a duty missed for hours fires once. A chat
that started the orchestrator pays for the agents it starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentctl.agent.supervise import AgentRequest, start_agent
from agentctl.orchestrator.context import TickContext
from agentctl.orchestrator.heartbeat import due, parse_heartbeat
from agentctl.runs import parse_ts
from agentctl.runs.timefmt import format_ts


def hand_out_duties(ctx: TickContext, state: dict[str, Any]) -> None:
    """Start one ``orchestrator`` agent per due duty (a dry run only names them)."""
    path = ctx.config.workspace.root / ctx.orch.heartbeat_file
    if not path.is_file():
        return
    duties = parse_heartbeat(path.read_text("utf-8"), str(path))
    last = {k: parse_ts(v) for k, v in state.get("duties", {}).items()}
    for duty in due(duties, last, ctx.clock()):
        ctx.report.duties.append(duty.text)
        if ctx.dry_run:
            continue
        start_agent(
            ctx.config,
            AgentRequest(ctx.orch.role, duty.text, Path(ctx.config.workspace.root)),
            parent=ctx.parent(),  # a chat that started the orchestrator pays for it
        )
        state.setdefault("duties", {})[duty.id] = format_ts(ctx.clock())
