"""A role step: the role's agent process does the step; spawned, watched, resumed, read.

A crash of the pipeline or of the agent continues the agent from its transcript
(within ``max_resumes``); an agent that ended on its own terms is asked afresh.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentctl import failpoints
from agentctl.agent.supervise import (
    AgentRequest,
    deaths,
    died,
    latest_worker,
    record_spend,
    resume_run,
    start_agent,
    watch,
)
from agentctl.config.schema import Step
from agentctl.errors import (
    TransitionError,
    UsageError,
)
from agentctl.pipeline.engine import Engine, Paused, StepFailed
from agentctl.pipeline.steps.common import base_of, forge_of, review_on_open_pr
from agentctl.runs import TERMINAL, Run, RunRecord, RunStore, pid_alive
from agentctl.runs.record import Failure
from agentctl.tools import gitview
from agentctl.tools.env import tool_env
from agentctl.tools.result import ToolError


def run_role(step: Step, note: str, engine: Engine) -> dict[str, Any]:
    """Spawn the role's agent (or resume the one a crash or a failure left), wait, read it."""
    assert step.role is not None
    store = RunStore(engine.config.workspace.state_dir)
    child_id = engine.state.child.get(step.id)
    child = store.get(child_id) if child_id is not None else None
    if child is not None:
        record = child.load()
        if record.status not in TERMINAL or _ended_with_pipeline(record):
            # killed with us, ended by our own failure, or paused: carry on from its transcript
            raised = _budget(engine, step) if record.status == "paused" else None
            if raised is None:
                _within_bound(engine, step.role, child)
            with contextlib.suppress(UsageError):  # UsageError: it is still running; watch it
                resume_run(engine.config, child, budget_usd=raised)
        elif engine.state.retrying == step.id and _resumable(child):
            resume_run(engine.config, child)  # its own cap, as it was
        elif engine.state.retrying == step.id:
            child = None  # it ended on its own terms (a verdict, a limit): a fresh run
    if child is None:
        prompt = engine.render(step.prompt or "{inputs.task}")
        base = None
        if engine.config.role(step.role).result == "verdict":
            base, under_review = review_context(engine)
            prompt += under_review
        budget = _budget(engine, step)
        child = start_agent(
            engine.config,
            AgentRequest(
                role=step.role,
                task=prompt + note,
                cwd=Path(engine.values["run"].get("worktree") or engine.config.workspace.root),
                model=step.model,
                budget_usd=budget,
                base=base,
            ),
            parent=engine.run,
            sets=tuple(engine.run.read_input().get("sets", [])),
        )
        engine.run.journal.append("step.child", durable=True, step=step.id, run_id=child.id)
        engine.state.child[step.id] = child.id
        failpoints.hit("pipeline.after_child_start")
    engine.state.retrying = None  # this run (resumed or new) is the step's attempt now
    record = _watched(engine, step.role, child)
    output = child.read_output() or {}
    outputs = {
        "output": output.get("text", ""),
        "verdict": output.get("verdict", ""),
        "comments": _comments(output),
        "cost": output.get("cost_usd", "0"),
        "model": output.get("model", ""),
        "run_id": child.id,
    }
    if output.get("verdict"):
        review_on_open_pr(engine, outputs)
    if record.status == "paused":
        raise Paused(f"step {step.id!r}: {record.reason or output.get('reason') or 'paused'}")
    if record.status != "succeeded":
        # An agent that died or could not reach its model failed for a reason outside
        # the code: no on_fail round can fix that; `runs resume` continues it instead.
        failure = _agent_failure(step.role, record, output)
        raise StepFailed(
            failure, outputs, retry=not _resumable(child), failure_class=_class_of(record)
        )
    if engine.config.role(step.role).result == "verdict" and not output.get("verdict"):
        raise StepFailed(  # a review that ended without one: asking again will not help
            f"the {step.role} agent ended without a verdict",
            outputs,
            failure_class="permanent",
        )
    if output.get("verdict") == "request_changes":
        raise StepFailed(
            f"review requested changes:\n{output.get('summary', '')}\n{outputs['comments']}",
            outputs,
            reason="changes_requested",
        )
    return outputs


def review_context(engine: Engine) -> tuple[str | None, str]:
    """For a review: the base ref its ``git_diff`` compares with, and the prompt's block.

    The block names the branch and the base and gives the change's stat, so every
    pipeline's reviewer starts from the change itself, whatever its prompt says.
    Nothing without a branch of its own (a review of the plain workspace).
    """
    branch, worktree = engine.values["run"].get("branch"), engine.values["run"].get("worktree")
    if not branch or not worktree:
        return None, ""
    base = base_of(engine)
    ref = forge_of(engine).fetch(base)  # the base as the forge has it, not a stale local copy
    try:
        stat = gitview.branch_stat(str(worktree), tool_env(), ref)
    except ToolError as exc:
        stat = f"(no stat: {exc.message})"
    block = (
        f"\n\nChange under review: branch {branch} against base {base}\n{stat}\n\n"
        f"git_diff shows this whole change (it compares with {base} unless you name "
        "another base); read, grep and glob show the code around it."
    )
    return ref, block


