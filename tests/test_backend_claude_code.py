"""Claude Code (the real CLI, from npm) as a role's agent, against the scripted Anthropic
server, through agentctl's metering proxy."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.runs import RunStore, read_journal
from agentctl.testing import clis
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke, git, make_repo

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


def role_config(server: LLMServer, *, budget: str = "", extra: str = "") -> str:
    return (
        '[models.claude]\nprovider = "anthropic"\nname = "claude-x"\n'
        f'base_url = "{server.anthropic_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
        "max_tokens = 4000\nprice = { input = 3.0, output = 15.0 }\n\n"
        '[roles.dev]\nbackend = "claude-code"\nmodel = "claude"\nfallback = []\n'
        f"max_turns = 10\n{budget}"
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


def only_run(repo: Path):  # type: ignore[no-untyped-def]
    (listing,) = RunStore(repo / ".agentctl").list(kind="agent")
    return RunStore(repo / ".agentctl").get(listing.id)


def fix_turns(repo: Path) -> list[Turn]:
    path = str(repo / "calc.py")
    return [
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
    run = only_run(project)
    record = run.load()
    assert record.status == "succeeded"
    output = run.read_output()
    assert output["ending"] == "answer" and output["text"] == "Fixed add(): it subtracted."
    events = read_journal(run.paths.events).events
    kinds = [e["type"] for e in events]
    assert "cli.session" in kinds and "cli.result" in kinds
    tools = [e["name"] for e in events if e["type"] == "tool.start"]
    assert tools == ["Read", "Edit", "Bash"]
    bash = [e for e in events if e["type"] == "tool.result"][-1]
    assert "return a + b" in bash["content"]
    assert CANARY not in bash["content"] and "TEST_KEY" not in bash["content"]
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
