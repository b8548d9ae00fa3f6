"""The GitHub forge against the fake GitHub: real pushes, PRs, reviews, merges, faults."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentctl.config import Config, load_config
from agentctl.errors import (
    GitError,
    MergeRefusedError,
    NotFoundError,
    ServiceAuthError,
    ServiceRateLimitedError,
)
from agentctl.forges import Review
from agentctl.forges.github.forge import RATE, GithubForge, classify
from agentctl.pipeline.mergequeue import merge_pr
from agentctl.remote.graphql import GraphQLService
from agentctl.testing.github_server import GitHubServer
from agentctl.workspace import find_workspace
from tests.conftest import git

TOKEN = "ghp_test_0123456789abcdef"


class FakeTime:
    """One clock for the server's rate window and the client: it moves only by sleeping."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@dataclass
class Hub:
    server: GitHubServer
    root: Path  # the local repository (a workspace)
    bare: Path
    config: Config
    time: FakeTime

    @property
    def sleeps(self) -> list[float]:
        return self.time.sleeps

    def forge(self, token: str = TOKEN) -> GithubForge:
        settings = self.config.settings.forge.github
        service = GraphQLService(
            service="GitHub",
            url=settings.url,
            authorization=f"bearer {token}",
            classify=classify,
            rate_headers=RATE,
            sleep=self.time.sleep,
            clock=self.time,
        )
        return GithubForge(settings, service, repo_root=self.root, token=token)

    def branch(self, name: str, files: dict[str, str]) -> str:
        git(self.root, "switch", "-q", "-c", name, "main")
        for path, text in files.items():
            (self.root / path).write_text(text)
        git(self.root, "add", ".")
        git(self.root, "commit", "-qm", f"work on {name}")
        sha = git(self.root, "rev-parse", "HEAD")
        git(self.root, "switch", "-q", "main")
        return sha


@pytest.fixture
def hub(
    workspace: Path, github_schema: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Hub]:
    self_review = getattr(request, "param", False)
    clock = FakeTime()
    with GitHubServer(
        github_schema,
        tmp_path / "github",
        token=TOKEN,
        allow_self_review=self_review,
        clock=clock,
    ) as server:
        (workspace / "agentctl.toml").write_text(
            f'[project]\ntest_command = "true"\nbase_branch = "main"\n'
            f'[forge]\nkind = "github"\n[forge.github]\nrepo = "acme/app"\n'
            f'url = "{server.graphql_url}"\n'
        )
        git(workspace, "add", ".")
        git(workspace, "commit", "-qm", "agentctl")
        bare = server.add_repo("acme", "app", source=workspace)
        git(workspace, "remote", "add", "origin", server.remote_url("acme", "app"))
        yield Hub(server, workspace, bare, load_config(find_workspace(workspace)), clock)


def files_with(root: Path, needle: str) -> list[Path]:
    return [
        path for path in root.rglob("*") if path.is_file() and needle.encode() in path.read_bytes()
    ]


def test_open_pr_pushes_with_the_token_and_never_writes_it_down(hub: Hub) -> None:
    sha = hub.branch("agentctl/T-1", {"feature.py": "X = 1\n"})
    pr = hub.forge().open_pr(
        branch="agentctl/T-1", base="main", title="T-1: a feature", body="", ticket="T-1"
    )
    assert pr.number == 1 and pr.head_sha == sha and pr.ticket == "T-1"
    assert pr.url == "https://github.com/acme/app/pull/1"
    assert hub.server.head("acme", "app", "agentctl/T-1") == sha
    assert any(r.authorised for r in hub.server.git_requests)
    assert files_with(hub.root, TOKEN) == []  # not in .git/config, not in .agentctl/
    assert TOKEN not in git(hub.root, "remote", "get-url", "origin")


