"""Issue 15: run states that tell the truth, and messages a person can act on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.runs import RunStore
from agentctl.testing.llm_server import LLMServer
from tests.conftest import Invoke
from tests.test_cli_ask import configure


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


def _runs(cli: Invoke, *args: str) -> list[dict[str, object]]:
    result = cli("runs", "list", "--json", *args)
    assert result.exit_code == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_a_failed_ask_or_models_test_ends_failed_with_its_reason(
    workspace: Path, server: LLMServer, cli: Invoke
) -> None:
    configure(workspace, server)
    no_key = {"ANTHROPIC_API_KEY": ""}
    assert cli("ask", "-m", "claude", "hi", cwd=workspace, env=no_key).exit_code == 2
    assert cli("models", "test", "claude", env=no_key).exit_code == 2
    rows = _runs(cli)
    assert len(rows) == 2
    for row in rows:
        assert (row["status"], row["display_status"]) == ("failed", "failed")
        assert "$ANTHROPIC_API_KEY" in str(row["reason"])
    assert [r["id"] for r in _runs(cli, "--status", "failed")] == [r["id"] for r in rows]
    assert _runs(cli, "--status", "stale") == []
    assert server.requests == []


def test_runs_list_filters_on_the_status_it_shows(repo: Path, cli: Invoke) -> None:
    """``stale`` and ``corrupt`` are accepted; ``running`` no longer lists a stale run."""
    store = RunStore(repo / ".agentctl")
    alive = store.create("agent", input={"task": "t"}, role="dev")
    alive.mark_started(os.getpid(), os.getpgid(0))
    gone = store.create("pipeline", input={})
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone.mark_started(int(child.stdout), int(child.stdout))
    corrupt = store.create("agent", input={"task": "t"})
    corrupt.paths.run_json.write_text("{not json")
    monkey_cwd = cli("runs", "list", cwd=repo)
    assert monkey_cwd.exit_code == 0
    assert [r["id"] for r in _runs(cli, "--status", "stale")] == [gone.id]
    assert [r["id"] for r in _runs(cli, "--status", "running")] == [alive.id]
    assert [r["id"] for r in _runs(cli, "--status", "corrupt")] == [corrupt.id]
    table = cli("runs", "list", "--status", "stale")
    assert table.exit_code == 0 and gone.id in table.stdout and alive.id not in table.stdout
    wrong = cli("runs", "list", "--status", "done")
    assert wrong.exit_code == 2 and "stale" in wrong.stderr


def test_every_failed_model_of_the_chain_is_named(
    workspace: Path, server: LLMServer, cli: Invoke
) -> None:
    """A missing key and an endpoint down: the key variable AND the URL, in one line."""
    with LLMServer() as gone:
        dead_url = gone.openai_url
    configure(workspace, server)
    toml = (workspace / "agentctl.toml").read_text()
    toml = toml.replace(
        f'base_url = "{server.openai_url}"\nmax_concurrency',
        f'base_url = "{dead_url}"\nmax_retries = 0\nmax_concurrency',
    )
    (workspace / "agentctl.toml").write_text(toml)
    (workspace / "roles" / "research.toml").write_text('model = "claude"\nfallback = ["local"]\n')
    result = cli("ask", "--role", "research", "hi", cwd=workspace, env={"ANTHROPIC_API_KEY": ""})
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("agentctl:")]
    assert len(lines) == 1, result.stderr
    assert "$ANTHROPIC_API_KEY" in lines[0] and dead_url in lines[0]
    assert "claude" in lines[0] and "local" in lines[0]
    assert server.requests == []


def test_one_unreachable_model_names_its_url(workspace: Path, cli: Invoke) -> None:
    with LLMServer() as gone:
        configure(workspace, gone)
        dead_url = gone.openai_url
    result = cli("models", "test", "local", cwd=workspace)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"agentctl: error: local: {dead_url}: connection failed")
    (row,) = _runs(cli)
    assert row["status"] == "failed" and dead_url in str(row["reason"])


def test_runs_show_prints_no_python_reprs(repo: Path, cli: Invoke) -> None:
    store = RunStore(repo / ".agentctl")
    run = store.create(
        "pipeline", input={"task": "fix it", "models": ["a", "b"], "set": {"k": 1}}, pipeline="p"
    )
    run.mark_started(os.getpid(), os.getpgid(0))
    run.write_output({"merged": None, "steps": ["implement", "test"], "ok": True})
    run.transition("succeeded")
    text = cli("runs", "show", run.id, cwd=repo).stdout
    for repr_mark in ("{'", "['", "None", "True", "=null"):
        assert repr_mark not in text, text
    assert "    task:" in text and "fix it" in text and "a, b" in text


def _options(command: object, path: str = "") -> Iterator[tuple[str, list[str]]]:
    """(command path, option strings of one parameter) for every command and subcommand."""
    for param in getattr(command, "params", []):
        yield path, [*param.opts, *param.secondary_opts]
    for name, sub in getattr(command, "commands", {}).items():
        yield from _options(sub, f"{path} {name}")


def test_dash_m_means_model_in_every_command() -> None:
    """One meaning per short option (as in simonw/llm); the chat's options are its own."""
    import typer

    from agentctl.cli import COMMANDS, _app

    seen = 0
    for name in COMMANDS:
        if name == "chat":
            continue
        for path, opts in _options(typer.main.get_command(_app(name)), name):
            if "--model" in opts or "-m" in opts:
                assert sorted(opts) == ["--model", "-m"], f"{path}: {opts}"
                seen += 1
    assert seen >= 2  # ask and agent run at least


