"""A person's message to a running agent: into its inbox, read by its model next turn.

An agent on a coding agent CLI (``claude -p``, ``codex exec``) takes no input while it
runs, so a message to one is refused, saying so, rather than queued where nothing reads it.
"""

from __future__ import annotations

from agentctl.config import Config
from agentctl.errors import UsageError
from agentctl.runs import Run

FROM_PERSON = "the person running agentctl"


def send_message(config: Config, run: Run, text: str) -> int:
    """Post ``text`` to ``run``'s inbox; its sequence number."""
    record = run.load()
    role = config.roles.get(record.role or "") if record.kind == "agent" else None
    if role is not None and role.backend != "agentctl":
        raise UsageError(
            f"run {run.id} is a {record.role} agent on {role.backend}, which takes no "
            "message while it runs",
            hint="wait for it to end, or cancel it and give the step a new task",
        )
    return run.inbox.post({"type": "message", "text": text, "from": FROM_PERSON})
