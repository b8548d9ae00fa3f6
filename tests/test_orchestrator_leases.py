"""Leases and fencing tokens survive a tick killed at any write, and state.json lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agentctl.orchestrator.home import Home
from agentctl.runs import RunStore
from agentctl.testing.llm_server import LLMServer
from agentctl.trackers.local import LocalTracker
from tests import test_orchestrator_tick as ticks
from tests.test_orchestrator_tick import script_features, settle, tick, tick_killed_at

server = ticks.server  # the same fixtures as the tick tests
project = ticks.project


def only_t1(project: Path, server: LLMServer) -> LocalTracker:
    tracker = LocalTracker(project / ".agentctl")
    tracker.set_state("T-2", "Canceled")
    tracker.set_state("T-3", "Canceled")
    script_features(server, 1)
    return tracker


@pytest.mark.parametrize(
    "point", ["runs.before_publish", "journal.after_append", "journal.mid_append"]
)
def test_a_tick_killed_while_starting_a_ticket_leaves_it_to_the_next_tick(
    project: Path, server: LLMServer, point: str
) -> None:
    tracker = only_t1(project, server)
    tick_killed_at(project, point)
    home = Home.of(project / ".agentctl")
    first = home.lease("T-1")
    deadline = time.monotonic() + 50
    while tracker.get("T-1").state != "Done":  # adopt or reclaim, reap, merge: ticks do it
        assert time.monotonic() < deadline, "the ticket never got done"
        tick(project)
        time.sleep(0.2)
    settle(project)
    assert tracker.get("T-1").state == "Done"
    assert (project / "feature_0.py").exists()
    pipelines = RunStore(project / ".agentctl").list(kind="pipeline")
    (done,) = [p for p in pipelines if p.record and p.record.status == "succeeded"]
    # The lease names the pipeline that did the work (its failure would be reported
    # through it), and its token is not the dead tick's if that tick started nothing.
    lease = home.lease("T-1")
    assert lease is not None and lease["run_id"] == done.id
    if point == "runs.before_publish":  # nothing started: reclaimed under a new token
        assert first is not None and lease["token"] > first["token"]


def test_fencing_tokens_still_rise_when_state_json_is_lost(
    project: Path, server: LLMServer
) -> None:
    script_features(server, 3)
    home = Home.of(project / ".agentctl")
    tick(project)  # T-1, T-2 (max_parallel 2)
    tokens = {t: home.lease(t)["token"] for t in ("T-1", "T-2")}
    assert sorted(tokens.values()) == [1, 2]
    settle(project)
    (home.dir / "state.json").unlink()
    tick(project)  # merges both, starts T-3
    settle(project)
    assert home.lease("T-3")["token"] > max(tokens.values())
    for lease in home.leases.glob("*.json"):  # and with every lease gone too: the journal
        lease.unlink()
    (home.dir / "state.json").unlink()
    assert home.next_token(home.load_state()) > 3
