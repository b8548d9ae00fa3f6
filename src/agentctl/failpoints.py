"""Named fail points: the one test hook allowed in product code.

``AGENTCTL_FAILPOINT=name[,name...]`` makes an agentctl process kill itself with
SIGKILL the moment it reaches one of the named points, so crash tests run real
processes that die exactly where a power cut or ``kill -9`` could strike. Every
point is listed in ``POINTS`` (and in docs/architecture.md); ``hit`` refuses an
unlisted name so a typo in product code cannot silently disable a test.
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
    "pipeline.after_gate": "a gate command ran, its step not yet finished",
    "pipeline.after_action": "a built-in action done, its step not yet finished",
    "orchestrator.before_merge": "a tick is about to call the merge queue",
    "orchestrator.after_merge": "the merge queue merged; the ticket not yet moved",
    "mergequeue.before_cleanup": "merged and journaled; its worktree and branch not yet removed",
    "runs.before_publish": "a new run directory complete under its temp name, not yet renamed",
}


@cache
def _armed() -> frozenset[str]:
    raw = os.environ.get(ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def hit(name: str) -> None:
    """Kill this process with SIGKILL if ``name`` is armed in ``AGENTCTL_FAILPOINT``."""
    if name not in POINTS:
        raise ValueError(f"unknown fail point {name!r}")
    if name in _armed():
        os.kill(os.getpid(), signal.SIGKILL)


def armed() -> frozenset[str]:
    """The fail points armed in this process (for ``doctor`` and diagnostics)."""
    return _armed()
