"""The bubblewrap sandbox: no network, no writes outside the workspace, .git read-only."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.tools import sandbox
from agentctl.tools.sandbox import bwrap_available
from agentctl.tools.toolbox import Toolbox

needs_bwrap = pytest.mark.skipif(
    not bwrap_available(), reason=f"bubblewrap cannot run here: {sandbox.bwrap_status()[1]}"
)
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"}


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_the_probe_is_cached_and_says_why() -> None:
    ok, detail = sandbox.bwrap_status()
    assert isinstance(ok, bool)
    assert detail
    assert sandbox.bwrap_status() is sandbox.bwrap_status()


@needs_bwrap
def test_no_network_in_the_sandbox(repo: Path, listener: int) -> None:
    command = f"exec 3<>/dev/tcp/127.0.0.1/{listener} && echo connected"
    plain = Toolbox(repo, ["bash"], sandbox="none", env=ENV).run("bash", {"command": command})
    assert plain.meta["exit_code"] == 0, plain.content
    assert "connected" in plain.content
    boxed = Toolbox(repo, ["bash"], sandbox="strict", env=ENV).run("bash", {"command": command})
    assert boxed.meta["sandboxed"] is True
    assert boxed.meta["exit_code"] != 0
    assert "connected" not in boxed.content


@needs_bwrap
def test_writes_outside_the_workspace_fail(repo: Path, tmp_path: Path) -> None:
    box = Toolbox(repo, ["bash"], sandbox="strict", env=ENV)
    name = f"agentctl-sandbox-{secrets.token_hex(6)}"
    for path in (Path("/var/tmp") / name, Path("/etc") / name, Path.home() / name):
        result = box.run("bash", {"command": f"echo pwned > {path}"})
        assert result.is_error, result.content
        assert "Read-only file system" in result.content
        assert not path.exists()
    # /tmp is a private tmpfs inside: the write lands there and vanishes with the sandbox.
    box.run("bash", {"command": f"mkdir -p {tmp_path} && echo pwned > {tmp_path / name}"})
    assert not (tmp_path / name).exists()


@needs_bwrap
def test_git_is_read_only_but_the_workspace_is_writable(repo: Path) -> None:
    box = Toolbox(repo, ["bash"], sandbox="strict", env=ENV)
    hook = box.run("bash", {"command": "echo 'echo pwned' > .git/hooks/pre-commit"})
    assert hook.is_error
    assert "Read-only file system" in hook.content
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
    work = box.run("bash", {"command": "mkdir -p new && echo hi > new/f.txt && cat README.md"})
    assert work.content == "exit code 0\n# demo\n"
    assert (repo / "new" / "f.txt").read_text() == "hi\n"
    status = box.run("bash", {"command": "git status --short"})
    assert status.content == "exit code 0\n?? new/\n"


@needs_bwrap
def test_a_worktree_sees_its_repository_read_only(repo: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    subprocess.run(
        ["git", "worktree", "add", "-q", "-b", "agent", str(tree)],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    box = Toolbox(tree, ["bash"], sandbox="strict", env=ENV)
    status = box.run("bash", {"command": "echo x > y.txt && git status --short --branch"})
    assert status.content == "exit code 0\n## agent\n?? y.txt\n"
    config = box.run("bash", {"command": f"echo '[x]' >> {repo}/.git/config"})
    assert config.is_error
    assert "[x]" not in (repo / ".git" / "config").read_text()


def test_strict_without_bubblewrap_is_an_error_and_auto_runs_plain_for_a_user(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin-without-bwrap"
    bin_dir.mkdir()
    for tool in ("bash", "true"):
        found = subprocess.run(["which", tool], capture_output=True, text=True, check=True)
        (bin_dir / tool).symlink_to(found.stdout.strip())
    monkeypatch.setenv("PATH", str(bin_dir))
    sandbox.bwrap_status.cache_clear()
    try:
        assert bwrap_available() is False
        strict = Toolbox(repo, ["bash"], sandbox="strict", env=ENV).run(
            "bash", {"command": "echo ran > ran.txt"}
        )
        assert strict.is_error
        assert "bubblewrap" in strict.content
        assert "apt-get install bubblewrap" in strict.content
        assert not (repo / "ran.txt").exists()
        user = sandbox.Host(euid=lambda: 1000)  # the real probe, as a normal user
        auto = Toolbox(repo, ["bash"], sandbox="auto", env=ENV, host=user).run(
            "bash", {"command": "echo ok"}
        )
        assert auto.content == "exit code 0\nok\n"
        assert auto.meta["sandboxed"] is False
    finally:
        monkeypatch.undo()
        sandbox.bwrap_status.cache_clear()


@pytest.fixture
def visible_dir() -> Iterator[Path]:
    """A folder outside /tmp (a fresh tmpfs in the sandbox), so it is visible unless hidden."""
    path = Path("/var/tmp") / f"agentctl-test-{secrets.token_hex(6)}"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_bwrap
def test_a_hidden_home_shows_only_toolchains_and_never_what_a_command_names(
    repo: Path, tmp_path: Path, visible_dir: Path
) -> None:
    home = visible_dir / "user-home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE-KEY\n")
    (home / ".cargo" / "bin").mkdir(parents=True)
    (home / ".cargo" / "credentials.toml").write_text('token = "CRATES-TOKEN"\n')
    tool = home / ".cargo" / "bin" / "mytool"
    tool.write_text("#!/bin/sh\necho tool-ran\n")
    tool.chmod(0o755)
    policy = sandbox.Policy(hide=(str(home),), home=str(tmp_path / "run-home"))
    env = {**ENV, "PATH": f"{tool.parent}:{ENV['PATH']}"}
    box = Toolbox(repo, ["bash"], sandbox="strict", env=env, policy=policy)
    ran = box.run("bash", {"command": "mytool && echo $HOME && touch $HOME/x"})
    assert ran.content == f"exit code 0\ntool-ran\n{tmp_path / 'run-home'}\n", ran.content
    assert (tmp_path / "run-home" / "x").exists()
    for secret in (home / ".ssh" / "id_ed25519", home / ".cargo" / "credentials.toml"):
        read = box.run("bash", {"command": f"cat {secret}"})
        assert read.is_error and "No such file" in read.content, read.content
    written = box.run("bash", {"command": f"echo x > {home}/planted"})
    assert written.is_error and not (home / "planted").exists()
    # Without the policy the same secret is there to read: the hiding is what protects it.
    plain = Toolbox(repo, ["bash"], sandbox="strict", env=env)
    assert "PRIVATE-KEY" in plain.run("bash", {"command": f"cat {home}/.ssh/id_ed25519"}).content
