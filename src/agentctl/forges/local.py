"""The local forge: an agent branch is the pull request, a JSON record holds the rest.

With no GitHub account, review verdicts and merges still need a durable home that the
orchestrator can check against the world after a crash: ``.agentctl/prs/<n>.json``.
The head SHA is read from the branch itself, so a record cannot drift from git. A
merge is a fast-forward of the base branch to the exact SHA the merge queue gated
(the queue has already merged the base into the branch), with the old value checked,
so it happens once or not at all.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl import atomic
from agentctl.errors import (
    CorruptStateError,
    FutureStateError,
    MergeRefusedError,
    NotFoundError,
    UsageError,
)
from agentctl.forges import PullRequest, Review
from agentctl.repo import gitops
from agentctl.runs.timefmt import format_ts, utc_now

if TYPE_CHECKING:
    from agentctl.config import Config

SCHEMA_VERSION = 1
PR_STATES = ("open", "merged", "closed")


class LocalForge:
    """Pull requests as records under ``<state_dir>/prs/``; git branches are the code."""

    def __init__(
        self, repo_root: Path, state_dir: Path, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.repo_root = repo_root
        self.dir = state_dir / "prs"
        self._lock_path = state_dir / "locks" / "prs.lock"
        self._clock = clock

    @classmethod
    def from_config(cls, config: Config, **_: object) -> LocalForge:
        workspace = config.workspace
        return cls(workspace.git_root or workspace.root, workspace.state_dir)

    # -- the Forge protocol ---------------------------------------------------------

    def open_pr(
        self, *, branch: str, base: str, title: str, body: str, ticket: str | None = None
    ) -> PullRequest:
        if branch == base:
            raise UsageError(f"a pull request needs a branch other than its base ({base})")
        with gitops.locked(self._lock_path):
            merged = [
                r for r in self._records() if r["branch"] == branch and r["state"] == "merged"
            ]
            if merged and _holds(self.repo_root, branch, merged[-1]):
                # A PR is keyed by its branch: once merged, no second one for the same
                # commits (a pipeline resumed after its merge would merge them again).
                return self._to_pr(merged[-1])
            for record in self._records():
                if record["branch"] == branch and record["state"] == "open":
                    return self._refresh(record)
            sha = self._branch_head(branch)
            self._branch_head(base)  # the base must exist too
            number = max((r["number"] for r in self._records()), default=0) + 1
            now = format_ts(self._clock())
            record = {
                "schema_version": SCHEMA_VERSION,
                "number": number,
                "branch": branch,
                "base": base,
                "title": title,
                "body": body,
                "state": "open",
                "head_sha": sha,
                "reviews": [],
                "comments": [],
                "merge_sha": None,
                "url": "",
                "ticket": ticket,
                "created": now,
                "updated": now,
            }
            self._save(record)
            return PullRequest.from_json(record)

    def find_pr(self, branch: str) -> PullRequest | None:
        mine = [r for r in self._records() if r["branch"] == branch]
        if not mine:
            return None
        open_ = [r for r in mine if r["state"] == "open"]
        return self._to_pr((open_ or mine)[-1])

    def get_pr(self, number: int) -> PullRequest:
        return self._to_pr(self._load(number))

    def list_prs(self, *, state: str | None = "open") -> list[PullRequest]:
        if state is not None and state not in PR_STATES:
            raise UsageError(f"unknown pull request state {state!r}: use {', '.join(PR_STATES)}")
        return [self._to_pr(r) for r in self._records() if state is None or r["state"] == state]

    def add_review(self, number: int, review: Review) -> PullRequest:
        """Record a verdict; one without a head SHA is taken to be about the current head."""
        with gitops.locked(self._lock_path):
            record = self._load(number)
            current = self._to_pr(record)
            stamped = Review(
                verdict=review.verdict,
                summary=review.summary,
                comments=review.comments,
                author=review.author,
                head_sha=review.head_sha or current.head_sha,
                at=review.at or format_ts(self._clock()),
            )
            record["reviews"].append(stamped.to_json())
            self._save(record)
            return self._to_pr(record)

    def comment(self, number: int, body: str) -> None:
        with gitops.locked(self._lock_path):
            record = self._load(number)
            record["comments"].append({"at": format_ts(self._clock()), "body": body})
            self._save(record)

    def mark_needs_person(self, number: int, reason: str) -> PullRequest:
        """Set ``needs_person`` on the record (once) and say why in its comments."""
        with gitops.locked(self._lock_path):
            record = self._load(number)
            if not record.get("needs_person"):
                record["needs_person"] = reason
                record["comments"].append({"at": format_ts(self._clock()), "body": reason})
                self._save(record)
            return self._to_pr(record)

    def merge(self, number: int, *, expected_head: str) -> PullRequest:
        """Fast-forward the base to ``expected_head`` exactly once, or refuse and change nothing."""
        with gitops.locked(self._lock_path):
            record = self._load(number)
            if record["state"] == "merged":
                if record["head_sha"] == expected_head:
                    return self._to_pr(record)
                raise MergeRefusedError(
                    f"pull request #{number} was already merged at {record['head_sha']}, "
                    f"not at {expected_head}"
                )
            if record["state"] != "open":
                raise MergeRefusedError(f"pull request #{number} is {record['state']}")
            if record.get("needs_person"):
                raise MergeRefusedError(
                    f"pull request #{number} waits for a person: {record['needs_person']}",
                    hint="a person merges it by hand; agentctl never does",
                )
            branch, base = record["branch"], record["base"]
            actual = self._branch_head(branch)
            if actual != expected_head:
                raise MergeRefusedError(
                    f"pull request #{number}: branch {branch} is at {actual}, "
                    f"expected {expected_head}; nothing merged",
                    hint="the branch moved after it was gated: run the merge queue again",
                )
            old = self._branch_head(base)
            if old != actual and not gitops.is_ancestor(self.repo_root, old, actual):
                raise MergeRefusedError(
                    f"pull request #{number}: {actual} does not contain {base} ({old}); "
                    "not a fast-forward, nothing merged",
                    hint="merge the base into the branch first (the merge queue does)",
                )
            self._fast_forward(number, base, old, actual)
            record.update(
                state="merged",
                head_sha=actual,
                merge_sha=actual,
                merged_at=format_ts(self._clock()),
            )
            self._save(record)
            return self._to_pr(record)

    def fetch(self, branch: str) -> str:
        """The branch is local already: its own name is the ref."""
        return branch

    def publish(self, branch: str) -> None:
        """Nothing to push: the branch *is* the pull request's code."""

    # -- more than the protocol -------------------------------------------------------

    def close(self, number: int) -> PullRequest:
        """Close an open pull request without merging (a merged one stays merged)."""
        with gitops.locked(self._lock_path):
            record = self._load(number)
            if record["state"] == "open":
                record["state"] = "closed"
                self._save(record)
            return self._to_pr(record)

    def comments(self, number: int) -> list[dict[str, str]]:
        return list(self._load(number)["comments"])

    # -- internals --------------------------------------------------------------------

    def _fast_forward(self, number: int, base: str, old: str, new: str) -> None:
        """Move ``base`` from ``old`` to ``new``; a checkout of it follows (must be clean)."""
        for tree in gitops.list_worktrees(self.repo_root):
            if tree.branch != base:
                continue
            if not gitops.is_clean(tree.path, untracked=False):
                raise MergeRefusedError(
                    f"{base} is checked out in {tree.path} with uncommitted changes; "
                    f"pull request #{number} not merged",
                    hint="commit or stash them, then run the merge again",
                )
            if old != new:
                gitops.run_git(gitops.open_repo(tree.path), "merge", "--ff-only", "--quiet", new)
            return
        repo = gitops.open_repo(self.repo_root)
        message = f"agentctl: merge pull request #{number}"
        gitops.run_git(repo, "update-ref", "-m", message, f"refs/heads/{base}", new, old)

    def _branch_head(self, branch: str) -> str:
        try:
            return gitops.head(self.repo_root, f"refs/heads/{branch}")
        except NotFoundError:
            raise NotFoundError(f"no branch {branch!r} in {self.repo_root}") from None

    def _refresh(self, record: dict[str, Any]) -> PullRequest:
        pr = self._to_pr(record)
        if pr.head_sha != record["head_sha"]:
            record["head_sha"] = pr.head_sha
            self._save(record)
        return pr

    def _to_pr(self, record: dict[str, Any]) -> PullRequest:
        """The value; an open pull request's head is wherever its branch is now."""
        data = dict(record)
        if record["state"] == "open":
            with contextlib.suppress(NotFoundError):  # a branch gone: the last head known
                data["head_sha"] = self._branch_head(record["branch"])
        return PullRequest.from_json(data)

    def _path(self, number: int) -> Path:
        return self.dir / f"{number}.json"

    def _load(self, number: int) -> dict[str, Any]:
        path = self._path(number)
        if not path.is_file():
            raise NotFoundError(f"no pull request #{number}", hint="see agentctl's prs/ folder")
        return _read(path)

    def _records(self) -> list[dict[str, Any]]:
        """Every record, oldest (lowest number) first."""
        if not self.dir.is_dir():
            return []
        records = [
            _read(path)
            for path in self.dir.glob("*.json")
            if not path.name.startswith(".") and path.stem.isdigit()
        ]
        return sorted(records, key=lambda r: int(r["number"]))

    def _save(self, record: dict[str, Any]) -> None:
        record["updated"] = format_ts(self._clock())
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic.write_json(self._path(int(record["number"])), record)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptStateError(
            f"pull request record {path} is unreadable: {exc}",
            path=path,
            hint="move it aside; the branch itself is intact",
        ) from exc
    if not isinstance(data, dict) or not {"number", "branch", "base", "state"} <= data.keys():
        raise CorruptStateError(f"pull request record {path} is incomplete", path=path)
    if int(data.get("schema_version", 1)) > SCHEMA_VERSION:
        raise FutureStateError(
            f"{path} was written by a newer agentctl (schema {data['schema_version']})",
            path=path,
            hint="upgrade agentctl",
        )
    return data


def _holds(repo: Path, branch: str, merged: dict[str, Any]) -> bool:
    """Whether the merged PR ``merged`` already holds all of ``branch`` (or it is gone)."""
    try:
        ours = gitops.head(repo, f"refs/heads/{branch}")
    except NotFoundError:
        return True
    return any(
        sha and (ours == sha or gitops.is_ancestor(repo, ours, sha))
        for sha in (merged.get("head_sha"), merged.get("merge_sha"))
    )
