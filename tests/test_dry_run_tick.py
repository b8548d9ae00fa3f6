"""``orchestrate --once --dry-run`` with triage by model (needs the tick.py lines of helper B1)."""

from __future__ import annotations

from pathlib import Path

from agentctl import keystore
from tests.conftest import Invoke, git


def test_a_dry_tick_shows_the_tickets_triage_would_ask_about(workspace: Path, cli: Invoke) -> None:
    toml = workspace / "agentctl.toml"
    text = toml.read_text().replace('# triage = "model"', 'triage = "model"')
    toml.write_text(text.replace("[project]", '[project]\ntest_command = "true"', 1))
    git(workspace, "add", "-A")
    git(workspace, "commit", "-qm", "triage by model")
    assert cli("tickets", "add", "Add feature 1", cwd=workspace).exit_code == 0
    dry = cli("orchestrate", "--once", "--dry-run", env={"ANTHROPIC_API_KEY": "sk-test"})
    assert dry.exit_code == 0, dry.output
    assert "idle" not in dry.stdout
    assert "T-1: would ask the orchestrator model (Add feature 1)" in dry.stdout
    assert "triage: one call to sonnet, haiku" in dry.stdout and "–$" in dry.stdout
    assert not (workspace / ".agentctl" / "orchestrator" / "state.json").exists()
    keystore.forget()  # in-process CLI runs: the key loaded above is forgotten
    for args in (("--dry-run",), ()):
        no_key = cli("orchestrate", "--once", *args)
        assert no_key.exit_code == 1, no_key.output
        assert "$ANTHROPIC_API_KEY" in no_key.stderr
