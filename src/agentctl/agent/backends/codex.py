"""Codex CLI as a role's agent: ``codex exec --json`` driven through the metering proxy.

Codex gets a ``CODEX_HOME`` of its own in the run directory whose ``config.toml``
names one model provider, the proxy (``wire_api = "responses"``, the proxy's token
in ``AGENTCTL_PROXY_TOKEN``), turns update checks, analytics, feedback and history
off, never asks for approval, maps the role's ``sandbox`` onto Codex's own sandbox
and lists the role's MCP servers with only their allowed tools enabled. Its JSONL
items are journaled as they complete: commands and their output, file changes, MCP
calls, messages.
"""

from __future__ import annotations

import json
import os
from typing import Any

from agentctl.agent.backends import Session, cli_env, executable, verdict
from agentctl.agent.backends.process import Exited
from agentctl.agent.backends.proxy import MeteringProxy
from agentctl.agent.ending import Ending
from agentctl.atomic import write_text

# The role's bash sandbox → Codex's sandbox for the commands it runs.
SANDBOX = {"strict": "workspace-write", "auto": "workspace-write", "none": "danger-full-access"}
CONTINUE = "Go on with the task from where you stopped."
RESULT_TEXT = 4000
TOKEN_ENV = "AGENTCTL_PROXY_TOKEN"


class Codex:
    api = "responses"

    def command(self, s: Session, proxy: MeteringProxy) -> tuple[list[str], dict[str, str]]:
        write_text(s.home / "config.toml", config_toml(s, proxy), durable=False)
        argv = [executable(s.role, "codex"), "exec", "--json"]
        if s.resume_id:
            argv += ["resume", s.resume_id]
        argv += ["--skip-git-repo-check", *s.role.backend_options.args]
        argv.append(CONTINUE if s.resume_id else s.task)
        tmp = s.home / "tmp"  # Codex will not put its sandbox helper below the temp folder
        tmp.mkdir(exist_ok=True)
        env = cli_env(
            s,
            {
                "HOME": str(s.home),
                "CODEX_HOME": str(s.home),
                "TMPDIR": str(tmp),
                TOKEN_ENV: proxy.token,
            },
        )
        return argv, env

    def sandboxed(self, s: Session) -> bool:
        """Codex sandboxes the commands it runs itself (``sandbox_mode``, bubblewrap)."""
        return False

    def on_event(self, s: Session, event: dict[str, Any]) -> None:
        kind = event.get("type")
        journal = s.run.journal
        if kind == "thread.started" and event.get("thread_id"):
            s.session_id = str(event["thread_id"])
            journal.append("cli.session", durable=True, session_id=s.session_id)
        elif kind in ("item.started", "item.completed"):
            item = event.get("item")
            self._item(s, kind, item if isinstance(item, dict) else {})
        elif kind == "turn.completed":
            s.turns += 1
            s.result["completed"] = True
            journal.append("cli.result", durable=True, usage=event.get("usage"))
        elif kind == "turn.failed":
            error = event.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            s.result["error"] = s.redact(str(message or "turn failed"))
            journal.append("cli.result", durable=True, error=s.result["error"])
        elif kind == "error" and event.get("message"):
            s.result["error"] = s.redact(str(event["message"]))

    def _item(self, s: Session, kind: str, item: dict[str, Any]) -> None:
        journal = s.run.journal
        item_type = item.get("type")
        call_id = item.get("id")
        if item_type in ("command_execution", "mcp_tool_call"):
            name = (
                "command"
                if item_type == "command_execution"
                else f"mcp__{item.get('server')}__{item.get('tool')}"
            )
            if kind == "item.started":
                arguments = (
                    {"command": item.get("command")}
                    if item_type == "command_execution"
                    else item.get("arguments") or {}
                )
                journal.append(
                    "tool.start",
                    durable=True,
                    call_id=call_id,
                    name=name,
                    arguments=s.redact.redact_obj(arguments),
                    via="codex",
                )
                return
            output = item.get("aggregated_output") or item.get("result") or item.get("error")
            text = output if isinstance(output, str) else json.dumps(output)
            failed = item.get("status") == "failed" or item.get("exit_code") not in (0, None)
            journal.append(
                "tool.result",
                durable=True,
                call_id=call_id,
                name=name,
                is_error=bool(failed),
                content=s.redact(text[:RESULT_TEXT]),
                size=len(text),
                exit_code=item.get("exit_code"),
                via="codex",
            )
        elif item_type == "file_change" and kind == "item.completed":
            changes = item.get("changes") or []
            journal.append(
                "tool.result",
                durable=True,
                call_id=call_id,
                name="apply_patch",
                is_error=item.get("status") == "failed",
                content=s.redact(json.dumps(changes)[:RESULT_TEXT]),
                size=len(changes),
                via="codex",
            )
        elif item_type == "agent_message" and kind == "item.completed":
            s.result["text"] = str(item.get("text") or "")
            journal.append("cli.text", text=s.redact(s.result["text"]))
        elif item_type == "error" and kind == "item.completed":
            journal.append("cli.warning", text=s.redact(str(item.get("message") or "")))

    def ending(self, s: Session, exited: Exited) -> Ending:
        text = str(s.result.get("text") or "")
        if exited.code == 0 and s.result.get("completed") and not s.result.get("error"):
            if s.role.result == "verdict":
                return verdict.parse(text)
            return Ending("succeeded", "answer", "final answer", {"text": text})
        why = s.result.get("error") or exited.stderr_tail or "no output"
        return Ending("failed", "error", f"codex exited with {exited.code}: {str(why)[:300]}")


