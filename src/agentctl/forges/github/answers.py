"""What GitHub's answers mean to agentctl: pull request and review nodes read as values.

The forge asks (``forge.py``); this reads what comes back, including the markers
agentctl writes into bodies (the ticket, a verdict posted as a COMMENT review, why
only a person may merge) and the body it posts for a review.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from agentctl.forges import PullRequest, Review

TICKET_MARK = re.compile(r"<!-- agentctl:ticket=([^ >]+) -->")
VERDICT_MARK = re.compile(r"<!-- agentctl:verdict=(approve|request_changes) -->")
PERSON_MARK = "<!-- agentctl:needs-person -->"


def pull_request(node: Mapping[str, Any], viewer: Callable[[], str]) -> PullRequest:
    """A pull request node as agentctl's value; ``viewer`` names the token's user (asked
    only when a marker needs it)."""
    number = int(node["number"])
    commits = (node.get("commits") or {}).get("nodes") or []
    rollup = commits[-1]["commit"].get("statusCheckRollup") if commits else None
    body = node.get("body") or ""
    ticket_mark = TICKET_MARK.search(body)
    branch = str(node["headRefName"])
    ticket = ticket_mark.group(1) if ticket_mark else None
    if ticket is None and branch.startswith("agentctl/"):
        ticket = branch.removeprefix("agentctl/")
    merge_commit = node.get("mergeCommit") or {}
    # A merged or closed PR's reviews are history: reading them would cost a viewer
    # lookup per tick for nothing.
    reviews, needs_person = reviews_of(node, viewer) if node["state"] == "OPEN" else ([], None)
    return PullRequest(
        number=number,
        branch=branch,
        base=str(node["baseRefName"]),
        title=str(node.get("title") or ""),
        body=TICKET_MARK.sub("", body).rstrip(),
        state=node["state"].lower(),
        head_sha=str(node.get("headRefOid") or ""),
        reviews=tuple(reviews),
        merge_sha=merge_commit.get("oid"),
        url=str(node.get("url") or ""),
        ticket=ticket,
        checks=rollup["state"].lower() if rollup else None,
        needs_person=needs_person,
    )


def reviews_of(
    node: Mapping[str, Any], viewer: Callable[[], str]
) -> tuple[list[Review], str | None]:
    """The verdicts, and why only a person may merge (a marker by the token's user)."""
    reviews = []
    needs_person: str | None = None
    for item in (node.get("reviews") or {}).get("nodes") or []:
        author = (item.get("author") or {}).get("login") or "ghost"
        body = item.get("body") or ""
        state = item.get("state")
        if state == "COMMENTED" and PERSON_MARK in body and author == viewer():
            needs_person = needs_person or body.replace(PERSON_MARK, "").strip()
            continue
        if state == "APPROVED":
            verdict = "approve"
        elif state == "CHANGES_REQUESTED":
            verdict = "request_changes"
        else:
            marked = VERDICT_MARK.search(body) if state == "COMMENTED" else None
            if marked is None or author != viewer():
                continue  # a plain comment, or a marker someone else typed
            verdict = marked.group(1)
        reviews.append(
            Review(
                verdict=verdict,  # type: ignore[arg-type]
                summary=VERDICT_MARK.sub("", body).strip(),
                author=author,
                head_sha=str((item.get("commit") or {}).get("oid") or ""),
                at=str(item.get("submittedAt") or ""),
            )
        )
    return reviews, needs_person


def review_body(review: Review) -> str:
    lines = [review.summary.strip() or f"agentctl review: {review.verdict}"]
    for comment in review.comments:
        where = ":".join(str(comment[k]) for k in ("file", "line") if comment.get(k))
        lines.append(f"- {where + ': ' if where else ''}{comment.get('body', '')}")
    return "\n".join(lines)
