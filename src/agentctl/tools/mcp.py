"""A role's MCP servers as tools of agentctl's own loop: a synchronous facade over the SDK.

``McpTools.start`` starts every server of the role (stdio ``command`` or streamable
HTTP ``url``), lists its tools and offers those on the server's ``tools`` allowlist
as ``mcp__<id>__<tool>``; ``call`` runs one within the server's ``timeout``;
``close`` shuts them all down within ``CLOSE_WITHIN`` seconds. The agent loop is
synchronous, the SDK is not: its coroutines run on an asyncio loop in a daemon
thread (``tools.mcploop``). The SDK (and pydantic behind it) is imported only here,
inside functions, and only for a role that has MCP servers.

A stdio server gets the agent's tool environment plus the variables its ``env``
names, and runs in the working directory of the agent. The SDK starts it in a
session of its own (its shutdown kills the server's whole process tree, which in
the agent's group would be the agent too), so the agent's group kill cannot reach
it; instead its group is reported through ``on_process`` like a ``bash``
command's (a cancel kills it), the kernel kills it when the agent dies
(``mcploop.dying_with_agent``), and the agent's supervisor kills what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentctl.config.agents import McpServer
from agentctl.errors import AgentctlError, NotFoundError, ServiceUnavailableError
from agentctl.llm.types import ToolSpec
from agentctl.tools.env import pick
from agentctl.tools.mcploop import Loop, StderrTail, dying_with_agent, kill_groups
from agentctl.tools.result import Output

PREFIX = "mcp__"
CLOSE_WITHIN = 8.0  # the SDK's stdio shutdown: stdin closed 2 s, SIGTERM 2 s, SIGKILL 2 s
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what every provider accepts as a tool name
_CLOSED = -32000  # mcp_types.CONNECTION_CLOSED: the server's output ended
_TIMEOUT = -32001  # mcp_types.REQUEST_TIMEOUT: the SDK's own read timeout ran out


@dataclass
class _Server:
    """One configured server and, once it answered, its SDK client."""

    id: str
    config: McpServer
    env: dict[str, str]
    stderr: StderrTail | None = None
    client: Any = None  # mcp.client.Client while connected
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event | None = None
    listed: list[Any] = field(default_factory=list)  # the server's mcp_types.Tool values

    @property
    def service(self) -> str:
        return f"MCP server {self.id!r}"


class McpTools:
    """The allowed tools of a role's running MCP servers; see the module's docstring."""

    def __init__(self, loop: Loop, servers: Sequence[_Server]) -> None:
        self._loop = loop
        self._servers = list(servers)
        self._tools: dict[str, tuple[_Server, str]] = {}
        self.specs: tuple[ToolSpec, ...] = ()
        self._closed = False

    @classmethod
    def start(
        cls,
        servers: Mapping[str, McpServer],
        env: Mapping[str, str],
        cwd: str | os.PathLike[str],
        redact: Callable[[str], str] = lambda s: s,
        on_process: Callable[[int], object] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> McpTools:
        """Start every server, list its tools and keep the allowed ones.

        ``env``: the agent's tool environment; each stdio server also gets the
        variables of ``environ`` (default: this process's) that its ``env`` names.
        Raises ``ServiceUnavailableError`` naming the server (and the last line of its
        stderr) when one fails to start, exits or does not answer in its
        ``start_timeout``; ``NotFoundError`` when an allowed tool does not exist.
        Whatever did start is shut down before either is raised.
        """
        environ = os.environ if environ is None else environ
        made = [
            _Server(sid, server, {**env, **pick(environ, server.env)})
            for sid, server in servers.items()
        ]
        self = cls(Loop(), made)
        try:
            self._start(Path(cwd), redact, on_process)
        except BaseException:
            self.close()
            raise
        return self

    def _start(
        self, cwd: Path, redact: Callable[[str], str], on_process: Callable[[int], object] | None
    ) -> None:
        for server in self._servers:
            if server.config.command:
                server.stderr = StderrTail(server.id, redact)
        longest = max((s.config.start_timeout for s in self._servers), default=1.0)
        try:
            outcomes = self._loop.run(self._open_all(cwd), longest + CLOSE_WITHIN)
        except TimeoutError as exc:  # only if the loop itself is stuck: say it of each
            outcomes = [exc] * len(self._servers)
        finally:
            for server in self._servers:
                if server.stderr is not None:
                    server.stderr.spawned()  # the servers hold their own copies now
            if on_process is not None:
                for pgid in self._loop.spawned_groups():
                    on_process(pgid)
        for server, outcome in zip(self._servers, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                raise self._start_error(server, outcome, redact) from None
        specs = []
        for server in self._servers:
            specs += self._allowed(server)
        self.specs = tuple(specs)

    async def _open_all(self, cwd: Path) -> list[Any]:
        return list(
            await asyncio.gather(
                *(self._open(s, cwd) for s in self._servers), return_exceptions=True
            )
        )

    async def _open(self, server: _Server, cwd: Path) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        server.stop = asyncio.Event()
        server.task = asyncio.create_task(self._serve(server, cwd, ready))
        try:
            await asyncio.wait_for(asyncio.shield(ready), server.config.start_timeout)
        finally:
            ready.cancel()  # timed out: the server's answer, if one comes, is not wanted

    async def _serve(self, server: _Server, cwd: Path, ready: asyncio.Future[None]) -> None:
        """Own the server's connection from start to ``stop`` (the SDK's context managers
        must be entered and left by one task)."""
        # lazy: the MCP SDK (pydantic, anyio, httpx2), only for a role that has MCP servers
        from mcp.client import Client

        try:
            async with Client(self._transport(server, cwd)) as client:
                tools: list[Any] = []
                cursor: str | None = None
                for _ in range(100):  # a paginator that never ends cannot hang the start
                    page = await client.list_tools(cursor=cursor)
                    tools += page.tools
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                server.listed, server.client = tools, client
                if not ready.done():
                    ready.set_result(None)
                assert server.stop is not None
                await server.stop.wait()
        except Exception as exc:  # before ready: the start failed; after: calls see it
            if not ready.done():
                ready.set_exception(exc)
        finally:
            server.client = None

    def _transport(self, server: _Server, cwd: Path) -> Any:
        config = server.config
        if config.url is not None:
            # lazy: the MCP SDK's HTTP client, only for a role with an HTTP MCP server
            from mcp.client.streamable_http import streamable_http_client

            return streamable_http_client(config.url)
        # lazy: the MCP SDK's stdio client, only for a role with a stdio MCP server
        from mcp.client.stdio import StdioServerParameters, stdio_client

        assert server.stderr is not None
        command, *args = dying_with_agent(config.command)
        params = StdioServerParameters(command=command, args=args, env=server.env, cwd=cwd)
        return stdio_client(params, errlog=server.stderr.writer)

    def _start_error(
        self, server: _Server, exc: BaseException, redact: Callable[[str], str]
    ) -> AgentctlError:
        if isinstance(exc, TimeoutError):
            why = f"did not answer within {server.config.start_timeout:g}s"
        elif _code(exc) == _CLOSED:
            why = "exited (or closed its output) before it answered"
        else:
            why = f"did not start: {describe(exc)}"
        if server.stderr is not None:
            last = server.stderr.last_line(wait=0.5)
            if last:
                why += f"; its stderr ends: {last}"
        return ServiceUnavailableError(redact(why), service=server.service)

    def listed(self) -> dict[str, list[str]]:
        """Every tool each server has (allowed or not), by server id."""
        return {server.id: [tool.name for tool in server.listed] for server in self._servers}

    def _allowed(self, server: _Server) -> list[ToolSpec]:
        have = {tool.name: tool for tool in server.listed}
        missing = [name for name in server.config.tools if name not in have]
        if missing:
            raise NotFoundError(
                f"{server.service} has no tool {missing[0]!r}",
                hint=f"its tools: {', '.join(have) or 'none'}",
            )
        specs = []
        for name in dict.fromkeys(server.config.tools):
            full = f"{PREFIX}{server.id}__{name}"
            if not _NAME.fullmatch(full):
                raise NotFoundError(
                    f"{server.service}: tool {name!r} cannot be offered as {full!r}",
                    hint="a model's tool names are at most 64 letters, digits, _ or -",
                )
            tool = have[name]
            description = tool.description or f"{name} (tool of {server.service})"
            specs.append(ToolSpec(full, description, dict(tool.input_schema)))
            self._tools[full] = (server, name)
        return specs

    # -- calls --------------------------------------------------------------------------

    def call(
        self, name: str, arguments: Mapping[str, Any], *, time_left: float | None = None
    ) -> Output:
        """One tool call within the server's timeout (and ``time_left``); never raises:
        a tool error, a timeout or a dead server comes back as an error ``Output``."""
        if name not in self._tools:
            return Output(f"unknown MCP tool {name!r}", {}, is_error=True)
        server, tool = self._tools[name]
        limit = server.config.timeout
        if time_left is not None:
            limit = max(min(limit, time_left), 0.001)
        meta: dict[str, Any] = {"server": server.id, "tool": tool}
        try:
            result = self._loop.run(self._call(server, tool, dict(arguments), limit), limit + 5)
        except TimeoutError:
            return Output(f"{name} timed out after {limit:g}s", {**meta, "timed_out": True}, True)
        except Exception as exc:
            return Output(f"{name} failed: {describe(exc)}", meta, is_error=True)
        return Output(render(result), meta, is_error=bool(result.is_error))

    async def _call(
        self, server: _Server, tool: str, arguments: dict[str, Any], limit: float
    ) -> Any:
        client = server.client
        if client is None:
            raise ConnectionError(f"{server.service} is not running")
        try:
            return await asyncio.wait_for(
                client.call_tool(tool, arguments, read_timeout_seconds=limit), limit + 1
            )
        except Exception as exc:
            if _code(exc) == _TIMEOUT:
                raise TimeoutError from exc
            raise

    # -- the end ------------------------------------------------------------------------

    def close(self) -> None:
        """Shut every server down (at most ``CLOSE_WITHIN`` seconds); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        clean = False
        with contextlib.suppress(Exception):  # the backstop below; the ending must not wait
            clean = self._loop.run(self._close_all(), CLOSE_WITHIN + 1)
        if not clean:
            kill_groups(self._loop.spawned_groups())
        self._loop.stop()

    async def _close_all(self) -> bool:
        tasks = []
        for server in self._servers:
            if server.task is None or server.task.done():
                continue
            tasks.append(server.task)
            if server.client is not None and server.stop is not None:
                server.stop.set()  # leave the SDK's context managers: its own shutdown
            else:
                server.task.cancel()  # still starting
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=CLOSE_WITHIN)
        for task in pending:
            task.cancel()
        return not pending


def _first(exc: BaseException) -> BaseException:
    """The first real error inside the SDK's (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _code(exc: BaseException) -> object:
    """The JSON-RPC error code of an SDK ``MCPError`` (inside groups too); else None."""
    return getattr(_first(exc), "code", None)


def describe(exc: BaseException) -> str:
    """One line for an SDK failure."""
    exc = _first(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = getattr(exc, "message", None) or str(exc)
    return str(text) or type(exc).__name__


def render(result: Any) -> str:
    """A ``CallToolResult`` as the text a model reads: text blocks as they are, other
    content named with its size, structured content when there is nothing else."""
    parts = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {block.mime_type}, {len(block.data)} base64 characters]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")
        elif kind == "resource":
            inner = block.resource
            text = getattr(inner, "text", None)
            parts.append(text if text is not None else f"[resource {inner.uri}]")
        else:
            parts.append(f"[{kind or type(block).__name__} content]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, indent=2, ensure_ascii=False))
    return "\n".join(parts) if parts else "(no output)"
