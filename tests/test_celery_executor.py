"""Pipelines as Celery tasks: real redis-server, real `agentctl worker` processes, real git.

Two workers with their own clones of one GitHub repository (agentctl.testing's
server) and different --hostname share the head's state folder. The head ticks with
`orchestrate --once`; it merges, the workers implement and review.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentctl.commands.demo import prepare
from agentctl.config import load_config
from agentctl.executors.celery import CeleryExecutor
from agentctl.orchestrator.home import Home
from agentctl.runs import TERMINAL, RunStore, pid_alive, read_journal
from agentctl.testing.github_server import GitHubServer
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.testing.workers import REDIS, RedisServer, WorkerProcess
from agentctl.testing.workers import clone as make_clone
from agentctl.trackers.local import LocalTracker
from agentctl.workspace import find_workspace
from tests.conftest import Invoke, git

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
if REDIS is None:  # `.ci/run` installs it; a user's machine may not have it
    pytest.skip(
        "redis-server is not installed (apt-get install redis-server)", allow_module_level=True
    )

APPROVE = Turn.tool_call("finish", {"verdict": "approve", "summary": "Good.", "comments": []})


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as server:
        yield server


@dataclass
class Team:
    """The head's project, the GitHub server, the scripted models, the workers."""

    root: Path
    bare: Path
    hub: GitHubServer
    llm: LLMServer
    redis: RedisServer
    tmp: Path
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    clones: dict[str, Path] = field(default_factory=dict)

    @property
    def store(self) -> RunStore:
        return RunStore(self.root / ".agentctl")

    def start_worker(self, name: str, concurrency: int = 2) -> None:
        clone = self.clones.get(name)
        if clone is None:  # its remote is the forge's: it fetches and pushes through GitHub
            remote = self.hub.remote_url("acme", "calc")
            clone = make_clone(self.bare, self.tmp / f"clone-{name}", remote=remote, name=name)
            self.clones[name] = clone
        env = {**os.environ, "GITHUB_TOKEN": "ghp_test"}
        log = self.tmp / f"worker-{name}.log"
        self.workers[name] = WorkerProcess(self.root, clone, name, log, concurrency, env).start()

    def wait_for_workers(self, *names: str, timeout: float = 30) -> None:
        executor = CeleryExecutor(load_config(find_workspace(self.root)))
        deadline = time.monotonic() + timeout
        while True:
            live = {row["name"].split("@")[0] for row in executor.workers(timeout=0.5)}
            if set(names) <= live:
                return
            for name in names:
                assert self.workers[name].alive(), self.workers[name].tail()
            assert time.monotonic() < deadline, f"workers {names} not ready: {live}"

    def kill_worker(self, name: str) -> None:
        """kill -9 of the worker's whole process group."""
        self.workers.pop(name).kill()

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()

    def log(self, name: str) -> str:
        return (self.tmp / f"worker-{name}.log").read_text(errors="replace")[-3000:]

    def pipelines(self, ticket: str | None = None) -> list[str]:
        return [
            x.id
            for x in self.store.list(kind="pipeline")
            if x.record and (ticket is None or x.record.ticket == ticket)
        ]

    def until(self, done: Callable[[], bool], cli: Invoke, timeout: float = 150) -> None:
        """`orchestrate --once` ticks until ``done`` (each tick's exit code must be 0)."""
        deadline = time.monotonic() + timeout
        while not done():
            result = cli("orchestrate", "--once", cwd=self.root)
            assert result.exit_code == 0, result.output
            assert time.monotonic() < deadline, [
                (x.id, x.record and x.record.status, x.record and x.record.reason)
                for x in self.store.list(kind="pipeline")
            ]
            time.sleep(0.3)

    def done(self, *tickets: str) -> Callable[[], bool]:
        tracker = LocalTracker(self.root / ".agentctl")
        return lambda: all(tracker.get(t).state == "Done" for t in tickets)


@pytest.fixture
def team(
    tmp_path: Path,
    redis: RedisServer,
    github_schema: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Team]:
    with LLMServer() as llm, GitHubServer(github_schema, tmp_path / "gh") as hub:
        root = prepare(tmp_path / "head", llm, scripted=False).root
        calc = root / "calc.py"
        calc.write_text(calc.read_text().replace("return a - b", "return a + b"))
        with (root / "agentctl.toml").open("a") as config:
            config.write(
                '\n[orchestrator]\ntriage = "none"\nmax_parallel = 6\nstale_after = "5s"\n'
                f'\n[forge]\nkind = "github"\n[forge.github]\nrepo = "acme/calc"\n'
                f'url = "{hub.graphql_url}"\n'
                f'\n[executor]\nkind = "celery"\n[executor.celery]\n'
                f'broker_url = "{redis.url}"\nvisibility_timeout = "4s"\n'
            )
        git(root, "commit", "-qam", "fix add(), the team's settings")
        bare = hub.add_repo("acme", "calc", source=root)
        git(root, "remote", "add", "origin", hub.remote_url("acme", "calc"))
        monkeypatch.setenv("GITHUB_TOKEN", "ghp_test")
        monkeypatch.chdir(root)
        team = Team(root, bare, hub, llm, redis, tmp_path)
        try:
            yield team
        finally:
            team.stop()


