"""The bare repositories behind the fake GitHub, and the pull requests kept beside them.

GitHub's answers about code (heads, mergeability, ancestry, commit lists) come from
real bare repositories under ``root/<owner>/<name>.git``, read with git plumbing: refs
once per request, and results keyed by commit ids (which never go stale) cached for the
server's life. Pull requests, reviews and comments are plain records here; the rules
GitHub applies to them are in ``github_api``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Review:
    id: str
    db_id: int
    state: str
    body: str
    commit: str | None
    author: str
    submitted_at: float


@dataclass
class Comment:
    id: str
    db_id: int
    body: str
    author: str
    created_at: float


@dataclass
class Repo:
    owner: str
    name: str
    path: Path
    id: str
    default_branch: str
    statuses: dict[str, str] = field(default_factory=dict)
    prs: dict[int, PullRequest] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def url(self) -> str:
        return f"https://github.com/{self.full_name}"


@dataclass
class PullRequest:
    repo: Repo
    number: int
    id: str
    title: str
    body: str
    head: str
    base: str
    author: str
    draft: bool
    created_at: float
    head_oid: str  # last seen; the live value while OPEN, frozen after
    state: str = "OPEN"
    updated_at: float = 0.0
    base_oid: str | None = None  # frozen when the PR stops being OPEN
    merged_at: float | None = None
    closed_at: float | None = None
    merge_commit: str | None = None
    merge_method: str | None = None
    reviews: list[Review] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.repo.url}/pull/{self.number}"


class BareRepos:
    """The repositories, the node ids naming them and their pull requests, and git."""

    def __init__(self, root: Path, clock: Callable[[], float]) -> None:
        self.root = root
        self.clock = clock
        self.repos: dict[tuple[str, str], Repo] = {}
        self.nodes: dict[str, Repo | PullRequest] = {}
        self.sequence = 0
        # Refs are read once per request (cleared in before_execute() and by every helper);
        # results keyed by commit ids (merge trees, ancestry, commit lists) never go stale.
        self._ref_cache: dict[Path, dict[str, str]] = {}
        self._oid_cache: dict[tuple[Path, str, str, str | None], Any] = {}

    def new_id(self, prefix: str) -> str:
        self.sequence += 1
        return f"{prefix}{self.sequence:08X}"

    def now(self) -> float:
        return self.clock()

    def repo(self, owner: str | None, name: str | None) -> Repo:
        if owner is None or name is None:
            if len(self.repos) != 1:
                raise ValueError("name the repository (owner, name): there is not exactly one")
            return next(iter(self.repos.values()))
        repo = self.repos.get((owner.lower(), name.lower()))
        if repo is None:
            raise KeyError(f"no repository {owner}/{name}; add_repo() it first")
        return repo

    # -- git plumbing

    def git(
        self,
        repo: Repo,
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        return _run(["git", f"--git-dir={repo.path}", *args], input=input, env=env)

    def identity(self, author: tuple[str, str], committer: tuple[str, str]) -> dict[str, str]:
        date = f"@{int(self.now())} +0000"
        return {
            "GIT_AUTHOR_NAME": author[0],
            "GIT_AUTHOR_EMAIL": author[1],
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": committer[0],
            "GIT_COMMITTER_EMAIL": committer[1],
            "GIT_COMMITTER_DATE": date,
        }

    def rev(self, repo: Repo, branch: str) -> str | None:
        """A branch's sha, from one ``for-each-ref`` per repository per request."""
        refs = self._ref_cache.get(repo.path)
        if refs is None:
            fmt = "--format=%(objectname) %(refname)"
            out = self.git(repo, "for-each-ref", fmt, "refs/heads/")
            refs = {}
            for line in out.splitlines():
                oid, _, ref = line.partition(" ")
                refs[ref.removeprefix("refs/heads/")] = oid
            self._ref_cache[repo.path] = refs
        return refs.get(branch)

    def fresh(self) -> None:
        """Forget the refs read so far: the next look-up sees pushes made since."""
        self._ref_cache.clear()

    def head_oid(self, pr: PullRequest) -> str:
        """Live from the bare repository while OPEN (remembered if the branch goes away)."""
        if pr.state == "OPEN":
            live = self.rev(pr.repo, pr.head)
            if live is not None:
                pr.head_oid = live
        return pr.head_oid

    def base_oid(self, pr: PullRequest) -> str | None:
        if pr.state != "OPEN":
            return pr.base_oid
        return self.rev(pr.repo, pr.base)

    def is_ancestor(self, repo: Repo, ancestor: str, descendant: str) -> bool:
        key = (repo.path, "is-ancestor", ancestor, descendant)
        if key not in self._oid_cache:  # a fact about two commits never changes
            git_dir = f"--git-dir={repo.path}"
            done = subprocess.run(
                ["git", git_dir, "merge-base", "--is-ancestor", ancestor, descendant],
                capture_output=True,
                check=False,
            )
            self._oid_cache[key] = done.returncode == 0
        return bool(self._oid_cache[key])

    def merge_tree(self, pr: PullRequest) -> str | None:
        """The tree of merging head into base, or None on conflicts (``git merge-tree``)."""
        base = self.base_oid(pr)
        head = self.head_oid(pr)
        if base is None:
            return None
        key = (pr.repo.path, "merge-tree", base, head)
        if key not in self._oid_cache:
            done = subprocess.run(
                ["git", f"--git-dir={pr.repo.path}", "merge-tree", "--write-tree", base, head],
                capture_output=True,
                text=True,
                check=False,
            )
            self._oid_cache[key] = done.stdout.split()[0] if done.returncode == 0 else None
        tree = self._oid_cache[key]
        return str(tree) if tree is not None else None

    def pr_commits(self, pr: PullRequest) -> list[str]:
        head = self.head_oid(pr)
        base = self.base_oid(pr)
        key = (pr.repo.path, "rev-list", head, base)
        if key not in self._oid_cache:
            args = ["rev-list", "--reverse", head] + (["--not", base] if base else [])
            self._oid_cache[key] = self.git(pr.repo, *args).split()
        return list(self._oid_cache[key])

    # -- for the server's helpers

    def add(self, owner: str, name: str, *, source: Path | None, default_branch: str) -> Path:
        """Create ``root/owner/name.git`` (bare); push every branch and tag of ``source``."""
        path = self.root / owner / f"{name}.git"
        if (owner.lower(), name.lower()) in self.repos:
            raise ValueError(f"repository {owner}/{name} already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        _run(["git", "init", "--bare", "-q", "-b", default_branch, str(path)])
        if source is not None:
            _run(
                [
                    "git",
                    "-C",
                    str(source),
                    "push",
                    "-q",
                    str(path),
                    "refs/heads/*:refs/heads/*",
                    "refs/tags/*:refs/tags/*",
                ]
            )
        repo = Repo(owner, name, path, self.new_id("R_kgDO"), default_branch)
        self.repos[(owner.lower(), name.lower())] = repo
        self.nodes[repo.id] = repo
        return path

    def commit_files(self, repo: Repo, branch: str, files: dict[str, str], message: str) -> str:
        """Commit ``files`` on top of ``branch`` straight in the bare repo ("someone pushed").

        A missing branch starts from the default branch.
        """
        parent = self.rev(repo, branch) or self.rev(repo, repo.default_branch)
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if parent:
                self.git(repo, "read-tree", parent, env=env)
            for path, content in files.items():
                blob = self.git(repo, "hash-object", "-w", "--stdin", input=content).strip()
                self.git(
                    repo,
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    f"100644,{blob},{path}",
                    env=env,
                )
            tree = self.git(repo, "write-tree", env=env).strip()
        parents = ["-p", parent] if parent else []
        identity = ("GitHub Tests", "tests@github.invalid")
        commit = self.git(
            repo,
            "commit-tree",
            tree,
            *parents,
            "-m",
            message,
            env=self.identity(identity, identity),
        ).strip()
        old = self.rev(repo, branch) or "0" * 40
        self.git(repo, "update-ref", f"refs/heads/{branch}", commit, old)
        self.fresh()
        return commit


def _run(
    args: Sequence[str], *, input: str | None = None, env: dict[str, str] | None = None
) -> str:
    """Run git; raise with its stderr on failure."""
    full_env = {**os.environ, **env} if env else None
    done = subprocess.run(
        list(args), input=input, capture_output=True, text=True, env=full_env, check=False
    )
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, list(args), done.stdout, done.stderr)
    return done.stdout
