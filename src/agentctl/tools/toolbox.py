"""The Toolbox: one role agent's enabled tools, confined to its workspace.

``run`` never raises for a tool-level problem (a refused path, a missing file, a
bad regex, a failing command): those come back as error results the model can act
on. Every text it returns is redacted, and cut to ``max_output`` for the model
while the journal keeps it whole. A role's MCP tools (``extra``: ``tools.mcp``) are
offered and run beside the built-in ones, under the same rules.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from agentctl.config.agents import TOOLS
from agentctl.errors import NotFoundError, StateError, UsageError, WorkspaceError
from agentctl.llm.toolcheck import schema_errors
from agentctl.llm.types import ToolSpec
from agentctl.tools import confine, files, gitview, isolate, sandbox, shell, web
from agentctl.tools.result import Output, ToolError, ToolResult, cut
from agentctl.tools.sandbox import Host, Policy
from agentctl.tools.specs import SPECS

SANDBOXES = ("auto", "none", "strict")


class ExtraTools(Protocol):
    """Tools from outside agentctl, offered beside the built-in ones: a role's MCP
    servers (``tools.mcp.McpTools``). ``call`` never raises for a tool-level problem."""

    @property
    def specs(self) -> Sequence[ToolSpec]: ...

    def call(
        self, name: str, arguments: Mapping[str, Any], *, time_left: float | None = None
    ) -> Output: ...


class Toolbox:
    """The tools ``names`` for the workspace ``root``; see ``agentctl.tools`` for the contract."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        names: Sequence[str],
        *,
        sandbox: str = "auto",
        bash_timeout: float = 300.0,
        tool_timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        redact: Callable[[str], str] = lambda s: s,
        max_output: int = 16_000,
        on_process: Callable[[int], object] | None = None,
        web_private: bool = False,
        policy: Policy | None = None,
        host: Host | None = None,
        base: str | None = None,
        extra: ExtraTools | None = None,
    ) -> None:
        unknown = [n for n in names if n not in TOOLS]
        if unknown:
            raise NotFoundError(
                f"unknown tool {unknown[0]!r}", hint=f"known tools: {', '.join(TOOLS)}"
            )
        if sandbox not in SANDBOXES:
            raise UsageError(f"sandbox must be one of {', '.join(SANDBOXES)}, not {sandbox!r}")
        if bash_timeout <= 0 or tool_timeout <= 0 or max_output <= 0:
            raise UsageError("bash_timeout, tool_timeout and max_output must be positive")
        try:
            self.root = confine.canonical_root(root)
        except ToolError as exc:
            raise WorkspaceError(exc.message) from exc
        self.names = tuple(dict.fromkeys(names))
        self.sandbox = sandbox
        self.bash_timeout = float(bash_timeout)
        self.tool_timeout = float(tool_timeout)
        self.env = dict(env or {})
        self.redact = redact
        self.max_output = max_output
        self.on_process = on_process
        self.web_private = web_private
        # Agents' commands never have network; the rest (home, hidden state) is the caller's.
        self.policy = replace(policy or Policy(), network=False)
        self.host = host or Host()
        # What git_diff compares with when the model names no base (a review's base branch).
        self.base = base
        # A role's MCP tools (``mcp__<server>__<tool>``), run by ``extra`` and journaled
        # by the loop like the built-in ones.
        self.extra = extra
        self._extra = {spec.name: spec for spec in (extra.specs if extra else ())}
        self.specs: tuple[ToolSpec, ...] = (
            *(SPECS[n] for n in self.names),
            *self._extra.values(),
        )
        self._left: float | None = None

    def run(
        self, name: str, arguments: Mapping[str, Any] | Any, *, time_left: float | None = None
    ) -> ToolResult:
        """Run one tool call; problems come back as ``is_error`` results, never raised.

        ``time_left``: seconds until the run's deadline; no call runs longer.
        """
        if name not in self.names and name not in self._extra:
            why = (
                f"tool {name!r} is not enabled for this agent"
                if name in TOOLS
                else f"unknown tool {name!r}"
            )
            tools = ", ".join(s.name for s in self.specs)
            return self._finish(Output(f"{why}; tools: {tools}", {}, True))
        if not isinstance(arguments, Mapping):
            return self._finish(Output(f"{name}: arguments must be a JSON object", {}, True))
        spec = self._extra.get(name) or SPECS[name]
        errors = schema_errors(dict(arguments), spec.parameters)
        if errors:
            return self._finish(Output(f"{name}: {'; '.join(errors)}", {}, True))
        if time_left is not None and time_left <= 0:
            return self._finish(Output(f"{name} not run: the run's deadline has passed", {}, True))
        if self.extra is not None and name in self._extra:
            return self._finish(self.extra.call(name, dict(arguments), time_left=time_left))
        self._left = time_left
        try:
            out = self._dispatch(name, dict(arguments))
        except ToolError as exc:
            out = Output(exc.message, dict(exc.meta), is_error=True)
        except StateError as exc:  # from agentctl.atomic, e.g. the disk is full
            out = Output(str(exc), {}, is_error=True)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            out = Output(f"{name} failed: {where}{exc.strerror or exc}", {}, is_error=True)
        return self._finish(out)

    def _finish(self, out: Output) -> ToolResult:
        full = self.redact(out.text)
        content, truncated = cut(full, self.max_output)
        meta = {k: self.redact(v) if isinstance(v, str) else v for k, v in out.meta.items()}
        # The model did not see everything: cut here, or a tool stopped at its own limit.
        meta["truncated"] = truncated or bool(out.meta.get("truncated"))
        return ToolResult(content, full, out.is_error, meta)

    def _dispatch(self, name: str, a: dict[str, Any]) -> Output:
        root = self.root
        if name == "read":
            return files.read(
                root,
                a["path"],
                a.get("offset"),
                a.get("limit"),
                time_limit=self._limit(self.tool_timeout),
            )
        if name == "write":
            return files.write(root, a["path"], a["content"])
        if name == "edit":
            return files.edit(root, a["path"], a["old"], a["new"], a.get("replace_all", False))
        if name in ("glob", "grep"):
            return isolate.call(name, root, a, self._limit(self.tool_timeout))
        if name == "bash":
            return self._bash(a["command"], a.get("timeout"))
        if name == "git_diff":
            return gitview.git_diff(
                root,
                self.env,
                a.get("staged", False),
                a.get("path"),
                self.bash_timeout,
                base=a.get("base"),
                default_base=self.base,
                # under the toolbox's own cut, so the diff's line about what it left out shows
                limit=max(min(gitview.DIFF_LIMIT, self.max_output - 1000), 1000),
            )
        if name == "git_status":
            return gitview.git_status(root, self.env, self.bash_timeout)
        if name == "web_fetch":
            return web.fetch(a["url"], allow_private=self.web_private)
        raise ToolError(f"tool {name!r} has no implementation")  # pragma: no cover

    def _limit(self, own: float) -> float:
        """``own``, or less when the run's deadline comes first."""
        return own if self._left is None else max(min(own, self._left), 0.001)

    def _bash(self, command: str, timeout: float | None) -> Output:
        if timeout is not None and timeout <= 0:
            raise ToolError(f"timeout must be positive, not {timeout}")
        limit = self._limit(
            self.bash_timeout if timeout is None else min(timeout, self.bash_timeout)
        )
        bash = shutil.which("bash")
        if bash is None:
            raise ToolError("bash is not installed on this machine")
        argv = [bash, "-c", command]
        sandboxed, refusal = sandbox.decide(self.sandbox, self.host)
        if refusal:
            raise ToolError(refusal, sandboxed=False)
        env = self.env
        if self.policy.home is not None:
            home = sandbox.make_home(self.policy.home)
            env = sandbox.home_env(env, home, network=not sandboxed)
        if sandboxed:
            if "TMPDIR" in env:  # the host's may not exist inside: the sandbox's own /tmp
                env = {**env, "TMPDIR": "/tmp"}
            # The toolchains of the configured commands and PATH; never of the model's
            # command line, which could name any file to have it bound in.
            argv = sandbox.wrap(self.root, argv, self.policy, env)
        done = shell.run(argv, cwd=self.root, env=env, timeout=limit, on_process=self.on_process)
        meta: dict[str, Any] = {
            "exit_code": done.exit_code,
            "timed_out": done.timed_out,
            "pgid": done.pgid,
            "sandboxed": sandboxed,
            "output_dropped": done.dropped,
        }
        if done.pipe_held:
            meta["pipe_held"] = True
        output = done.output if done.output else "(no output)\n"
        if done.timed_out:
            head = f"timed out after {limit:g}s (the process group was killed)"
        elif done.exit_code < 0:
            head = f"killed by signal {-done.exit_code}"
        else:
            head = f"exit code {done.exit_code}"
        return Output(f"{head}\n{output}", meta, is_error=done.timed_out or done.exit_code != 0)
