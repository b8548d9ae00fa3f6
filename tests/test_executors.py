"""The executor seam without workers: clear refusals, a broker that is down, the claim,
and what a delivered task decides for each state of its run."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl import keystore
from agentctl.config import load_config
from agentctl.executors import make_executor, resume
from agentctl.executors.celery_app import broker_url
from agentctl.executors.claim import CLAIM, claim, claimed
from agentctl.executors.local import LocalExecutor
from agentctl.executors.task import run_task
from agentctl.orchestrator.home import Home
from agentctl.orchestrator.tick import Tick
from agentctl.runs import Run, RunStore, read_journal
from agentctl.trackers.local import LocalTracker
from agentctl.workspace import find_workspace
from tests.conftest import Invoke

PIPELINE = '[[steps]]\nid = "noop"\nrun = "true"\n'


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once it is closed


@pytest.fixture
def celery_ws(workspace: Path) -> Path:
    """A workspace on the Celery executor whose broker does not answer."""
    with (workspace / "agentctl.toml").open("a") as config:
        config.write(
            f'\n[executor]\nkind = "celery"\n[executor.celery]\n'
            f'broker_url = "redis://127.0.0.1:{_closed_port()}/0"\n'
        )
    (workspace / "pipelines").mkdir(exist_ok=True)
    (workspace / "pipelines" / "noop.toml").write_text(PIPELINE)
    return workspace


def pipeline_run(root: Path, status: str = "pending") -> Run:
    run = RunStore(root / ".agentctl").create(
        "pipeline", input={"pipeline": "noop", "inputs": {}, "models": []}, pipeline="noop"
    )
    if status != "pending":
        run.mark_started(999_999, 999_999)  # a pid no process has
        if status != "running":
            run.transition(status, reason="for the test")
    return run


def test_workers_and_worker_say_the_executor_is_local(workspace: Path, cli: Invoke) -> None:
    listed = cli("workers", cwd=workspace)
    assert listed.exit_code == 2
    assert "pipelines run as local processes here" in listed.output
    started = cli("worker", cwd=workspace)
    assert started.exit_code == 2
    assert 'kind = "celery"' in started.output
    assert "Traceback" not in listed.output + started.output


def test_a_worker_needs_a_clone_and_the_github_forge(celery_ws: Path, cli: Invoke) -> None:
    result = cli("worker", cwd=celery_ws)  # the local forge: PRs cannot span clones
    assert result.exit_code == 2
    assert '[forge] kind = "github"' in result.output


def test_an_unset_broker_url_env_is_one_line_with_the_fix(celery_ws: Path, cli: Invoke) -> None:
    with (celery_ws / "agentctl.toml").open("a") as config:
        config.write('broker_url_env = "AGENTCTL_TEST_BROKER_URL"\n')
    result = cli("workers", cwd=celery_ws)
    assert result.exit_code == 2
    assert "AGENTCTL_TEST_BROKER_URL, which is not set" in result.output
    assert "export AGENTCTL_TEST_BROKER_URL=redis://" in result.output


def test_a_broker_that_is_down_leaves_the_run_pending_on_disk(celery_ws: Path, cli: Invoke) -> None:
    result = cli("pipeline", "run", "noop", "--detach", cwd=celery_ws)
    assert result.exit_code == 1
    assert "the broker is unreachable" in result.output
    assert "Traceback" not in result.output
    (listing,) = RunStore(celery_ws / ".agentctl").list(kind="pipeline")
    assert listing.record is not None and listing.record.status == "pending"
    kinds = [e["type"] for e in read_journal(listing.dir / "events.jsonl").events]
    assert "executor.submitted" not in kinds  # the next tick sends it


def test_the_claim_is_held_while_its_holder_lives(tmp_path: Path) -> None:
    run = pipeline_run(tmp_path)
    assert not claimed(run)
    with holding(run):
        assert claimed(run)
        with claim(run) as ours:
            assert not ours
        assert "a live worker has it; left alone" in run_task(
            load_config(find_workspace(tmp_path)), run.id
        )
        assert run.load().status == "pending"  # untouched
    deadline = time.monotonic() + 5
    while claimed(run):  # the kernel drops a dead holder's lock
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with claim(run) as ours:
        assert ours


@pytest.mark.parametrize("status", ["succeeded", "canceled", "failed"])
def test_a_delivered_task_leaves_an_ended_run_alone(tmp_path: Path, status: str) -> None:
    run = pipeline_run(tmp_path, status)
    said = run_task(load_config(find_workspace(tmp_path)), run.id)
    assert said.endswith(f"{status}; nothing to do")
    assert [
        e for e in read_journal(run.paths.events).events if e["type"] == "process.spawned"
    ] == []


def test_a_run_whose_workers_keep_dying_is_failed_not_taken_over_again(tmp_path: Path) -> None:
    run = pipeline_run(tmp_path, "running")
    for pid in (11, 12, 13):  # three workers, none of which recorded an ending
        run.journal.append("process.spawned", pid=pid, spawn="attached", host="gone")
    said = run_task(load_config(find_workspace(tmp_path)), run.id)
    assert "died too often" in said
    record = run.load()
    assert record.status == "failed" and "its worker on" in (record.reason or "")
    spawned = [e for e in read_journal(run.paths.events).events if e["type"] == "process.spawned"]
    assert len(spawned) == 3  # no fourth


def test_a_missing_run_is_acknowledged_and_dropped(tmp_path: Path) -> None:
    (tmp_path / ".agentctl").mkdir()
    said = run_task(
        load_config(find_workspace(tmp_path)), "20260101T000000.000000Z-pipeline-abcdef"
    )
    assert "no such run here" in said


def test_resume_under_celery_journals_the_request_and_sends_the_task(
    celery_ws: Path,
) -> None:
    run = pipeline_run(celery_ws, "failed")
    config = load_config(find_workspace(celery_ws))
    with pytest.raises(Exception, match="the broker is unreachable"):
        resume(config, run, budget_usd=3.0)
    kinds = [e["type"] for e in read_journal(run.paths.events).events]
    assert kinds[-2:] == ["budget.set", "resume.requested"]  # a worker will see it asked


def test_the_registry_gives_the_configured_executor(workspace: Path, celery_ws: Path) -> None:
    config = load_config(find_workspace(celery_ws))
    assert type(make_executor(config)).__name__ == "CeleryExecutor"
    local = load_config(find_workspace(workspace), sets=["executor.kind=local"])
    assert isinstance(make_executor(local), LocalExecutor)


def test_doctor_says_where_pipelines_run(workspace: Path, cli: Invoke) -> None:
    local = cli("doctor", cwd=workspace)
    assert "local processes ([executor] kind)" in local.output
    config = workspace / "agentctl.toml"
    config.write_text(
        config.read_text().replace(
            '[forge]\nkind = "local"', '[forge]\nkind = "github"\n[forge.github]\nrepo = "a/b"\n#'
        )
        + f'\n[executor]\nkind = "celery"\n[executor.celery]\n'
        f'broker_url = "redis://127.0.0.1:{_closed_port()}/0"\n'
    )
    started = time.monotonic()
    down = cli("doctor", cwd=workspace)
    assert time.monotonic() - started < 3  # a broker that refuses is not waited for
    assert down.exit_code != 0
    line = next(x for x in down.output.splitlines() if "] executor:" in x)
    assert "Celery broker: cannot ask the workers" in line, down.output


def test_a_run_a_worker_is_taking_over_is_not_a_failed_attempt(celery_ws: Path) -> None:
    """A worker taking over a dead worker's run marks it failed just before it starts it
    again: a tick in between must not read that as the attempt's end and start a second
    pipeline for the ticket (found on a trial run: a worker killed before the ticket
    moved to In Progress)."""
    config = celery_ws / "agentctl.toml"
    config.write_text(config.read_text().replace('# triage = "model"', 'triage = "none"'))
    tracker = LocalTracker(celery_ws / ".agentctl")
    for ticket in tracker.list():
        tracker.set_state(ticket.id, "Done")
    ticket = tracker.add("Add feature 1").id
    run = RunStore(celery_ws / ".agentctl").create(
        "pipeline",
        input={"pipeline": "coding-pipeline", "inputs": {}, "models": []},
        pipeline="coding-pipeline",
        ticket=ticket,
    )
    run.mark_started(999_999, 999_999)
    run.journal.append("process.spawned", pid=999_999, spawn="attached", host="gone")
    run.transition("failed", reason="stale: its worker on gone died")  # the take-over
    Home.of(celery_ws / ".agentctl").claim(ticket, 1, run.id)
    with holding(run):
        report = Tick(load_config(find_workspace(celery_ws))).run()
        assert report.failed == report.started == report.errors == [], report
    run.journal.append("resume.requested", durable=True, previous="failed")  # queued
    report = Tick(load_config(find_workspace(celery_ws))).run()
    assert report.failed == report.started == report.errors == [], report
    assert len(RunStore(celery_ws / ".agentctl").list(kind="pipeline")) == 1


@contextlib.contextmanager
def holding(run: Run) -> Iterator[None]:
    """``run``'s claim held by another process (a worker), until the block ends."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(run.dir / CLAIM)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_the_broker_url_from_its_env_is_kept_like_a_key(
    celery_ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (celery_ws / "agentctl.toml").open("a") as config:
        config.write('broker_url_env = "AGENTCTL_TEST_BROKER_URL"\n')
    url = f"redis://:s3cret-broker-pw@127.0.0.1:{_closed_port()}/0"
    monkeypatch.setenv("AGENTCTL_TEST_BROKER_URL", url)
    config = load_config(find_workspace(celery_ws))
    keystore.load_configured(config)
    assert "AGENTCTL_TEST_BROKER_URL" not in os.environ  # no child can read it
    assert broker_url(config) == url
    assert "s3cret-broker-pw" not in keystore.redact(f"connecting to {url} failed")
