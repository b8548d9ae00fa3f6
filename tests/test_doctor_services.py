"""``agentctl doctor`` names what is wrong with the Linear and GitHub set-up."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentctl.errors import EXIT_FAILED
from agentctl.testing.github_server import GitHubServer
from agentctl.testing.linear_server import LinearServer
from tests.conftest import Invoke, git


@dataclass
class Services:
    root: Path
    linear: LinearServer
    github: GitHubServer

    def configure(self, linear: str = "", github: str = "") -> None:
        (self.root / "agentctl.toml").write_text(
            f'[tracker]\nkind = "linear"\n[tracker.linear]\nteam = "ENG"\n'
            f'url = "{self.linear.graphql_url}"\n{linear}'
            f'[forge]\nkind = "github"\n[forge.github]\nrepo = "acme/app"\n'
            f'url = "{self.github.graphql_url}"\n{github}'
        )


@pytest.fixture
def services(
    workspace: Path,
    linear_schema: Path,
    github_schema: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Services]:
    with LinearServer(linear_schema) as linear, GitHubServer(github_schema, tmp_path / "gh") as hub:
        hub.add_repo("acme", "app", source=workspace)
        git(workspace, "remote", "add", "origin", hub.remote_url("acme", "app"))
        monkeypatch.setenv("LINEAR_API_KEY", "lin_api_test")
        monkeypatch.setenv("GITHUB_TOKEN", "ghp_test")
        found = Services(workspace, linear, hub)
        found.configure()
        yield found


def lines(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


def test_a_good_setup_passes(services: Services, cli: Invoke) -> None:
    result = cli("doctor")
    assert "[ok  ] linear: " in result.output and "authenticated as" in result.output
    assert "[ok  ] linear team: ENG: 7 workflow states" in result.output
    assert "[ok  ] github: " in result.output
    assert "[ok  ] github repository: acme/app" in result.output
    assert "[ok  ] github remote: origin → " in result.output
    assert lines(result.output, "[FAIL]") == []


def test_a_wrong_linear_key(
    services: Services, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINEAR_API_KEY", "lin_api_wrong")
    result = cli("doctor")
    assert result.exit_code == EXIT_FAILED
    [failed] = lines(result.output, "[FAIL]")
    assert "linear: Linear: the API key was refused" in failed and "api_key_env" in failed
    assert "lin_api_wrong" not in result.output


def test_a_missing_key_says_which_variable(
    services: Services, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    [failed] = lines(cli("doctor").output, "[FAIL]")
    assert "github: GITHUB_TOKEN is not set" in failed


def test_a_wrong_team(services: Services, cli: Invoke) -> None:
    text = (services.root / "agentctl.toml").read_text().replace('"ENG"', '"ENGG"')
    (services.root / "agentctl.toml").write_text(text)
    [failed] = lines(cli("doctor").output, "[FAIL]")
    assert "linear team: Linear has no team with key 'ENGG'" in failed


def test_a_state_name_the_team_does_not_have(services: Services, cli: Invoke) -> None:
    services.configure(linear='in_progress_state = "Doing"\n')
    [failed] = lines(cli("doctor").output, "[FAIL]")
    assert "team ENG has no state 'Doing' ([tracker.linear] in_progress_state)" in failed
    assert "use one of: Backlog, Todo, In Progress" in failed


def test_a_wrong_repository_and_a_missing_remote(services: Services, cli: Invoke) -> None:
    text = (services.root / "agentctl.toml").read_text().replace("acme/app", "acme/nope")
    (services.root / "agentctl.toml").write_text(text)
    git(services.root, "remote", "remove", "origin")
    failed = lines(cli("doctor").output, "[FAIL]")
    assert len(failed) == 2
    assert "github repository: GitHub has no repository acme/nope" in failed[0]
    assert "github remote: this repository has no git remote 'origin'" in failed[1]
