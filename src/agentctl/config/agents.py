"""The schema of a role's agent: which program runs it (backend) and its MCP servers.

Kept beside ``schema.py`` (which imports these) so each stays a few hundred lines.
A backend other than ``agentctl`` is an external coding agent CLI driven through
agentctl's metering proxy (``agent/backends/``); MCP servers add tools to a role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

Duration = Annotated[float, "duration"]  # as in schema.py: 90, "90s", "5m"

Backend = Literal["agentctl", "claude-code", "codex"]
PermissionMode = Literal["acceptEdits", "dontAsk", "manual", "plan", "auto", "bypassPermissions"]

# agentctl's own tools, as roles name them in `tools`.
TOOLS: dict[str, str] = {
    "read": "read a file in the workspace",
    "write": "create or overwrite a file in the workspace",
    "edit": "replace one exact occurrence of text in a file",
    "glob": "list files matching a pattern",
    "grep": "search file contents",
    "bash": "run a shell command in the workspace (timeout, own process group)",
    "git_diff": "show a diff (read-only): uncommitted, or a branch against its base",
    "git_status": "show git status (read-only)",
    "web_fetch": "fetch a web page (off unless a role lists it)",
}

# What each CLI backend is installed as, and the wire its model must speak.
CLI_PACKAGES: dict[str, tuple[str, str]] = {
    "claude-code": ("claude", "@anthropic-ai/claude-code"),
    "codex": ("codex", "@openai/codex"),
}
CLI_WIRE: dict[str, tuple[str, str]] = {
    "claude-code": ("anthropic", "messages"),
    "codex": ("openai", "responses"),
}


def _doc(text: str, **extra: object) -> dict[str, object]:
    return {"doc": text, **extra}


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """What a CLI backend needs beyond the role: its program, flags and permissions."""

    executable: str | None = field(
        default=None,
        metadata=_doc("the CLI program (a path or a name on PATH); default claude / codex"),
    )
    args: tuple[str, ...] = field(
        default=(), metadata=_doc("extra flags passed to the CLI, after agentctl's own")
    )
    permission_mode: PermissionMode = field(
        default="acceptEdits",
        metadata=_doc(
            "Claude Code's --permission-mode (bypassPermissions is refused as root);"
            " the role's tools become --allowedTools either way"
        ),
    )
    resume: bool = field(
        default=True,
        metadata=_doc("resume the CLI's own conversation when the step is resumed"),
    )


@dataclass(frozen=True, slots=True)
class McpServer:
    """One MCP server whose allowed tools a role may call: stdio ``command`` or ``url``."""

    command: tuple[str, ...] = field(
        default=(), metadata=_doc("program and arguments of a stdio server")
    )
    url: str | None = field(default=None, metadata=_doc("a streamable HTTP server's URL"))
    env: tuple[str, ...] = field(
        default=(),
        metadata=_doc("names of environment variables passed to the server (never values)"),
    )
    tools: tuple[str, ...] = field(
        default=(),
        metadata=_doc("the server's tools the role may call; none unless named"),
    )
    timeout: Duration = field(default=60.0, metadata=_doc("seconds one tool call may take", min=1))
    start_timeout: Duration = field(
        default=30.0, metadata=_doc("seconds the server has to start and list its tools", min=1)
    )
