"""Forges: where branches become pull requests. The protocol, its values, the registry.

``[forge] kind`` picks the implementation (``local``: branches and a PR folder in the
repository; ``github``: GitHub's GraphQL API and git over HTTPS), imported only when
asked for. Implementations inherit nothing; the values are frozen and serialise to
plain JSON. A new forge is a module with a class that has ``from_config`` and these
methods, named in ``FORGES``.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from agentctl.registry import load, optional

if TYPE_CHECKING:
    from agentctl.checks import Check
    from agentctl.config import Config

Verdict = Literal["approve", "request_changes"]
PrState = Literal["open", "merged", "closed"]
ReviewState = Literal["approved", "changes_requested", "none"]


FORGES = {
    "local": "agentctl.forges.local:LocalForge",
    "github": "agentctl.forges.github.forge:GithubForge",
}
CHECKS = {"github": "agentctl.forges.github.checks:checks"}  # ``doctor``: token, repository


@dataclass(frozen=True, slots=True)
class Review:
    """A verdict on one head SHA: a newer commit makes it history, not approval."""

    verdict: Verdict
    summary: str
    comments: tuple[Mapping[str, Any], ...] = ()
    author: str = "agentctl"
    head_sha: str = ""
    at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "summary": self.summary,
            "comments": [dict(c) for c in self.comments],
            "author": self.author,
            "head_sha": self.head_sha,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Review:
        return cls(
            verdict=data["verdict"],
            summary=str(data.get("summary", "")),
            comments=tuple(dict(c) for c in data.get("comments", ())),
            author=str(data.get("author", "agentctl")),
            head_sha=str(data.get("head_sha", "")),
            at=str(data.get("at", "")),
        )


@dataclass(frozen=True, slots=True)
class PullRequest:
    number: int
    branch: str
    base: str
    title: str
    body: str
    state: PrState
    head_sha: str
    reviews: tuple[Review, ...] = ()
    merge_sha: str | None = None
    url: str = ""
    ticket: str | None = None
    checks: str | None = None  # the head's CI rollup: success, pending, failure, error; None
    needs_person: str | None = None  # why only a person may merge it (protected paths)

    @property
    def review_state(self) -> ReviewState:
        """The latest review of the *current* head decides; older heads do not count."""
        for review in reversed(self.reviews):
            if review.head_sha and review.head_sha == self.head_sha:
                return "approved" if review.verdict == "approve" else "changes_requested"
        return "none"

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "branch": self.branch,
            "base": self.base,
            "title": self.title,
            "body": self.body,
            "state": self.state,
            "head_sha": self.head_sha,
            "review_state": self.review_state,
            "reviews": [r.to_json() for r in self.reviews],
            "merge_sha": self.merge_sha,
            "url": self.url,
            "ticket": self.ticket,
            "checks": self.checks,
            "needs_person": self.needs_person,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PullRequest:
        return cls(
            number=int(data["number"]),
            branch=str(data["branch"]),
            base=str(data["base"]),
            title=str(data.get("title", "")),
            body=str(data.get("body", "")),
            state=data["state"],
            head_sha=str(data.get("head_sha", "")),
            reviews=tuple(Review.from_json(r) for r in data.get("reviews", ())),
            merge_sha=data.get("merge_sha"),
            url=str(data.get("url", "")),
            ticket=data.get("ticket"),
            checks=data.get("checks"),
            needs_person=data.get("needs_person"),
        )


@runtime_checkable
class Forge(Protocol):
    def open_pr(
        self, *, branch: str, base: str, title: str, body: str, ticket: str | None = None
    ) -> PullRequest:
        """Idempotent: the open PR of ``branch`` is returned (head refreshed), never a second."""
        ...

    def find_pr(self, branch: str) -> PullRequest | None:
        """The open PR of ``branch``, else its newest, else None."""
        ...

    def get_pr(self, number: int) -> PullRequest: ...

    def list_prs(self, *, state: str | None = "open") -> builtins.list[PullRequest]: ...

    def add_review(self, number: int, review: Review) -> PullRequest: ...

    def comment(self, number: int, body: str) -> None: ...

    def mark_needs_person(self, number: int, reason: str) -> PullRequest:
        """Mark the PR as waiting for a person (nothing automatic merges or reworks it).

        Idempotent: a PR already marked keeps its first reason.
        """
        ...

    def merge(self, number: int, *, expected_head: str) -> PullRequest:
        """Merge only at exactly ``expected_head``; a PR merged at that head returns as is."""
        ...

    def fetch(self, branch: str) -> str:
        """A local ref holding the forge's ``branch`` now (a remote forge fetches first)."""
        ...

    def publish(self, branch: str) -> None:
        """Make the forge's ``branch`` what it is locally (a remote forge pushes)."""
        ...


def make_forge(config: Config, **kwargs: Any) -> Forge:
    forge: Forge = load(FORGES, config.settings.forge.kind, "forge").from_config(config, **kwargs)
    return forge


def forge_checks(config: Config, environ: Mapping[str, str] | None = None) -> list[Check]:
    """``doctor``'s checks of the configured forge (none for a local one)."""
    run = optional(CHECKS, config.settings.forge.kind)
    checks: list[Check] = run(config, environ) if run is not None else []
    return checks
