"""LocalForge: branches as pull requests, records under .agentctl/prs/, guarded merges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentctl.errors import CorruptStateError, MergeRefusedError, NotFoundError, UsageError
from agentctl.forges import Forge, PullRequest, Review
from agentctl.forges.local import LocalForge
from agentctl.repo import gitops
from tests.conftest import git


def _branch(repo: Path, branch: str, files: dict[str, str]) -> str:
    tree = gitops.ensure_worktree(repo, repo / ".agentctl", branch, "main")
    for name, text in files.items():
        (tree / name).write_text(text)
    sha = gitops.commit_all(tree, f"{branch}: change")
    assert sha is not None
    return sha


@pytest.fixture
def forge(repo: Path) -> LocalForge:
    return LocalForge(repo, repo / ".agentctl")


def test_is_a_forge(forge: LocalForge) -> None:
    assert isinstance(forge, Forge)


def test_open_pr_is_idempotent_and_refreshes_the_head(repo: Path, forge: LocalForge) -> None:
    first_sha = _branch(repo, "agent/t-1", {"a.txt": "a\n"})
    pr = forge.open_pr(branch="agent/t-1", base="main", title="T-1", body="b", ticket="T-1")
    assert (pr.number, pr.state, pr.head_sha, pr.ticket) == (1, "open", first_sha, "T-1")
    second_sha = _branch(repo, "agent/t-1", {"a.txt": "a2\n"})
    again = forge.open_pr(branch="agent/t-1", base="main", title="other", body="")
    assert again.number == 1 and again.head_sha == second_sha and again.title == "T-1"
    assert len(forge.list_prs()) == 1
    record = json.loads((repo / ".agentctl" / "prs" / "1.json").read_text())
    assert record["head_sha"] == second_sha and record["schema_version"] == 1


def test_open_pr_needs_real_branches(repo: Path, forge: LocalForge) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        forge.open_pr(branch="nope", base="main", title="t", body="")
    with pytest.raises(UsageError):
        forge.open_pr(branch="main", base="main", title="t", body="")
    assert forge.list_prs(state=None) == []


def test_find_get_list(repo: Path, forge: LocalForge) -> None:
    _branch(repo, "b", {"b.txt": "b\n"})
    assert forge.find_pr("b") is None
    first = forge.open_pr(branch="b", base="main", title="one", body="")
    forge.close(first.number)
    second = forge.open_pr(branch="b", base="main", title="two", body="")
    assert second.number == 2
    found = forge.find_pr("b")
    assert found is not None and found.number == 2
    forge.close(2)
    newest = forge.find_pr("b")
    assert newest is not None and newest.number == 2 and newest.state == "closed"
    assert [p.number for p in forge.list_prs(state="closed")] == [1, 2]
    assert forge.list_prs() == []
    assert forge.get_pr(1).title == "one"
    with pytest.raises(NotFoundError):
        forge.get_pr(9)
    with pytest.raises(UsageError):
        forge.list_prs(state="weird")


def test_review_counts_only_on_the_current_head(repo: Path, forge: LocalForge) -> None:
    _branch(repo, "b", {"b.txt": "b\n"})
    pr = forge.open_pr(branch="b", base="main", title="t", body="")
    assert pr.review_state == "none"
    pr = forge.add_review(pr.number, Review("request_changes", "add a test"))
    assert pr.review_state == "changes_requested"
    assert pr.reviews[0].head_sha == pr.head_sha and pr.reviews[0].at
    pr = forge.add_review(pr.number, Review("approve", "good", comments=({"path": "b.txt"},)))
    assert pr.review_state == "approved"
    _branch(repo, "b", {"b.txt": "changed after review\n"})
    assert forge.get_pr(pr.number).review_state == "none"
    forge.comment(pr.number, "hello")
    assert forge.comments(pr.number)[0]["body"] == "hello"
    assert forge.get_pr(pr.number).reviews[1].comments == ({"path": "b.txt"},)


def test_review_state_value() -> None:
    old, new = "a" * 40, "b" * 40
    pr = PullRequest(1, "b", "main", "t", "", "open", new)
    approve_old = Review("approve", "ok", head_sha=old)
    reject_new = Review("request_changes", "no", head_sha=new)
    assert PullRequest(1, "b", "main", "t", "", "open", new, (approve_old,)).review_state == "none"
    both = (reject_new, Review("approve", "now ok", head_sha=new))
    assert PullRequest(1, "b", "main", "t", "", "open", new, both).review_state == "approved"
    assert PullRequest.from_json(pr.to_json()) == pr


def test_merge_fast_forwards_the_checked_out_base(repo: Path, forge: LocalForge) -> None:
    sha = _branch(repo, "b", {"b.txt": "b\n"})
    pr = forge.open_pr(branch="b", base="main", title="t", body="")
    merged = forge.merge(pr.number, expected_head=sha)
    assert (merged.state, merged.merge_sha, merged.head_sha) == ("merged", sha, sha)
    assert git(repo, "rev-parse", "main") == sha
    assert (repo / "b.txt").read_text() == "b\n"  # the user's working copy followed
    assert gitops.is_clean(repo, untracked=False)
    again = forge.merge(pr.number, expected_head=sha)  # idempotent
    assert again == merged
    with pytest.raises(MergeRefusedError, match="already merged"):
        forge.merge(pr.number, expected_head="0" * 40)


def test_merge_refuses_a_dirty_base_checkout(repo: Path, forge: LocalForge) -> None:
    sha = _branch(repo, "b", {"b.txt": "b\n"})
    before = git(repo, "rev-parse", "main")
    (repo / "README.md").write_text("local edit\n")
    pr = forge.open_pr(branch="b", base="main", title="t", body="")
    with pytest.raises(MergeRefusedError, match="uncommitted"):
        forge.merge(pr.number, expected_head=sha)
    assert git(repo, "rev-parse", "main") == before
    assert forge.get_pr(pr.number).state == "open"


def test_merge_updates_a_base_not_checked_out(repo: Path, forge: LocalForge) -> None:
    git(repo, "checkout", "-q", "-b", "elsewhere")
    sha = _branch(repo, "b", {"b.txt": "b\n"})
    pr = forge.open_pr(branch="b", base="main", title="t", body="")
    forge.merge(pr.number, expected_head=sha)
    assert git(repo, "rev-parse", "main") == sha
    assert git(repo, "rev-parse", "HEAD") != sha
    assert "merge pull request #1" in git(repo, "reflog", "-1", "main")


def test_merge_refuses_a_stale_expected_head(repo: Path, forge: LocalForge) -> None:
    old = _branch(repo, "b", {"b.txt": "b\n"})
    pr = forge.open_pr(branch="b", base="main", title="t", body="")
    new = _branch(repo, "b", {"b.txt": "b2\n"})
    before = git(repo, "rev-parse", "main")
    with pytest.raises(MergeRefusedError) as caught:
        forge.merge(pr.number, expected_head=old)
    assert old in str(caught.value) and new in str(caught.value)
    assert git(repo, "rev-parse", "main") == before
    assert forge.get_pr(pr.number).state == "open"


def test_merge_refuses_what_is_not_a_fast_forward(repo: Path, forge: LocalForge) -> None:
    sha = _branch(repo, "b", {"b.txt": "b\n"})
    (repo / "m.txt").write_text("m\n")
    git(repo, "add", "m.txt")
    git(repo, "commit", "-q", "-m", "main moved")
    before = git(repo, "rev-parse", "main")
    pr = forge.open_pr(branch="b", base="main", title="t", body="")
    with pytest.raises(MergeRefusedError, match="not a fast-forward"):
        forge.merge(pr.number, expected_head=sha)
    assert git(repo, "rev-parse", "main") == before


def test_merge_refuses_a_closed_pr(repo: Path, forge: LocalForge) -> None:
    sha = _branch(repo, "b", {"b.txt": "b\n"})
    pr = forge.open_pr(branch="b", base="main", title="t", body="")
    forge.close(pr.number)
    with pytest.raises(MergeRefusedError, match="closed"):
        forge.merge(pr.number, expected_head=sha)


def test_a_corrupt_record_is_reported(repo: Path, forge: LocalForge) -> None:
    (repo / ".agentctl" / "prs").mkdir(parents=True)
    (repo / ".agentctl" / "prs" / "1.json").write_text('{"number": 1, "bra')
    with pytest.raises(CorruptStateError, match=r"1\.json"):
        forge.get_pr(1)
    with pytest.raises(CorruptStateError):
        forge.list_prs()
