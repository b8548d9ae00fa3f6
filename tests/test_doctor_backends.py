"""``agentctl doctor`` checks the coding agent CLIs that roles run as their backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentctl.commands import doctor
from agentctl.errors import EXIT_FAILED
from agentctl.tools.sandbox import Host
from tests.conftest import Invoke

MODELS = """
[models.claude]
provider = "anthropic"
name = "claude-x"
price = { input = 1.0, output = 2.0 }

[models.gpt]
provider = "openai"
api = "responses"
name = "gpt-5.5"
price = { input = 1.0, output = 2.0 }
"""


def configure(root: Path, *roles: str) -> None:
    """agentctl.toml with the two models and ``roles`` (TOML tables) added."""
    with (root / "agentctl.toml").open("a") as f:
        f.write(MODELS + "".join(roles))


def role(name: str, backend: str, model: str, executable: Path | str, extra: str = "") -> str:
    return (
        f'\n[roles.{name}]\ndescription = "d"\nprompt = "p"\nbackend = "{backend}"\n'
        f'model = "{model}"\nfallback = []\n'
        f'[roles.{name}.backend_options]\nexecutable = "{executable}"\n{extra}'
    )


def fake_cli(path: Path, says: str, code: int = 0) -> Path:
    path.write_text(f"#!/bin/sh\necho '{says}'\nexit {code}\n")
    path.chmod(0o755)
    return path


def lines(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


def test_a_found_cli_shows_its_version_path_and_roles(
    workspace: Path, tmp_path: Path, cli: Invoke
) -> None:
    claude = fake_cli(tmp_path / "claude", "9.8.7 (Claude Code)")
    codex = fake_cli(tmp_path / "codex", "codex-cli 0.171.0")
    configure(
        workspace,
        role("coder", "claude-code", "claude", claude),
        role("helper", "claude-code", "claude", claude),
        role("other", "codex", "gpt", codex),
    )
    result = cli("doctor", cwd=workspace)
    assert f"[ok  ] claude-code: 9.8.7 (Claude Code) at {claude} (roles: coder, helper)\n" in (
        result.output
    )
    assert f"[ok  ] codex: codex-cli 0.171.0 at {codex} (roles: other)\n" in result.output
    assert lines(result.output, "[FAIL]") == []


def test_a_missing_cli_fails_with_how_to_install_it(
    workspace: Path, tmp_path: Path, cli: Invoke
) -> None:
    configure(
        workspace,
        role("coder", "claude-code", "claude", tmp_path / "nope" / "claude"),
        role("other", "codex", "gpt", "no-such-codex-here"),
    )
    result = cli("doctor", cwd=workspace)
    assert result.exit_code == EXIT_FAILED
    failed = lines(result.output, "[FAIL]")
    assert len(failed) == 2, result.output
    assert failed[0].startswith("[FAIL] claude-code: ")
    assert "is not an executable file (roles: coder)" in failed[0]
    assert "npm install -g @anthropic-ai/claude-code" in failed[0]
    assert "[backend_options] executable" in failed[0]
    assert "[FAIL] codex: 'no-such-codex-here' not found on PATH (roles: other)" in failed[1]
    assert "npm install -g @openai/codex" in failed[1]


def test_a_cli_that_fails_its_version(workspace: Path, tmp_path: Path, cli: Invoke) -> None:
    broken = fake_cli(tmp_path / "claude", "cannot find module", code=3)
    configure(workspace, role("coder", "claude-code", "claude", broken))
    result = cli("doctor", cwd=workspace)
    assert result.exit_code == EXIT_FAILED
    [failed] = lines(result.output, "[FAIL]")
    assert f"claude-code: {broken} --version exited 3: cannot find module" in failed


@pytest.mark.parametrize("euid", [0, 1000])
def test_bypass_permissions_fails_as_root(
    workspace: Path, tmp_path: Path, cli: Invoke, monkeypatch: pytest.MonkeyPatch, euid: int
) -> None:
    monkeypatch.setattr(doctor, "Host", lambda: Host(euid=lambda: euid))
    claude = fake_cli(tmp_path / "claude", "9.8.7 (Claude Code)")
    mode = 'permission_mode = "bypassPermissions"\n'
    configure(workspace, role("coder", "claude-code", "claude", claude, mode))
    result = cli("doctor", cwd=workspace)
    assert "[ok  ] claude-code: 9.8.7 (Claude Code)" in result.output
    failed = lines(result.output, "[FAIL]")
    if euid == 0:
        assert result.exit_code == EXIT_FAILED
        [line] = failed
        assert "claude-code: permission_mode bypassPermissions (roles: coder)" in line
        assert "refused as root" in line and "acceptEdits" in line
    else:
        assert failed == []


def test_no_cli_role_no_backend_line(workspace: Path, cli: Invoke) -> None:
    result = cli("doctor", cwd=workspace)
    names = [line.split("]", 1)[1].split(":", 1)[0].strip() for line in lines(result.output, "[")]
    assert "claude-code" not in names and "codex" not in names
    assert "config" in names and "git" in names
