"""Control characters from tickets, models and commands never reach the terminal raw."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.forges.local import LocalForge
from agentctl.runs import RunStore
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.visible import visible
from tests.conftest import Invoke, git, make_repo

HOSTILE = "fix \x1b[2J\x1b]0;pwned\x07 now"
SHOWN = "\\x1b[2J\\x1b]0;pwned\\x07"
KEY = "sk-terminal-escapes"


def test_visible_shows_every_control_but_newline_and_tab() -> None:
    assert visible("a\x1b[31mb\rc\x00d\x7f\x9b\u202ee\n\tf") == (
        "a\\x1b[31mb\\x0dc\\x00d\\x7f\\x9b\\u202ee\n\tf"
    )
    assert visible("a\nb\tc", one_line=True) == "a\\x0ab\\x09c"
    assert visible("plain · ünïcode ✓") == "plain · ünïcode ✓"


def test_a_hostile_ticket_title_is_escaped_in_tickets_and_status(
    workspace: Path, cli: Invoke
) -> None:
    added = cli("tickets", "add", HOSTILE, "--json", cwd=workspace)
    assert added.exit_code == 0, added.output
    ticket = json.loads(added.stdout)
    assert ticket["title"] == HOSTILE  # stored and given as JSON exactly
    git(workspace, "branch", f"agentctl/{ticket['id']}")
    forge = LocalForge(workspace, workspace / ".agentctl")
    forge.open_pr(
        branch=f"agentctl/{ticket['id']}", base="main", title=HOSTILE, body="", ticket=ticket["id"]
    )

    for command in (["tickets", "list"], ["tickets", "show", ticket["id"]], ["status"]):
        result = cli(*command)
        assert result.exit_code == 0, result.output
        shown = result.stdout + result.stderr
        assert SHOWN in shown, (command, shown)
        assert "\x1b" not in shown and "\x07" not in shown, command

    listed = json.loads(cli("tickets", "list", "--json").stdout)
    assert [t["title"] for t in listed] == [HOSTILE]
    view = json.loads(cli("status", "--json").stdout)
    assert view["prs"][0]["title"] == HOSTILE


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer(api_key=KEY) as running:
        yield running


def test_escapes_in_tool_output_and_answers_are_shown_escaped(
    tmp_path: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "project")
    (repo / "agentctl.toml").write_text(
        f'[models.chat]\nprovider = "openai"\napi = "chat"\nname = "chat-x"\n'
        f'base_url = "{server.openai_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
        "price = { input = 1.0, output = 2.0 }\n"
    )
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "config")
    monkeypatch.setenv("TEST_KEY", KEY)
    command = r"printf 'fix \033[2J\033]0;pwned\007 now'; exit 3"
    server.script(
        "chat-x",
        Turn.tool_call("bash", {"command": command}),
        Turn.tool_call("read", {"path": HOSTILE}),  # its error names the path: a progress line
        Turn.text(f"answer: {HOSTILE}"),
    )
    result = cli("agent", "run", "dev", "go", "--model", "chat", cwd=repo)
    assert result.exit_code == 0, result.output
    shown = result.stdout + result.stderr
    assert f"answer: fix {SHOWN} now" in result.stdout
    assert SHOWN in result.stderr  # the failed read, in the progress lines
    assert "\x1b" not in shown and "\x07" not in shown

    (listing,) = RunStore(repo / ".agentctl").list(kind="agent")
    tail = cli("runs", "tail", listing.id, "-n", "50")
    assert tail.exit_code == 0
    assert SHOWN in tail.stdout and "\x1b" not in tail.stdout and "\x07" not in tail.stdout
    exact = cli("runs", "tail", listing.id, "-n", "50", "--json")
    events = [json.loads(line) for line in exact.stdout.splitlines()]
    (bash,) = [e for e in events if e["type"] == "tool.result" and e["name"] == "bash"]
    assert HOSTILE in bash["content"]  # --json stays exact
