"""Shared fixtures: an isolated user config dir, real git repositories, the CLI runner."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agentctl import keystore
from agentctl.cli import app


@pytest.fixture(autouse=True)
def _isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads the developer's ~/.config/agentctl, keys or armed fail points."""
    monkeypatch.setenv("AGENTCTL_CONFIG_DIR", str(tmp_path_factory.mktemp("user-config")))
    for name in ("AGENTCTL_FAILPOINT", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    keystore.forget()  # the key store is process-global: each test starts with none


def stop_zygotes(under: Path, depth: int = 4) -> list[int]:
    """Kill the agent zygotes of every workspace below ``under``; their pids.

    A zygote outlives the command that started it (its idle timeout is minutes); a
    test's workspaces are done when the test is, so their zygotes go with them.
    """
    killed = []
    for level in range(depth):
        for pid_file in under.glob("/".join(["*"] * level + ["zygote", "*.pid"])):
            try:
                pid = int(pid_file.read_text())
                if b"zygote" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                continue
            killed.append(pid)
    return killed


@pytest.fixture(autouse=True)
def _no_zygote_left(request: pytest.FixtureRequest) -> Iterator[None]:
    uses = "tmp_path" in request.fixturenames
    tmp: Path | None = request.getfixturevalue("tmp_path") if uses else None
    yield
    if tmp is not None:
        stop_zygotes(tmp)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Workspaces made outside a test's tmp_path (module fixtures): their zygotes too."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        stop_zygotes(factory.getbasetemp(), depth=6)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(path: Path) -> Path:
    """A real git repository on branch main with its own identity and one commit."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "agentctl tests")
    git(path, "config", "user.email", "tests@agentctl.invalid")
    (path / "README.md").write_text("# demo\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


Invoke = Callable[..., Result]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run agentctl in-process through Typer's CliRunner, from a given directory."""

    def invoke(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def workspace(repo: Path, cli: Invoke) -> Path:
    """A repository after `agentctl init`."""
    result = cli("init", cwd=repo)
    assert result.exit_code == 0, result.output
    return repo


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """The recorded conformance data, read in place from ``<project>/../shared/conformance``.

    Skips when it is absent; fails instead when ``AGENTCTL_REQUIRE_CONFORMANCE=1`` (CI).
    """
    import os

    path = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"
    if not path.is_dir():
        message = f"conformance data not found at {path}"
        if os.environ.get("AGENTCTL_REQUIRE_CONFORMANCE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def linear_schema(conformance_dir: Path) -> Path:
    """Linear's real schema SDL (the fake Linear server executes against it)."""
    return conformance_dir / "schemas" / "linear.graphql"


@pytest.fixture(scope="session")
def github_schema(conformance_dir: Path) -> Path:
    """GitHub's real schema SDL (the fake GitHub server executes against it)."""
    return conformance_dir / "schemas" / "github.graphql"
