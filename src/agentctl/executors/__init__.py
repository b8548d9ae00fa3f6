"""Where pipeline processes run: this machine (``local``) or Celery workers (``celery``).

The run directory is made first, on the submitting side; an executor is only told
"run this one". So a run is never lost between submit and start: one the executor
never started is still ``pending`` on disk, and the orchestrator submits it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from agentctl.agent.supervise import cancel_run, resume_run
from agentctl.checks import Check
from agentctl.errors import AgentctlError, UsageError
from agentctl.executors.claim import claimed
from agentctl.registry import load
from agentctl.runs import Run, this_host

if TYPE_CHECKING:
    from agentctl.config import Config

EXECUTORS = {
    "local": "agentctl.executors.local:LocalExecutor",
    "celery": "agentctl.executors.celery:CeleryExecutor",
}


class Executor(Protocol):
    """Runs pipeline runs that already exist on disk."""

    def submit(self, run: Run, environ: Mapping[str, str] | None = None) -> None:
        """Have ``run``'s pipeline process started (or resumed) somewhere; returns at once.

        Raises ``ServiceUnavailableError`` when it cannot be handed over; the run stays
        ``pending`` on disk (or with its resume requested) for a later submit.
        """
        ...

    def cancel(self, run: Run) -> None:
        """The backstop when a run on another host did not end itself after a cancel."""
        ...

    def describe(self) -> str:
        """Where runs go, in a few words (for ``doctor`` and the views)."""
        ...


def make_executor(config: Config) -> Executor:
    """The configured executor (``[executor] kind``); its module is imported only now."""
    kind = config.settings.executor.kind
    executor: Executor = load(EXECUTORS, kind, "executor")(config)
    return executor


def resume(
    config: Config,
    run: Run,
    environ: Mapping[str, str] | None = None,
    *,
    budget_usd: float | None = None,
) -> str:
    """Resume an interrupted pipeline where the executor runs pipelines; its old status.

    Locally a new worker process starts here. Under Celery the resume is journaled and
    the run's task sent again: a worker takes it (and is the one resumer), or it stays
    requested on disk until a submit gets through.
    """
    record = run.load()
    if config.settings.executor.kind == "local" or record.kind != "pipeline":
        return resume_run(config, run, environ, budget_usd=budget_usd)
    if record.status in ("succeeded", "canceled"):
        raise UsageError(f"run {run.id} is {record.status}; only unfinished runs resume")
    if claimed(run):
        raise UsageError(
            f"run {run.id} is running on {record.host or 'a worker'}",
            hint="cancel it first (agentctl runs cancel), or wait",
        )
    if budget_usd is not None:
        run.journal.append("budget.set", durable=True, budget_usd=budget_usd)
    if record.status != "pending":
        run.journal.append("resume.requested", durable=True, previous=record.status)
    make_executor(config).submit(run, environ)
    return record.status


def forge_spans_clones(config: Config) -> UsageError | None:
    """Why workers' pull requests could not reach the head, if they could not: the
    local forge lives in one checkout's state, and each worker works in its own clone."""
    if config.settings.forge.kind != "local":
        return None
    return UsageError(
        "a worker's pull requests must reach the head: the local forge cannot span clones",
        hint="set [forge] kind = \"github\" (every clone's remote is the forge's)",
    )


def list_workers(config: Config, *, timeout: float = 1.0) -> list[dict[str, Any]]:
    """The live workers (Celery's inspect): a ``UsageError`` where runs are local."""
    if config.settings.executor.kind != "celery":
        raise UsageError(
            "no workers: pipelines run as local processes here",
            hint='see "Running on several machines" in the README ([executor] kind = "celery")',
        )
    # lazy: Celery and kombu, only when workers are asked for
    from agentctl.executors.celery import CeleryExecutor

    return CeleryExecutor(config).workers(timeout=timeout)


def cancel(run: Run, *, grace: float, config: Callable[[], Config]) -> str:
    """``runs cancel``: a run on another host gets the executor's backstop (a revoke)."""
    record = run.load()
    backstop = None
    if record.host and record.host != this_host():
        loaded = config()
        if loaded.settings.executor.kind != "local":
            backstop = make_executor(loaded).cancel
    return cancel_run(run, grace=grace, backstop=backstop)


def executor_checks(config: Config) -> list[Check]:
    """What ``doctor`` says about where pipelines run: under Celery, the broker and the
    live workers on the queue (none is a warning: pipelines wait in the queue)."""
    if config.settings.executor.kind == "local":
        return [Check("executor", "ok", f"{make_executor(config).describe()} ([executor] kind)")]
    queue = config.settings.executor.celery.queue
    if (spans := forge_spans_clones(config)) is not None:
        return [Check("executor", "fail", spans.message, spans.hint)]
    try:
        rows = list_workers(config, timeout=1.0)
    except AgentctlError as exc:
        return [Check("executor", "fail", exc.without_hint(), exc.hint)]
    names = [str(r["name"]) for r in rows if queue in r["queues"]]
    if not names:
        return [
            Check(
                "executor",
                "warn",
                f"celery: the broker answers, but no live worker takes queue {queue!r}",
                "start `agentctl worker` on each worker host (README: Running on several "
                "machines); until then pipelines wait in the queue",
            )
        ]
    return [
        Check("executor", "ok", f"celery: {len(names)} worker(s) on {queue!r}: {', '.join(names)}")
    ]
