"""MCP servers as tools of agentctl's own loop: real servers (mcp-server-time, mcp-server-git
and small SDK servers written here), a real agent process, the scripted model server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.config.agents import McpServer
from agentctl.errors import NotFoundError, ServiceUnavailableError
from agentctl.runs import RunStore, read_journal
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.tools.env import tool_env
from agentctl.tools.mcp import McpTools
from agentctl.tools.toolbox import Toolbox
from tests.conftest import Invoke, git, make_repo

KEY = "sk-canary-mcp-7c1d"
TIME = [sys.executable, "-m", "mcp_server_time"]
EXIT_AT_START = [sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"]
# A server of the SDK's own: a tool that sleeps, and one that shows its environment.
SLOW = """\
import os, anyio
from mcp.server.mcpserver import MCPServer
server = MCPServer("slow")

@server.tool()
async def nap(seconds: float) -> str:
    \"\"\"Sleep a while.\"\"\"
    await anyio.sleep(seconds)
    return f"slept {seconds}"

@server.tool()
def environment() -> str:
    \"\"\"The names of this server's environment variables.\"\"\"
    return " ".join(sorted(os.environ))

server.run()
"""

HTTP = """\
import sys
from mcp.server.mcpserver import MCPServer
server = MCPServer("web")

@server.tool()
def echo(text: str) -> str:
    \"\"\"Say it back.\"\"\"
    return text

server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
"""


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer(api_key=KEY) as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repo whose agentctl.toml points a model at the scripted server."""
    repo = make_repo(tmp_path / "project")
    (repo / "agentctl.toml").write_text(
        '[models.m]\nprovider = "anthropic"\nname = "claude-x"\n'
        f'base_url = "{server.anthropic_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
        "price = { input = 1.0, output = 2.0 }\n"
    )
    (repo / "roles").mkdir()
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "config")
    monkeypatch.setenv("TEST_KEY", KEY)
    monkeypatch.chdir(repo)
    return repo


