"""Codex CLI (the real CLI, from npm) as a role's agent, against the scripted Responses
server, through agentctl's metering proxy."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.runs import RunStore, read_journal
from agentctl.testing import clis
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke, git, make_repo
from tests.processes import only_agent_run, processes_naming, wait_for

CANARY = "sk-canary-codex-41c9e2"
CODEX = clis.find("codex")
MODEL = "gpt-5.5"  # a model whose metadata Codex knows: it offers apply_patch for it
pytestmark = pytest.mark.skipif(
    CODEX is None and os.environ.get("AGENTCTL_REQUIRE_CLIS") != "1",
    reason="Codex CLI is not installed (python -m agentctl.testing.clis installs it)",
)
PATCH = "*** Begin Patch\n*** Add File: notes.txt\n+written by codex\n*** End Patch\n"


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer(api_key=CANARY) as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = make_repo(tmp_path / "project")
    (repo / "README.md").write_text("# a project\n")
    (repo / "agentctl.toml").write_text(config_text(server))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "project")
    monkeypatch.setenv("TEST_KEY", CANARY)
    monkeypatch.chdir(repo)
    return repo


def config_text(server: LLMServer, extra: str = "") -> str:
    return (
        '[models.codex]\nprovider = "openai"\napi = "responses"\n'
        f'name = "{MODEL}"\nbase_url = "{server.openai_url}"\napi_key_env = "TEST_KEY"\n'
        "max_retries = 0\nmax_tokens = 4000\nprice = { input = 1.25, output = 10.0 }\n\n"
        '[roles.devops]\nbackend = "codex"\nmodel = "codex"\nfallback = []\n'
        'sandbox = "strict"\nmax_turns = 10\n{extra}'
        f'[roles.devops.backend_options]\nexecutable = "{CODEX}"\n'
    ).replace("{extra}", extra)


def test_codex_runs_a_command_and_writes_a_file_metered_by_agentctl(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script(
        MODEL,
        Turn.tool_call("exec_command", {"cmd": "echo built > build.log; env"}),
        Turn.custom_call("apply_patch", PATCH),
        Turn.text("Built it and wrote notes.txt."),
    )
    shared_tmp_git = Path(tempfile.gettempdir()) / ".git"
    made_before = shared_tmp_git.exists()
    result = cli("agent", "run", "devops", "Build, then write notes.txt")
    assert result.exit_code == 0, result.stderr + result.stdout
    # Codex's sandbox left the shared temp folder alone (a /tmp/.git of its own would
    # make /tmp look like a repository to every other program).
    assert made_before or not shared_tmp_git.exists()
    assert (project / "build.log").read_text() == "built\n"
    assert (project / "notes.txt").read_text() == "written by codex\n"
    run = only_agent_run(project)
    assert run.read_output()["text"] == "Built it and wrote notes.txt."
    server.assert_complete()
    # Codex offered its own tools (apply_patch as a freeform custom tool) through the proxy.
    offered = {(t.get("type"), t.get("name")) for t in server.requests[0].body["tools"]}
    assert ("custom", "apply_patch") in offered
    events = read_journal(run.paths.events).events
    results = [e for e in events if e["type"] == "tool.result"]
    assert [e["name"] for e in results] == ["command", "apply_patch"]
    assert not any(e["is_error"] for e in results)
    command_output = results[0]["content"]
    assert "PATH=" in command_output and CANARY not in command_output
    # Not a login shell: the PATH agentctl gave (the project's virtualenv first) holds.
    path_line = next(line for line in command_output.splitlines() if line.startswith("PATH="))
    assert path_line.endswith(":" + os.environ["PATH"]), path_line  # after Codex's helpers
    assert "AGENTCTL_PROXY_TOKEN" not in command_output  # Codex keeps *TOKEN* from commands
    # Each call: the real key upstream only, priced by agentctl at the configured price.
    assert all(r.headers.get("authorization") == f"Bearer {CANARY}" for r in server.requests)
    calls = [e for e in events if e["type"] == "llm.call"]
    assert len(calls) == len(server.requests) == 3
    cost = json.loads(cli("cost", "--run", run.id, "--json").stdout)
    assert cost["total"]["calls"] == 3
    leaks = [
        p
        for p in (project / ".agentctl").rglob("*")
        if p.is_file() and CANARY.encode() in p.read_bytes()
    ]
    assert leaks == []


def test_the_deadline_stops_codex_and_every_command_it_started(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    (project / "agentctl.toml").write_text(config_text(server, 'deadline = "2s"\n'))
    git(project, "commit", "-qam", "a short deadline")
    server.script(
        MODEL, Turn.tool_call("exec_command", {"cmd": "sleep 975", "yield_time_ms": 60000})
    )
    started = time.monotonic()
    result = cli("agent", "run", "devops", "Wait a long time")
    assert result.exit_code == 1
    assert time.monotonic() - started < 15
    run = only_agent_run(project)
    assert run.load().status == "failed"
    assert run.read_output()["ending"] == "deadline"
    wait_for(lambda: not processes_naming(run.dir / "cli"), timeout=5)  # codex, shell, sleep


def test_codex_calls_an_allowed_tool_of_the_roles_mcp_server(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    import sys

    mcp = (
        "[roles.devops.mcp_servers.time]\n"
        f'command = ["{sys.executable}", "-m", "mcp_server_time", "--local-timezone", "UTC"]\n'
        'tools = ["get_current_time"]\n'
    )
    # The shipped codex model: Codex offers MCP tools to it in a namespace per server.
    config = config_text(server).replace(f'name = "{MODEL}"', 'name = "gpt-5.3-codex"')
    (project / "agentctl.toml").write_text(config + mcp)
    git(project, "commit", "-qam", "an MCP server")
    server.script(
        "gpt-5.3-codex",
        Turn.namespaced_call("mcp__time", "get_current_time", {"timezone": "UTC"}),
        Turn.text("It is now."),
    )
    result = cli("agent", "run", "devops", "What time is it?")
    assert result.exit_code == 0, result.stderr
    namespaces = {
        t["name"]: [tool["name"] for tool in t["tools"]]
        for t in server.requests[0].body["tools"]
        if t.get("type") == "namespace"
    }
    assert namespaces["mcp__time"] == ["get_current_time"]  # convert_time: not allowed
    assert "multi_agent_v1" not in namespaces  # no sub-agents outside agentctl's sight
    run = only_agent_run(project)
    events = read_journal(run.paths.events).events
    (called,) = [e for e in events if e["type"] == "tool.result"]
    assert called["name"] == "mcp__time__get_current_time" and not called["is_error"]
    assert '"timezone":"UTC"' in called["content"].replace(" ", ""), called


def test_a_review_on_codex_submits_its_verdict_as_a_final_json_block(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    review = (
        '\n[roles.review]\nbackend = "codex"\nmodel = "codex"\nfallback = []\n'
        'sandbox = "strict"\n'
        f'[roles.review.backend_options]\nexecutable = "{CODEX}"\n'
    )
    (project / "agentctl.toml").write_text(config_text(server) + review)
    git(project, "commit", "-qam", "review on Codex")
    verdict = '{"verdict": "approve", "summary": "Clean.", "comments": []}'
    server.script(MODEL, Turn.text(f"Reviewed.\n```json\n{verdict}\n```"))
    result = cli("agent", "run", "review", "Review the change")
    assert result.exit_code == 0, result.stderr
    (listing,) = RunStore(project / ".agentctl").list(kind="agent")
    output = RunStore(project / ".agentctl").get(listing.id).read_output()
    assert output["ending"] == "verdict" and output["verdict"] == "approve"
    # The role's prompt and the verdict instructions reached the model as Codex's
    # developer instructions.
    assert "fenced JSON" in json.dumps(server.requests[0].body["input"])


OPS_PIPELINE = """\
description = "An operational change by the devops role: worktree → devops → gate → review → merge"

