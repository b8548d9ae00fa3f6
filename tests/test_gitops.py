"""gitops on real repositories: worktrees, commits, identity fallback, base updates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentctl.errors import GitError, NotFoundError
from agentctl.repo import gitops
from tests.conftest import git


def _worktrees(repo: Path) -> list[str]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def test_ensure_worktree_is_idempotent_and_branches_from_base(repo: Path) -> None:
    state = repo / ".agentctl"
    first = gitops.ensure_worktree(repo, state, "agent/t-1", "main")
    second = gitops.ensure_worktree(repo, state, "agent/t-1", "main")
    assert first == second == state / "worktrees" / "agent-t-1"
    assert len(_worktrees(repo)) == 2
    assert gitops.head(first) == gitops.head(repo, "main")
    assert gitops.current_branch(first) == "agent/t-1"
    assert (first / "README.md").read_text() == "# demo\n"


def test_ensure_worktree_checks_out_an_existing_branch(repo: Path) -> None:
    git(repo, "branch", "feature")
    (repo / "more.txt").write_text("x\n")
    git(repo, "add", "more.txt")
    git(repo, "commit", "-q", "-m", "more")
    tree = gitops.ensure_worktree(repo, repo / ".agentctl", "feature", "main")
    assert gitops.head(tree) == git(repo, "rev-parse", "feature")
    assert not (tree / "more.txt").exists()


def test_ensure_worktree_refuses_a_foreign_directory(repo: Path) -> None:
    state = repo / ".agentctl"
    squatter = gitops.worktree_path(state, "x")
    squatter.mkdir(parents=True)
    (squatter / "file").write_text("mine")
    with pytest.raises(GitError, match="not a worktree"):
        gitops.ensure_worktree(repo, state, "x", "main")


def test_unknown_base_is_not_found(repo: Path) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        gitops.ensure_worktree(repo, repo / ".agentctl", "x", "nope")


def test_commit_all_respects_gitignore_and_reports_nothing(repo: Path) -> None:
    tree = gitops.ensure_worktree(repo, repo / ".agentctl", "work", "main")
    assert gitops.commit_all(tree, "nothing") is None
    (tree / ".gitignore").write_text("*.log\n")
    (tree / "debug.log").write_text("noise\n")
    (tree / "src").mkdir()
    (tree / "src" / "a.py").write_text("A = 1\n")
    (tree / "README.md").unlink()
    sha = gitops.commit_all(tree, "work")
    assert sha is not None and sha == gitops.head(tree)
    assert gitops.is_clean(tree, untracked=False)
    files = git(tree, "ls-tree", "-r", "--name-only", "HEAD").splitlines()
    assert files == [".gitignore", "src/a.py"]
    assert gitops.changed_files(tree, "main") == [".gitignore", "README.md", "src/a.py"]
    assert gitops.commit_all(tree, "again") is None


def test_commit_all_never_commits_the_state_folder(repo: Path) -> None:
    (repo / ".agentctl" / "runs").mkdir(parents=True)
    (repo / ".agentctl" / "runs" / "x.json").write_text("{}")
    (repo / "new.txt").write_text("new\n")
    assert gitops.is_clean(repo, untracked=True) is False
    assert gitops.commit_all(repo, "new") is not None
    assert git(repo, "ls-tree", "-r", "--name-only", "HEAD").splitlines() == [
        "README.md",
        "new.txt",
    ]
    assert gitops.is_clean(repo)


def test_commit_falls_back_to_agentctls_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("AUTHOR", "COMMITTER"):
        monkeypatch.delenv(f"GIT_{name}_NAME", raising=False)
        monkeypatch.delenv(f"GIT_{name}_EMAIL", raising=False)
    monkeypatch.delenv("EMAIL", raising=False)
    bare = tmp_path / "bare"
    bare.mkdir()
    git(bare, "init", "-q", "-b", "main")
    (bare / "a.txt").write_text("a\n")
    sha = gitops.commit_all(bare, "first")
    assert sha is not None
    who = git(bare, "log", "-1", "--format=%an <%ae>|%cn <%ce>")
    assert who == "agentctl <agentctl@localhost>|agentctl <agentctl@localhost>"


def test_commit_uses_the_repository_identity(repo: Path) -> None:
    (repo / "b.txt").write_text("b\n")
    gitops.commit_all(repo, "b")
    assert git(repo, "log", "-1", "--format=%an <%ae>") == "agentctl tests <tests@agentctl.invalid>"


def test_head_of_an_unknown_ref_is_not_found(repo: Path) -> None:
    with pytest.raises(NotFoundError):
        gitops.head(repo, "no-such-branch")


def _commit_on_main(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"main: {name}")
    return git(repo, "rev-parse", "HEAD")


def test_update_from_base_merges_without_rewriting(repo: Path) -> None:
    tree = gitops.ensure_worktree(repo, repo / ".agentctl", "work", "main")
    (tree / "work.txt").write_text("work\n")
    reviewed = gitops.commit_all(tree, "work")
    assert reviewed is not None
    up = gitops.update_from_base(tree, "main")
    assert up.ok and up.sha == reviewed and "already up to date" in up.detail

    base = _commit_on_main(repo, "base.txt", "base\n")
    up = gitops.update_from_base(tree, "main")
    assert up.ok and up.conflicts == ()
    assert up.sha == gitops.head(tree) != reviewed
    parents = git(tree, "rev-list", "--parents", "-n", "1", "HEAD").split()[1:]
    assert parents == [reviewed, base]  # the reviewed SHA stays in history
    assert (tree / "base.txt").exists() and (tree / "work.txt").exists()


def test_update_from_base_conflict_aborts_cleanly(repo: Path) -> None:
    tree = gitops.ensure_worktree(repo, repo / ".agentctl", "work", "main")
    (tree / "README.md").write_text("# branch\n")
    mine = gitops.commit_all(tree, "branch edit")
    _commit_on_main(repo, "README.md", "# main\n")
    up = gitops.update_from_base(tree, "main")
    assert not up.ok
    assert up.conflicts == ("README.md",)
    assert up.sha == mine == gitops.head(tree)
    assert gitops.is_clean(tree)
    assert "README.md" in up.detail
    assert (tree / "README.md").read_text() == "# branch\n"


def test_update_from_base_refuses_uncommitted_work(repo: Path) -> None:
    tree = gitops.ensure_worktree(repo, repo / ".agentctl", "work", "main")
    (tree / "README.md").write_text("dirty\n")
    with pytest.raises(GitError, match="uncommitted"):
        gitops.update_from_base(tree, "main")


def test_remove_worktree(repo: Path) -> None:
    tree = gitops.ensure_worktree(repo, repo / ".agentctl", "work", "main")
    (tree / "scratch").write_text("unsaved\n")
    gitops.remove_worktree(repo, tree)
    assert not tree.exists()
    assert len(_worktrees(repo)) == 1
    gitops.remove_worktree(repo, tree)  # already gone: fine
    with pytest.raises(GitError, match="main worktree"):
        gitops.remove_worktree(repo, repo)
    # the branch survives its worktree; a new worktree picks it up again
    assert gitops.ensure_worktree(repo, repo / ".agentctl", "work", "main") == tree


def test_not_a_repository(tmp_path: Path) -> None:
    from agentctl.errors import WorkspaceError

    with pytest.raises(WorkspaceError):
        gitops.head(tmp_path)


def test_module_import_does_not_import_gitpython() -> None:
    code = (
        "import sys, agentctl.repo.gitops, agentctl.pipeline.mergequeue; "
        "print('git' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