def role(repo: Path, servers: dict[str, dict[str, object]]) -> None:
    """roles/mcp.toml: a role with no built-in tool but ``read``, and these MCP servers."""
    lines = ['description = "mcp"', 'model = "m"', 'prompt = "work"', 'tools = ["read"]']
    for sid, table in servers.items():
        lines.append(f"[mcp_servers.{sid}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    (repo / "roles" / "mcp.toml").write_text("\n".join(lines) + "\n")


def the_run(repo: Path):  # type: ignore[no-untyped-def]
    (listing,) = RunStore(repo / ".agentctl").list(kind="agent")
    return RunStore(repo / ".agentctl").get(listing.id)


def servers_below(root: Path, module: str) -> list[int]:
    """Live processes running ``module`` whose working directory is under ``root``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        zombie = stat[stat.rfind(")") + 2 :].startswith("Z")
        if module.encode() in cmdline and cwd.startswith(str(root)) and not zombie:
            found.append(int(entry.name))
    return found


def tool_names(body: dict[str, object]) -> list[str]:
    return [str(t["name"]) for t in body.get("tools", [])]  # type: ignore[attr-defined]


def test_allowed_tools_are_offered_called_and_journaled(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    role(project, {"time": {"command": TIME, "tools": ["get_current_time"], "timeout": 20}})
    server.script(
        "claude-x",
        Turn.tool_call("mcp__time__get_current_time", {"timezone": "UTC"}),
        Turn.tool_call("mcp__time__get_current_time", {"timezone": "Nowhere/Atlantis"}),
        Turn.text("It is late."),
    )
    result = cli("agent", "run", "mcp", "What time is it?")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "It is late."
    server.assert_complete()
    first, second, third = (r.body for r in server.requests)
    # Offered: the allowed tool with the server's description and schema; never the other.
    assert tool_names(first) == ["read", "mcp__time__get_current_time"]
    offered = first["tools"][1]  # type: ignore[index]
    assert offered["description"].startswith("Get current time")
    assert offered["input_schema"]["required"] == ["timezone"]
    assert "mcp__time__convert_time" not in json.dumps(first)
    # The next request carries the tool's result back to the model.
    results = [
        block
        for message in second["messages"]  # type: ignore[attr-defined]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    (returned,) = results
    assert '"timezone": "UTC"' in returned["content"] and "datetime" in returned["content"]
    assert "Nowhere/Atlantis" in json.dumps(third["messages"])
    # Journaled like a built-in tool: intent, then the result (a tool error stays an error).
    events = read_journal(the_run(project).paths.events).events
    starts = [e for e in events if e["type"] == "tool.start"]
    ends = [e for e in events if e["type"] == "tool.result"]
    assert [e["name"] for e in starts] == ["mcp__time__get_current_time"] * 2
    assert starts[0]["arguments"] == {"timezone": "UTC"}
    assert [e["is_error"] for e in ends] == [False, True]
    assert "datetime" in ends[0]["content"] and ends[0]["meta"]["server"] == "time"
    assert "Invalid timezone" in ends[1]["content"]
    # The server's group was journaled for a cancel, and nothing of it outlives the agent.
    (pgid,) = [e["pgid"] for e in events if e["type"] == "tool.process"]
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    # Gone with the agent (its supervisor kills what a slow shutdown leaves, just after).
    wait_for(lambda: servers_below(project.parent, "mcp_server_time") == [], timeout=10)


def wait_for(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["cancel", "kill -9"])
def test_a_cancelled_or_killed_agent_leaves_no_server_behind(
    how: str, project: Path, server: LLMServer, cli: Invoke
) -> None:
    # A server that outlives the end of its stdin: only a kill ends it.
    script = project.parent / "stubborn_server.py"
    script.write_text(SLOW.replace("server.run()\n", "server.run()\nimport time\ntime.sleep(60)\n"))
    role(project, {"slow": {"command": [sys.executable, str(script)], "tools": ["nap"]}})
    server.script(
        "claude-x",
        Turn.tool_call("mcp__slow__nap", {"seconds": 0.01}),
        Turn.stall(after=1, seconds=30),
    )
    run_id = cli("agent", "run", "mcp", "x", "--detach").stdout.strip()
    run = RunStore(project / ".agentctl").get(run_id)
    wait_for(lambda: len(server.requests) == 2)  # the server answered; the model stalls
    assert len(servers_below(project.parent, "stubborn_server")) == 1
    if how == "cancel":
        assert cli("runs", "cancel", run_id, "--grace", "0.5").exit_code == 0
        assert run.load().status == "canceled"
    else:  # the agent's whole group, its supervisor too; the server is in a session of its own
        os.killpg(run.load().pgid or 0, signal.SIGKILL)
    wait_for(lambda: servers_below(project.parent, "stubborn_server") == [], timeout=10)


def test_mcp_server_git_reports_the_status_of_a_real_repo(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    git_server = [sys.executable, "-m", "mcp_server_git", "--repository", str(project)]
    role(project, {"git": {"command": git_server, "tools": ["git_status"]}})
    (project / "notes.txt").write_text("untracked\n")
    server.script(
        "claude-x",
        Turn.tool_call("mcp__git__git_status", {"repo_path": str(project)}),
        Turn.text("one untracked file"),
    )
    result = cli("agent", "run", "mcp", "What changed?")
    assert result.exit_code == 0, result.stderr
    assert tool_names(server.requests[0].body) == ["read", "mcp__git__git_status"]
    events = read_journal(the_run(project).paths.events).events
    (status,) = [e for e in events if e["type"] == "tool.result"]
    assert not status["is_error"]
    assert "On branch main" in status["content"] and "notes.txt" in status["content"]
    # Gone with the agent (its supervisor kills what a slow shutdown leaves, just after).
    wait_for(lambda: servers_below(project.parent, "mcp_server_git") == [], timeout=10)


def test_a_server_that_exits_at_start_fails_the_run_at_once(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    role(project, {"broken": {"command": EXIT_AT_START, "tools": ["x"], "start_timeout": 20}})
    started = time.monotonic()
    result = cli("agent", "run", "mcp", "anything")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert elapsed < 20
    run = the_run(project)
    assert run.load().status == "failed"
    output = run.read_output()
    assert output["ending"] == "error"
    assert "MCP server 'broken'" in output["reason"] and "boom" in output["reason"]
    assert server.requests == []  # no model call was paid for


def test_an_allowed_tool_the_server_lacks_fails_the_run(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    role(project, {"time": {"command": TIME, "tools": ["get_current_time", "get_weather"]}})
    result = cli("agent", "run", "mcp", "anything")
    assert result.exit_code == 1
    reason = the_run(project).read_output()["reason"]
    assert "MCP server 'time' has no tool 'get_weather'" in reason
    assert "convert_time" in reason  # what it does have
    assert server.requests == []
    # Gone with the agent (its supervisor kills what a slow shutdown leaves, just after).
    wait_for(lambda: servers_below(project.parent, "mcp_server_time") == [], timeout=10)


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[McpTools]:
    script = tmp_path / "slow_server.py"
    script.write_text(SLOW)
    config = McpServer(
        command=(sys.executable, str(script)),
        env=("MCP_TEST_PASSED",),
        tools=("nap", "environment"),
        timeout=1,
    )
    environ = {"MCP_TEST_PASSED": "1", "MCP_TEST_SECRET": "no", **os.environ}
    tools = McpTools.start({"slow": config}, tool_env(), tmp_path, environ=environ)
    try:
        yield tools
    finally:
        tools.close()


def test_a_call_past_its_timeout_is_an_error_result_and_the_server_goes_on(
    slow: McpTools,
) -> None:
    started = time.monotonic()
    late = slow.call("mcp__slow__nap", {"seconds": 10})
    assert time.monotonic() - started < 5
    assert late.is_error and late.meta["timed_out"] and "timed out after 1s" in late.text
    assert slow.call("mcp__slow__nap", {"seconds": 0.01}).text == "slept 0.01"
    # time_left (the run's deadline) cuts a call shorter than the server's timeout.
    assert slow.call("mcp__slow__nap", {"seconds": 5}, time_left=0.2).meta["timed_out"]


def test_a_stdio_server_gets_the_tool_environment_and_only_the_names_it_lists(
    slow: McpTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = slow.call("mcp__slow__environment", {}).text.split()
    assert "MCP_TEST_PASSED" in names and "PATH" in names
    assert "MCP_TEST_SECRET" not in names and "TEST_KEY" not in names


def test_the_toolbox_offers_and_runs_mcp_tools_beside_its_own(
    slow: McpTools, tmp_path: Path
) -> None:
    box = Toolbox(tmp_path, ["read"], sandbox="none", extra=slow)
    assert [s.name for s in box.specs] == ["read", "mcp__slow__nap", "mcp__slow__environment"]
    done = box.run("mcp__slow__nap", {"seconds": 0.01})
    assert (done.content, done.is_error, done.meta["truncated"]) == ("slept 0.01", False, False)
    wrong = box.run("mcp__slow__nap", {"seconds": "soon"})
    assert wrong.is_error and "seconds must be number" in wrong.content
    assert "unknown tool 'mcp__slow__other'" in box.run("mcp__slow__other", {}).content


def test_start_failures_name_the_server_and_never_hang(tmp_path: Path) -> None:
    hang = McpServer(
        command=(
            sys.executable,
            "-c",
            "import sys, time; print('waiting', file=sys.stderr, flush=True); time.sleep(60)",
        ),
        start_timeout=1,
    )
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as slow_start:
        McpTools.start({"stuck": hang}, tool_env(), tmp_path)
    assert time.monotonic() - started < 8
    assert "MCP server 'stuck'" in str(slow_start.value)
    assert "did not answer within 1s" in str(slow_start.value) and "waiting" in str(
        slow_start.value
    )
    with pytest.raises(ServiceUnavailableError, match="No such file or directory"):
        McpTools.start({"gone": McpServer(command=("no-such-mcp-server",))}, tool_env(), tmp_path)
    with pytest.raises(NotFoundError, match="has no tool 'nope'"):
        McpTools.start(
            {"time": McpServer(command=tuple(TIME), tools=("nope",))}, tool_env(), tmp_path
        )
    assert servers_below(tmp_path, "time.sleep(60)") == []
    assert servers_below(tmp_path, "mcp_server_time") == []


def test_a_streamable_http_server_is_reached_by_its_url(tmp_path: Path) -> None:
    script = tmp_path / "http_server.py"
    script.write_text(HTTP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, str(script), str(port)], stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: process_listens(port))
        url = f"http://127.0.0.1:{port}/mcp"
        tools = McpTools.start({"web": McpServer(url=url, tools=("echo",))}, {}, tmp_path)
        try:
            assert [s.name for s in tools.specs] == ["mcp__web__echo"]
            echoed = tools.call("mcp__web__echo", {"text": "hello"})
            assert (echoed.text, echoed.is_error) == ("hello", False)
        finally:
            tools.close()
    finally:
        process.kill()
        process.wait()
    with pytest.raises(ServiceUnavailableError, match="MCP server 'web': did not start"):
        McpTools.start({"web": McpServer(url=url)}, {}, tmp_path)


def process_listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
    except OSError:
        return False
    return True
