"""The merge queue on real repositories: approval, up to date, gated, merged once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentctl.errors import MergeRefusedError
from agentctl.forges import PullRequest, Review, Verdict
from agentctl.forges.local import LocalForge
from agentctl.pipeline.mergequeue import NO_GATE, MergeOutcome, merge_pr
from agentctl.repo import gitops
from agentctl.runs.journal import Journal, read_journal
from tests.conftest import git

# The project's "test suite": every *.txt file must say ok.
CHECK = (
    'for f in *.txt; do [ "$(cat "$f")" = ok ] || { echo "FAIL $f"; exit 1; }; done\necho passed\n'
)
GATE = "sh check.sh"


@pytest.fixture
def project(repo: Path) -> Path:
    (repo / "check.sh").write_text(CHECK)
    (repo / "base.txt").write_text("ok\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "tests")
    return repo


@pytest.fixture
def forge(project: Path) -> LocalForge:
    return LocalForge(project, project / ".agentctl")


def _pr(
    repo: Path,
    forge: LocalForge,
    branch: str,
    files: dict[str, str],
    verdict: Verdict | None = "approve",
) -> PullRequest:
    tree = gitops.ensure_worktree(repo, repo / ".agentctl", branch, "main")
    for name, text in files.items():
        (tree / name).write_text(text)
    assert gitops.commit_all(tree, f"{branch}: work") is not None
    pr = forge.open_pr(branch=branch, base="main", title=branch, body="")
    if verdict is not None:
        pr = forge.add_review(pr.number, Review(verdict, "looked at it"))
    return pr


def _on_main(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"main: {name}")
    return git(repo, "rev-parse", "main")


def _merge(
    repo: Path,
    forge: LocalForge,
    number: int,
    *,
    gate: str | None = GATE,
    journal: Journal | None = None,
) -> MergeOutcome:
    state = repo / ".agentctl"
    return merge_pr(forge, number, repo_root=repo, state_dir=state, gate=gate, journal=journal)


def _green(repo: Path) -> bool:
    return subprocess.run(["sh", "check.sh"], cwd=repo, capture_output=True).returncode == 0


def test_approved_and_green_is_merged(project: Path, forge: LocalForge, tmp_path: Path) -> None:
    pr = _pr(project, forge, "agent/t-1", {"feature.txt": "ok\n"})
    journal = Journal(tmp_path / "events.jsonl")
    outcome = _merge(project, forge, pr.number, journal=journal)
    assert outcome.status == "merged", outcome
    assert outcome.sha == pr.head_sha == git(project, "rev-parse", "main")
    assert "passed" in outcome.gate_output
    assert (project / "feature.txt").exists() and _green(project)
    assert forge.get_pr(pr.number).state == "merged"
    events = [(e["type"], e["sha"]) for e in read_journal(tmp_path / "events.jsonl").events]
    assert events == [("merge.intent", pr.head_sha), ("merge.result", pr.head_sha)]


def test_base_that_moved_is_merged_in_before_gating(project: Path, forge: LocalForge) -> None:
    pr = _pr(project, forge, "b", {"feature.txt": "ok\n"})
    moved = _on_main(project, "other.txt", "ok\n")
    outcome = _merge(project, forge, pr.number)
    assert outcome.status == "merged", outcome
    main = git(project, "rev-parse", "main")
    assert outcome.sha == main
    parents = git(project, "rev-list", "--parents", "-n", "1", main).split()[1:]
    assert parents == [pr.head_sha, moved]  # the gated merge commit; reviewed SHA kept
    assert (project / "feature.txt").exists() and (project / "other.txt").exists()
    assert _green(project)


def test_conflict_leaves_base_unchanged(project: Path, forge: LocalForge) -> None:
    pr = _pr(project, forge, "b", {"base.txt": "ok\n\n"})
    before = _on_main(project, "base.txt", "ok \n")
    outcome = _merge(project, forge, pr.number)
    assert outcome.status == "conflict"
    assert "base.txt" in outcome.detail
    assert git(project, "rev-parse", "main") == before
    assert forge.get_pr(pr.number).state == "open"


def test_red_gate_leaves_base_unchanged(project: Path, forge: LocalForge) -> None:
    before = git(project, "rev-parse", "main")
    pr = _pr(project, forge, "b", {"feature.txt": "broken\n"})
    outcome = _merge(project, forge, pr.number)
    assert outcome.status == "gate_failed"
    assert "FAIL feature.txt" in outcome.gate_output
    assert git(project, "rev-parse", "main") == before


def test_a_red_gates_output_is_bounded_feedback(project: Path, forge: LocalForge) -> None:
    """What goes back to a dev round: the command and its exit first, then whole lines."""
    pr = _pr(project, forge, "b", {"feature.txt": "ok\n"})
    gate = "seq 1 100000; echo LAST; exit 3"
    outcome = _merge(project, forge, pr.number, gate=gate)
    assert outcome.status == "gate_failed"
    assert outcome.gate_output.startswith(f"`{gate}` exited 3")
    assert len(outcome.gate_output) <= 3000 and outcome.gate_output.rstrip().endswith("LAST")
    assert "earlier lines cut" in outcome.gate_output


def test_no_gate_configured_is_refused(project: Path, forge: LocalForge) -> None:
    before = git(project, "rev-parse", "main")
    pr = _pr(project, forge, "b", {"feature.txt": "ok\n"})
    outcome = _merge(project, forge, pr.number, gate=None)
    assert (outcome.status, outcome.detail) == ("gate_failed", NO_GATE)
    assert git(project, "rev-parse", "main") == before


@pytest.mark.parametrize("verdict", [None, "request_changes"])
def test_not_approved_is_refused(project: Path, forge: LocalForge, verdict: Verdict | None) -> None:
    before = git(project, "rev-parse", "main")
    pr = _pr(project, forge, "b", {"feature.txt": "ok\n"}, verdict=verdict)
    assert _merge(project, forge, pr.number).status == "not_approved"
    assert git(project, "rev-parse", "main") == before


def test_approval_of_an_older_head_does_not_count(project: Path, forge: LocalForge) -> None:
    pr = _pr(project, forge, "b", {"feature.txt": "ok\n"})
    _pr(project, forge, "b", {"feature.txt": "ok\n", "late.txt": "ok\n"}, verdict=None)
    outcome = _merge(project, forge, pr.number)
    assert outcome.status == "not_approved"


def test_merging_twice_merges_once(project: Path, forge: LocalForge) -> None:
    pr = _pr(project, forge, "b", {"feature.txt": "ok\n"})
    _on_main(project, "other.txt", "ok\n")
    first = _merge(project, forge, pr.number)
    assert first.status == "merged"
    count = git(project, "rev-list", "--count", "main")
    second = _merge(project, forge, pr.number)
    assert (second.status, second.sha) == ("already_merged", first.sha)
    assert git(project, "rev-list", "--count", "main") == count
    assert len(git(project, "rev-list", "--merges", "main").split()) == 1


def test_stale_expected_head_is_refused(project: Path, forge: LocalForge) -> None:
    pr = _pr(project, forge, "b", {"feature.txt": "ok\n"})
    before = git(project, "rev-parse", "main")
    with pytest.raises(MergeRefusedError, match=pr.head_sha):
        forge.merge(pr.number, expected_head="f" * 40)
    assert git(project, "rev-parse", "main") == before


def test_a_queue_interrupted_after_the_update_finishes(project: Path, forge: LocalForge) -> None:
    """A crash after the base was merged in leaves a new head; the approval still holds."""
    pr = _pr(project, forge, "b", {"feature.txt": "ok\n"})
    _on_main(project, "other.txt", "ok\n")
    tree = gitops.ensure_worktree(project, project / ".agentctl", "b", "main")
    updated = gitops.update_from_base(tree, "main")
    assert updated.ok
    assert forge.get_pr(pr.number).review_state == "none"
    outcome = _merge(project, forge, pr.number)
    assert outcome.status == "merged" and outcome.sha == updated.sha
    assert not tree.exists()  # merged: agentctl's worktree is gone, a person's branch stays
    assert git(project, "branch", "--list", "--format=%(refname:short)", "b") == "b"


def test_new_work_after_approval_is_not_covered(project: Path, forge: LocalForge) -> None:
    pr = _pr(project, forge, "b", {"feature.txt": "ok\n"})
    _on_main(project, "other.txt", "ok\n")
    tree = gitops.ensure_worktree(project, project / ".agentctl", "b", "main")
    assert gitops.update_from_base(tree, "main").ok
    (tree / "sneaky.txt").write_text("ok\n")
    gitops.commit_all(tree, "unreviewed")
    assert _merge(project, forge, pr.number).status == "not_approved"


_WORKER = """
import json, sys
from pathlib import Path
from agentctl.forges.local import LocalForge
from agentctl.pipeline.mergequeue import merge_pr
from agentctl.tools.gate import GateSandbox
repo = Path(sys.argv[1])
# Unsandboxed on purpose: both gates log to one file outside their worktrees.
out = merge_pr(LocalForge(repo, repo / ".agentctl"), int(sys.argv[2]), repo_root=repo,
               state_dir=repo / ".agentctl", gate=sys.argv[3], sandbox=GateSandbox(mode="none"))
