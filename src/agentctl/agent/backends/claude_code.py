"""Claude Code as a role's agent: ``claude -p`` driven through the metering proxy.

The CLI gets a home of its own in the run directory (``CLAUDE_CONFIG_DIR`` and
``HOME``), no settings sources (neither the user's nor the repository's settings,
hooks or permissions are read), only the MCP servers of the role
(``--strict-mcp-config``), the role's tools as its built-in tool set and
allow-list, and ``ANTHROPIC_BASE_URL`` at the proxy with the proxy's token as its
key. Its ``stream-json`` events are journaled as they come: the session id, each
assistant text, each tool call and its result, and the final result with Claude
Code's own ``total_cost_usd`` beside agentctl's price of the same calls.
"""

from __future__ import annotations

import json
import os
import shlex
from typing import Any

from agentctl.agent.backends import Session, cli_env, executable, verdict
from agentctl.agent.backends.process import Exited
from agentctl.agent.backends.proxy import MeteringProxy
from agentctl.agent.ending import Ending
from agentctl.errors import PreflightError

# agentctl's tool names → Claude Code's (a bare name: the tool; with a pattern: a Bash rule).
TOOLS = {
    "read": ("Read",),
    "write": ("Write",),
    "edit": ("Edit",),
    "glob": ("Glob",),
    "grep": ("Grep",),
    "bash": ("Bash",),
    "git_diff": ("Bash(git diff:*)",),
    "git_status": ("Bash(git status:*)",),
    "web_fetch": ("WebFetch",),
}
CONTINUE = "Go on with the task from where you stopped."
RESULT_TEXT = 4000  # characters of a tool result kept in the journal


