"""Pipelines as processes: start one (detached worker), and the worker's own main."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Mapping
from decimal import Decimal
from types import FrameType
from typing import Any

from agentctl import atomic, failpoints
from agentctl.agent.launch import take_process_slot
from agentctl.agent.supervise import Heartbeat, end_children
from agentctl.config import Config
from agentctl.config.schema import Pipeline
from agentctl.cost.ledger import Ledger
from agentctl.cost.report import descendants
from agentctl.errors import StateError, TransitionError, UsageError
from agentctl.executors import make_executor
from agentctl.forges import make_forge
from agentctl.pipeline.engine import Engine, NeedsPerson, Paused, StepFailed
from agentctl.pipeline.lookup import base_branch, find
from agentctl.pipeline.preflight import require
from agentctl.pipeline.steps import RUNNERS
from agentctl.runs import TERMINAL, Run, RunStore
from agentctl.runs.record import Failure
from agentctl.tools import reaper
from agentctl.trackers import make_tracker


def models_of(config: Config, pipeline: Pipeline) -> list[str]:
    """Every model a role step may call: its API key is all the pipeline process holds."""
    names: list[str] = []
    for step in pipeline.steps:
        if step.role is not None:
            for name in [step.model] if step.model else config.role(step.role).models:
                if name not in names:
                    names.append(name)
    return names


def start_pipeline(
    config: Config,
    name: str,
    *,
    task: str | None = None,
    ticket_id: str | None = None,
    inputs: Mapping[str, str] | None = None,
    sets: tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
    parent: Run | None = None,
    preflight: bool = True,
) -> Run:
    """Create a pipeline run (a child of ``parent``, if given) and submit it to the
    executor (a worker process here, or a Celery task).

    ``preflight`` first (``PreflightError``, nothing created, nothing spent) unless the
    caller made those checks itself.
    """
    pipeline, values, ticket_id, ticket = resolve_inputs(
        config, name, task=task, ticket_id=ticket_id, inputs=inputs
    )
    if preflight:
        require(config, name)
    run = RunStore(config.workspace.state_dir).create(
        "pipeline",
        input={
            "pipeline": name,
            "inputs": values,
            "ticket": ticket,
            "models": models_of(config, pipeline),
            "sets": list(sets),
        },
        parent=parent,
        pipeline=name,
        ticket=ticket_id,
        workspace=str(config.workspace.root),
    )
    make_executor(config).submit(run, environ)  # NotSubmittedError: it waits on disk
    return run


def resolve_inputs(
    config: Config,
    name: str,
    *,
    task: str | None = None,
    ticket_id: str | None = None,
    inputs: Mapping[str, str] | None = None,
) -> tuple[Pipeline, dict[str, str], str | None, dict[str, Any] | None]:
    """The pipeline, its input values, the ticket's id and record — or the error a run
    would meet (an unknown pipeline or ticket, no task). A dry run checks the same."""
    pipeline = find(config, name)
    values: dict[str, str] = {**pipeline.inputs, **(inputs or {})}
    if task is not None:
        values["task"] = task
    ticket: dict[str, Any] | None = None
    if ticket_id is not None:
        found = make_tracker(config).get(ticket_id)
        ticket_id = found.id
        ticket = found.to_json()
        if not values.get("task"):
            values["task"] = f"{found.title}\n\n{found.description}".strip()
        feedback = review_feedback(config, f"agentctl/{ticket_id}")
        if feedback:
            values.setdefault("review_feedback", feedback)
    if not values.get("task") and any(s.role for s in pipeline.steps):
        raise UsageError(
            f"pipeline {name!r} needs a task",
            hint=f"pass --task TEXT or --ticket ID (or set [inputs] task in pipelines/{name}.toml)",
        )
    return pipeline, values, ticket_id, ticket


def review_feedback(config: Config, branch: str) -> str:
    """The changes a review asked for on ``branch``'s open PR, for the next dev attempt.

    Run again for the same ticket, a pipeline continues on the existing branch and PR
    and starts from what the review said, instead of starting over.
    """
    pr = make_forge(config).find_pr(branch)
    if pr is None or pr.state != "open" or pr.review_state != "changes_requested":
        return ""
    review = pr.reviews[-1]
    lines = [review.summary] + [
        "- "
        + ":".join(str(c[k]) for k in ("file", "line") if c.get(k))
        + (": " if c.get("file") else "")
        + str(c.get("body", ""))
        for c in review.comments
    ]
    return f"Pull request #{pr.number} review asked for changes:\n" + "\n".join(lines)


def _end_orphan_steps(run: Run) -> None:
    """Step records a dead earlier worker of this pipeline left ``running``: end them.

    A gate or action runs inside the pipeline process, so its step run dies with it;
    the engine's journal decides what runs again, and the record must not stay
    ``running`` for ever.
    """
    store = RunStore(run.dir.parent.parent)
    for listing in store.children(run.id):
        record = listing.record
        if record is None or record.kind != "step":
            continue
        if record.status in TERMINAL or record.pid == os.getpid():
            continue
        with contextlib.suppress(TransitionError):
            store.get(listing.id).transition(
                "failed",
                reason=f"its pipeline's process {record.pid} died during this step",
                failure="transient",
            )


def work(config: Config, run_id: str) -> int:
    """The pipeline process: run (or resume) the steps; always leave a final status."""
    run = RunStore(config.workspace.state_dir).get(run_id)
    data = run.read_input()
    name = data["pipeline"]
    if not take_process_slot(config, run):
        return 0  # canceled while it waited for a process slot: nothing ran
    failpoints.hit("worker.before_start")
    run.mark_started(os.getpid(), os.getpgid(0))
    atomic.reserve(run.dir / atomic.RESERVE)  # room for the ending if the disk fills up
    reaper.become_subreaper()  # what a gate's commands leave (setsid too) stays ours to kill
    _end_orphan_steps(run)
    terminated: list[int] = []

    def on_term(signum: int, frame: FrameType | None) -> None:
        if not terminated:  # once: a second SIGTERM must not cut the ending short
            terminated.append(signum)
            raise KeyboardInterrupt

    # A cancel from another host arrives in the inbox only: it ends the run as SIGTERM does.
    signal.signal(signal.SIGTERM, on_term)
    heartbeat = Heartbeat(run, on_cancel=lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    values: dict[str, Any] = {
        "inputs": dict(data["inputs"]),
        "ticket": data.get("ticket") or {},
        "project": {
            "test_command": config.settings.project.test_command or "",
            "base_branch": base_branch(config),
        },
        "run": {"id": run.id},
    }
    engine = Engine(run, config, name, config.pipeline(name), values, RUNNERS)
    status, ending, reason = "succeeded", "done", "all steps passed"
    failure: Failure | None = None  # a failed step's class; the pipeline carries it
    said: dict[str, str] = {}
    try:
        engine.run_all()
    except Paused as paused:
        status, ending, reason = "paused", "budget", str(paused)
    except StepFailed as failed:
        status, ending, reason = "failed", "step_failed", failed.failure
        failure = failed.failure_class
        if failed.reason != "failed":  # changes requested: a round of the work, not a fault
            said["step_reason"] = failed.reason
    except NeedsPerson as held:  # failed, not paused: no resume can take it further
        status, ending, reason = "failed", "needs_person", str(held)
    except KeyboardInterrupt:
        status, ending, reason = "canceled", "canceled", "canceled on request"
    except Exception as exc:  # a bug or an unexpected failure still ends the run clearly
        full = atomic.disk_full(exc)
        if full is not None:  # `runs resume` continues it once space is back
            status, ending, reason = "failed", "disk_full", f"disk full: {full}"
            failure = "transient"
        else:
            traceback.print_exc()
            status, ending = "failed", "error"
            reason = f"internal error: {type(exc).__name__}: {exc}"
    finally:
        heartbeat.stop()
        reaper.kill_left(())  # nothing it started outlives the pipeline
    if status in ("failed", "canceled"):  # nor stays `running` after it
        with contextlib.suppress(StateError):  # a full disk: the reaper ends them later
            end_children(run, status, f"its pipeline {run.id} {status}: {reason}"[:500])
    try:
        if failure:
            said["failure"] = failure
        return _record_ending(run, config, engine, values, status, ending, reason, said)
    except StateError as exc:  # a full disk (the reserve is freed): say it where we still can
        line = f"disk full: {atomic.disk_full(exc)}" if atomic.disk_full(exc) else str(exc)
        with contextlib.suppress(OSError):  # process.log may be on the full disk too
            sys.stderr.write(f"agentctl: {line}\n")
            sys.stderr.flush()
        with contextlib.suppress(StateError, TransitionError):  # run.json is small
            run.transition("failed", reason=line[:500], failure="transient")
        return 1
    finally:
        atomic.release(run.dir / atomic.RESERVE)


def _record_ending(
    run: Run,
    config: Config,
    engine: Engine,
    values: dict[str, Any],
    status: str,
    ending: str,
    reason: str,
    said: dict[str, str],
) -> int:
    """Write the pipeline's output and final status (``said``: its failure class, and
    ``step_reason`` when a review's request for changes ended it)."""
    if ending == "disk_full":
        atomic.release(run.dir / atomic.RESERVE)
    state_dir = config.workspace.state_dir
    spent = Ledger(state_dir).spent(since=None, run_ids=descendants(state_dir, run.id))
    steps = engine.state.outputs
    run.write_output(
        {
            "ending": ending,
            "reason": reason[-4000:],
            "cost_usd": str(spent if isinstance(spent, Decimal) else 0),
            "branch": values["run"].get("branch"),
            "worktree": values["run"].get("worktree"),
            "steps": {
                k: {kk: vv for kk, vv in v.items() if kk != "output"} for k, v in steps.items()
            },
            "merged": next(
                (v.get("sha") for v in steps.values() if v.get("sha") and "pr" in v), None
            ),
            **said,
        }
    )
    failure = said.get("failure")
    with contextlib.suppress(TransitionError):  # a canceller may have recorded the end
        run.transition(
            status,
            reason=reason[:500],
            failure="permanent" if failure == "permanent" else "transient" if failure else None,
        )
    return 0 if status == "succeeded" else 1