def _watched(engine: Engine, role: str, child: Run) -> RunRecord:
    """Wait for the agent's ending; a worker that dies without one is resumed, within bound."""
    while True:
        for _ in watch(child):
            pass
        record = _settled(child, role)
        if record.status != "failed" or not died(record.reason):
            return record
        failpoints.hit("pipeline.after_agent_died")
        _within_bound(engine, role, child)
        with contextlib.suppress(UsageError):  # someone else resumed it first: watch that one
            resume_run(engine.config, child)  # from its transcript, journaled results kept


def _within_bound(engine: Engine, role: str, child: Run) -> None:
    """Refuse (a failed step, no on_fail round) an agent killed more than ``max_resumes`` times.

    The deaths are counted from the agent run's own journal, so a pipeline resumed
    after its own death keeps counting where the last one stopped.
    """
    bound = engine.config.settings.orchestrator.max_resumes
    record = child.load()
    if record.status == "running" and record.pid and not pid_alive(record.pid, record.pid_start):
        record = _settled(child, role)  # died with its pipeline: that death counts too
    killed = deaths(child)
    if killed <= bound:
        return
    last = f"; last: {record.reason}" if record.reason else ""
    failure = f"the {role} agent was killed {killed} times (max_resumes {bound}){last}"
    if child.load().status == "failed":  # said by ``_settled``: now the whole story
        child.update(reason=failure)
    else:
        with contextlib.suppress(TransitionError):
            child.transition("failed", reason=failure)
    record_spend(child, failure)  # what its calls cost, though it never said
    raise StepFailed(failure, {"run_id": child.id}, retry=False, failure_class="transient")


def _class_of(record: RunRecord) -> Failure | None:
    """The agent's failure class; a process that died or was stopped is transient."""
    if record.failure is not None:
        return record.failure
    if record.status == "canceled" or died(record.reason) or _ended_with_pipeline(record):
        return "transient"
    return None


def _ended_with_pipeline(record: RunRecord) -> bool:
    """Was the agent failed only because its pipeline failed (``end_children``)?"""
    return record.status == "failed" and (record.reason or "").startswith("its pipeline ")


def _resumable(child: Run) -> bool:
    """Should a re-run of this failed agent continue its transcript (not start afresh)?

    Yes when it stopped for a reason outside the conversation: its process died
    (no output) or a model call failed (a missing key, a provider error, ending
    ``error``). An agent that ended on its own terms (an answer, a verdict, a refusal,
    max_turns, its deadline, a cancel) would only end the same way again: a fresh run.
    """
    record = child.load()
    if record.status != "failed":
        return False
    output = child.read_output()  # ``killed``: written for it by whoever ended it
    return output is None or output.get("ending") in ("error", "killed")


def _settled(child: Run, role: str) -> RunRecord:
    """The child's record once its worker is gone; a worker that died is marked failed."""
    record = child.load()
    if record.status in TERMINAL or record.status == "paused":
        return record
    pid = latest_worker(child) or record.pid
    reason = f"the {role} agent's {_died(pid)}"
    with contextlib.suppress(TransitionError):  # it finished after all, just now
        child.transition("failed", reason=reason, failure="transient")
        # Its paid calls are said now: this pipeline may die before it resumes it.
        record_spend(child, reason)
    return child.load()


def _died(pid: int | None) -> str:
    where = f" (pid {pid})" if pid else ""
    return f"process died{where} before it finished"


def _agent_failure(role: str, record: RunRecord, output: Mapping[str, Any]) -> str:
    """Why a role's agent did not succeed, in words: never a bare status or ``None``."""
    reason = str(record.reason or output.get("reason") or "").strip()
    if record.status == "failed" and reason.startswith(f"the {role} agent"):
        return reason  # already a sentence (a dead worker, said by ``_settled``)
    if record.status == "canceled":
        return f"the {role} agent was canceled" + (f": {reason}" if reason else "")
    if record.status == "failed":
        return f"the {role} agent failed: {reason or 'it ended without saying why'}"
    return f"the {role} agent ended {record.status}" + (f": {reason}" if reason else "")


def _budget(engine: Engine, step: Step) -> float | None:
    """A role step's cap: the role's, the step's and what the pipeline has left, lowest."""
    assert step.role is not None
    caps = [c for c in (engine.config.role(step.role).budget_usd, step.budget_usd) if c is not None]
    remaining = engine.remaining_budget()
    if remaining is not None:
        caps.append(max(remaining, Decimal(0)))
    return float(min(caps)) if caps else None


def _comments(output: dict[str, Any]) -> str:
    lines = []
    for comment in output.get("comments", []) or []:
        where = ":".join(str(comment[k]) for k in ("file", "line") if comment.get(k))
        lines.append(f"- {where + ': ' if where else ''}{comment.get('body', '')}")
    return "\n".join(lines)
