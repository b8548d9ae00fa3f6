"""Issue 15: the orchestrator never runs away.

Every automatic action for a ticket or PR is an attempt against ``max_attempts``,
with a doubling backoff on the injected clock; a permanent failure or the last
attempt parks the item (said once, the ticket blocked) until a person acts; and
``max_parallel`` holds for every pipeline the orchestrator starts, reviews included.
Real pipelines, real git, the scripted model server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentctl.config import load_config
from agentctl.errors import CorruptStateError
from agentctl.orchestrator.attempts import Attempts
from agentctl.orchestrator.home import Home
from agentctl.orchestrator.tick import Tick, TickReport
from agentctl.runs import RunStore, utc_now
from agentctl.runs.record import RunRecord
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.trackers.local import LocalTracker
from agentctl.workspace import find_workspace
from tests import test_orchestrator_tick as ticks
from tests.conftest import git
from tests.test_orchestrator_tick import APPROVE, settle

server = ticks.server  # the same fixtures as the tick tests
project = ticks.project

PROSE = Turn.text("The change looks reasonable to me; nothing stands out.")


class Clock:
    """The orchestrator's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def configure(root: Path, text: str) -> None:
    config = root / "agentctl.toml"
    config.write_text(config.read_text().replace("max_parallel = 2\n", text))
    git(root, "commit", "-qam", "orchestrator settings for this test")


def no_retries_for_the_coder(root: Path) -> None:
    """The client's own retries off: a 503 is one failed call, at once."""
    config = root / "agentctl.toml"
    text = config.read_text().replace(
        'name = "demo-coder"\n', 'name = "demo-coder"\nmax_retries = 0\n', 1
    )
    config.write_text(text)
    git(root, "commit", "-qam", "no client retries")


def running_pipelines(root: Path) -> int:
    return sum(
        1
        for x in RunStore(root / ".agentctl").list(kind="pipeline")
        if x.record is not None and x.record.status in ("pending", "running")
    )


@contextmanager
def sampled(root: Path) -> Iterator[list[int]]:
    """Running pipelines, sampled from a thread the whole time (they run detached)."""
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(running_pipelines(root))
            stop.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def ticking(root: Path, clock: Callable[[], datetime]) -> TickReport:
    report = Tick(load_config(find_workspace(root)), clock=clock).run()
    settle(root)
    return report


def outbox(root: Path) -> list[dict[str, Any]]:
    return [m.body for m in Home.of(root / ".agentctl").outbox.read()]


def parked_comments(tracker: LocalTracker, ticket: str) -> list[str]:
    return [c for c in tracker.get(ticket).comments if c.startswith("agentctl parked")]


def test_a_reviewer_that_never_gives_a_verdict_parks_each_ticket_once(
    project: Path, server: LLMServer
) -> None:
    """Issue 15's runaway: 2 tickets, a reviewer answering in prose, 12 ticks."""
    configure(project, "max_parallel = 1\n")
    tracker = LocalTracker(project / ".agentctl")
    tracker.set_state("T-3", "Canceled")
    for ticket in ("T-1", "T-2"):
        n = int(ticket[2:]) - 1
        server.script_for(
            "demo-coder",
            f"{ticket}:",
            Turn.tool_call("write", {"path": f"feature_{n}.py", "content": f"FEATURE = {n}\n"}),
            Turn.text("Added."),
        )
        server.script_for("demo-reviewer", f"{ticket}:", *[PROSE] * 4)  # max_tool_errors + 1
    clock = Clock()
    reports = []
    with sampled(project) as samples:
        for _ in range(12):
            reports.append(ticking(project, clock))
            samples.append(running_pipelines(project))
            clock.advance(60)
    assert max(samples) <= 1, samples  # max_parallel, throughout
    assert "T-2: max_parallel 1" in reports[0].waiting
    pipelines = RunStore(project / ".agentctl").list(kind="pipeline")
    assert len(pipelines) == 2, [p.record for p in pipelines]  # one per ticket, no review-pr
    assert len([r for r in server.requests if r.model == "demo-reviewer"]) == 8
    for ticket in ("T-1", "T-2"):
        assert tracker.get(ticket).state == "Blocked"
        (comment,) = parked_comments(tracker, ticket)
        assert "unusable" in comment
        assert f"Run `agentctl tickets retry {ticket}` or move it back to Todo" in comment
        said = [r for r in outbox(project) if any(ticket in p for p in r.get("parked", []))]
        assert len(said) == 1, outbox(project)
    assert sum(len(r.parked) for r in reports) == 2
    assert all(r.started == [] for r in reports[3:])  # nothing more was started
    server.assert_complete()


