"""A local GitHub for tests of agentctl's GitHub forge: GraphQL API v4 plus git over HTTP.

GraphQL documents are executed against GitHub's published schema (see
``GraphQLServer``), so a field GitHub lacks fails here as it would there; the
answers come from real bare repositories under ``root/<owner>/<name>.git``, which
the same port also serves over git's smart HTTP protocol. A test pushes a branch
with the real git client, opens a pull request through the real GraphQL document,
and the merge it asks for is a real commit on the bare repository's base branch.

What GitHub decides and this server reproduces: the error shapes (``type`` at the
top level of each error, validation errors with ``extensions.code`` and no
``data``), 401 "Bad credentials" outside GraphQL, the rate-limit headers, the
refusals a forge client must handle (duplicate PR, self-approval, stale
``expectedHeadOid``, conflicts) and live ``headRefOid``/``mergeable`` computed
from the bare repository, so a head moved behind the client's back is seen.

Usage::

    with GitHubServer(schema, tmp_path / "gh") as server:
        server.add_repo("acme", "app", source=repo)
        git push server.remote_url("acme", "app") ...   # Basic auth, password = token
        ... GraphQL at server.graphql_url with "Authorization: bearer <token>" ...
        assert server.pr(1)["state"] == "MERGED"
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.testing.git_http import GitHttpBackend, GitRequest
from agentctl.testing.graphql_server import GraphQLServer, Headers, Recorded, Reply

if TYPE_CHECKING:
    from graphql import ExecutionResult, GraphQLError, GraphQLResolveInfo

    from agentctl.testing.llm_http import Handler

    Info = GraphQLResolveInfo[Any]

__all__ = ["GitHubError", "GitHubServer", "GitRequest"]

RATE_LIMIT = 5000
RATE_WINDOW = 3600
STATUS_STATES = frozenset({"SUCCESS", "PENDING", "FAILURE", "ERROR", "EXPECTED"})
MERGE_METHODS = frozenset({"MERGE", "SQUASH", "REBASE"})
REVIEW_EVENTS = {
    "APPROVE": "APPROVED",
    "REQUEST_CHANGES": "CHANGES_REQUESTED",
    "COMMENT": "COMMENTED",
}
BAD_CREDENTIALS = {
    "message": "Bad credentials",
    "documentation_url": "https://docs.github.com/graphql",
    "status": "401",
}
INTERNAL_ERROR = (
    "Something went wrong while executing your query. This may be the result of a timeout, "
    "or it could be a GitHub bug. Please include `{}` when reporting this issue."
)
BOT = ("GitHub", "noreply@github.com")  # GitHub commits merges as this committer


class GitHubError(Exception):
    """A resolver's refusal, rendered like GitHub: ``{"type", "path", "locations", "message"}``."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(message)
        self.type = type
        self.message = message


# -- the store ----------------------------------------------------------------------


@dataclass
class _Review:
    id: str
    db_id: int
    state: str
    body: str
    commit: str | None
    author: str
    submitted_at: float


@dataclass
class _Comment:
    id: str
    db_id: int
    body: str
    author: str
    created_at: float


@dataclass
class _Repo:
    owner: str
    name: str
    path: Path
    id: str
    default_branch: str
    statuses: dict[str, str] = field(default_factory=dict)
    prs: dict[int, _PullRequest] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def url(self) -> str:
        return f"https://github.com/{self.full_name}"


@dataclass
class _PullRequest:
    repo: _Repo
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
    reviews: list[_Review] = field(default_factory=list)
    comments: list[_Comment] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.repo.url}/pull/{self.number}"


# -- GraphQL-facing views -----------------------------------------------------------
# graphql-core's default resolver reads attributes (calling methods with ``info`` and the
# field's arguments); ``__typename`` (name-mangled, which graphql-core undoes) picks the
# object type behind an interface such as Node, Actor or GitObject.


class UserView:
    __typename = "User"

    def __init__(self, login: str) -> None:
        self.login = login
        self.id = "U_kgDO" + hashlib.sha1(login.encode()).hexdigest()[:12].upper()
        self.url = f"https://github.com/{login}"
        self.resourcePath = f"/{login}"
        self.avatarUrl = f"https://avatars.githubusercontent.com/{login}"
        self.name = login


class CommitView:
    __typename = "Commit"

    def __init__(self, server: GitHubServer, repo: _Repo, oid: str) -> None:
        self._server = server
        self._repo = repo
        self.oid = oid
        self.abbreviatedOid = oid[:7]
        self.id = "C_kwDO" + oid[:20]
        self.url = f"{repo.url}/commit/{oid}"
        self.commitUrl = self.url
        self.resourcePath = f"/{repo.full_name}/commit/{oid}"

    def statusCheckRollup(self, info: Info) -> dict[str, Any] | None:
        state = self._repo.statuses.get(self.oid)
        if state is None:
            return None
        return {"id": "SC_kwDO" + self.oid[:20], "state": state, "commit": self}

    def message(self, info: Info) -> str:
        return self._server._git(self._repo, "log", "-1", "--format=%B", self.oid).rstrip("\n")

    def messageHeadline(self, info: Info) -> str:
        return self.message(info).split("\n", 1)[0]