[[steps]]
id = "worktree"
uses = "git.worktree"

[[steps]]
id = "implement"
role = "devops"
prompt = "{inputs.task}"

[[steps]]
id = "commit"
uses = "git.commit"
with = { message = "{inputs.task}" }

[[steps]]
id = "test"
run = "{project.test_command}"

[[steps]]
id = "review"
role = "review"
prompt = "Review the change made for this task: {inputs.task}"

[[steps]]
id = "merge"
uses = "forge.merge"

[inputs]
task = ""
"""


def test_a_pipeline_merges_a_change_codex_made_with_a_command_and_a_patch(
    tmp_path: Path, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentctl.commands.demo import prepare

    with LLMServer() as server:  # the demo's reviewer sends no key
        root = prepare(tmp_path / "project", server, scripted=False).root
        config = root / "agentctl.toml"
        config.write_text(
            config.read_text() + '\n[models.codex]\nprovider = "openai"\napi = "responses"\n'
            f'name = "{MODEL}"\nbase_url = "{server.openai_url}"\napi_key_env = ""\n'
            "max_tokens = 4000\nprice = { input = 1.25, output = 10.0 }\n"
        )
        devops = root / "roles" / "devops.toml"
        devops.write_text(
            devops.read_text().replace('fallback = ["sonnet"]', "fallback = []")
            + f'backend = "codex"\n\n[backend_options]\nexecutable = "{CODEX}"\n'
        )
        (root / "pipelines" / "ops.toml").write_text(OPS_PIPELINE)
        git(root, "add", ".")
        git(root, "commit", "-qm", "devops on Codex")
        monkeypatch.chdir(root)
        fix = (
            "*** Begin Patch\n*** Update File: calc.py\n@@\n def add(a, b):\n"
            "-    return a - b\n+    return a + b\n*** End Patch\n"
        )
        server.script(
            MODEL,
            Turn.tool_call("exec_command", {"cmd": "python -m unittest -q 2>&1 | tail -1"}),
            Turn.custom_call("apply_patch", fix),
            Turn.tool_call("exec_command", {"cmd": "python -m unittest -q > TESTED.txt 2>&1"}),
            Turn.text("Fixed add() and ran the tests."),
        )
        server.script(
            "demo-reviewer",
            Turn.tool_call("finish", {"verdict": "approve", "summary": "Good.", "comments": []}),
        )
        result = cli("pipeline", "run", "ops", "--task", "Fix add()")
        assert result.exit_code == 0, result.stdout + result.stderr
        assert "merged" in result.stdout
        server.assert_complete()
    assert "return a + b" in git(root, "show", "main:calc.py")
    assert "OK" in git(root, "show", "main:TESTED.txt")  # the command's file, merged too
    store = RunStore(root / ".agentctl")
    agents = [store.get(listing.id) for listing in store.list(kind="agent")]
    (ops_run,) = [run for run in agents if run.load().role == "devops"]
    events = read_journal(ops_run.paths.events).events
    names = [e["name"] for e in events if e["type"] == "tool.result"]
    assert names == ["command", "apply_patch", "command"]
    rows = json.loads(cli("cost", "--by", "role", "--json").stdout)["rows"]
    assert {row["key"]: row["calls"] for row in rows}["devops"] == 4