print(json.dumps(out.to_json()))
"""


def test_two_processes_queue_one_after_the_other(
    project: Path, forge: LocalForge, tmp_path: Path
) -> None:
    one = _pr(project, forge, "one", {"one.txt": "ok\n"})
    two = _pr(project, forge, "two", {"two.txt": "ok\n"})
    log = tmp_path / "gates.log"
    gate = f"echo start >> {log} && sh check.sh && echo end >> {log}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(project), str(pr.number), gate],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pr in (one, two)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert [r["status"] for r in results] == ["merged", "merged"]
    assert log.read_text().split() == ["start", "end", "start", "end"]  # never overlapped
    assert (project / "one.txt").exists() and (project / "two.txt").exists()
    assert _green(project)
    assert git(project, "rev-parse", "main") in {r["sha"] for r in results}
    assert {forge.get_pr(n).state for n in (one.number, two.number)} == {"merged"}


def test_a_gate_the_sandbox_policy_refuses_leaves_the_pr_open_and_says_why(
    project: Path, forge: LocalForge
) -> None:
    from agentctl.tools.gate import GateSandbox
    from agentctl.tools.sandbox import Host

    def unavailable() -> tuple[bool, str]:
        return False, "bwrap unavailable"

    pr = _pr(project, forge, "feature", {"new.txt": "ok\n"})
    head = git(project, "rev-parse", "main")
    for policy in (
        GateSandbox(mode="strict", host=Host(bwrap=unavailable, euid=lambda: 1000)),
        GateSandbox(mode="auto", host=Host(bwrap=unavailable, euid=lambda: 0)),
    ):
        with pytest.raises(MergeRefusedError, match=r"gate cannot run.*bwrap unavailable"):
            merge_pr(
                forge,
                pr.number,
                repo_root=project,
                state_dir=project / ".agentctl",
                gate=GATE,
                sandbox=policy,
            )
    assert forge.get_pr(pr.number).state == "open"
    assert git(project, "rev-parse", "main") == head
