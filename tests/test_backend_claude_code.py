"""Claude Code (the real CLI, from npm) as a role's agent, against the scripted Anthropic
server, through agentctl's metering proxy."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from agentctl.runs import RunStore, read_journal
from agentctl.testing import clis
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke, git, make_repo
from tests.processes import only_agent_run, process_running, processes_naming, wait_for

CANARY = "sk-canary-claude-code-7f3a91"
CLAUDE = clis.find("claude")
pytestmark = pytest.mark.skipif(
    CLAUDE is None and os.environ.get("AGENTCTL_REQUIRE_CLIS") != "1",
    reason="Claude Code is not installed (python -m agentctl.testing.clis installs it)",
)


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer(api_key=CANARY) as running:
        yield running


def role_config(
    server: LLMServer, *, budget: str = "", extra: str = "", max_turns: int = 10
) -> str:
    return (
        '[models.claude]\nprovider = "anthropic"\nname = "claude-x"\n'
        f'base_url = "{server.anthropic_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
        "max_tokens = 4000\nprice = { input = 3.0, output = 15.0 }\n\n"
        '[roles.dev]\nbackend = "claude-code"\nmodel = "claude"\nfallback = []\n'
        f"max_turns = {max_turns}\n{budget}"
        f'[roles.dev.backend_options]\nexecutable = "{CLAUDE}"\n{extra}'
    )


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = make_repo(tmp_path / "project")
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "agentctl.toml").write_text(role_config(server))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "calc")
    monkeypatch.setenv("TEST_KEY", CANARY)
    monkeypatch.chdir(repo)
    return repo


def fix_turns(repo: Path) -> list[Turn]:
    path = str(repo / "calc.py")
    (repo / "local.env").write_text(f"TEST_KEY={CANARY}\n")  # a key in a file it reads
    return [
        Turn.tool_call("Read", {"file_path": str(repo / "local.env")}),
        Turn.tool_call("Read", {"file_path": path}),
        Turn.tool_call(
            "Edit", {"file_path": path, "old_string": "return a - b", "new_string": "return a + b"}
        ),
        Turn.tool_call("Bash", {"command": "cat calc.py; env", "description": "show"}),
        Turn.text("Fixed add(): it subtracted."),
    ]


def test_claude_code_edits_through_its_own_tools_metered_by_agentctl(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("claude-x", *fix_turns(project))
    result = cli("agent", "run", "dev", "Fix add()")
    print([(r.path, r.body.get("model")) for r in server.requests])
    assert result.exit_code == 0, result.stderr + result.stdout
    assert (project / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    run = only_agent_run(project)
    record = run.load()
    assert record.status == "succeeded"
    output = run.read_output()
    assert output["ending"] == "answer" and output["text"] == "Fixed add(): it subtracted."
    events = read_journal(run.paths.events).events
    kinds = [e["type"] for e in events]
    assert "cli.session" in kinds and "cli.result" in kinds
    tools = [e["name"] for e in events if e["type"] == "tool.start"]
    assert tools == ["Read", "Read", "Edit", "Bash"]
    # The CLI read the key from a file; the proxy took it out of every request it sent.
    assert not any(CANARY in json.dumps(r.body) for r in server.requests)
    assert any("[redacted]" in json.dumps(r.body) for r in server.requests)
    bash = [e for e in events if e["type"] == "tool.result"][-1]
    assert "return a + b" in bash["content"]
    assert CANARY not in bash["content"] and "TEST_KEY" not in bash["content"]
    assert "agentctl-proxy-" not in bash["content"], bash["content"]
    # Every call the CLI made went through the proxy, carried the real key upstream only,
    # and was priced by agentctl into the ledger.
    calls = [e for e in events if e["type"] == "llm.call"]
    assert len(calls) == len(server.requests) >= 4
    assert all(r.headers.get("x-api-key") == CANARY for r in server.requests)
    cost = json.loads(cli("cost", "--run", run.id, "--json").stdout)
    assert cost["total"]["calls"] == len(calls)
    leaks = [
        p
        for p in (project / ".agentctl").rglob("*")
        if p.is_file() and CANARY.encode() in p.read_bytes()
    ]
    assert leaks == []
    shown = cli("runs", "tail", run.id, "-n", "100").stdout
    assert "Edit" in shown


def test_the_feature_pipeline_merges_a_change_claude_code_made(
    tmp_path: Path, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LLMServer() as server:  # the demo's models send no key
        pipeline_with_claude_code(tmp_path, server, cli, monkeypatch)


def pipeline_with_claude_code(
    tmp_path: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentctl.commands.demo import prepare

    root = prepare(tmp_path / "project", server, scripted=False).root
    config = root / "agentctl.toml"
    config.write_text(
        config.read_text() + '\n[models.claude]\nprovider = "anthropic"\nname = "claude-x"\n'
        f'base_url = "{server.anthropic_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
        "max_tokens = 4000\nprice = { input = 3.0, output = 15.0 }\n"
    )
    dev = root / "roles" / "dev.toml"
    dev.write_text(
        dev.read_text().replace('model = "demo-coder"', 'model = "claude"')
        + f'backend = "claude-code"\n\n[backend_options]\nexecutable = "{CLAUDE}"\n'
    )
    git(root, "commit", "-qam", "dev on Claude Code")
    monkeypatch.setenv("TEST_KEY", CANARY)
    monkeypatch.chdir(root)
    edit = {"file_path": "calc.py", "old_string": "return a - b", "new_string": "return a + b"}
    server.script(
        "claude-x",
        Turn.tool_call("Read", {"file_path": "calc.py"}),
        Turn.tool_call("Edit", edit),
        Turn.text("Fixed add()."),
    )
    server.script(
        "demo-reviewer",
        Turn.tool_call("finish", {"verdict": "approve", "summary": "Good.", "comments": []}),
    )
    result = cli("pipeline", "run", "feature", "--task", "Fix add()")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "merged" in result.stdout
    assert "return a + b" in git(root, "show", "main:calc.py")
    server.assert_complete()
    store = RunStore(root / ".agentctl")
    agents = [store.get(listing.id) for listing in store.list(kind="agent")]
    (dev_run,) = [run for run in agents if run.load().role == "dev"]
    events = read_journal(dev_run.paths.events).events
    assert [e["name"] for e in events if e["type"] == "tool.start"] == ["Read", "Edit"]
    # The dev's calls, priced by agentctl at the configured price, under its role.
    calls = [e["usage"] for e in events if e["type"] == "llm.call"]
    assert len(calls) == 3  # every request the CLI made, none missed
    tokens = {k: sum(c[k] for c in calls) for k in calls[0]}
    priced = (
        Decimal(
            3
            * (tokens["input_tokens"] + tokens["cache_write_tokens"] + tokens["cache_read_tokens"])
            + 15 * tokens["output_tokens"]
        )
        / 1_000_000
    )
    rows = json.loads(cli("cost", "--by", "role", "--json").stdout)["rows"]
    (dev_row,) = [row for row in rows if row["key"] == "dev"]
    assert dev_row["calls"] == 3 and Decimal(str(dev_row["cost_usd"])) == priced
    shown = cli("runs", "show", dev_run.id).stdout
    print(shown)
    assert "Edit" in shown and "cli.result" in shown


def test_the_budget_stops_claude_code_before_a_call_past_the_cap(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    (project / "agentctl.toml").write_text(
        role_config(server, budget="budget_usd = 0.2\n", max_turns=50)
    )
    git(project, "commit", "-qam", "a small budget")
    for i in range(40):  # a model that never stops calling tools
        server.script("claude-x", Turn.tool_call("Bash", {"command": f"echo {i}"}))
    result = cli("agent", "run", "dev", "Loop")
    assert result.exit_code == 1
    run = only_agent_run(project)
    assert run.load().status == "paused"
    output = run.read_output()
    assert output["ending"] == "budget" and "budget" in output["reason"]
    events = read_journal(run.paths.events).events
    sent = len(server.requests)
    assert 2 <= sent < 40
    assert len([e for e in events if e["type"] == "llm.call"]) == sent
    spent = json.loads(cli("cost", "--run", run.id, "--json").stdout)["total"]["cost_usd"]
    assert 0 < Decimal(str(spent)) <= Decimal("0.2")  # nothing past the cap, ever
    assert processes_naming(run.dir / "cli") == []


def test_cancel_kills_claude_code_and_the_commands_it_started(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("claude-x", Turn.tool_call("Bash", {"command": "sleep 976"}))
    run_id = cli("agent", "run", "dev", "Wait", "--detach").stdout.strip()
    run = RunStore(project / ".agentctl").get(run_id)
    wait_for(lambda: process_running("sleep 976"))
    assert processes_naming(run.dir / "cli")  # claude is running
    assert cli("runs", "cancel", run_id, "--grace", "0.5").exit_code == 0
    wait_for(lambda: not process_running("sleep 97"), timeout=10)
    wait_for(lambda: run.load().status == "canceled", timeout=10)
    wait_for(lambda: not processes_naming(run.dir / "cli"), timeout=10)


REVIEW_ROLE = (
    '\n[roles.review]\nbackend = "claude-code"\nmodel = "claude"\nfallback = []\n'
    'tools = ["read", "grep", "git_diff"]\n'
    f'[roles.review.backend_options]\nexecutable = "{CLAUDE}"\n'
)


@pytest.mark.parametrize(
    ("answer", "status", "ending"),
    [
        (
            'Looks right.\n```json\n{"verdict": "request_changes", "summary": "Add a test.", '
            '"comments": [{"file": "calc.py", "line": 2, "body": "untested"}]}\n```',
            "succeeded",
            "verdict",
        ),
        ('Fine.\n```json\n{"verdict": "maybe", "summary": "?"}\n```', "failed", "malformed"),
        ("I approve.", "failed", "malformed"),
    ],
)
def test_a_review_on_claude_code_submits_its_verdict_as_a_final_json_block(
    answer: str, status: str, ending: str, project: Path, server: LLMServer, cli: Invoke
) -> None:
    config = project / "agentctl.toml"
    config.write_text(config.read_text() + REVIEW_ROLE)
    git(project, "commit", "-qam", "review on Claude Code")
    server.script("claude-x", Turn.text(answer))
    cli("agent", "run", "review", "Review the change")
    (listing,) = RunStore(project / ".agentctl").list(kind="agent")
    run = RunStore(project / ".agentctl").get(listing.id)
    assert run.load().status == status
    output = run.read_output()
    assert output["ending"] == ending
    if ending == "verdict":
        assert output["verdict"] == "request_changes" and output["summary"] == "Add a test."
        assert output["comments"][0]["file"] == "calc.py"
    else:
        assert "verdict is unusable" in output["reason"]
    # The verdict instructions reached the model beside Claude Code's own system prompt.
    system = json.dumps(server.requests[0].body["system"])
    assert "fenced JSON" in system


def test_kill_9_leaves_nothing_running_and_resume_continues_the_cli_conversation(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    import signal

    server.script("claude-x", Turn.tool_call("Bash", {"command": "sleep 974"}))
    run_id = cli("agent", "run", "dev", "Wait for the slow build", "--detach").stdout.strip()
    run = RunStore(project / ".agentctl").get(run_id)
    wait_for(lambda: process_running("sleep 974"))
    wait_for(lambda: any((run.dir / "cli" / "projects").rglob("*.jsonl")))  # saved by Claude
    os.killpg(run.load().pgid or 0, signal.SIGKILL)  # the agent and its supervisor
    # The warden follows its parent: Claude Code and the command it started in a session
    # of its own are gone too.
    wait_for(lambda: not process_running("sleep 974"), timeout=10)
    wait_for(lambda: not processes_naming(run.dir / "cli"), timeout=10)
    wait_for(lambda: "stale" in cli("runs", "list", "--json").stdout)
    first = [e for e in read_journal(run.paths.events).events if e["type"] == "cli.session"]
    server.script("claude-x", Turn.text("Resumed and done."))
    resumed = cli("runs", "resume", run_id)
    assert resumed.exit_code == 0, resumed.stderr
    assert run.read_output()["text"] == "Resumed and done."
    events = read_journal(run.paths.events).events
    starts = [e for e in events if e["type"] == "cli.start"]
    assert [s["resume"] for s in starts] == [None, first[0]["session_id"]]
    # The resumed CLI sent its earlier conversation (the task), then "go on".
    sent = json.dumps(server.requests[-1].body["messages"])
    assert "Wait for the slow build" in sent
    assert sent.index("Wait for the slow build") < sent.index("Go on with the task")


def test_claude_code_in_the_sandbox_reaches_the_proxy_and_nothing_else(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    (project / "agentctl.toml").write_text(
        role_config(server).replace("fallback = []\n", 'fallback = []\nsandbox = "strict"\n')
    )
    git(project, "commit", "-qam", "strict")
    port = server.anthropic_url.rsplit(":", 1)[1]
    probe = (
        f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2)\" "
        f"2>&1 | tail -1; ls {project / '.agentctl'}; ls {project / '.agentctl' / 'ledger'}"
    )
    server.script("claude-x", Turn.tool_call("Bash", {"command": probe}), Turn.text("Probed."))
    result = cli("agent", "run", "dev", "Probe the network")
    assert result.exit_code == 0, result.stderr
    run = only_agent_run(project)
    events = read_journal(run.paths.events).events
    assert [e["sandbox"] for e in events if e["type"] == "cli.start"] == [True]
    (bash,) = [e for e in events if e["type"] == "tool.result"]
    # The model's server is on this machine's loopback, which the sandbox does not have;
    # of the state folder only the way to the CLI's own home is there: no ledger, no runs.
    lines = bash["content"].strip().splitlines()[-3:]  # after Claude Code's "Exit code 2"
    assert "ConnectionRefusedError" in lines[0], lines
    assert lines[1] == "runs" and "No such file or directory" in lines[2], lines
    assert len(server.requests) == 2  # yet both calls went through the proxy


def test_claude_code_calls_an_allowed_tool_of_the_roles_mcp_server(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    import sys

    mcp = (
        "[roles.dev.mcp_servers.time]\n"
        f'command = ["{sys.executable}", "-m", "mcp_server_time", "--local-timezone", "UTC"]\n'
        'tools = ["get_current_time"]\n'
    )
    (project / "agentctl.toml").write_text(role_config(server) + mcp)
    git(project, "commit", "-qam", "an MCP server")
    server.script(
        "claude-x",
        Turn.tool_call("mcp__time__get_current_time", {"timezone": "UTC"}),
        Turn.text("It is now."),
    )
    result = cli("agent", "run", "dev", "What time is it?")
    assert result.exit_code == 0, result.stderr
    offered = {t["name"] for t in server.requests[0].body["tools"]}
    assert "mcp__time__get_current_time" in offered
    assert "mcp__time__convert_time" not in offered  # not on the role's allowlist
    run = only_agent_run(project)
    (called,) = [e for e in read_journal(run.paths.events).events if e["type"] == "tool.result"]
    assert '"timezone":"UTC"' in called["content"] and not called["is_error"], called


def test_the_proxy_moves_on_to_the_fallback_when_the_first_model_is_down(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{closed.getsockname()[1]}"
    config = role_config(server).replace("fallback = []\n", 'fallback = ["claude"]\n')
    config = config.replace('model = "claude"\n', 'model = "local"\n', 1)
    config += (
        '\n[models.local]\nprovider = "anthropic"\nname = "local-x"\n'
        f'base_url = "{down}"\napi_key_env = ""\nprice = {{ input = 0, output = 0 }}\n'
    )
    (project / "agentctl.toml").write_text(config)
    git(project, "commit", "-qam", "a local model that is down")
    server.script("claude-x", Turn.text("Answered by the fallback."))
    result = cli("agent", "run", "dev", "Hello")
    assert result.exit_code == 0, result.stderr
    run = only_agent_run(project)
    events = read_journal(run.paths.events).events
    (switch,) = [e for e in events if e["type"] == "model.switch"]
    assert switch["to"] == "claude" and switch["reason"].startswith("local:")
    calls = [e for e in events if e["type"] == "llm.call"]
    assert {c["model"] for c in calls} == {"claude"} and len(calls) == len(server.requests)
    assert run.read_output()["text"] == "Answered by the fallback."


def test_a_missing_key_ends_the_step_clearly_before_the_cli_starts(
    project: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_KEY")
    result = cli("agent", "run", "dev", "Fix add()")
    assert result.exit_code == 1
    run = only_agent_run(project)
    output = run.read_output()
    assert output["ending"] == "error"
    assert "needs an API key in $TEST_KEY" in output["reason"]
    assert server.requests == []
    kinds = [e["type"] for e in read_journal(run.paths.events).events]
    assert "cli.start" not in kinds


def test_a_message_to_an_agent_on_claude_code_is_refused_saying_why(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("claude-x", Turn.tool_call("Bash", {"command": "sleep 972"}))
    run_id = cli("agent", "run", "dev", "Wait", "--detach").stdout.strip()
    wait_for(lambda: process_running("sleep 972"))
    sent = cli("runs", "send", run_id, "also update the README")
    assert sent.exit_code == 2
    assert "on claude-code, which takes no message while it runs" in sent.stderr
    run = RunStore(project / ".agentctl").get(run_id)
    assert list(run.paths.inbox.iterdir()) == []  # nothing queued where nothing reads it
    assert cli("runs", "cancel", run_id, "--grace", "0.5").exit_code == 0
    wait_for(lambda: not process_running("sleep 972"), timeout=10)