def script(team: Team, ticket: str, n: int, *, slow: float = 0.0, again: bool = False) -> None:
    """The dev writes feature_<n>.py (its last word after ``slow`` s); the review approves.
    ``again``: the same once more, for a pipeline that starts over on another worker."""
    turns = [
        Turn.tool_call("write", {"path": f"feature_{n}.py", "content": f"FEATURE = {n}\n"}),
        Turn.text("Added.", delay=slow),
    ]
    if again:
        turns += [turns[0], Turn.text("Added.")]
    team.llm.script_for("demo-coder", f"{ticket}:", *turns)
    team.llm.script_for("demo-reviewer", f"{ticket}:", APPROVE)


def add_tickets(team: Team, count: int) -> list[str]:
    tracker = LocalTracker(team.root / ".agentctl")
    have = [t.id for t in tracker.list()]  # the demo's own ticket is T-1
    while len(have) < count:
        have.append(tracker.add(f"Add feature {len(have) + 1}").id)
    return have


def running_on(team: Team, ticket: str, step: str, timeout: float = 60) -> tuple[str, str]:
    """(the pipeline run id, its worker's host) once ``step``'s agent is running."""
    deadline = time.monotonic() + timeout
    while True:
        for run_id in team.pipelines(ticket):
            run = team.store.get(run_id)
            record = run.load()
            starts = [
                e
                for e in read_journal(run.paths.events).events
                if e.get("type") == "step.child" and e.get("step") == step
            ]
            if record.status == "running" and starts and record.host:
                return run_id, record.host
        assert time.monotonic() < deadline, f"{ticket}'s {step} step never ran"
        time.sleep(0.1)