class RefView:
    __typename = "Ref"

    def __init__(self, server: GitHubServer, repo: _Repo, name: str, oid: str) -> None:
        self.id = "REF_kwDO" + base64.b32encode(f"{repo.id}:{name}".encode()).decode()[:16]
        self.name = name
        self.prefix = "refs/heads/"
        self.target = CommitView(server, repo, oid)
        self.repository = RepositoryView(server, repo)


class RepositoryView:
    __typename = "Repository"

    def __init__(self, server: GitHubServer, repo: _Repo) -> None:
        self._server = server
        self._repo = repo
        self.id = repo.id
        self.name = repo.name
        self.nameWithOwner = repo.full_name
        self.url = repo.url
        self.resourcePath = f"/{repo.full_name}"
        self.isPrivate = False
        self.isArchived = False
        self.isFork = False
        self.owner = UserView(repo.owner)

    def defaultBranchRef(self, info: Info) -> RefView | None:
        oid = self._server._rev(self._repo, self._repo.default_branch)
        if oid is None:
            return None  # an empty repository has no default branch yet
        return RefView(self._server, self._repo, self._repo.default_branch, oid)

    def pullRequest(self, info: Info, number: int) -> PullRequestView:
        pr = self._repo.prs.get(number)
        if pr is None:
            raise GitHubError(
                "NOT_FOUND",
                f"Could not resolve to a PullRequest with the number of {number}.",
            )
        return PullRequestView(self._server, pr)

    def pullRequests(
        self,
        info: Info,
        states: list[str] | None = None,
        headRefName: str | None = None,
        baseRefName: str | None = None,
        labels: list[str] | None = None,
        orderBy: dict[str, str] | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> dict[str, Any]:
        prs = [
            pr
            for pr in self._repo.prs.values()
            if (not states or pr.state in states)
            and (headRefName is None or pr.head == headRefName)
            and (baseRefName is None or pr.base == baseRefName)
            and not labels  # pull requests here carry no labels
        ]
        order = (orderBy or {}).get("field", "CREATED_AT")
        keys: dict[str, Callable[[_PullRequest], tuple[float, int]]] = {
            "CREATED_AT": lambda pr: (pr.created_at, pr.number),
            "UPDATED_AT": lambda pr: (pr.updated_at, pr.number),
            "COMMENTS": lambda pr: (len(pr.comments), pr.number),
        }
        prs.sort(key=keys.get(order, keys["CREATED_AT"]))
        if (orderBy or {}).get("direction") == "DESC":
            prs.reverse()
        return _connection(
            "pullRequests",
            [(pr.number, PullRequestView(self._server, pr)) for pr in prs],
            first=first,
            after=after,
            last=last,
            before=before,
        )


class ReviewView:
    __typename = "PullRequestReview"

    def __init__(self, server: GitHubServer, pr: _PullRequest, review: _Review) -> None:
        self.id = review.id
        self.databaseId = review.db_id
        self.state = review.state
        self.body = review.body
        self.submittedAt = _iso(review.submitted_at) if review.state != "PENDING" else None
        self.createdAt = _iso(review.submitted_at)
        self.url = f"{pr.url}#pullrequestreview-{review.db_id}"
        self.author = UserView(review.author)
        self.commit = CommitView(server, pr.repo, review.commit) if review.commit else None
        self.pullRequest = PullRequestView(server, pr)


class CommentView:
    __typename = "IssueComment"

    def __init__(self, server: GitHubServer, pr: _PullRequest, comment: _Comment) -> None:
        self.id = comment.id
        self.databaseId = comment.db_id
        self.body = comment.body
        self.createdAt = _iso(comment.created_at)
        self.url = f"{pr.url}#issuecomment-{comment.db_id}"
        self.author = UserView(comment.author)
        self.pullRequest = PullRequestView(server, pr)


class PullRequestView:
    __typename = "PullRequest"

    def __init__(self, server: GitHubServer, pr: _PullRequest) -> None:
        self._server = server
        self._pr = pr
        self.id = pr.id
        self.number = pr.number
        self.title = pr.title
        self.body = pr.body
        self.url = pr.url
        self.resourcePath = f"/{pr.repo.full_name}/pull/{pr.number}"
        self.state = pr.state
        self.isDraft = pr.draft
        self.closed = pr.state != "OPEN"
        self.merged = pr.state == "MERGED"
        self.mergedAt = _iso(pr.merged_at) if pr.merged_at is not None else None
        self.closedAt = _iso(pr.closed_at) if pr.closed_at is not None else None
        self.createdAt = _iso(pr.created_at)
        self.updatedAt = _iso(pr.updated_at)
        self.headRefName = pr.head
        self.baseRefName = pr.base
        self.author = UserView(pr.author)
        self.locked = False

    def repository(self, info: Info) -> RepositoryView:
        return RepositoryView(self._server, self._pr.repo)

    def headRefOid(self, info: Info) -> str:
        return self._server._head_oid(self._pr)

    def baseRefOid(self, info: Info) -> str:
        return self._server._base_oid(self._pr) or ""

    def mergeable(self, info: Info) -> str:
        if self._pr.state != "OPEN":
            return "UNKNOWN"
        tree = self._server._merge_tree(self._pr)
        return "CONFLICTING" if tree is None else "MERGEABLE"

    def mergeStateStatus(self, info: Info) -> str:
        if self._pr.state != "OPEN":
            return "UNKNOWN"
        if self._server._merge_tree(self._pr) is None:
            return "DIRTY"
        if self._pr.draft:
            return "DRAFT"
        base = self._server._base_oid(self._pr)
        head = self._server._head_oid(self._pr)
        if base is not None and not self._server._is_ancestor(self._pr.repo, base, head):
            return "BEHIND"
        if self._pr.repo.statuses.get(head) in ("FAILURE", "ERROR"):
            return "UNSTABLE"
        return "CLEAN"

    def reviewDecision(self, info: Info) -> str:
        latest: dict[str, str] = {}
        for review in self._pr.reviews:
            if review.state in ("APPROVED", "CHANGES_REQUESTED"):
                latest[review.author] = review.state
        if "CHANGES_REQUESTED" in latest.values():
            return "CHANGES_REQUESTED"
        if "APPROVED" in latest.values():
            return "APPROVED"
        return "REVIEW_REQUIRED"

    def mergeCommit(self, info: Info) -> CommitView | None:
        if self._pr.merge_commit is None:
            return None
        return CommitView(self._server, self._pr.repo, self._pr.merge_commit)

    def headRef(self, info: Info) -> RefView | None:
        oid = self._server._rev(self._pr.repo, self._pr.head)
        return None if oid is None else RefView(self._server, self._pr.repo, self._pr.head, oid)

    def baseRef(self, info: Info) -> RefView | None:
        oid = self._server._rev(self._pr.repo, self._pr.base)
        return None if oid is None else RefView(self._server, self._pr.repo, self._pr.base, oid)

    def reviews(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        author: str | None = None,
        states: list[str] | None = None,
    ) -> dict[str, Any]:
        items = [
            (index, ReviewView(self._server, self._pr, review))
            for index, review in enumerate(self._pr.reviews, 1)
            if (author is None or review.author == author)
            and (not states or review.state in states)
        ]
        return _connection("reviews", items, first=first, after=after, last=last, before=before)

    def comments(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        orderBy: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        items = [
            (index, CommentView(self._server, self._pr, comment))
            for index, comment in enumerate(self._pr.comments, 1)
        ]
        if (orderBy or {}).get("direction") == "DESC":
            items.reverse()
        return _connection("comments", items, first=first, after=after, last=last, before=before)

    def commits(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> dict[str, Any]:
        oids = self._server._pr_commits(self._pr)
        items = [
            (
                index,
                {
                    "__typename": "PullRequestCommit",
                    "id": f"PURC_kwDO{oid[:20]}",
                    "commit": CommitView(self._server, self._pr.repo, oid),
                    "url": f"{self._pr.url}/commits/{oid}",
                    "resourcePath": f"/{self._pr.repo.full_name}/pull/{self._pr.number}"
                    f"/commits/{oid}",
                    "pullRequest": self,
                },
            )
            for index, oid in enumerate(oids, 1)
        ]
        return _connection("commits", items, first=first, after=after, last=last, before=before)


# -- Query and Mutation ---------------------------------------------------------------


class _Root:
    """The root value: Query and Mutation fields as methods (all run under the server lock)."""

    def __init__(self, server: GitHubServer) -> None:
        self._server = server

    # Query

    def viewer(self, info: Info) -> UserView:
        return UserView(self._server.login)

    def repository(
        self, info: Info, owner: str, name: str, followRenames: bool = True
    ) -> RepositoryView:
        repo = self._server._repos.get((owner.lower(), name.lower()))
        if repo is None:
            raise GitHubError(
                "NOT_FOUND", f"Could not resolve to a Repository with the name '{owner}/{name}'."
            )
        return RepositoryView(self._server, repo)

    def rateLimit(self, info: Info, dryRun: bool = False) -> dict[str, Any]:
        used, remaining, reset = self._server._rate_state()
        return {
            "limit": RATE_LIMIT,
            "cost": 1,
            "nodeCount": 1,
            "remaining": remaining,
            "used": used,
            "resetAt": _iso(reset),
        }

    def node(self, info: Info, id: str) -> object:
        return self._server._node(id)

    def nodes(self, info: Info, ids: list[str]) -> list[object]:
        return [self._server._node(node_id) for node_id in ids]

    # Mutation

    def createPullRequest(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        repo = self._server._repo_by_id(input["repositoryId"])
        head = str(input["headRefName"])
        if ":" in head:  # "owner:branch" names the head repository's owner
            head_owner, _, head = head.partition(":")
            if head_owner.lower() != repo.owner.lower():
                raise GitHubError("UNPROCESSABLE", "Head repository forks are not supported here.")
        pr = self._server._create_pr(
            repo,
            head=head,
            base=str(input["baseRefName"]),
            title=str(input["title"]),
            body=str(input.get("body") or ""),
            draft=bool(input.get("draft")),
            author=self._server.login,
        )
        return {
            "clientMutationId": input.get("clientMutationId"),
            "pullRequest": PullRequestView(self._server, pr),
        }

    def addPullRequestReview(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        pr = self._server._pr_by_id(input["pullRequestId"])
        review = self._server._add_review(
            pr,
            event=input.get("event"),
            body=str(input.get("body") or ""),
            commit=input.get("commitOID"),
            author=self._server.login,
        )
        view = ReviewView(self._server, pr, review)
        return {
            "clientMutationId": input.get("clientMutationId"),
            "pullRequestReview": view,
            "reviewEdge": {"cursor": _cursor(len(pr.reviews)), "node": view},
        }

    def mergePullRequest(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        pr = self._server._pr_by_id(input["pullRequestId"])
        self._server._merge(
            pr,
            method=str(input.get("mergeMethod") or "MERGE"),
            expected_head=input.get("expectedHeadOid"),
            headline=input.get("commitHeadline"),
            body=input.get("commitBody"),
            author_email=input.get("authorEmail"),
        )
        return {
            "clientMutationId": input.get("clientMutationId"),
            "pullRequest": PullRequestView(self._server, pr),
            "actor": UserView(self._server.login),
        }

    def closePullRequest(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        pr = self._server._pr_by_id(input["pullRequestId"])
        self._server._close(pr)
        return {
            "clientMutationId": input.get("clientMutationId"),
            "pullRequest": PullRequestView(self._server, pr),
        }

    def addComment(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        pr = self._server._pr_by_id(input["subjectId"])
        comment = self._server._add_comment(pr, str(input["body"]), self._server.login)
        view = CommentView(self._server, pr, comment)
        return {
            "clientMutationId": input.get("clientMutationId"),
            "commentEdge": {"cursor": _cursor(len(pr.comments)), "node": view},
            "subject": PullRequestView(self._server, pr),
            "timelineEdge": None,
        }


# -- the server ---------------------------------------------------------------------


class GitHubServer(GraphQLServer):
    """GitHub's GraphQL API and git smart HTTP for the repositories under ``root``.

    Faults (``inject(name, times)``): ``rate_limited`` (200, RATE_LIMITED, remaining 0),
    ``rate_limit`` (the 2026 ``RATE_LIMIT``/``graphql_rate_limit`` shape), ``secondary``
    (403 with ``retry-after: 1``), ``bad_gateway`` (502, text) and ``auth`` (401).
    """

    def __init__(
        self,
        schema_path: str | Path,
        root: Path,
        *,
        token: str = "ghp_test",
        login: str = "agentctl-bot",
        allow_self_review: bool = False,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(schema_path)
        self.git_root = Path(root).resolve()
        self.git_root.mkdir(parents=True, exist_ok=True)
        self._token = token
        self.login = login
        self.allow_self_review = allow_self_review
        self.clock: Callable[[], float] = clock or time.time
        self._git_http = GitHttpBackend(self.git_root, token)
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._nodes: dict[str, _Repo | _PullRequest] = {}
        self._sequence = 0
        self._used = 0
        self._reset_at = self.clock() + RATE_WINDOW
        self._root = _Root(self)
        # Refs are read once per request (cleared in before_execute() and by every helper);
        # results keyed by commit ids (merge trees, ancestry, commit lists) never go stale.
        self._ref_cache: dict[Path, dict[str, str]] = {}
        self._oid_cache: dict[tuple[Path, str, str, str | None], Any] = {}

    # -- public helpers ---------------------------------------------------------------

    @property
    def git_requests(self) -> list[GitRequest]:
        """Every git HTTP request (method, path, authorised, status); never credentials."""
        return self._git_http.requests

    def add_repo(
        self,
        owner: str,
        name: str,
        *,
        source: Path | None = None,
        default_branch: str = "main",
    ) -> Path:
        """Create ``root/owner/name.git`` (bare); push every branch and tag of ``source``."""
        path = self.git_root / owner / f"{name}.git"
        with self._lock:
            if (owner.lower(), name.lower()) in self._repos:
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
            repo = _Repo(owner, name, path, self._new_id("R_kgDO"), default_branch)
            self._repos[(owner.lower(), name.lower())] = repo
            self._nodes[repo.id] = repo
        return path

    def remote_url(self, owner: str, name: str) -> str:
        return f"{self.url}/{owner}/{name}.git"

    def head(self, owner: str, name: str, branch: str) -> str | None:
        """The branch's sha in the bare repository, None when it does not exist."""
        with self._lock:
            self._fresh()
            return self._rev(self._repo(owner, name), branch)

    def commit_to_branch(
        self, owner: str, name: str, branch: str, files: dict[str, str], message: str
    ) -> str:
        """Commit ``files`` on top of ``branch`` straight in the bare repo ("someone pushed").

        A missing branch starts from the default branch.
        """
        with self._lock:
            self._fresh()
            repo = self._repo(owner, name)
            parent = self._rev(repo, branch) or self._rev(repo, repo.default_branch)
            with tempfile.TemporaryDirectory() as tmp:
                env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
                if parent:
                    self._git(repo, "read-tree", parent, env=env)
                for path, content in files.items():
                    blob = self._git(repo, "hash-object", "-w", "--stdin", input=content).strip()
                    self._git(
                        repo,
                        "update-index",
                        "--add",
                        "--cacheinfo",
                        f"100644,{blob},{path}",
                        env=env,
                    )
                tree = self._git(repo, "write-tree", env=env).strip()
            parents = ["-p", parent] if parent else []
            identity = ("GitHub Tests", "tests@github.invalid")
            commit = self._git(
                repo,
                "commit-tree",
                tree,
                *parents,
                "-m",
                message,
                env=self._identity(identity, identity),
            ).strip()
            old = self._rev(repo, branch) or "0" * 40
            self._git(repo, "update-ref", f"refs/heads/{branch}", commit, old)
            self._fresh()
            return commit

    def set_status(self, owner: str, name: str, sha: str, state: str) -> None:
        """The ``statusCheckRollup.state`` of a commit (a branch name is resolved first)."""
        if state not in STATUS_STATES:
            raise ValueError(f"state must be one of {sorted(STATUS_STATES)}, not {state!r}")
        with self._lock:
            self._fresh()
            repo = self._repo(owner, name)
            oid = sha if re.fullmatch(r"[0-9a-f]{40}", sha) else self._rev(repo, sha)
            if oid is None:
                raise ValueError(f"{sha!r} is neither a sha nor a branch of {repo.full_name}")
            repo.statuses[oid] = state

    def open_pr_as(
        self,
        owner: str,
        name: str,
        head: str,
        base: str,
        title: str,
        author: str = "someone",
        *,
        body: str = "",
    ) -> int:
        """Open a pull request "by hand" as another user; returns its number."""
        with self._lock:
            self._fresh()
            repo = self._repo(owner, name)
            pr = self._create_pr(
                repo, head=head, base=base, title=title, body=body, draft=False, author=author
            )
            return pr.number

    def pr(self, number: int, owner: str | None = None, name: str | None = None) -> dict[str, Any]:
        """A snapshot of a pull request for assertions (owner/name optional with one repo)."""
        with self._lock:
            self._fresh()
            repo = self._repo(owner, name)
            pr = repo.prs.get(number)
            if pr is None:
                raise KeyError(f"{repo.full_name} has no pull request #{number}")
            return {
                "number": pr.number,
                "state": pr.state,
                "head": pr.head,
                "base": pr.base,
                "head_oid": self._head_oid(pr),
                "merge_commit": pr.merge_commit,
                "title": pr.title,
                "body": pr.body,
                "author": pr.author,
                "draft": pr.draft,
                "reviews": [
                    {"state": r.state, "body": r.body, "commit": r.commit, "author": r.author}
                    for r in pr.reviews
                ],
                "comments": [c.body for c in pr.comments],
                "merge_method": pr.merge_method,
            }

    # -- GraphQLServer hooks --------------------------------------------------------

    def authenticate(self, headers: dict[str, str]) -> Reply | None:
        """Check the token, then charge the request (a refused one costs nothing)."""
        scheme, _, token = headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() not in ("bearer", "token") or token.strip() != self._token:
            return Reply(401, BAD_CREDENTIALS)
        with self._lock:
            self._roll_window()
            self._used += 1
        return None

    def fault(self, name: str) -> Reply:
        exhausted = [("x-ratelimit-remaining", "0")]
        if name == "rate_limited":
            message = "API rate limit exceeded for user ID 1."
            return Reply(200, {"errors": [{"type": "RATE_LIMITED", "message": message}]}, exhausted)
        if name == "rate_limit":
            error = {
                "type": "RATE_LIMIT",
                "code": "graphql_rate_limit",
                "message": "API rate limit exceeded",
            }
            return Reply(200, {"errors": [error]}, exhausted)
        if name == "secondary":
            message = (
                "You have exceeded a secondary rate limit. "
                "Please wait a few minutes before you try again."
            )
            return Reply(403, {"message": message}, [("retry-after", "1")])
        if name == "bad_gateway":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
            return Reply(502, page, [("content-type", "text/html")])
        if name == "auth":
            return Reply(401, BAD_CREDENTIALS)
        return super().fault(name)

    def root(self) -> Any:
        return self._root

    def before_execute(self, record: Recorded) -> None:
        self._fresh()  # each request reads the refs anew, once

    def headers(self, record: Recorded, reply: Reply) -> Headers:
        used, remaining, reset = self._rate_state()
        return [
            ("x-ratelimit-limit", str(RATE_LIMIT)),
            ("x-ratelimit-remaining", str(remaining)),
            ("x-ratelimit-used", str(used)),
            ("x-ratelimit-reset", str(int(reset))),
            ("x-ratelimit-resource", "graphql"),
            ("x-github-request-id", _request_id()),
            ("x-github-media-type", "github.v4; format=json"),
        ]

    def render(self, result: ExecutionResult, *, validation: bool) -> Reply:
        errors = list(result.errors or [])
        if validation or (result.data is None and errors and all(e.path is None for e in errors)):
            # Unparsable or invalid documents and bad variables: no data key at all.
            return Reply(200, {"errors": [_validation_error(e) for e in errors]})
        body: dict[str, Any] = {"data": result.data}
        if errors:
            body["errors"] = [self._execution_error(e) for e in errors]
        return Reply(200, body)

    def other(self, handler: Handler) -> None:
        path = handler.path.split("?", 1)[0]
        if re.match(r"^/[^/]+/[^/]+\.git(/|$)", path):
            try:
                self._git_http.handle(handler)
            except OSError:
                raise  # the client went away; the base class closes the connection
            except Exception as exc:
                with self._lock:
                    self.failures.append(f"git http error: {exc!r}")
                handler.close_connection = True
                handler.send_whole(500, [("content-type", "text/plain")], b"git http error\n")
            return
        body = b'{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}'
        handler.send_whole(404, [("content-type", "application/json; charset=utf-8")], body)

    # -- internals: errors and rate limits -----------------------------------------

    def _execution_error(self, error: GraphQLError) -> dict[str, Any]:
        formatted = error.formatted
        out: dict[str, Any] = {}
        original = error.original_error
        if isinstance(original, GitHubError):
            out["type"] = original.type
        if formatted.get("path") is not None:
            out["path"] = formatted["path"]
        if formatted.get("locations") is not None:
            out["locations"] = formatted["locations"]
        if isinstance(original, GitHubError):
            out["message"] = original.message
        else:
            # Anything else is this fake failing (a bug, or a field it does not implement).
            with self._lock:
                self.failures.append(f"{error.message} at {formatted.get('path')}")
            out["message"] = (
                INTERNAL_ERROR.format(_request_id()) if original is not None else error.message
            )
        return out

    def _roll_window(self) -> None:
        now = self.clock()
        if now >= self._reset_at:
            self._used = 0
            self._reset_at = now + RATE_WINDOW

    def _rate_state(self) -> tuple[int, int, float]:
        """(used, remaining, reset epoch seconds) of the current window."""
        with self._lock:
            return self._used, max(0, RATE_LIMIT - self._used), self._reset_at

    # -- internals: the store ---------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        self._sequence += 1
        return f"{prefix}{self._sequence:08X}"

    def _now(self) -> float:
        return self.clock()

    def _repo(self, owner: str | None, name: str | None) -> _Repo:
        if owner is None or name is None:
            if len(self._repos) != 1:
                raise ValueError("name the repository (owner, name): there is not exactly one")
            return next(iter(self._repos.values()))
        repo = self._repos.get((owner.lower(), name.lower()))
        if repo is None:
            raise KeyError(f"no repository {owner}/{name}; add_repo() it first")
        return repo

    def _node(self, node_id: str) -> object:
        found = self._nodes.get(node_id)
        if isinstance(found, _Repo):
            return RepositoryView(self, found)
        if isinstance(found, _PullRequest):
            return PullRequestView(self, found)
        raise GitHubError(
            "NOT_FOUND", f"Could not resolve to a node with the global id of '{node_id}'"
        )

    def _repo_by_id(self, node_id: str) -> _Repo:
        found = self._nodes.get(node_id)
        if not isinstance(found, _Repo):
            raise _no_node(node_id)
        return found

    def _pr_by_id(self, node_id: str) -> _PullRequest:
        found = self._nodes.get(node_id)
        if not isinstance(found, _PullRequest):
            raise _no_node(node_id)
        return found

    def _create_pr(
        self, repo: _Repo, *, head: str, base: str, title: str, body: str, draft: bool, author: str
    ) -> _PullRequest:
        head_oid = self._rev(repo, head)
        base_oid = self._rev(repo, base)
        if head_oid is None:
            raise GitHubError(
                "UNPROCESSABLE",
                "Head sha can't be blank, Base sha can't be blank, "
                f"No commits between {base} and {head}, Head ref must be a branch",
            )
        if base_oid is None:
            raise GitHubError("UNPROCESSABLE", "Base ref must be a branch")
        for other in repo.prs.values():
            if other.state == "OPEN" and other.head == head and other.base == base:
                raise GitHubError(
                    "UNPROCESSABLE", f"A pull request already exists for {repo.owner}:{head}."
                )
        if self._is_ancestor(repo, head_oid, base_oid):
            raise GitHubError("UNPROCESSABLE", f"No commits between {base} and {head}")
        now = self._now()
        number = max(repo.prs, default=0) + 1
        pr = _PullRequest(
            repo=repo,
            number=number,
            id=self._new_id("PR_kwDO"),
            title=title,
            body=body,
            head=head,
            base=base,
            author=author,
            draft=draft,
            created_at=now,
            updated_at=now,
            head_oid=head_oid,
        )
        repo.prs[number] = pr
        self._nodes[pr.id] = pr
        return pr

    def _add_review(
        self, pr: _PullRequest, *, event: str | None, body: str, commit: str | None, author: str
    ) -> _Review:
        if event == "DISMISS":
            raise GitHubError("UNPROCESSABLE", "A review can not be submitted with a DISMISS event")
        state = REVIEW_EVENTS[event] if event else "PENDING"
        if author == pr.author and not self.allow_self_review:
            if state == "APPROVED":
                raise GitHubError("UNPROCESSABLE", "Can not approve your own pull request")
            if state == "CHANGES_REQUESTED":
                raise GitHubError(
                    "UNPROCESSABLE", "Can not request changes on your own pull request"
                )
        self._sequence += 1
        review = _Review(
            id=f"PRR_kwDO{self._sequence:08X}",
            db_id=self._sequence,
            state=state,
            body=body,
            commit=commit or self._head_oid(pr),
            author=author,
            submitted_at=self._now(),
        )
        pr.reviews.append(review)
        pr.updated_at = review.submitted_at
        return review

    def _add_comment(self, pr: _PullRequest, body: str, author: str) -> _Comment:
        self._sequence += 1
        comment = _Comment(
            f"IC_kwDO{self._sequence:08X}", self._sequence, body, author, self._now()
        )
        pr.comments.append(comment)
        pr.updated_at = comment.created_at
        return comment

    def _close(self, pr: _PullRequest) -> None:
        if pr.state == "MERGED":
            raise GitHubError("UNPROCESSABLE", "Pull request is already merged")
        if pr.state == "CLOSED":
            return
        pr.head_oid = self._head_oid(pr)
        pr.base_oid = self._base_oid(pr)
        pr.state = "CLOSED"
        pr.closed_at = pr.updated_at = self._now()

    def _merge(
        self,
        pr: _PullRequest,
        *,
        method: str,
        expected_head: str | None,
        headline: str | None,
        body: str | None,
        author_email: str | None,
    ) -> None:
        """Merge for real in the bare repository.

        MERGE writes a merge commit (parents: base, head). SQUASH writes one commit on
        base with the merged tree. REBASE is simplified: it also writes one commit with
        the merged tree (GitHub would replay each commit), so only its tree is faithful.
        """
        if pr.state == "MERGED":
            raise GitHubError("UNPROCESSABLE", "Pull request is already merged")
        if pr.state == "CLOSED":
            raise GitHubError("UNPROCESSABLE", "Pull request is closed")
        if method not in MERGE_METHODS:
            raise GitHubError("UNPROCESSABLE", f"Merge method {method} is not allowed")
        repo = pr.repo
        head = self._head_oid(pr)
        if expected_head is not None and expected_head != head:
            raise GitHubError(
                "UNPROCESSABLE", "Head branch was modified. Review and try the merge again."
            )
        if pr.draft:
            raise GitHubError("UNPROCESSABLE", "Pull Request is still a draft")
        base = self._base_oid(pr)
        tree = self._merge_tree(pr)
        if base is None or tree is None:
            raise GitHubError("UNPROCESSABLE", "Pull Request is not mergeable")
        if method == "MERGE":
            parents = ["-p", base, "-p", head]
            title = headline or f"Merge pull request #{pr.number} from {repo.owner}/{pr.head}"
            text = body if body is not None else pr.title
        else:
            parents = ["-p", base]
            title = headline or f"{pr.title} (#{pr.number})"
            subjects = self._git(repo, "log", "--reverse", "--format=* %s", head, "--not", base)
            text = body if body is not None else subjects.strip()
        message = f"{title}\n\n{text}".rstrip() + "\n"
        author = (self.login, author_email or f"{self.login}@users.noreply.github.com")
        commit = self._git(
            repo,
            "commit-tree",
            tree,
            *parents,
            input=message,
            env=self._identity(author, BOT),
        ).strip()
        try:
            self._git(repo, "update-ref", f"refs/heads/{pr.base}", commit, base)
        except subprocess.CalledProcessError as exc:
            self._fresh()
            raise GitHubError(
                "UNPROCESSABLE", "Base branch was modified. Review and try the merge again."
            ) from exc
        self._fresh()
        pr.head_oid = head
        pr.base_oid = base
        pr.state = "MERGED"
        pr.merge_commit = commit
        pr.merge_method = method
        pr.merged_at = pr.closed_at = pr.updated_at = self._now()

    # -- internals: git -------------------------------------------------------------

    def _git(
        self,
        repo: _Repo,
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        return _run(["git", f"--git-dir={repo.path}", *args], input=input, env=env)

    def _identity(self, author: tuple[str, str], committer: tuple[str, str]) -> dict[str, str]:
        date = f"@{int(self._now())} +0000"
        return {
            "GIT_AUTHOR_NAME": author[0],
            "GIT_AUTHOR_EMAIL": author[1],
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": committer[0],
            "GIT_COMMITTER_EMAIL": committer[1],
            "GIT_COMMITTER_DATE": date,
        }

    def _rev(self, repo: _Repo, branch: str) -> str | None:
        """A branch's sha, from one ``for-each-ref`` per repository per request."""
        refs = self._ref_cache.get(repo.path)
        if refs is None:
            fmt = "--format=%(objectname) %(refname)"
            out = self._git(repo, "for-each-ref", fmt, "refs/heads/")
            refs = {}
            for line in out.splitlines():
                oid, _, ref = line.partition(" ")
                refs[ref.removeprefix("refs/heads/")] = oid
            self._ref_cache[repo.path] = refs
        return refs.get(branch)

    def _fresh(self) -> None:
        """Forget the refs read so far: the next look-up sees pushes made since."""
        self._ref_cache.clear()

    def _head_oid(self, pr: _PullRequest) -> str:
        """Live from the bare repository while OPEN (remembered if the branch goes away)."""
        if pr.state == "OPEN":
            live = self._rev(pr.repo, pr.head)
            if live is not None:
                pr.head_oid = live
        return pr.head_oid

    def _base_oid(self, pr: _PullRequest) -> str | None:
        if pr.state != "OPEN":
            return pr.base_oid
        return self._rev(pr.repo, pr.base)

    def _is_ancestor(self, repo: _Repo, ancestor: str, descendant: str) -> bool:
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

    def _merge_tree(self, pr: _PullRequest) -> str | None:
        """The tree of merging head into base, or None on conflicts (``git merge-tree``)."""
        base = self._base_oid(pr)
        head = self._head_oid(pr)
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

    def _pr_commits(self, pr: _PullRequest) -> list[str]:
        head = self._head_oid(pr)
        base = self._base_oid(pr)
        key = (pr.repo.path, "rev-list", head, base)
        if key not in self._oid_cache:
            args = ["rev-list", "--reverse", head] + (["--not", base] if base else [])
            self._oid_cache[key] = self._git(pr.repo, *args).split()
        return list(self._oid_cache[key])


# -- helpers ------------------------------------------------------------------------


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


def _no_node(node_id: str) -> GitHubError:
    return GitHubError(
        "NOT_FOUND", f"Could not resolve to a node with the global id of '{node_id}'"
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cursor(key: int) -> str:
    return base64.b64encode(f"cursor:v2:{key}".encode()).decode()


def _request_id() -> str:
    parts = (secrets.token_hex(2), secrets.token_hex(2), secrets.token_hex(3))
    return ":".join(p.upper() for p in (*parts, secrets.token_hex(3), secrets.token_hex(4)))


def _connection(
    name: str,
    items: list[tuple[int, Any]],
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> dict[str, Any]:
    """A Relay connection over ``(key, node)`` pairs, with GitHub's pagination refusals."""
    if first is None and last is None:
        raise GitHubError(
            "MISSING_PAGINATION_BOUNDARIES",
            f"You must provide a `first` or `last` value to properly paginate the `{name}` "
            "connection.",
        )
    for arg, value in (("first", first), ("last", last)):
        if value is not None and value > 100:
            raise GitHubError(
                "EXCESSIVE_PAGINATION",
                f"Requesting {value} records on the `{name}` connection exceeds the `{arg}` "
                "limit of 100 records.",
            )
        if value is not None and value < 0:
            raise GitHubError("INVALID_ARGUMENTS", f"`{arg}` must be non-negative.")
    cursors = [_cursor(key) for key, _ in items]
    start, end = 0, len(items)
    if after is not None and after in cursors:
        start = cursors.index(after) + 1
    if before is not None and before in cursors:
        end = cursors.index(before)
    candidates = list(range(start, max(start, end)))
    window = candidates[:first] if first is not None else candidates
    narrowed = len(window)
    if last is not None:
        window = window[-last:] if last else []
    has_next = first is not None and len(candidates) > first
    has_previous = last is not None and narrowed > last
    return {
        "nodes": [items[i][1] for i in window],
        "edges": [{"cursor": cursors[i], "node": items[i][1]} for i in window],
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": cursors[window[0]] if window else None,
            "endCursor": cursors[window[-1]] if window else None,
        },
        "totalCount": len(items),
    }


_UNDEFINED_FIELD = re.compile(r"Cannot query field '([^']+)' on type '([^']+)'")
_UNKNOWN_ARGUMENT = re.compile(r"Unknown argument '([^']+)' on field '([^'.]+)\.([^']+)'")
_UNKNOWN_TYPE = re.compile(r"Unknown type '([^']+)'")
_MISSING_ARGUMENT = re.compile(r"Field '([^']+)' argument '([^']+)' of type '[^']+' is required")


def _validation_error(error: GraphQLError) -> dict[str, Any]:
    """GitHub's wording and ``extensions.code`` for a document graphql-core rejected."""
    message = error.message
    extensions: dict[str, Any]
    if match := _UNDEFINED_FIELD.search(message):
        field_name, type_name = match.groups()
        message = f"Field '{field_name}' doesn't exist on type '{type_name}'"
        extensions = {"code": "undefinedField", "typeName": type_name, "fieldName": field_name}
    elif match := _UNKNOWN_ARGUMENT.search(message):
        argument, type_name, field_name = match.groups()
        message = f"Field '{field_name}' doesn't accept argument '{argument}'"
        extensions = {
            "code": "argumentNotAccepted",
            "name": field_name,
            "typeName": "Field",
            "argumentName": argument,
        }
    elif match := _UNKNOWN_TYPE.search(message):
        message = f"No such type {match.group(1)}, so it can't be a fragment condition"
        extensions = {"code": "undefinedType", "typeName": match.group(1)}
    elif match := _MISSING_ARGUMENT.search(message):
        field_name, argument = match.groups()
        message = f"Field '{field_name}' is missing required arguments: {argument}"
        extensions = {
            "code": "missingRequiredArguments",
            "className": "Field",
            "name": field_name,
            "arguments": argument,
        }
    elif message.startswith("Syntax Error"):
        extensions = {"code": "parseError"}
    elif message.startswith("Variable"):
        extensions = {"code": "variableMismatch"}
    else:
        extensions = {"code": "validationError"}
    out: dict[str, Any] = {}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    out["message"] = message
    out["extensions"] = extensions
    return out
