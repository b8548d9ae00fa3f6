"""Plain parameters are coerced and bounded exactly as Typer would, without pydantic."""

from __future__ import annotations

import json
from pathlib import Path

from agentctl.testing.runs import make_finished_runs
from tests.conftest import Invoke


def test_integer_options_are_parsed_and_bounded(repo: Path, cli: Invoke) -> None:
    make_finished_runs(repo / ".agentctl", 4)
    assert len(json.loads(cli("runs", "list", "--json", "--limit", "2", cwd=repo).output)) == 2
    result = cli("runs", "list", "--limit", "0")
    assert result.exit_code == 2 and "smaller than the minimum 1" in result.stderr
    result = cli("runs", "list", "--limit", "two")
    assert result.exit_code == 2 and "'two' is not a valid integer" in result.stderr


def test_path_and_repeated_options(repo: Path, cli: Invoke, tmp_path: Path) -> None:
    result = cli(
        "--workspace",
        str(repo),
        "--set",
        "roles.dev.max_turns=7",
        "--set",
        "roles.dev.model=sonnet",
        "roles",
        "show",
        "dev",
        "--json",
        cwd=tmp_path,
    )
    shown = json.loads(result.output)
    assert (shown["max_turns"], shown["model"]) == (7, "sonnet")


def test_boolean_flags_still_work(repo: Path, cli: Invoke) -> None:
    assert cli("runs", "list", "--json", cwd=repo).output.strip() == "[]"