def test_the_remote_refuses_a_push_without_the_token(hub: Hub) -> None:
    hub.branch("agentctl/T-2", {"b.py": "B = 2\n"})
    env = {"PATH": "/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0", "HOME": str(hub.root)}
    pushed = subprocess.run(
        ["git", "push", "-q", "origin", "agentctl/T-2"],
        cwd=hub.root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert pushed.returncode != 0
    assert hub.server.head("acme", "app", "agentctl/T-2") is None
    with pytest.raises(GitError, match="git push") as caught:
        hub.forge(token="ghp_wrong").publish("agentctl/T-2")
    assert "ghp_wrong" not in str(caught.value)


def test_opening_twice_reuses_the_open_pull_request(hub: Hub) -> None:
    hub.branch("agentctl/T-1", {"a.py": "A = 1\n"})
    forge = hub.forge()
    first = forge.open_pr(branch="agentctl/T-1", base="main", title="t", body="")
    again = hub.forge().open_pr(branch="agentctl/T-1", base="main", title="t", body="")
    assert first.number == again.number == 1
    created = [r for r in hub.server.requests if r.operation == "AgentctlCreatePr"]
    assert len(created) == 1
    assert forge.find_pr("agentctl/T-1") == again
    assert [p.number for p in forge.list_prs()] == [1]
    with pytest.raises(NotFoundError):
        forge.get_pr(42)


def test_a_verdict_on_its_own_pr_becomes_a_marked_comment_review(hub: Hub) -> None:
    sha = hub.branch("agentctl/T-1", {"a.py": "A = 1\n"})
    forge = hub.forge()
    forge.open_pr(branch="agentctl/T-1", base="main", title="t", body="")
    pr = forge.add_review(
        1, Review("approve", "Looks right.", ({"file": "a.py", "line": 1, "body": "ok"},))
    )
    assert pr.review_state == "approved" and pr.reviews[-1].head_sha == sha
    posted = hub.server.pr(1)["reviews"]
    assert [r["state"] for r in posted] == ["COMMENTED"]  # GitHub refused a self-APPROVE
    assert "- a.py:1: ok" in posted[0]["body"]
    changes = forge.add_review(1, Review("request_changes", "Not yet."))
    assert changes.review_state == "changes_requested"


@pytest.mark.parametrize("hub", [True], indirect=True)
def test_a_verdict_from_another_account_is_a_real_github_review(hub: Hub) -> None:
    hub.branch("agentctl/T-1", {"a.py": "A = 1\n"})
    forge = hub.forge()
    forge.open_pr(branch="agentctl/T-1", base="main", title="t", body="")
    assert forge.add_review(1, Review("approve", "Fine.")).review_state == "approved"
    assert [r["state"] for r in hub.server.pr(1)["reviews"]] == ["APPROVED"]


def test_a_verdict_marker_typed_by_someone_else_is_not_an_approval(hub: Hub) -> None:
    hub.branch("agentctl/T-1", {"a.py": "A = 1\n"})
    forge = hub.forge()
    forge.publish("agentctl/T-1")
    number = hub.server.open_pr_as("acme", "app", "agentctl/T-1", "main", "t", author="mallory")
    forge.comment(number, "<!-- agentctl:verdict=approve -->")  # a comment, not a review
    assert forge.get_pr(number).review_state == "none"


def test_merge_only_at_the_gated_head(hub: Hub) -> None:
    gated = hub.branch("agentctl/T-1", {"a.py": "A = 1\n"})
    forge = hub.forge()
    forge.open_pr(branch="agentctl/T-1", base="main", title="t", body="")
    main_before = hub.server.head("acme", "app", "main")
    hub.server.commit_to_branch("acme", "app", "agentctl/T-1", {"evil.py": "x"}, "sneaky")
    with pytest.raises(MergeRefusedError, match="nothing merged"):
        forge.merge(1, expected_head=gated)
    assert hub.server.head("acme", "app", "main") == main_before
    assert hub.server.pr(1)["state"] == "OPEN"
    moved = forge.get_pr(1).head_sha
    merged = forge.merge(1, expected_head=moved)
    assert merged.state == "merged" and merged.merge_sha
    assert git(hub.bare, "show", "main:a.py") == "A = 1"
    assert forge.merge(1, expected_head=moved) == forge.get_pr(1)  # again: already done
    with pytest.raises(MergeRefusedError, match="already merged"):
        forge.merge(1, expected_head=gated)
    assert git(hub.root, "rev-parse", "origin/main") == merged.merge_sha  # fetched after


def test_the_merge_queue_merges_an_approved_pr_through_github(hub: Hub) -> None:
    hub.branch("agentctl/T-1", {"a.py": "A = 1\n"})
    hub.server.commit_to_branch("acme", "app", "main", {"other.py": "O = 1\n"}, "main moved")
    forge = hub.forge()
    forge.open_pr(branch="agentctl/T-1", base="main", title="t", body="")
    forge.add_review(1, Review("approve", "ok"))
    state_dir = hub.root / ".agentctl"
    outcome = merge_pr(forge, 1, repo_root=hub.root, state_dir=state_dir, gate="true")
    assert outcome.status == "merged", outcome
    merges = [r.variables["input"] for r in hub.server.requests if r.operation == "AgentctlMerge"]
    assert [m["expectedHeadOid"] for m in merges] == [hub.server.pr(1)["head_oid"]]
    assert git(hub.bare, "show", "main:a.py") == "A = 1"
    assert git(hub.bare, "show", "main:other.py") == "O = 1"


def test_failing_checks_on_github_hold_the_merge(hub: Hub) -> None:
    sha = hub.branch("agentctl/T-1", {"a.py": "A = 1\n"})
    forge = hub.forge()
    forge.open_pr(branch="agentctl/T-1", base="main", title="t", body="")
    forge.add_review(1, Review("approve", "ok"))
    hub.server.set_status("acme", "app", sha, "FAILURE")
    assert forge.get_pr(1).checks == "failure"
    state_dir = hub.root / ".agentctl"
    outcome = merge_pr(forge, 1, repo_root=hub.root, state_dir=state_dir, gate="true")
    assert outcome.status == "gate_failed" and "failure" in outcome.detail
    assert hub.server.pr(1)["state"] == "OPEN"


@pytest.mark.parametrize("fault", ["rate_limited", "rate_limit"])
def test_rate_limited_near_the_reset_is_waited_out_then_retried(hub: Hub, fault: str) -> None:
    forge = hub.forge()
    hub.time.now += 3600 - 30  # the window resets in 30 s
    hub.server.inject(fault)
    assert forge.list_prs() == []
    assert len(hub.sleeps) == 1 and 25 <= hub.sleeps[0] <= 31


def test_rate_limited_far_from_the_reset_is_reported_not_slept(hub: Hub) -> None:
    forge = hub.forge()
    hub.server.inject("rate_limited")
    with pytest.raises(ServiceRateLimitedError, match="GitHub: rate limited") as caught:
        forge.list_prs()
    assert hub.sleeps == [] and len(hub.server.requests) == 1
    assert caught.value.retry_after is not None and caught.value.retry_after > 3000


def test_a_secondary_limit_for_good_is_retried_a_bounded_number_of_times(hub: Hub) -> None:
    forge = hub.forge()
    hub.server.inject("secondary", times=10)  # 403 with retry-after: 1
    with pytest.raises(ServiceRateLimitedError, match="GitHub: rate limited"):
        forge.list_prs()
    assert len(hub.server.requests) == 4 and hub.sleeps == [1.0, 1.0, 1.0]


def test_bad_credentials_and_a_missing_repository(hub: Hub) -> None:
    with pytest.raises(ServiceAuthError, match="GitHub: the token was refused") as caught:
        hub.forge(token="ghp_nope").list_prs()
    assert caught.value.status == 401 and hub.sleeps == []
    settings = hub.config.settings.forge.github
    service = hub.forge().service
    wrong = GithubForge(
        type(settings)(repo="acme/nope", url=settings.url), service, repo_root=hub.root, token=TOKEN
    )
    with pytest.raises(NotFoundError, match="no repository acme/nope"):
        wrong.repository_id()


def test_a_push_racing_the_merge_is_refused_and_nothing_merges(hub: Hub) -> None:
    """The head moves between the gate and the merge call: GitHub refuses the stale SHA."""
    hub.branch("agentctl/T-1", {"a.py": "A = 1\n"})
    hub.server.commit_to_branch("acme", "app", "main", {"other.py": "O = 1\n"}, "main moved")
    forge = hub.forge()
    forge.open_pr(branch="agentctl/T-1", base="main", title="t", body="")
    forge.add_review(1, Review("approve", "ok"))
    publish = forge.publish

    def publish_then_someone_pushes(branch: str) -> None:
        publish(branch)
        hub.server.commit_to_branch("acme", "app", branch, {"late.py": "L = 1\n"}, "late")

    forge.publish = publish_then_someone_pushes  # type: ignore[method-assign]
    main_before = hub.server.head("acme", "app", "main")
    with pytest.raises(MergeRefusedError, match="nothing merged"):
        merge_pr(forge, 1, repo_root=hub.root, state_dir=hub.root / ".agentctl", gate="true")
    assert hub.server.head("acme", "app", "main") == main_before
    assert hub.server.pr(1)["state"] == "OPEN"


def test_a_pr_marked_for_a_person_is_read_back_and_never_merged(hub: Hub) -> None:
    head = hub.branch("agentctl/T-1", {"a.py": "A = 1\n"})
    forge = hub.forge()
    forge.open_pr(branch="agentctl/T-1", base="main", title="t", body="")
    reason = "this change edits protected paths (roles/dev.toml); a person must merge it"
    assert forge.mark_needs_person(1, reason).needs_person == reason
    assert hub.forge().get_pr(1).needs_person == reason  # another process reads it back
    assert forge.mark_needs_person(1, "again").needs_person == reason  # marked once
    (review,) = hub.server.pr(1)["reviews"]  # a COMMENT review: allowed on one's own PR
    assert review["state"] == "COMMENTED" and "<!-- agentctl:needs-person -->" in review["body"]
    assert forge.get_pr(1).review_state == "none"  # a mark is not a verdict
    with pytest.raises(MergeRefusedError, match="waits for a person"):
        forge.merge(1, expected_head=head)
    assert hub.server.pr(1)["state"] == "OPEN"