def left_in(path: Path) -> list[str]:
    """Processes whose working folder or command line is under ``path``: pipelines,
    agents, their commands (a live worker's own processes aside)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if " worker --hostname " in cmdline or cmdline.startswith("[celeryd"):
            continue  # a live worker itself (its main and pool processes)
        if state != "Z" and (cwd.startswith(str(path)) or str(path) in cmdline):
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def test_six_tickets_on_two_workers_are_each_merged_exactly_once(team: Team, cli: Invoke) -> None:
    tickets = add_tickets(team, 6)
    for n, ticket in enumerate(tickets):
        script(team, ticket, n, slow=0.5)
    team.start_worker("w1")
    team.start_worker("w2")
    team.wait_for_workers("w1", "w2")
    doctor = cli("doctor", cwd=team.root).output
    assert "celery: 2 worker(s) on 'agentctl': w1@w1, w2@w2" in doctor, doctor
    team.until(team.done(*tickets), cli)

    merges = [r for r in team.hub.requests if r.operation == "AgentctlMerge"]
    assert len(merges) == 6
    assert len([r for r in team.hub.requests if r.operation == "AgentctlCreatePr"]) == 6
    assert all(team.hub.pr(n)["state"] == "MERGED" for n in range(1, 7))
    for n in range(6):
        assert git(team.bare, "show", f"main:feature_{n}.py") == f"FEATURE = {n}"
    hosts = {team.store.get(run_id).load().host for run_id in team.pipelines()}
    assert hosts == {"w1", "w2"}, hosts  # both workers ran pipelines
    assert len(team.pipelines()) == 6  # one run per ticket: nothing ran twice
    # `agentctl workers` lists both, with what they run (nothing now)
    listed = cli("workers", "--json", cwd=team.root)
    assert listed.exit_code == 0, listed.output
    assert '"w1@w1"' in listed.output and '"w2@w2"' in listed.output


def test_a_worker_killed_mid_pipeline_hands_the_run_to_the_other_one_pr_and_merge_once(
    team: Team, cli: Invoke
) -> None:
    (ticket,) = add_tickets(team, 1)
    script(team, ticket, 0, slow=4.0, again=True)
    team.start_worker("w1", concurrency=1)
    team.start_worker("w2", concurrency=1)
    team.wait_for_workers("w1", "w2")
    result = cli("orchestrate", "--once", cwd=team.root)
    assert result.exit_code == 0, result.output
    run_id, host = running_on(team, ticket, "implement")
    other = "w2" if host == "w1" else "w1"
    team.kill_worker(host)
    deadline = time.monotonic() + 5
    while left_in(team.clones[host]) and time.monotonic() < deadline:
        time.sleep(0.1)  # the pipeline and its agent get SIGKILL as their parents die
    assert left_in(team.clones[host]) == []

    team.until(team.done(ticket), cli)
    assert team.pipelines(ticket) == [run_id]  # the same run, resumed: not a second one
    run = team.store.get(run_id)
    assert run.load().host == other and run.load().status == "succeeded"
    events = read_journal(run.paths.events).events
    assert any(e.get("type") == "pipeline.rewound" for e in events)  # another clone
    spawned = [e["host"] for e in events if e.get("type") == "process.spawned"]
    assert spawned == [host, other]
    assert len([r for r in team.hub.requests if r.operation == "AgentctlCreatePr"]) == 1
    assert len([r for r in team.hub.requests if r.operation == "AgentctlMerge"]) == 1
    for name, clone in team.clones.items():
        if name != other:
            assert left_in(clone) == []


def test_a_pipeline_longer_than_the_visibility_timeout_is_not_run_twice(
    team: Team, cli: Invoke
) -> None:
    (ticket,) = add_tickets(team, 1)
    script(team, ticket, 0, slow=10.0)
    team.start_worker("w1", concurrency=1)
    team.start_worker("w2", concurrency=1)
    team.wait_for_workers("w1", "w2")
    assert cli("orchestrate", "--once", cwd=team.root).exit_code == 0
    running_on(team, ticket, "implement")
    time.sleep(4.5)  # past visibility_timeout (4 s): the task counts as lost now
    # The sweep every worker makes for such tasks (kombu's, on its own timer): made now.
    executor = CeleryExecutor(load_config(find_workspace(team.root)))
    with executor.app.connection_for_write() as connection:
        connection.default_channel.qos.restore_visible(num=100, interval=1)
    team.until(team.done(ticket), cli)
    (run_id,) = team.pipelines(ticket)
    events = read_journal(team.store.get(run_id).paths.events).events
    assert len([e for e in events if e.get("type") == "process.spawned"]) == 1
    assert not any(e.get("type") == "resume.requested" for e in events)
    logs = team.log("w1") + team.log("w2")
    assert "a live worker has it; left alone" in logs  # it was delivered again, and refused
    assert len([r for r in team.hub.requests if r.operation == "AgentctlCreatePr"]) == 1


def test_redis_restarted_mid_run_loses_no_task_and_the_tick_says_so_once(
    team: Team, cli: Invoke
) -> None:
    tickets = add_tickets(team, 3)
    for n, ticket in enumerate(tickets):
        script(team, ticket, n, slow=3.0)
    LocalTracker(team.root / ".agentctl").set_state(tickets[2], "Blocked")  # not yet
    team.start_worker("w1")
    team.start_worker("w2")
    team.wait_for_workers("w1", "w2")
    assert cli("orchestrate", "--once", cwd=team.root).exit_code == 0
    running_on(team, tickets[0], "implement")
    team.redis.kill()
    LocalTracker(team.root / ".agentctl").set_state(tickets[2], "Todo")
    down = cli("orchestrate", "--once", cwd=team.root)
    assert down.exit_code == 1, down.output
    assert "broker is unreachable" in down.output
    (queued,) = team.pipelines(tickets[2])  # on disk, pending: not lost, not started twice
    assert team.store.get(queued).load().status == "pending"
    team.redis.start()
    team.until(team.done(*tickets), cli)
    assert len(team.pipelines()) == 3
    assert len([r for r in team.hub.requests if r.operation == "AgentctlMerge"]) == 3
    outbox = [m.body for m in Home.of(team.root / ".agentctl").outbox.read(after=0)]
    said = [m for m in outbox if "broker is unreachable" in json.dumps(m)]
    assert len(said) == 1, said  # reported once, not once per tick
    assert all(team.workers[n].alive() for n in ("w1", "w2"))  # they reconnected


def test_cancel_reaches_a_pipeline_running_on_another_worker(team: Team, cli: Invoke) -> None:
    (ticket,) = add_tickets(team, 1)
    script(team, ticket, 0, slow=30.0)
    team.start_worker("w1", concurrency=1)
    team.wait_for_workers("w1")
    assert cli("orchestrate", "--once", cwd=team.root).exit_code == 0
    run_id, host = running_on(team, ticket, "implement")
    assert host == "w1"
    run = team.store.get(run_id)
    pid = run.load().pid
    assert pid is not None
    listed = cli("runs", "list", "--kind", "pipeline", cwd=team.root)
    assert run_id in listed.output and " w1 " in listed.output  # where it runs
    shown = json.loads(cli("status", "--json", cwd=team.root).output)
    assert {r["id"]: r["host"] for r in shown["active_runs"]}[run_id] == "w1"
    started = time.monotonic()
    result = cli("runs", "cancel", run_id, "--grace", "3", cwd=team.root)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 3 + 2 + 1.5  # grace and one heartbeat
    assert run.load().status == "canceled"
    deadline = time.monotonic() + 3
    while pid_alive(pid, None) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid, None)  # the pipeline process ended itself
    children = team.store.children(run_id)
    assert children and all(c.record and c.record.status in TERMINAL for c in children)
    assert left_in(team.clones["w1"]) == []
    assert team.workers["w1"].alive()  # the worker lives on
