"""``agentctl agent run``: one role agent as its own process, watched live or detached."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentctl.cli.context import echo, follow_events, new_group, print_json, state
from agentctl.errors import EXIT_FAILED, EXIT_INTERRUPTED
from agentctl.visible import visible

if TYPE_CHECKING:
    from agentctl.runs import Run

app = new_group("Role agents: one process each, a tool loop in a confined workspace.")


class Progress:
    """Turns journal events into progress lines: turn, model, tokens, cost so far, tools."""

    def __init__(self) -> None:
        from decimal import Decimal

        self.turn = 0
        self.spent = Decimal(0)

    def line(self, event: dict[str, Any]) -> str | None:
        if event.get("type") != "llm.call":
            return describe(event)
        from agentctl.cost.pricing import usd

        self.turn += 1
        self.spent += usd(event.get("cost_usd") or 0)
        usage = event.get("usage", {})
        tokens = usage.get("input_tokens", 0) + usage.get("cache_read_tokens", 0)
        tokens += usage.get("cache_write_tokens", 0)
        return (
            f"turn {self.turn} · {event.get('model')}: {tokens} in, "
            f"{usage.get('output_tokens', 0)} out · ${self.spent:f} so far"
        )


def _arg(value: Any, width: int = 60) -> str:
    """A tool argument as JSON (never a Python repr), cut to ``width`` characters."""
    import json

    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe(event: dict[str, Any]) -> str | None:
    """One progress line for an event other than a model call (None: not worth a line)."""
    kind = event.get("type")
    if kind == "tool.start":
        args = ", ".join(f"{k}={_arg(v)}" for k, v in (event.get("arguments") or {}).items())
        return f"→ {event.get('name')}({args})"
    if kind == "tool.result" and event.get("is_error"):
        first = str(event.get("content", "")).strip().splitlines()[:1]
        return f"  ✗ {first[0][:120] if first else 'error'}"
    if kind == "tool.invalid":
        return f"  ✗ invalid {event.get('name')} call: {event.get('error')}"
    if kind in ("model.switch", "budget.stop", "llm.retry"):
        detail = event.get("reason") or event.get("error") or ""
        return f"! {kind}: {event.get('to') or event.get('model') or ''} {detail}".rstrip()
    if kind == "process.waiting":
        from agentctl.runs.procslots import waiting_text

        return f"… {waiting_text(event.get('running'), event.get('limit'))}"
    if kind == "status":
        return f"= {event.get('to')}" + (f": {event['reason']}" if event.get("reason") else "")
    return None


def follow_run(run: Run, as_json: bool) -> int:
    """Print progress until the run ends; print the answer; return the exit code."""
    progress = Progress()

    def show(event: dict[str, Any]) -> None:
        line = progress.line(event)
        if line and not as_json:
            sys.stderr.write(visible(line) + "\n")

    if not follow_events(run, show):
        return EXIT_INTERRUPTED
    from agentctl.runs.record import TERMINAL

    record = run.load()
    if record.status not in TERMINAL and record.status != "paused":
        return _died(run, record.status, as_json)
    output = run.read_output() or {}
    if as_json:
        print_json({"run_id": run.id, "status": record.status, **output})
    elif output.get("verdict"):
        echo(f"verdict: {output['verdict']}\n{output.get('summary', '')}")
        for comment in output.get("comments", []):
            where = ":".join(str(comment[k]) for k in ("file", "line") if comment.get(k))
            echo(f"- {where + ': ' if where else ''}{comment.get('body', '')}")
    elif output.get("text"):
        echo(output["text"])
    if not as_json:
        echo(
            f"{record.status} ({output.get('ending', record.reason or '')}) · "
            f"${output.get('cost_usd', '0')} · run {run.id}",
            err=True,
        )
    return 0 if record.status == "succeeded" else EXIT_FAILED


def _died(run: Run, status: str, as_json: bool) -> int:
    """The one line for a run whose process ended without recording it (never "running ()")."""
    reason = run.last_words()
    if as_json:
        print_json({"run_id": run.id, "status": status, "ending": "died", "reason": reason})
    else:
        echo(
            f"ended without a final status: {reason} · run {run.id} (runs resume continues it)",
            err=True,
        )
    return EXIT_FAILED


@app.command("run")
def run_agent(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="The role, e.g. dev, review, research.")],
    task: Annotated[str, typer.Argument(help="What to do; '-' reads it from stdin.")],
    cwd: Annotated[Path | None, typer.Option(help="The agent's workspace (default: here).")] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Use this model instead of the role's.")
    ] = None,
    budget: Annotated[float | None, typer.Option(min=0, help="USD cap for this run.")] = None,
    max_turns: Annotated[int | None, typer.Option(min=1, help="Model calls at most.")] = None,
    detach: Annotated[bool, typer.Option(help="Print the run id and return at once.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run a role agent on a task as its own process; Ctrl-C cancels it."""
    from agentctl.agent.supervise import AgentRequest, start_agent

    app_state = state(ctx)
    text = sys.stdin.read() if task == "-" else task
    request = AgentRequest(role, text, cwd or Path.cwd(), model, budget, max_turns)
    run = start_agent(app_state.config, request, sets=tuple(app_state.sets))
    if detach:
        if as_json:
            print_json({"run_id": run.id})
        else:
            echo(run.id)
        return
    code = follow_run(run, as_json)
    if code:
        raise typer.Exit(code)


@app.command("worker", hidden=True)
def worker(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run this process works on.")],
) -> None:
    """The agent process (spawned by agentctl)."""
    from agentctl.agent.worker import work

    code = work(state(ctx).config, run_id)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: the run is on disk, nothing else matters


@app.command("zygote", hidden=True)
def zygote(
    ctx: typer.Context,
    stop: Annotated[bool, typer.Option("--stop", help="Stop this workspace's zygote.")] = False,
) -> None:
    """The workspace's warm agent spawner (started by agentctl on the first spawn)."""
    if stop:
        from agentctl.agent.spawner import stop as stop_zygote

        pid = stop_zygote(state(ctx).workspace.state_dir)
        echo("no zygote running" if pid is None else f"stopped the zygote (pid {pid})")
        return
    from agentctl.agent.zygote import serve
    from agentctl.cli import main

    code = serve(state(ctx).config, main)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