class ClaudeCode:
    api = "messages"

    def command(self, s: Session, proxy: MeteringProxy) -> tuple[list[str], dict[str, str]]:
        options = s.role.backend_options
        if options.permission_mode == "bypassPermissions" and os.geteuid() == 0:
            raise PreflightError(
                "claude-code: permission_mode bypassPermissions is refused as root",
                hint="use acceptEdits (the default) or dontAsk with the role's tools",
            )
        model = s.config.models[s.chain[0]]
        allowed = [rule for tool in s.role.tools for rule in TOOLS.get(tool, ())]
        builtin = sorted({rule.split("(")[0] for rule in allowed})
        for server_id, server in s.role.mcp_servers.items():
            allowed += [f"mcp__{server_id}__{tool}" for tool in server.tools]
        prompt = s.role.prompt + (verdict.INSTRUCTIONS if s.role.result == "verdict" else "")
        argv = [
            executable(s.role, "claude"),
            "-p",
            CONTINUE if s.resume_id else s.task,
            "--output-format",
            "stream-json",
            "--verbose",
            "--max-turns",
            str(s.limits.max_turns),
            "--model",
            model.name,
            "--permission-mode",
            options.permission_mode,
            "--tools",
            ",".join(builtin),
            "--allowedTools",
            ",".join(allowed),
            "--append-system-prompt",
            prompt,
            "--setting-sources",
            "",
            "--strict-mcp-config",
        ]
        # The proxy's token reaches Claude Code through a key helper, not its environment,
        # which every command it runs inherits.
        token_file = s.home / "proxy-token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(proxy.token)
        argv += ["--settings", json.dumps({"apiKeyHelper": f"cat {shlex.quote(str(token_file))}"})]
        if s.role.mcp_servers:
            argv += ["--mcp-config", json.dumps(mcp_config(s))]
            hidden = not_allowed(s)
            if hidden:  # Claude Code offers a server's every tool unless told not to
                argv += ["--disallowedTools", ",".join(hidden)]
        if s.resume_id:
            argv += ["--resume", s.resume_id]
        argv += list(options.args)
        env = cli_env(
            s,
            {
                "HOME": str(s.home),
                "CLAUDE_CONFIG_DIR": str(s.home),
                "ANTHROPIC_BASE_URL": proxy.url,
                # Side tasks (titles, summaries) go to the role's model, through the proxy.
                "ANTHROPIC_SMALL_FAST_MODEL": model.name,
                "ANTHROPIC_DEFAULT_HAIKU_MODEL": model.name,
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_AUTOUPDATER": "1",
                "DISABLE_TELEMETRY": "1",
                "DISABLE_ERROR_REPORTING": "1",
                "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
            },
        )
        return argv, env

    def sandboxed(self, s: Session) -> bool:
        """Claude Code has no sandbox of its own: it runs in ours (the role's sandbox)."""
        from agentctl.tools import sandbox  # lazy: bubblewrap's probe, for this backend only

        wrap, refusal = sandbox.decide(s.role.sandbox, what=f"role {s.role_name!r} on Claude Code")
        if refusal:
            raise PreflightError(refusal)
        return wrap

    def on_event(self, s: Session, event: dict[str, Any]) -> None:
        kind = event.get("type")
        journal = s.run.journal
        if event.get("session_id") and event["session_id"] != s.session_id:
            s.session_id = str(event["session_id"])
            journal.append("cli.session", durable=True, session_id=s.session_id)
        message = event.get("message")
        content: Any = message.get("content") if isinstance(message, dict) else None
        content = content if isinstance(content, list) else []
        if kind == "assistant":
            s.turns += 1
            for block in content:
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text" and block.get("text"):
                    journal.append("cli.text", text=s.redact(str(block["text"])))
                elif block.get("type") == "tool_use":
                    journal.append(
                        "tool.start",
                        durable=True,
                        call_id=block.get("id"),
                        name=block.get("name"),
                        arguments=s.redact.redact_obj(block.get("input") or {}),
                        via="claude-code",
                    )
        elif kind == "user":
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    text = _text(block.get("content"))
                    journal.append(
                        "tool.result",
                        durable=True,
                        call_id=block.get("tool_use_id"),
                        is_error=bool(block.get("is_error")),
                        content=s.redact(text[:RESULT_TEXT]),
                        size=len(text),
                        via="claude-code",
                    )
        elif kind == "result":
            s.result = event
            journal.append(
                "cli.result",
                durable=True,
                subtype=event.get("subtype"),
                is_error=bool(event.get("is_error")),
                turns=event.get("num_turns"),
                cli_cost_usd=event.get("total_cost_usd"),  # Claude Code's own figure
                text=s.redact(str(event.get("result") or ""))[:RESULT_TEXT],
            )

    def ending(self, s: Session, exited: Exited) -> Ending:
        result = s.result
        text = str(result.get("result") or "")
        subtype = result.get("subtype")
        if subtype == "success" and not result.get("is_error"):
            if s.role.result == "verdict":
                return verdict.parse(text)
            return Ending("succeeded", "answer", "final answer", {"text": text})
        if subtype == "error_max_turns":
            return Ending("failed", "max_turns", f"max_turns reached: {s.limits.max_turns}")
        if result:
            why = text or str(result.get("errors") or subtype)
            return Ending("failed", "error", f"claude-code: {why[:300]}", {"text": text})
        tail = exited.stderr_tail or "no output"
        return Ending(
            "failed", "error", f"claude-code exited with {exited.code} and no result: {tail}"
        )


def not_allowed(s: Session) -> list[str]:
    """The role's MCP servers' tools it may not use, found by starting each once (which
    also fails the step clearly, before the CLI starts, when a server cannot start)."""
    from agentctl.tools.mcp import McpTools  # lazy: the MCP SDK, for roles with servers

    tools = McpTools.start(s.role.mcp_servers, cli_env(s, {}), s.cwd, s.redact)
    try:
        listed = tools.listed()
    finally:
        tools.close()
    return [
        f"mcp__{server_id}__{name}"
        for server_id, names in listed.items()
        for name in names
        if name not in s.role.mcp_servers[server_id].tools
    ]


def mcp_config(s: Session) -> dict[str, Any]:
    """The role's MCP servers in Claude Code's ``--mcp-config`` shape (env by name only)."""
    servers: dict[str, Any] = {}
    for server_id, server in s.role.mcp_servers.items():
        if server.url:
            servers[server_id] = {"type": "http", "url": server.url}
            continue
        env = {name: os.environ[name] for name in server.env if name in os.environ}
        servers[server_id] = {
            "type": "stdio",
            "command": server.command[0],
            "args": list(server.command[1:]),
            "env": env,
        }
    return {"mcpServers": servers}


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""