def config_toml(s: Session, proxy: MeteringProxy) -> str:
    """The per-run ``config.toml``: one provider (the proxy), no telemetry, no prompts."""
    model = s.config.models[s.chain[0]]
    instructions = s.role.prompt + (verdict.INSTRUCTIONS if s.role.result == "verdict" else "")
    lines = [
        f"model = {_str(model.name)}",
        'model_provider = "agentctl"',
        'approval_policy = "never"',
        f"sandbox_mode = {_str(SANDBOX[s.role.sandbox])}",
        f"developer_instructions = {_str(instructions)}",
        "check_for_update_on_startup = false",
        "allow_login_shell = false",  # a login shell would reset PATH (the project's venv)
        "",
        "[features]",  # one agent per step: sub-agents would be runs agentctl cannot see
        "multi_agent = false",
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[feedback]",
        "enabled = false",
        "",
        "[history]",
        'persistence = "none"',
        "",
        "[shell_environment_policy]",  # the commands Codex runs never see the proxy's token
        "ignore_default_excludes = false",
        f"exclude = [{_str(TOKEN_ENV)}]",
        "",
        "[sandbox_workspace_write]",
        "network_access = false",
        # Not the shared /tmp: Codex's sandbox would make a /tmp/.git of its own there
        # (to keep a repository's .git read-only), which turns /tmp into a "repository"
        # for every other program. Its commands get TMPDIR, a folder in its home.
        "exclude_slash_tmp = true",
        "",
        "[model_providers.agentctl]",
        'name = "agentctl metering proxy"',
        f"base_url = {_str(proxy.url + '/v1')}",
        f"env_key = {_str(TOKEN_ENV)}",
        'wire_api = "responses"',
    ]
    for server_id, server in s.role.mcp_servers.items():
        lines += ["", f"[mcp_servers.{server_id}]"]
        if server.url:
            lines.append(f"url = {_str(server.url)}")
        else:
            lines.append(f"command = {_str(server.command[0])}")
            lines.append(f"args = {json.dumps(list(server.command[1:]))}")
            env = {name: os.environ[name] for name in server.env if name in os.environ}
            if env:
                lines.append(f"env = {{ {', '.join(f'{k} = {_str(v)}' for k, v in env.items())} }}")
        lines.append(f"enabled_tools = {json.dumps(list(server.tools))}")
        lines.append(f"startup_timeout_sec = {int(server.start_timeout)}")
        lines.append(f"tool_timeout_sec = {int(server.timeout)}")
    return "\n".join(lines) + "\n"


def _str(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value)
