"""Named fail points: the one test hook allowed in product code.

``AGENTCTL_FAILPOINT=name[,name...]`` makes an agentctl process kill itself with
SIGKILL the moment it reaches one of the named points, so crash tests run real
processes that die exactly where a power cut or ``kill -9`` could strike. Every
point is listed in ``POINTS`` (and in docs/architecture.md); ``hit`` refuses an
unlisted name so a typo in product code cannot silently disable a test.

The environment is inherited by every child (a pipeline's agents, a resumed
worker), so a plain ``name`` fires in each of them, every time. ``name@PATH``
fires once across all processes: only in the one that creates the marker file
``PATH`` (exclusively); every later hit finds it there and carries on.
"""

from __future__ import annotations

import os
import signal
from functools import cache

ENV = "AGENTCTL_FAILPOINT"

POINTS: dict[str, str] = {
    "atomic.after_temp_write": "temp file written, not yet fsynced or renamed",
    "atomic.before_rename": "temp file fsynced, not yet renamed over the target",
    "atomic.after_rename": "target replaced, directory not yet fsynced",
    "journal.mid_append": "half of a journal line written (leaves a torn tail)",
    "journal.after_append": "a journal line fully written",
    "mailbox.after_post": "a message file published in an inbox/outbox",
    "agent.after_tool_start": "a tool call's intent journaled, the tool not yet run",
    "agent.after_tool_run": "a tool ran, its result not yet journaled",
    "agent.after_llm_call": "a model answer journaled, not yet in the transcript",
    "pipeline.after_child_start": "a role step's agent started, the pipeline not yet waiting",
    "pipeline.after_agent_died": "a role step marked its dead agent failed, not yet resumed",
    "pipeline.after_gate": "a gate command ran, its step not yet finished",
    "pipeline.after_action": "a built-in action done, its step not yet finished",
    "orchestrator.before_merge": "a tick is about to call the merge queue",
    "orchestrator.after_merge": "the merge queue merged; the ticket not yet moved",
    "mergequeue.before_cleanup": "merged and journaled; its worktree and branch not yet removed",
    "worker.before_start": "an agent or pipeline worker spawned, its run not yet started",
    "runs.before_publish": "a new run directory complete under its temp name, not yet renamed",
    "zygote.after_fork": "the zygote forked an agent worker, not yet told its requester",
}


def forget() -> None:
    """Read the environment again at the next hit (a zygote's child has a new one)."""
    _specs.cache_clear()


@cache
def _specs() -> dict[str, str | None]:
    """Armed point → its one-shot marker path (None: fires every time)."""
    specs: dict[str, str | None] = {}
    for part in os.environ.get(ENV, "").split(","):
        name, _, marker = part.strip().partition("@")
        if name:
            specs[name] = marker or None
    return specs


def _claim(marker: str) -> bool:
    """True for the one process that creates ``marker`` first."""
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except OSError:
        return False
    return True


def hit(name: str) -> None:
    """Kill this process with SIGKILL if ``name`` is armed in ``AGENTCTL_FAILPOINT``."""
    if name not in POINTS:
        raise ValueError(f"unknown fail point {name!r}")
    specs = _specs()
    if name in specs:
        marker = specs[name]
        if marker is None or _claim(marker):
            os.kill(os.getpid(), signal.SIGKILL)


def armed() -> frozenset[str]:
    """The fail points armed in this process (for ``doctor`` and diagnostics)."""
    return frozenset(_specs())