def test_review_pr_starts_obey_max_parallel_and_a_prose_review_parks_the_pr(
    project: Path, server: LLMServer
) -> None:
    """PRs without a ticket: each review-pr is an attempt of its branch; one at a time."""
    from agentctl.forges.local import LocalForge

    configure(project, "max_parallel = 1\n")
    tracker = LocalTracker(project / ".agentctl")
    for ticket in ("T-1", "T-2", "T-3"):
        tracker.set_state(ticket, "Canceled")
    forge = LocalForge(project, project / ".agentctl")
    for name in ("docs-a", "docs-b"):
        git(project, "checkout", "-q", "-b", name)
        (project / f"{name}.txt").write_text("written by a person\n")
        git(project, "add", f"{name}.txt")
        git(project, "commit", "-qm", f"{name} by hand")
        git(project, "checkout", "-q", "main")
        forge.open_pr(branch=name, base="main", title=name, body="by hand")
    server.script("demo-reviewer", *[PROSE] * 8)
    clock = Clock()
    reports = []
    with sampled(project) as samples:
        for _ in range(12):
            reports.append(ticking(project, clock))
            clock.advance(60)
    assert max(samples) <= 1, samples
    first = reports[0]
    assert len(first.started) == 1 and "max_parallel 1" in " ".join(first.waiting), first
    reviews = RunStore(project / ".agentctl").list(kind="pipeline")
    assert len(reviews) == 2  # one review per PR, never one per tick
    parked = [p for r in reports for p in r.parked]
    assert len(parked) == 2 and {p.split(":")[0] for p in parked} == {"docs-a", "docs-b"}
    assert all("without a verdict" in p or "unusable" in p for p in parked), parked
    server.assert_complete()


def backoff_project(project: Path) -> LocalTracker:
    configure(project, 'max_parallel = 2\nmax_attempts = 3\nretry_backoff = "5m"\n')
    no_retries_for_the_coder(project)
    tracker = LocalTracker(project / ".agentctl")
    tracker.set_state("T-2", "Canceled")
    tracker.set_state("T-3", "Canceled")
    return tracker


def unavailable() -> Turn:
    return Turn.error(503, message="the model server is down for maintenance")


def test_an_endpoint_answering_503_is_tried_max_attempts_times_with_backoff_then_parked(
    project: Path, server: LLMServer
) -> None:
    tracker = backoff_project(project)
    server.script("demo-coder", *[unavailable()] * 3)  # a 4th call would find no turn
    clock = Clock()
    begin = clock.now
    starts: list[float] = []
    reports = []
    for _ in range(12):
        report = ticking(project, clock)
        reports.append(report)
        if report.started:
            starts.append((clock.now - begin).total_seconds())
        clock.advance(150)
    assert starts == [0, 450, 1200], starts  # 5m, then 10m after each observed failure
    assert len(RunStore(project / ".agentctl").list(kind="pipeline")) == 3
    assert sum(len(r.failed) for r in reports) == 2  # with attempts left: said, retried
    parked = [p for r in reports for p in r.parked]
    assert len(parked) == 1 and parked[0].startswith("T-1: ") and "(3 attempts)" in parked[0]
    assert any("backing off until" in w for r in reports for w in r.waiting)
    assert tracker.get("T-1").state == "Blocked"
    assert len(parked_comments(tracker, "T-1")) == 1
    state = Home.of(project / ".agentctl").load_state()
    assert state["items"]["ticket:T-1"]["attempts"] == 3
    server.assert_complete()


def test_an_endpoint_that_recovers_before_the_budget_is_spent_lands_the_ticket(
    project: Path, server: LLMServer
) -> None:
    tracker = backoff_project(project)
    server.script(
        "demo-coder",
        unavailable(),
        Turn.tool_call("write", {"path": "feature_0.py", "content": "FEATURE = 0\n"}),
        Turn.text("Added."),
    )
    server.script("demo-reviewer", APPROVE)
    clock = Clock()
    reports = []
    for _ in range(12):
        reports.append(ticking(project, clock))
        clock.advance(150)
    assert tracker.get("T-1").state == "Done"
    assert (project / "feature_0.py").read_text() == "FEATURE = 0\n"  # merged into main
    assert sum(len(r.merged) for r in reports) == 1
    assert [p for r in reports for p in r.parked] == []
    assert "ticket:T-1" not in Home.of(project / ".agentctl").load_state().get("items", {})
    server.assert_complete()


def parked_by_a_wrong_key(project: Path, server: LLMServer, clock: Clock) -> LocalTracker:
    """T-1's model refuses the key (401: permanent): parked after its first attempt."""
    tracker = backoff_project(project)
    server.script("demo-coder", Turn.error(401))
    ticking(project, clock)
    clock.advance(60)
    report = ticking(project, clock)
    assert len(report.parked) == 1 and report.failed == [], report
    assert tracker.get("T-1").state == "Blocked"
    clock.advance(3600)
    assert ticking(project, clock).started == []  # parked: left alone, however long
    return tracker


