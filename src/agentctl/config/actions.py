"""The built-in actions a pipeline step ``uses``, with the ``with`` arguments each takes.

The config checks steps against these at load (``validate.py``); ``pipeline/steps.py``
runs them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """A built-in action: what it does and the ``with`` arguments it takes."""

    doc: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


ACTIONS: dict[str, ActionSpec] = {
    "git.worktree": ActionSpec(
        "a fresh worktree under .agentctl/worktrees/ on branch agentctl/<ticket-or-run>",
        optional=("branch", "base"),
    ),
    "git.commit": ActionSpec(
        "commit what the agent changed (an empty change fails)", (), ("message",)
    ),
    "git.update": ActionSpec(
        "merge the base into the branch; conflicts stay for the next role step to resolve",
        optional=("base",),
    ),
    "forge.open_pr": ActionSpec(
        "open (or reuse) the pull request for the branch", (), ("title", "body")
    ),
    "forge.merge": ActionSpec(
        "merge through the merge queue after re-running the gate on the merged result",
        optional=("gate",),
    ),
    "forge.review": ActionSpec(
        "record a review step's verdict and comments on the pull request", ("step",)
    ),
    "report.write": ActionSpec(
        "write text to a report file under .agentctl/reports/", ("content",), ("name",)
    ),
    "tracker.set_state": ActionSpec(
        "move the ticket to a state (and say so once, with comment)", ("state",), ("comment",)
    ),
    "tracker.comment": ActionSpec("comment on the ticket (milestones only)", ("body",)),
}
