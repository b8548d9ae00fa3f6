"""A deeply nested TOML file is one clear error line naming the file, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentctl.config import tomlsafe
from tests.conftest import Invoke, make_repo

OPEN = "a = " + "[" * 100_000  # tomllib recurses once a bracket
CLOSED = "a = " + "[" * 60 + "1" + "]" * 60  # parses, but deeper than anything needs
INLINE = "[project]\nx = " + "{a=" * 60 + "1" + "}" * 60


def test_the_bound_lets_real_files_through() -> None:
    assert tomlsafe.loads("a = [[1, 2], {b = [3]}]") == {"a": [[1, 2], {"b": [3]}]}
    with pytest.raises(tomlsafe.TOMLDepthError):
        tomlsafe.loads(OPEN)


@pytest.mark.parametrize("text", [OPEN, CLOSED, INLINE], ids=["open", "closed", "inline"])
@pytest.mark.parametrize("name", ["agentctl.toml", "roles/dev.toml", "pipelines/deep.toml"])
def test_nested_config_is_one_line_and_exit_2(
    name: str, text: str, tmp_path: Path, cli: Invoke
) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "agentctl.toml").write_text("")
    path = repo / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    result = cli("roles", "list", cwd=repo)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"agentctl: error: {name}: invalid TOML: ")
    assert "nested more than" in lines[0]


def test_a_nested_ticket_file_is_one_line(tmp_path: Path, cli: Invoke) -> None:
    repo = make_repo(tmp_path / "repo")
    assert cli("tickets", "add", "fine", cwd=repo).exit_code == 0
    ticket = repo / ".agentctl" / "tickets" / "T-1.toml"
    ticket.write_text('title = "x"\nlabels = ' + "[" * 100_000)
    result = cli("tickets", "list", cwd=repo)
    assert result.exit_code != 0
    (line,) = result.stderr.splitlines()
    assert "T-1.toml" in line and "nested more than" in line


def test_no_traceback_from_the_real_command(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "agentctl.toml").write_text(OPEN)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "agentctl", "status"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "agentctl: error: agentctl.toml: invalid TOML: arrays or tables nested more than "
        f"{tomlsafe.MAX_DEPTH} levels deep — flatten the nesting of this file"
    ]
