"""GitHub as agentctl's forge: GraphQL API v4 for pull requests, git for the code.

- Branches go to the configured remote with ``git push`` (the token through
  GIT_ASKPASS, never on disk); a pull request is opened once per head branch: an
  open one is found and reused, so a retried step never opens a second.
- Reviews are GitHub reviews. GitHub refuses an APPROVE or REQUEST_CHANGES from the
  pull request's own author, and agentctl usually opens its PRs with the same token:
  then the verdict is posted as a COMMENT review carrying a marker, and only markers
  in reviews by the token's own user are read back as verdicts.
- A pull request that only a person may merge (it edits protected paths) carries a
  COMMENT review with a marker, by the token's own user like a verdict; any author
  can post a COMMENT review, so this works on agentctl's own pull requests too.
- A merge names the head SHA the merge queue gated (``expectedHeadOid``): GitHub
  refuses it if the head moved, and agentctl never merges what it did not test.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.errors import (
    MergeRefusedError,
    NotFoundError,
    ServiceAuthError,
    ServiceError,
    ServiceRateLimitedError,
    ServiceRejectedError,
    ServiceUnavailableError,
    UsageError,
)
from agentctl.forges import PullRequest, Review
from agentctl.forges.github import documents as doc
from agentctl.forges.github.answers import (
    PERSON_MARK,
    pull_request,
    review_body,
)
from agentctl.forges.github.gitauth import git_with_token
from agentctl.remote.graphql import GraphQLService, RateHeaders, service_from_env
from agentctl.repo import gitops

if TYPE_CHECKING:
    from agentctl.config import Config
    from agentctl.config.schema import GithubForge as GithubSettings

SERVICE = "GitHub"
PAGE = 50
RECENT = 50  # merged or closed pull requests read at most (the newest)
RATE = RateHeaders(
    limit="x-ratelimit-limit",
    remaining="x-ratelimit-remaining",
    reset="x-ratelimit-reset",
    reset_unit=1.0,  # epoch seconds
)
STATES = {"open": "OPEN", "merged": "MERGED", "closed": "CLOSED"}
SELF_REVIEW = ("own pull request",)


def classify(errors: list[dict[str, Any]], status: int | None, service: str) -> ServiceError:
    """GitHub puts ``type`` at the top of each error (RATE_LIMITED, NOT_FOUND, ...)."""
    first = errors[0]
    kind = str(first.get("type") or "")
    code = str(first.get("code") or (first.get("extensions") or {}).get("code") or "")
    message = str(first.get("message") or "request failed")
    if kind in ("RATE_LIMITED", "RATE_LIMIT") or code == "graphql_rate_limit":
        return ServiceRateLimitedError(
            "rate limited", service=service, status=status, code=kind or code
        )
    if kind == "FORBIDDEN":
        return ServiceAuthError(
            f"forbidden: {message}",
            service=service,
            status=status,
            code=kind,
            hint="the token needs the repo scope (or contents and pull-requests access)",
        )
    if kind or code:
        return ServiceRejectedError(message, service=service, status=status, code=kind or code)
    return ServiceUnavailableError(message, service=service, status=status)


class GithubForge:
    """The ``Forge`` protocol over one GitHub repository and one git remote."""

    def __init__(
        self,
        settings: GithubSettings,
        service: GraphQLService,
        *,
        repo_root: Path,
        token: str,
        git_lock: Path | None = None,
    ) -> None:
        owner, slash, name = settings.repo.partition("/")
        if not (owner and slash and name) or "/" in name:
            raise UsageError(
                f"[forge.github] repo must be owner/name, not {settings.repo!r}",
                hint='e.g. repo = "acme/api"',
            )
        self.settings = settings
        self.service = service
        self.repo_root = repo_root
        self.owner, self.name = owner, name
        self._token = token
        # Processes of one workspace fetch and push through one repository: git refuses
        # two updates of a ref at once, so they take turns.
        self._git_lock = git_lock or repo_root / ".git" / "agentctl-remote.lock"
        self._repo_id: str | None = None
        self._login: str | None = None
        self._node_ids: dict[int, str] = {}

    @classmethod
    def from_config(cls, config: Config, environ: Mapping[str, str] | None = None) -> GithubForge:
        settings = config.settings.forge.github
        service, token = service_from_env(
            environ,
            settings.token_env,
            service=SERVICE,
            url=settings.url,
            authorization=lambda token: f"bearer {token}",
            classify=classify,
            rate_headers=RATE,
            hint=f"export {settings.token_env}=... (a token with repo access, "
            "e.g. from `gh auth token`)",
        )
        root = config.workspace.git_root or config.workspace.root
        lock = config.worktree_home / "locks" / "git-remote.lock"  # one per repository
        return cls(settings, service, repo_root=root, token=token, git_lock=lock)

    # -- the Forge protocol -----------------------------------------------------------

    def open_pr(
        self, *, branch: str, base: str, title: str, body: str, ticket: str | None = None
    ) -> PullRequest:
        if branch == base:
            raise UsageError(f"a pull request needs a branch other than its base ({base})")
        found = self._prs(head=branch, states=["OPEN", "MERGED"])
        merged = [pr for pr in found if pr.state == "merged"]
        if merged and self._holds(branch, merged[-1]):
            return merged[-1]  # keyed by its branch: the same commits are never opened again
        self.publish(branch)
        existing = [pr for pr in found if pr.state == "open"]
        if existing:
            return existing[-1]
        if ticket:
            body = f"{body.rstrip()}\n\n<!-- agentctl:ticket={ticket} -->".lstrip()
        payload = {
            "repositoryId": self.repository_id(),
            "baseRefName": base,
            "headRefName": branch,
            "title": title,
            "body": body,
        }
        try:
            data = self.service.execute(doc.CREATE_PR, {"input": payload})
        except ServiceRejectedError as exc:
            if "already exists" in exc.message:  # opened between our look and our create
                existing = self._prs(head=branch, states=["OPEN"])
                if existing:
                    return existing[-1]
            raise
        return self._pr(data["createPullRequest"]["pullRequest"])

    def find_pr(self, branch: str) -> PullRequest | None:
        found = self._prs(head=branch, states=None)
        open_ = [pr for pr in found if pr.state == "open"]
        return (open_ or found)[-1] if found else None

    def get_pr(self, number: int) -> PullRequest:
        data = self._query(doc.PULL_REQUEST, number=number)
        node = (data.get("repository") or {}).get("pullRequest")
        if not node:
            raise NotFoundError(f"no pull request #{number} in {self.settings.repo}")
        return self._pr(node)

    def list_prs(self, *, state: str | None = "open") -> builtins.list[PullRequest]:
        if state is not None and state not in STATES:
            raise UsageError(f"unknown pull request state {state!r}: use {', '.join(STATES)}")
        return self._prs(head=None, states=[STATES[state]] if state else None)

    def add_review(self, number: int, review: Review) -> PullRequest:
        pr = self.get_pr(number)
        head = review.head_sha or pr.head_sha
        body = review_body(review)
        event = "APPROVE" if review.verdict == "approve" else "REQUEST_CHANGES"
        payload = {"pullRequestId": self._node_ids[number], "commitOID": head, "body": body}
        try:
            self.service.execute(doc.REVIEW, {"input": {**payload, "event": event}})
        except ServiceRejectedError as exc:
            if not any(text in exc.message for text in SELF_REVIEW):
                raise
            marked = f"{body}\n\n<!-- agentctl:verdict={review.verdict} -->"
            self.service.execute(
                doc.REVIEW, {"input": {**payload, "body": marked, "event": "COMMENT"}}
            )
        return self.get_pr(number)

    def comment(self, number: int, body: str) -> None:
        if number not in self._node_ids:
            self.get_pr(number)
        self.service.execute(
            doc.COMMENT, {"input": {"subjectId": self._node_ids[number], "body": body}}
        )

    def mark_needs_person(self, number: int, reason: str) -> PullRequest:
        pr = self.get_pr(number)
        if pr.needs_person:
            return pr
        payload = {
            "pullRequestId": self._node_ids[number],
            "commitOID": pr.head_sha,
            "body": f"{reason.strip()}\n\n{PERSON_MARK}",
            "event": "COMMENT",
        }
        self.service.execute(doc.REVIEW, {"input": payload})
        return self.get_pr(number)

    def merge(self, number: int, *, expected_head: str) -> PullRequest:
        pr = self.get_pr(number)
        if pr.state == "merged":
            if pr.head_sha == expected_head:
                return pr
            raise MergeRefusedError(
                f"pull request #{number} was already merged at {pr.head_sha}, "
                f"not at {expected_head}"
            )
        if pr.state != "open":
            raise MergeRefusedError(f"pull request #{number} is {pr.state}")
        if pr.needs_person:
            raise MergeRefusedError(
                f"pull request #{number} waits for a person: {pr.needs_person}",
                hint="a person merges it on GitHub; agentctl never does",
            )
        payload = {
            "pullRequestId": self._node_ids[number],
            "mergeMethod": self.settings.merge_method.upper(),
            "expectedHeadOid": expected_head,
            "commitHeadline": f"{pr.title} (#{number})",
        }
        try:
            data = self.service.execute(doc.MERGE, {"input": payload})
        except ServiceRejectedError as exc:
            if isinstance(exc, ServiceAuthError):
                raise
            again = self.get_pr(number)  # a lost reply to a merge that happened
            if again.state == "merged" and again.head_sha == expected_head:
                return again
            raise MergeRefusedError(
                f"GitHub refused to merge pull request #{number} at {expected_head[:12]}: "
                f"{exc.message}; nothing merged",
                hint="the head moved after it was gated: the merge queue will gate it again"
                if "modified" in exc.message
                else None,
            ) from None
        merged = self._pr(data["mergePullRequest"]["pullRequest"])
        self.fetch(merged.base)
        return merged

    def fetch(self, branch: str) -> str:
        remote = self.settings.remote
        with gitops.locked(self._git_lock):
            git_with_token(
                self.repo_root,
                self._token,
                "fetch",
                "--quiet",
                remote,
                f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}",
            )
        return f"refs/remotes/{remote}/{branch}"

    def _holds(self, branch: str, merged: PullRequest) -> bool:
        """Whether the merged PR already holds all of the local ``branch`` (or it is gone)."""
        try:
            ours = gitops.head(self.repo_root, f"refs/heads/{branch}")
        except NotFoundError:
            return True
        return any(
            sha and (ours == sha or gitops.is_ancestor(self.repo_root, ours, sha))
            for sha in (merged.head_sha, merged.merge_sha)
        )

    def publish(self, branch: str) -> None:
        with gitops.locked(self._git_lock):
            git_with_token(
                self.repo_root,
                self._token,
                "push",
                "--quiet",
                self.settings.remote,
                f"refs/heads/{branch}:refs/heads/{branch}",
            )

    # -- more than the protocol -------------------------------------------------------

    def repository_id(self) -> str:
        if self._repo_id is None:
            data = self._query(doc.REPOSITORY)
            self._repo_id = str(data["repository"]["id"])
        return self._repo_id

    def viewer(self) -> str:
        """The login the token belongs to (asked once)."""
        if self._login is None:
            self._login = str(self.service.execute(doc.VIEWER)["viewer"]["login"])
        return self._login

    # -- internals --------------------------------------------------------------------

    def _query(self, document: str, **variables: Any) -> dict[str, Any]:
        try:
            return self.service.execute(
                document, {"owner": self.owner, "name": self.name, **variables}
            )
        except ServiceRejectedError as exc:
            if exc.code != "NOT_FOUND":
                raise
            if "Repository" in exc.message:
                raise NotFoundError(
                    f"GitHub has no repository {self.settings.repo} that this token can see",
                    hint="check [forge.github] repo and the token's access",
                ) from None
            raise NotFoundError(f"{self.settings.repo}: {exc.message}") from None

    def _prs(self, *, head: str | None, states: list[str] | None) -> builtins.list[PullRequest]:
        """Oldest first: every open one (or every one of ``head``), else the newest ``RECENT``.

        Merged and closed pull requests pile up forever; a tick reads one page of them.
        """
        every = head is not None or states == ["OPEN"]
        found: builtins.list[PullRequest] = []
        after: str | None = None
        while True:
            data = self._query(
                doc.PULL_REQUESTS,
                states=states,
                head=head,
                first=PAGE if every else RECENT,
                after=after,
                direction="ASC" if every else "DESC",
            )
            page = data["repository"]["pullRequests"]
            found += [self._pr(node) for node in page["nodes"]]
            if not every:
                return found[::-1]
            if not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]

    def _pr(self, node: Mapping[str, Any]) -> PullRequest:
        self._node_ids[int(node["number"])] = str(node["id"])
        return pull_request(node, self.viewer)
