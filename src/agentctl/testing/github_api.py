"""The fake GitHub's Query and Mutation root, and the rules GitHub applies to pull requests.

Queries hand out views over the store; mutations refuse what GitHub refuses (a
duplicate pull request, approving one's own, a stale ``expectedHeadOid``, a draft, a
conflict) and otherwise change the store, merging for real in the bare repository.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any

from agentctl.testing.github_repos import BareRepos, Comment, PullRequest, Repo, Review
from agentctl.testing.github_views import (
    CommentView,
    GitHubError,
    PullRequestView,
    RepositoryView,
    ReviewView,
    UserView,
    cursor,
    iso,
)

if TYPE_CHECKING:
    from graphql import GraphQLResolveInfo

    from agentctl.testing.github_server import GitHubServer

    Info = GraphQLResolveInfo[Any]

RATE_LIMIT = 5000  # points an hour: the server charges them, rateLimit reports them
MERGE_METHODS = frozenset({"MERGE", "SQUASH", "REBASE"})
REVIEW_EVENTS = {
    "APPROVE": "APPROVED",
    "REQUEST_CHANGES": "CHANGES_REQUESTED",
    "COMMENT": "COMMENTED",
}
BOT = ("GitHub", "noreply@github.com")  # GitHub commits merges as this committer


class Root:
    """The root value: Query and Mutation fields as methods (all run under the server lock)."""

    def __init__(self, server: GitHubServer, store: BareRepos) -> None:
        self._server = server
        self._store = store

    # Query

    def viewer(self, info: Info) -> UserView:
        return UserView(self._server.login)

    def repository(
        self, info: Info, owner: str, name: str, followRenames: bool = True
    ) -> RepositoryView:
        repo = self._store.repos.get((owner.lower(), name.lower()))
        if repo is None:
            raise GitHubError(
                "NOT_FOUND", f"Could not resolve to a Repository with the name '{owner}/{name}'."
            )
        return RepositoryView(self._store, repo)

    def rateLimit(self, info: Info, dryRun: bool = False) -> dict[str, Any]:
        used, remaining, reset = self._server._rate_state()
        return {
            "limit": RATE_LIMIT,
            "cost": 1,
            "nodeCount": 1,
            "remaining": remaining,
            "used": used,
            "resetAt": iso(reset),
        }

    def node(self, info: Info, id: str) -> object:
        return self._node(id)

    def nodes(self, info: Info, ids: list[str]) -> list[object]:
        return [self._node(node_id) for node_id in ids]

    # Mutation

    def createPullRequest(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        repo = self._repo_by_id(input["repositoryId"])
        head = str(input["headRefName"])
        if ":" in head:  # "owner:branch" names the head repository's owner
            head_owner, _, head = head.partition(":")
            if head_owner.lower() != repo.owner.lower():
                raise GitHubError("UNPROCESSABLE", "Head repository forks are not supported here.")
        pr = self.create_pr(
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
            "pullRequest": PullRequestView(self._store, pr),
        }

    def addPullRequestReview(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        pr = self._pr_by_id(input["pullRequestId"])
        review = self._add_review(
            pr,
            event=input.get("event"),
            body=str(input.get("body") or ""),
            commit=input.get("commitOID"),
            author=self._server.login,
        )
        view = ReviewView(self._store, pr, review)
        return {
            "clientMutationId": input.get("clientMutationId"),
            "pullRequestReview": view,
            "reviewEdge": {"cursor": cursor(len(pr.reviews)), "node": view},
        }

    def mergePullRequest(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        pr = self._pr_by_id(input["pullRequestId"])
        self._merge(
            pr,
            method=str(input.get("mergeMethod") or "MERGE"),
            expected_head=input.get("expectedHeadOid"),
            headline=input.get("commitHeadline"),
            body=input.get("commitBody"),
            author_email=input.get("authorEmail"),
        )
        return {
            "clientMutationId": input.get("clientMutationId"),
            "pullRequest": PullRequestView(self._store, pr),
            "actor": UserView(self._server.login),
        }

    def closePullRequest(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        pr = self._pr_by_id(input["pullRequestId"])
        self._close(pr)
        return {
            "clientMutationId": input.get("clientMutationId"),
            "pullRequest": PullRequestView(self._store, pr),
        }

    def addComment(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        pr = self._pr_by_id(input["subjectId"])
        comment = self._add_comment(pr, str(input["body"]), self._server.login)
        view = CommentView(self._store, pr, comment)
        return {
            "clientMutationId": input.get("clientMutationId"),
            "commentEdge": {"cursor": cursor(len(pr.comments)), "node": view},
            "subject": PullRequestView(self._store, pr),
            "timelineEdge": None,
        }

    # -- the rules (all run under the server lock)

    def _node(self, node_id: str) -> object:
        found = self._store.nodes.get(node_id)
        if isinstance(found, Repo):
            return RepositoryView(self._store, found)
        if isinstance(found, PullRequest):
            return PullRequestView(self._store, found)
        raise GitHubError(
            "NOT_FOUND", f"Could not resolve to a node with the global id of '{node_id}'"
        )

    def _repo_by_id(self, node_id: str) -> Repo:
        found = self._store.nodes.get(node_id)
        if not isinstance(found, Repo):
            raise _no_node(node_id)
        return found

    def _pr_by_id(self, node_id: str) -> PullRequest:
        found = self._store.nodes.get(node_id)
        if not isinstance(found, PullRequest):
            raise _no_node(node_id)
        return found

    def create_pr(
        self, repo: Repo, *, head: str, base: str, title: str, body: str, draft: bool, author: str
    ) -> PullRequest:
        head_oid = self._store.rev(repo, head)
        base_oid = self._store.rev(repo, base)
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
        if self._store.is_ancestor(repo, head_oid, base_oid):
            raise GitHubError("UNPROCESSABLE", f"No commits between {base} and {head}")
        now = self._store.now()
        number = max(repo.prs, default=0) + 1
        pr = PullRequest(
            repo=repo,
            number=number,
            id=self._store.new_id("PR_kwDO"),
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
        self._store.nodes[pr.id] = pr
        return pr

    def _add_review(
        self, pr: PullRequest, *, event: str | None, body: str, commit: str | None, author: str
    ) -> Review:
        if event == "DISMISS":
            raise GitHubError("UNPROCESSABLE", "A review can not be submitted with a DISMISS event")
        state = REVIEW_EVENTS[event] if event else "PENDING"
        if author == pr.author and not self._server.allow_self_review:
            if state == "APPROVED":
                raise GitHubError("UNPROCESSABLE", "Can not approve your own pull request")
            if state == "CHANGES_REQUESTED":
                raise GitHubError(
                    "UNPROCESSABLE", "Can not request changes on your own pull request"
                )
        self._store.sequence += 1
        review = Review(
            id=f"PRR_kwDO{self._store.sequence:08X}",
            db_id=self._store.sequence,
            state=state,
            body=body,
            commit=commit or self._store.head_oid(pr),
            author=author,
            submitted_at=self._store.now(),
        )
        pr.reviews.append(review)
        pr.updated_at = review.submitted_at
        return review

    def _add_comment(self, pr: PullRequest, body: str, author: str) -> Comment:
        self._store.sequence += 1
        comment = Comment(
            f"IC_kwDO{self._store.sequence:08X}",
            self._store.sequence,
            body,
            author,
            self._store.now(),
        )
        pr.comments.append(comment)
        pr.updated_at = comment.created_at
        return comment

    def _close(self, pr: PullRequest) -> None:
        if pr.state == "MERGED":
            raise GitHubError("UNPROCESSABLE", "Pull request is already merged")
        if pr.state == "CLOSED":
            return
        pr.head_oid = self._store.head_oid(pr)
        pr.base_oid = self._store.base_oid(pr)
        pr.state = "CLOSED"
        pr.closed_at = pr.updated_at = self._store.now()

    def _merge(
        self,
        pr: PullRequest,
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
        head = self._store.head_oid(pr)
        if expected_head is not None and expected_head != head:
            raise GitHubError(
                "UNPROCESSABLE", "Head branch was modified. Review and try the merge again."
            )
        if pr.draft:
            raise GitHubError("UNPROCESSABLE", "Pull Request is still a draft")
        base = self._store.base_oid(pr)
        tree = self._store.merge_tree(pr)
        if base is None or tree is None:
            raise GitHubError("UNPROCESSABLE", "Pull Request is not mergeable")
        if method == "MERGE":
            parents = ["-p", base, "-p", head]
            title = headline or f"Merge pull request #{pr.number} from {repo.owner}/{pr.head}"
            text = body if body is not None else pr.title
        else:
            parents = ["-p", base]
            title = headline or f"{pr.title} (#{pr.number})"
            subjects = self._store.git(
                repo, "log", "--reverse", "--format=* %s", head, "--not", base
            )
            text = body if body is not None else subjects.strip()
        message = f"{title}\n\n{text}".rstrip() + "\n"
        author = (
            self._server.login,
            author_email or f"{self._server.login}@users.noreply.github.com",
        )
        commit = self._store.git(
            repo,
            "commit-tree",
            tree,
            *parents,
            input=message,
            env=self._store.identity(author, BOT),
        ).strip()
        try:
            self._store.git(repo, "update-ref", f"refs/heads/{pr.base}", commit, base)
        except subprocess.CalledProcessError as exc:
            self._store.fresh()
            raise GitHubError(
                "UNPROCESSABLE", "Base branch was modified. Review and try the merge again."
            ) from exc
        self._store.fresh()
        pr.head_oid = head
        pr.base_oid = base
        pr.state = "MERGED"
        pr.merge_commit = commit
        pr.merge_method = method
        pr.merged_at = pr.closed_at = pr.updated_at = self._store.now()


def _no_node(node_id: str) -> GitHubError:
    return GitHubError(
        "NOT_FOUND", f"Could not resolve to a node with the global id of '{node_id}'"
    )