def test_a_missing_key_says_its_hint_once(workspace: Path, cli: Invoke) -> None:
    """The agent's progress and its ending, and doctor's check line: each fix said once."""
    result = cli("agent", "run", "-m", "sonnet", "dev", "say hi", cwd=workspace)
    out = result.stdout + result.stderr
    assert "failed" in out and "$ANTHROPIC_API_KEY" in out
    assert out.count("export ANTHROPIC_API_KEY=...") == 1, out
    chain = cli("ask", "hi")  # main: opus → sonnet, one key for both
    (error,) = [x for x in chain.stderr.splitlines() if x.startswith("agentctl: error:")]
    assert "opus: $ANTHROPIC_API_KEY is not set" in error
    assert "sonnet: $ANTHROPIC_API_KEY is not set" in error
    assert error.count("export ANTHROPIC_API_KEY=...") == 1, error
    doctor = cli("--set", "tracker.kind=linear", "--set", "tracker.linear.team=ENG", "doctor")
    (line,) = [x for x in doctor.stdout.splitlines() if x.startswith("[FAIL] linear")]
    assert "LINEAR_API_KEY" in line and line.count("export LINEAR_API_KEY=") == 1, line


@pytest.mark.parametrize(
    "argv",
    [
        ("init",),
        ("pipeline", "run", "feature", "--task", "x"),
        ("pipeline", "run", "feature", "--task", "x", "--dry-run"),
        ("orchestrate", "--once"),
        ("orchestrate", "--once", "--dry-run"),
    ],
    ids=" ".join,
)
def test_git_commands_refuse_outside_a_repository_before_writing(
    tmp_path: Path, cli: Invoke, argv: tuple[str, ...]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    result = cli(*argv, cwd=plain)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"agentctl: error: {plain} is not inside a git repository")
    assert not (plain / ".agentctl").exists()


def test_tool_calls_are_shown_without_python_reprs() -> None:
    from agentctl.cli.agent import describe

    line = describe(
        {
            "type": "tool.start",
            "name": "edit",
            "arguments": {"path": "a.py", "edits": [{"old": "x", "new": None}], "all": True},
        }
    )
    assert line == '→ edit(path="a.py", edits=[{"old": "x", "new": null}], all=true)'
