"""What graphql-core resolves for the fake GitHub: view objects over the store, pagination.

Each view is built from a repository, pull request, review or comment record and reads
live values (heads, mergeability, statuses) from the bare repository when a field asks.
``connection`` pages lists with GitHub's refusals (no ``first``/``last``, over 100), and
``GitHubError`` is the refusal any resolver raises, rendered the way GitHub renders it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agentctl.testing.github_repos import BareRepos, Comment, PullRequest, Repo, Review

if TYPE_CHECKING:
    from graphql import GraphQLResolveInfo

    Info = GraphQLResolveInfo[Any]


class GitHubError(Exception):
    """A resolver's refusal, rendered like GitHub: ``{"type", "path", "locations", "message"}``."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(message)
        self.type = type
        self.message = message


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

    def __init__(self, store: BareRepos, repo: Repo, oid: str) -> None:
        self._store = store
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
        return self._store.git(self._repo, "log", "-1", "--format=%B", self.oid).rstrip("\n")

    def messageHeadline(self, info: Info) -> str:
        return self.message(info).split("\n", 1)[0]


class RefView:
    __typename = "Ref"

    def __init__(self, store: BareRepos, repo: Repo, name: str, oid: str) -> None:
        self.id = "REF_kwDO" + base64.b32encode(f"{repo.id}:{name}".encode()).decode()[:16]
        self.name = name
        self.prefix = "refs/heads/"
        self.target = CommitView(store, repo, oid)
        self.repository = RepositoryView(store, repo)


class RepositoryView:
    __typename = "Repository"

    def __init__(self, store: BareRepos, repo: Repo) -> None:
        self._store = store
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
        oid = self._store.rev(self._repo, self._repo.default_branch)
        if oid is None:
            return None  # an empty repository has no default branch yet
        return RefView(self._store, self._repo, self._repo.default_branch, oid)

    def pullRequest(self, info: Info, number: int) -> PullRequestView:
        pr = self._repo.prs.get(number)
        if pr is None:
            raise GitHubError(
                "NOT_FOUND",
                f"Could not resolve to a PullRequest with the number of {number}.",
            )
        return PullRequestView(self._store, pr)

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
        keys: dict[str, Callable[[PullRequest], tuple[float, int]]] = {
            "CREATED_AT": lambda pr: (pr.created_at, pr.number),
            "UPDATED_AT": lambda pr: (pr.updated_at, pr.number),
            "COMMENTS": lambda pr: (len(pr.comments), pr.number),
        }
        prs.sort(key=keys.get(order, keys["CREATED_AT"]))
        if (orderBy or {}).get("direction") == "DESC":
            prs.reverse()
        return connection(
            "pullRequests",
            [(pr.number, PullRequestView(self._store, pr)) for pr in prs],
            first=first,
            after=after,
            last=last,
            before=before,
        )


class ReviewView:
    __typename = "PullRequestReview"

    def __init__(self, store: BareRepos, pr: PullRequest, review: Review) -> None:
        self.id = review.id
        self.databaseId = review.db_id
        self.state = review.state
        self.body = review.body
        self.submittedAt = iso(review.submitted_at) if review.state != "PENDING" else None
        self.createdAt = iso(review.submitted_at)
        self.url = f"{pr.url}#pullrequestreview-{review.db_id}"
        self.author = UserView(review.author)
        self.commit = CommitView(store, pr.repo, review.commit) if review.commit else None
        self.pullRequest = PullRequestView(store, pr)


class CommentView:
    __typename = "IssueComment"

    def __init__(self, store: BareRepos, pr: PullRequest, comment: Comment) -> None:
        self.id = comment.id
        self.databaseId = comment.db_id
        self.body = comment.body
        self.createdAt = iso(comment.created_at)
        self.url = f"{pr.url}#issuecomment-{comment.db_id}"
        self.author = UserView(comment.author)
        self.pullRequest = PullRequestView(store, pr)


class PullRequestView:
    __typename = "PullRequest"

    def __init__(self, store: BareRepos, pr: PullRequest) -> None:
        self._store = store
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
        self.mergedAt = iso(pr.merged_at) if pr.merged_at is not None else None
        self.closedAt = iso(pr.closed_at) if pr.closed_at is not None else None
        self.createdAt = iso(pr.created_at)
        self.updatedAt = iso(pr.updated_at)
        self.headRefName = pr.head
        self.baseRefName = pr.base
        self.author = UserView(pr.author)
        self.locked = False

    def repository(self, info: Info) -> RepositoryView:
        return RepositoryView(self._store, self._pr.repo)

    def headRefOid(self, info: Info) -> str:
        return self._store.head_oid(self._pr)

    def baseRefOid(self, info: Info) -> str:
        return self._store.base_oid(self._pr) or ""

    def mergeable(self, info: Info) -> str:
        if self._pr.state != "OPEN":
            return "UNKNOWN"
        tree = self._store.merge_tree(self._pr)
        return "CONFLICTING" if tree is None else "MERGEABLE"

    def mergeStateStatus(self, info: Info) -> str:
        if self._pr.state != "OPEN":
            return "UNKNOWN"
        if self._store.merge_tree(self._pr) is None:
            return "DIRTY"
        if self._pr.draft:
            return "DRAFT"
        base = self._store.base_oid(self._pr)
        head = self._store.head_oid(self._pr)
        if base is not None and not self._store.is_ancestor(self._pr.repo, base, head):
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
        return CommitView(self._store, self._pr.repo, self._pr.merge_commit)

    def headRef(self, info: Info) -> RefView | None:
        oid = self._store.rev(self._pr.repo, self._pr.head)
        return None if oid is None else RefView(self._store, self._pr.repo, self._pr.head, oid)

    def baseRef(self, info: Info) -> RefView | None:
        oid = self._store.rev(self._pr.repo, self._pr.base)
        return None if oid is None else RefView(self._store, self._pr.repo, self._pr.base, oid)

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
            (index, ReviewView(self._store, self._pr, review))
            for index, review in enumerate(self._pr.reviews, 1)
            if (author is None or review.author == author)
            and (not states or review.state in states)
        ]
        return connection("reviews", items, first=first, after=after, last=last, before=before)

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
            (index, CommentView(self._store, self._pr, comment))
            for index, comment in enumerate(self._pr.comments, 1)
        ]
        if (orderBy or {}).get("direction") == "DESC":
            items.reverse()
        return connection("comments", items, first=first, after=after, last=last, before=before)

    def commits(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> dict[str, Any]:
        oids = self._store.pr_commits(self._pr)
        items = [
            (
                index,
                {
                    "__typename": "PullRequestCommit",
                    "id": f"PURC_kwDO{oid[:20]}",
                    "commit": CommitView(self._store, self._pr.repo, oid),
                    "url": f"{self._pr.url}/commits/{oid}",
                    "resourcePath": f"/{self._pr.repo.full_name}/pull/{self._pr.number}"
                    f"/commits/{oid}",
                    "pullRequest": self,
                },
            )
            for index, oid in enumerate(oids, 1)
        ]
        return connection("commits", items, first=first, after=after, last=last, before=before)


# -- pagination -------------------------------------------------------------------


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cursor(key: int) -> str:
    return base64.b64encode(f"cursor:v2:{key}".encode()).decode()


def connection(
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
    cursors = [cursor(key) for key, _ in items]
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
