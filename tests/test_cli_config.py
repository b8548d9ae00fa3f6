"""The CLI over real repositories: init, roles, pipeline, models, doctor, errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Invoke, git


def test_version_and_help(cli: Invoke) -> None:
    result = cli("--version")
    assert result.exit_code == 0 and result.output.startswith("agentctl ")
    result = cli("--help")
    assert result.exit_code == 0
    for group in ("init", "doctor", "roles", "pipeline", "models", "runs"):
        assert group in result.output


def test_init_in_an_empty_repository_then_checks_pass(tmp_path: Path, cli: Invoke) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "trunk")  # no commit yet
    result = cli("init", cwd=repo)
    assert result.exit_code == 0, result.output
    assert (repo / "agentctl.toml").is_file()
    assert sorted(p.name for p in (repo / "roles").iterdir()) == [
        "dev.toml",
        "devops.toml",
        "main.toml",
        "orchestrator.toml",
        "research.toml",
        "review.toml",
    ]
    assert sorted(p.name for p in (repo / "pipelines").iterdir()) == [
        "coding-pipeline.toml",
        "feature.toml",
        "research.toml",
        "review-pr.toml",
    ]
    assert ".agentctl/" in (repo / ".gitignore").read_text().splitlines()
    assert (repo / "HEARTBEAT.md").is_file()
    assert 'base_branch = "trunk"' in (repo / "agentctl.toml").read_text()
    assert cli("roles", "check").exit_code == 0
    result = cli("pipeline", "validate")
    assert result.exit_code == 0 and "4 pipelines valid" in result.output


def test_init_is_idempotent_and_never_overwrites_without_force(repo: Path, cli: Invoke) -> None:
    assert cli("init", cwd=repo).exit_code == 0
    (repo / "roles" / "dev.toml").write_text(
        'description = "mine"\nmodel = "sonnet"\nprompt = "p"\n'
    )
    gitignore = (repo / ".gitignore").read_text()
    result = cli("init", "--json")
    assert result.exit_code == 0
    actions = {f["path"]: f["action"] for f in json.loads(result.output)["files"]}
    assert set(actions.values()) == {"kept"}
    assert (repo / ".gitignore").read_text() == gitignore  # not appended twice
    assert "mine" in (repo / "roles" / "dev.toml").read_text()
    result = cli("init", "--force", "--json")
    actions = {f["path"]: f["action"] for f in json.loads(result.output)["files"]}
    assert actions[str(Path("roles/dev.toml"))] == "overwritten"
    assert "mine" not in (repo / "roles" / "dev.toml").read_text()


def test_init_guesses_the_test_command(repo: Path, cli: Invoke) -> None:
    (repo / "pyproject.toml").write_text("[tool.pytest.ini_options]\naddopts = '-q'\n")
    result = cli("init", "--json", cwd=repo)
    assert json.loads(result.output)["test_command"] == "python -m pytest -q"
    assert 'test_command = "python -m pytest -q"' in (repo / "agentctl.toml").read_text()


def test_init_outside_git_fails_clearly(tmp_path: Path, cli: Invoke) -> None:
    result = cli("init", cwd=tmp_path)
    assert result.exit_code == 2
    assert "not inside a git repository" in result.stderr and "git init" in result.stderr
    assert not (tmp_path / "agentctl.toml").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('model = "sonnet"\nfoo = 1\n', "roles/dev.toml:2: unknown key 'foo' in roles.dev"),
        ('model = "sonnet\n', "roles/dev.toml:1: invalid TOML"),
        ('model = "gpt-nine"\n', "roles/dev.toml:1: unknown model 'gpt-nine'"),
    ],
)
def test_a_broken_role_file_exits_2_with_file_and_line(
    workspace: Path, cli: Invoke, content: str, expected: str
) -> None:
    (workspace / "roles" / "dev.toml").write_text(content)
    for command in (("roles", "check"), ("pipeline", "validate"), ("roles", "list")):
        result = cli(*command, cwd=workspace)
        assert result.exit_code == 2, command
        assert result.stderr.startswith(f"agentctl: error: {expected}")
        assert "Traceback" not in result.output + result.stderr
        assert result.stderr.count("\n") == 1  # one clear line


def test_roles_list_show_json(workspace: Path, cli: Invoke) -> None:
    rows = json.loads(cli("roles", "list", "--json", cwd=workspace).output)
    review = next(r for r in rows if r["name"] == "review")
    assert review["models"][0] == "qwen3-32b" and review["result"] == "verdict"
    assert review["source"] == str(Path("roles/review.toml"))
    shown = json.loads(cli("roles", "show", "dev", "--json").output)
    assert shown["model"] == "coder-next" and "dev agent" in shown["prompt"]
    result = cli("roles", "show", "deve")
    assert result.exit_code == 2 and "did you mean 'dev'?" in result.stderr
    text = cli("roles", "list", env={"COLUMNS": "200"}).output
    assert "coder-next → sonnet" in text


def test_set_overrides_reach_commands(workspace: Path, cli: Invoke) -> None:
    shown = json.loads(
        cli("--set", "roles.dev.model=opus", "roles", "show", "dev", "--json", cwd=workspace).output
    )
    assert shown["model"] == "opus"


def test_pipeline_list_and_show(workspace: Path, cli: Invoke) -> None:
    rows = json.loads(cli("pipeline", "list", "--json", cwd=workspace).output)
    feature = next(r for r in rows if r["name"] == "feature")
    assert feature["steps"] == ["worktree", "implement", "commit", "test", "review", "merge"]
    shown = json.loads(cli("pipeline", "show", "feature", "--json").output)
    implement = next(s for s in shown["steps"] if s["id"] == "implement")
    assert implement["models"] == ["coder-next", "sonnet"]
    text = cli("pipeline", "show", "coding-pipeline", env={"COLUMNS": "200"}).output
    assert "forge.open_pr" in text and "goto implement (max 2)" in text


def test_models_list_reports_keys(workspace: Path, cli: Invoke) -> None:
    rows = json.loads(
        cli("models", "list", "--json", cwd=workspace, env={"ANTHROPIC_API_KEY": "sk-x"}).output
    )
    by_name = {r["name"]: r for r in rows}
    assert by_name["opus"]["key_env"] == "ANTHROPIC_API_KEY" and by_name["opus"]["key_set"]
    assert by_name["codex"]["key_set"] is False
    assert by_name["coder-next"]["key_env"] is None  # a local server needs no key
    assert by_name["codex"]["api"] == "responses"
    assert "sk-x" not in json.dumps(rows)


def test_doctor_reports_keys_and_config(workspace: Path, cli: Invoke) -> None:
    result = cli("doctor", "--json", cwd=workspace, env={"OPENAI_API_KEY": "sk-test"})
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.output)["checks"]}
    assert checks["config"]["status"] == "ok"
    assert checks["key OPENAI_API_KEY"]["status"] == "ok"
    assert "devops (codex)" in checks["key OPENAI_API_KEY"]["detail"]
    assert checks["key ANTHROPIC_API_KEY"]["status"] == "warn"
    assert "main (opus)" in checks["key ANTHROPIC_API_KEY"]["detail"]
    assert checks["git"]["status"] == "ok"
    assert checks["sandbox"]["status"] in ("ok", "warn")
    assert "sk-test" not in result.output


def test_doctor_with_broken_config_exits_2(workspace: Path, cli: Invoke) -> None:
    (workspace / "agentctl.toml").write_text("[project\n")
    result = cli("doctor", cwd=workspace)
    assert result.exit_code == 2
    assert "[FAIL] config: agentctl.toml:1: invalid TOML" in result.output


def test_console_script_and_module_entry_points(workspace: Path) -> None:
    for command in (["agentctl"], ["python", "-m", "agentctl"]):
        done = subprocess.run(
            [*command, "roles", "check"], cwd=workspace, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    (workspace / "roles" / "dev.toml").write_text("max_turns = 'x'\n")
    done = subprocess.run(
        ["agentctl", "roles", "check"], cwd=workspace, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.startswith("agentctl: error: roles/dev.toml:1:")
    assert "Traceback" not in done.stderr


def test_usage_errors_exit_2(cli: Invoke, tmp_path: Path) -> None:
    result = cli("roles", "show", cwd=tmp_path)
    assert result.exit_code == 2
    result = cli("--workspace", str(tmp_path / "nope"), "roles", "list")
    assert result.exit_code == 2 and "no such directory" in result.stderr