@pytest.mark.parametrize("how", ["tickets retry", "moved by a person"])
def test_a_parked_ticket_is_unparked_by_a_person(
    project: Path, server: LLMServer, how: str
) -> None:
    clock = Clock()
    tracker = parked_by_a_wrong_key(project, server, clock)
    if how == "tickets retry":  # what `agentctl tickets retry T-1` does
        tracker.unblock("T-1", "Todo")
        Home.of(project / ".agentctl").inbox.post({"type": "retry", "ticket": "T-1"})
    else:
        tracker.set_state("T-1", "Todo")
    server.script(
        "demo-coder",
        Turn.tool_call("write", {"path": "feature_0.py", "content": "FEATURE = 0\n"}),
        Turn.text("Added."),
    )
    server.script("demo-reviewer", APPROVE)
    clock.advance(60)
    report = ticking(project, clock)
    assert len(report.unparked) == 1 and report.unparked[0].startswith("T-1: ")
    assert report.instructions == []  # a retry message is no instruction for triage
    assert [s.split(":")[0] for s in report.started] == ["T-1"]
    clock.advance(60)
    assert len(ticking(project, clock).merged) == 1
    assert tracker.get("T-1").state == "Done"
    server.assert_complete()


# -- units ------------------------------------------------------------------------------


def test_attempts_owe_a_retry_until_the_next_attempt_starts() -> None:
    state: dict[str, object] = {}
    attempts = Attempts(state, max_attempts=3, backoff=300)
    now = utc_now()
    attempts.started("ticket:T-1", "coding", now)
    assert not attempts.failed("ticket:T-1", "boom", now)
    attempts.retry_later("ticket:T-1", "fix", feedback="the gate said no")
    assert attempts.pending("ticket:T-1") == {"what": "fix", "feedback": "the gate said no"}
    assert attempts.all_keys() == ["ticket:T-1"]
    assert attempts.wait_reason("ticket:T-1", now + timedelta(seconds=299)) is not None
    assert attempts.wait_reason("ticket:T-1", now + timedelta(seconds=300)) is None
    attempts.started("ticket:T-1", "fix round", now + timedelta(seconds=300))
    assert attempts.pending("ticket:T-1") is None
    attempts.retry_later("ticket:T-1", "coding")
    attempts.clear_pending("ticket:T-1")
    assert attempts.pending("ticket:T-1") is None


def test_a_run_record_carries_its_failure_class_and_old_files_still_read(
    tmp_path: Path,
) -> None:
    store = RunStore(tmp_path)
    run = store.create("pipeline", input={})
    run.mark_started(1, 1)
    assert run.transition("failed", reason="x", failure="permanent").failure == "permanent"
    assert run.load().failure == "permanent"
    assert run.transition("running").failure is None  # a resume carries none
    data = run.load().to_json()
    del data["failure"]  # as written before issue 15
    assert RunRecord.from_json(data, "run.json").failure is None
    with pytest.raises(CorruptStateError, match="unknown failure class"):
        RunRecord.from_json({**data, "failure": "maybe"}, "run.json")


MAIN_TEST = """import unittest

try:
    import feature_0
except ImportError:  # not on main yet
    feature_0 = None


class FeatureTest(unittest.TestCase):
    @unittest.skipIf(feature_0 is None, "feature_0 is not merged yet")
    def test_feature_is_one(self):
        self.assertEqual(feature_0.FEATURE, 1)
"""


def test_a_merge_gate_failure_backs_off_then_sends_the_gate_output_to_a_fix_round(
    project: Path, server: LLMServer
) -> None:
    configure(project, 'max_parallel = 2\nmax_attempts = 4\nretry_backoff = "5m"\n')
    tracker = LocalTracker(project / ".agentctl")
    tracker.set_state("T-2", "Canceled")
    tracker.set_state("T-3", "Canceled")
    server.script_for(
        "demo-coder",
        "T-1:",
        Turn.tool_call("write", {"path": "feature_0.py", "content": "FEATURE = 0\n"}),
        Turn.text("Added."),
        Turn.tool_call("write", {"path": "feature_0.py", "content": "FEATURE = 1\n"}),
        Turn.text("Fixed what the merge gate said."),
    )
    server.script_for("demo-reviewer", "T-1:", APPROVE, APPROVE)
    clock = Clock()
    ticking(project, clock)  # T-1: coding pipeline, reviewed and approved
    (project / "test_feature.py").write_text(MAIN_TEST)  # main moves: the merge gate goes red
    git(project, "add", "test_feature.py")
    git(project, "commit", "-qm", "feature_0 must be 1")
    clock.advance(60)
    refused = ticking(project, clock)
    assert refused.merged == [] and len(refused.failed) == 1, refused
    assert "gate_failed" in refused.failed[0]
    clock.advance(120)
    waiting = ticking(project, clock)  # within the backoff: neither a merge nor a fix round
    assert waiting.started == [] and waiting.merged == [], waiting
    assert any("backing off" in w for w in waiting.waiting)
    clock.advance(480)  # 5m doubled: the merge was the item's second attempt
    fix = ticking(project, clock)
    assert len(fix.started) == 1 and "fix round" in fix.started[0], fix
    asked = [r for r in server.requests if r.model == "demo-coder"]
    assert "refused the merge" in json.dumps(asked[-2].body)  # the gate's output, handed over
    clock.advance(60)
    assert len(ticking(project, clock).merged) == 1
    assert tracker.get("T-1").state == "Done"
    assert (project / "feature_0.py").read_text() == "FEATURE = 1\n"
    server.assert_complete()
