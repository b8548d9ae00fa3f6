"""The soak: many tickets through real ``orchestrate --once`` ticks while chaos kills processes.

A chaos thread ``kill -9``s random agentctl processes of one workspace (agents,
pipelines, ticks, whoever holds the merge-queue lock) and some ticks run with a
random fail point armed; then ticks go on without chaos until the workspace is
quiet, and ``check`` states the issue-14 invariants over the files left behind.
Shared by tests/test_soak.py and benchmarks/soak.py. Product code never imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentctl.agent.zygote_paths import ZygotePaths
from agentctl.failpoints import ENV as FAILPOINT_ENV
from agentctl.failpoints import POINTS
from agentctl.testing.llm_server import LLMServer, Turn

SEED_ENV = "AGENTCTL_SOAK_SEED"
APPROVE = Turn.tool_call("finish", {"verdict": "approve", "summary": "Good.", "comments": []})
KINDS = ("agent", "pipeline", "tick", "lock-holder", "zygote")


def seed_from_env(default: int) -> int:
    raw = os.environ.get(SEED_ENV, "").strip()
    return int(raw) if raw else default


@dataclass
class SoakSettings:
    tickets: int = 20
    seed: int = 14
    chaos_seconds: float = 45.0
    min_kills: int = 0  # chaos goes on past chaos_seconds until this many kills
    kill_every: tuple[float, float] = (0.5, 2.0)  # seconds between chaos actions
    failpoint_rate: float = 0.3  # share of chaos-phase ticks run with a fail point armed
    tick_gap: float = 0.5  # seconds between ticks
    max_quiet_ticks: int = 60  # ticks after the chaos before giving up on quiet
    lock_kill_rate: float = 0.05  # per 50 ms look while a process holds the merge-queue lock
    stuck_ticks: int = 20  # ...or this many ticks in a row that changed nothing
    tick_timeout: float = 60.0
    max_parallel: int = 4
    copies: int = 6  # scripted turn sets per ticket: resumed and re-dispatched agents need more
    retry_backoff: float = 1.0  # seconds before a failed item's next attempt (then doubling)
    # A run whose worker died before it began is started again after this (2 minutes in
    # real use, an hour of a soak's compressed time); with stuck_ticks it lets the soak
    # see that happen instead of calling the run stuck.
    stale_after: float = 10.0
    spawn: str = "zygote"  # [executor] spawn: how agent processes start


@dataclass
class SoakResult:
    seed: int
    tickets: int
    done: list[str] = field(default_factory=list)
    not_done: dict[str, str] = field(default_factory=dict)
    kills: Counter[str] = field(default_factory=Counter)
    failpoints: Counter[str] = field(default_factory=Counter)
    chaos_ticks: int = 0
    quiet_ticks: int = 0
    quiet: bool = False
    chaos_seconds: float = 0.0
    converge_seconds: float = 0.0
    violations: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def lines(self) -> list[str]:
        out = [
            f"seed {self.seed} ({SEED_ENV}={self.seed} to replay)",
            f"tickets {self.tickets}: done {len(self.done)}, not done {len(self.not_done)}",
            f"kills {sum(self.kills.values())}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.kills.items())),
            f"fail points tripped {sum(self.failpoints.values())}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.failpoints.items())),
            f"chaos: {self.chaos_ticks} ticks in {self.chaos_seconds:.1f}s; "
            f"converge: {self.quiet_ticks} ticks in {self.converge_seconds:.1f}s "
            f"({'quiet' if self.quiet else 'NOT quiet'})",
        ]
        for ticket, why in sorted(self.not_done.items()):
            out.append(f"  not done {ticket}: {why}")
        for name, found in self.violations.items():
            out.append(f"invariant {name}: {'ok' if not found else f'{len(found)} FAILED'}")
            out.extend(f"  {line}" for line in found[:10])
        return out


# -- the project -----------------------------------------------------------------------


def make_project(directory: Path, server: LLMServer, settings: SoakSettings) -> Path:
    """The demo project (green main), ``settings.tickets`` local tickets, each with its script."""
    from agentctl.commands.demo import prepare
    from agentctl.trackers.local import LocalTracker

    root = prepare(directory, server, scripted=False).root
    calc = root / "calc.py"
    calc.write_text(calc.read_text().replace("return a - b", "return a + b"))
    with (root / "agentctl.toml").open("a") as config:
        config.write(
            f'\n[orchestrator]\ntriage = "none"\nmax_parallel = {settings.max_parallel}\n'
            f'retry_backoff = "{settings.retry_backoff:g}s"\n'  # ticks come every half second
            f'stale_after = "{settings.stale_after:g}s"\n'
            f'\n[executor]\nspawn = "{settings.spawn}"\n'
        )
    _git(root, "commit", "-qam", "soak: green main, orchestrator settings")
    tracker = LocalTracker(root / ".agentctl")
    for n in range(len(tracker.list()), settings.tickets):  # the demo's own ticket is T-1
        tracker.add(f"Add feature {n}")
    for n in range(settings.tickets):
        marker = f"T-{n + 1}:"
        write = Turn.tool_call("write", {"path": f"feature_{n}.py", "content": f"FEATURE = {n}\n"})
        # Alternating write/answer: a resumed agent takes whichever comes next and converges.
        server.script_for("demo-coder", marker, *[write, Turn.text("Added.")] * settings.copies)
        server.script_for("demo-reviewer", marker, *[APPROVE] * settings.copies)
        # A review-pr of the ticket's branch (its PR left unreviewed by a killed pipeline)
        # names the branch, not the ticket.
        branch = f"branch agentctl/T-{n + 1} against"
        server.script_for("demo-reviewer", branch, *[APPROVE] * settings.copies)
    return root


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


# -- processes ---------------------------------------------------------------------------


def processes(root: Path, *, zygote: bool = False) -> dict[int, list[str]]:
    """agentctl processes of this workspace: pid -> argv (``-m agentctl`` ... root ...).

    The agents' zygote is an idle server, not work: listed only when ``zygote`` is set.
    """
    found: dict[int, list[str]] = {}
    mine = str(root)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        if len(argv) == 1:  # a title set by setproctitle (a zygote-forked agent)
            argv = argv[0].split()
        python = "agentctl" in argv and "-m" in argv
        script = bool(argv) and argv[0].endswith("/agentctl")
        if (python or script) and mine in argv:
            found[int(entry.name)] = argv
    found.pop(os.getpid(), None)
    if not zygote:
        found.pop(ZygotePaths.of(root / ".agentctl").running_pid() or 0, None)
    return found


def kind_of(argv: list[str]) -> str:
    if "orchestrate" in argv:
        return "tick"
    if "pipeline" in argv:
        return "pipeline"
    if "agent" in argv:
        return "agent"
    return "other"


def lock_holders(path: Path) -> set[int]:
    """Pids holding a POSIX or flock lock on ``path`` (from /proc/locks)."""
    try:
        inode = path.stat().st_ino
        text = Path("/proc/locks").read_text()
    except OSError:
        return set()
    holders = set()
    for line in text.splitlines():
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        if len(parts) >= 6 and parts[5].rsplit(":", 1)[-1] == str(inode):
            try:
                holders.add(int(parts[4]))
            except ValueError:
                continue
    return holders


# -- the run -------------------------------------------------------------------------------


class Soak:
    def __init__(self, root: Path, settings: SoakSettings) -> None:
        self.root = root
        self.state = root / ".agentctl"
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.chaos_rng = random.Random(settings.seed + 1)
        self.result = SoakResult(settings.seed, settings.tickets)
        self.history: dict[str, list[str]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # ticks

    def tick(self, failpoint: str | None = None) -> int:
        env = {k: v for k, v in os.environ.items() if k != FAILPOINT_ENV}
        if failpoint:
            env[FAILPOINT_ENV] = failpoint
        argv = [sys.executable, "-m", "agentctl", "--workspace", str(self.root)]
        process = subprocess.Popen(
            [*argv, "orchestrate", "--once"],
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            code = process.wait(timeout=self.settings.tick_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if failpoint and code == -signal.SIGKILL:
            with self._lock:
                self.result.failpoints[failpoint] += 1
        self.observe()
        return code

    def observe(self) -> None:
        """Record each ticket's state when it changed (the tracker keeps no history)."""
        from agentctl.trackers.local import LocalTracker

        try:
            tickets = LocalTracker(self.state).list(states=_ALL_STATES)
        except Exception:  # a torn read is retried at the next look
            return
        with self._lock:
            for ticket in tickets:
                seen = self.history.setdefault(ticket.id, [])
                if not seen or seen[-1] != ticket.state:
                    seen.append(ticket.state)

    # chaos

    def _chaos(self) -> None:
        low, high = self.settings.kill_every
        lock = self.state / "locks" / "merge-queue.lock"
        while not self._stop.is_set():
            # The merge-queue lock is held for a second or so: watch for it between actions.
            until = time.monotonic() + self.chaos_rng.uniform(low, high)
            while time.monotonic() < until and not self._stop.wait(0.05):
                holders = lock_holders(lock) & set(processes(self.root))
                if holders and self.chaos_rng.random() < self.settings.lock_kill_rate:
                    self._kill(min(holders), "lock-holder")
                    break
            else:
                if self._stop.is_set():
                    return
                self.observe()
                self.kill_one()

    def _kill(self, pid: int, kind: str) -> bool:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        with self._lock:
            self.result.kills[kind] += 1
        return True

    def kill_one(self) -> str | None:
        procs = processes(self.root, zygote=True)
        by_kind: dict[str, list[int]] = {}
        for pid, argv in procs.items():
            by_kind.setdefault(kind_of(argv), []).append(pid)
        holders = lock_holders(self.state / "locks" / "merge-queue.lock") & set(procs)
        zygote = ZygotePaths.of(self.state).running_pid()
        if zygote in procs:  # the agents' warm spawner: killed, the next spawn starts another
            by_kind["zygote"] = [zygote]
            by_kind["agent"] = [p for p in by_kind.get("agent", []) if p != zygote]
        if holders:
            by_kind["lock-holder"] = sorted(holders)
        kinds = [k for k in KINDS if by_kind.get(k)]
        if not kinds:
            return None
        kind = self.chaos_rng.choice(kinds)
        pid = self.chaos_rng.choice(sorted(by_kind[kind]))
        return kind if self._kill(pid, kind) else None

    def run(self) -> SoakResult:
        settings = self.settings
        result = self.result
        chaos = threading.Thread(target=self._chaos, name="soak-chaos", daemon=True)
        start = time.monotonic()
        chaos.start()
        points = sorted(POINTS)
        try:
            while (
                time.monotonic() - start < settings.chaos_seconds
                or sum(result.kills.values()) < settings.min_kills
            ) and time.monotonic() - start < settings.chaos_seconds * 4:
                point = None
                if self.rng.random() < settings.failpoint_rate:
                    point = self.rng.choice(points)
                self.tick(point)
                result.chaos_ticks += 1
                time.sleep(settings.tick_gap)
        finally:
            self._stop.set()
            chaos.join()
        result.chaos_seconds = time.monotonic() - start
        calm = time.monotonic()
        last, same = None, 0
        while result.quiet_ticks < settings.max_quiet_ticks and same < settings.stuck_ticks:
            self.tick()
            result.quiet_ticks += 1
            if self.quiet():
                result.quiet = True
                break
            now = self.fingerprint()
            same = same + 1 if now == last else 0
            last = now
            time.sleep(settings.tick_gap)
        # Pipelines a last tick started may still be ending their processes.
        deadline = time.monotonic() + 10
        while processes(self.root) and time.monotonic() < deadline:
            time.sleep(0.2)
        result.converge_seconds = time.monotonic() - calm
        self.observe()
        self.check()
        return result

    def fingerprint(self) -> tuple[object, ...]:
        """What a tick can change: ticket states, runs and their statuses, live processes."""
        from agentctl.runs import RunStore

        with self._lock:
            states = tuple(sorted((t, h[-1]) for t, h in self.history.items()))
        runs = tuple(
            sorted(
                (x.id, x.record.status if x.record else None) for x in RunStore(self.state).list()
            )
        )
        return states, runs, len(processes(self.root))

    def quiet(self) -> bool:
        """No running run, no ticket to start, no open PR but a parked ticket's."""
        from agentctl.forges.local import LocalForge
        from agentctl.runs import RunStore
        from agentctl.trackers.local import LocalTracker

        if any(
            x.record is None or x.record.status == "running" for x in RunStore(self.state).list()
        ):
            return False
        tickets = LocalTracker(self.state).list(states=_ALL_STATES)
        if any(t.state in ("Todo", "In Progress", "In Review") for t in tickets):
            return False
        parked = {t.id for t in tickets if t.state == "Blocked"}  # a person's now
        return all(pr.ticket in parked for pr in LocalForge(self.root, self.state).list_prs())

    # invariants

    def check(self) -> dict[str, list[str]]:
        v = self.result.violations
        v["merged exactly once"] = self._merges()
        v["a reason for every ticket not done"] = self._reasons()
        v["never backwards after Done"] = self._backwards()
        v["no run running without a process"] = self._runs()
        v["no process left"] = [
            f"{pid} ({kind_of(argv)}): {' '.join(argv[3:])}"
            for pid, argv in processes(self.root).items()
        ]
        v["ledger equals the runs' costs"] = self._ledger()
        return v

    def _merges(self) -> list[str]:
        from agentctl.forges.local import LocalForge
        from agentctl.trackers.local import LocalTracker

        problems: list[str] = []
        prs = LocalForge(self.root, self.state).list_prs(state=None)
        by_branch: dict[str, list[Any]] = {}
        for pr in prs:
            by_branch.setdefault(pr.branch, []).append(pr)
        for branch, mine in by_branch.items():
            if len(mine) > 1:
                numbers = [f"#{p.number} {p.state} ticket={p.ticket}" for p in mine]
                problems.append(f"{branch}: {len(mine)} PRs ({', '.join(numbers)})")
        log = _git(self.root, "log", "--format=%H %s", "main").splitlines()
        for ticket in LocalTracker(self.state).list(states=_ALL_STATES):
            n = int(ticket.id.removeprefix("T-")) - 1
            if ticket.state != "Done":
                self.result.not_done[ticket.id] = ticket.state
                continue
            self.result.done.append(ticket.id)
            branch = f"agentctl/{ticket.id}"
            merged = [p for p in by_branch.get(branch, []) if p.state == "merged"]
            if len(merged) != 1:
                problems.append(f"{ticket.id} is Done with {len(merged)} merged PRs")
            added = _git(
                self.root, "log", "--format=%H", "--diff-filter=A", "main", "--", f"feature_{n}.py"
            ).splitlines()
            if len(added) != 1:
                problems.append(f"{ticket.id}: feature_{n}.py added {len(added)} times on main")
            # The same base merged into the branch twice (an update repeated); the base
            # merged in again after it moved (the merge queue's catch-up) is normal.
            updates = Counter(
                s for _, s in (line.split(" ", 1) for line in log) if s.endswith(f" into {branch}")
            )
            again = [f"{s!r} {n} times" for s, n in updates.items() if n > 1]
            if again:
                problems.append(f"{ticket.id}: on main: {', '.join(again)}")
        return problems

    def _reasons(self) -> list[str]:
        from agentctl.trackers.local import LocalTracker

        tracker = LocalTracker(self.state)
        problems = []
        for ticket_id, state in sorted(self.result.not_done.items()):
            comments = [c["body"] for c in tracker.comment_log(ticket_id)]
            last = comments[-1] if comments else ""
            self.result.not_done[ticket_id] = f"{state}: {last[:160]!r}"
            if state in ("Todo", "In Progress", "In Review"):
                problems.append(f"{ticket_id} left {state} (last comment {last[:120]!r})")
            elif not last or re.search(r"\bNone\b|internal error", last):
                problems.append(f"{ticket_id} {state} without an actionable reason: {last!r}")
        return problems

    def _backwards(self) -> list[str]:
        return [
            f"{ticket}: {' -> '.join(states)}"
            for ticket, states in sorted(self.history.items())
            if "Done" in states
            and states[states.index("Done") :].count("Done") != len(states[states.index("Done") :])
        ]

    def _runs(self) -> list[str]:
        from datetime import UTC, datetime

        from agentctl.runs import RunStore
        from agentctl.runs.liveness import stale_reason

        problems = []
        host = os.uname().nodename
        now = datetime.now(UTC)
        for listing in RunStore(self.state).list():
            record = listing.record
            if record is None:
                problems.append(f"{listing.id}: unreadable ({listing.problem})")
                continue
            if record.status != "running":
                continue
            why = stale_reason(
                record, listing.heartbeat_at, now, host=host, heartbeat_timeout=timedelta(hours=1)
            )
            problems.append(
                f"{listing.id} ({record.kind} {record.ticket or ''} {record.step or ''}) "
                f"running: {why or 'process alive'}"
            )
        return problems

    def _ledger(self) -> list[str]:
        from agentctl.cost.ledger import Ledger
        from agentctl.runs import RunStore

        charged: dict[str, Decimal] = {}
        for entry in Ledger(self.state).entries():
            charged[entry.run_id] = charged.get(entry.run_id, Decimal(0)) + entry.cost
        reported: dict[str, Decimal] = {}
        for listing in RunStore(self.state).list():
            if listing.record is None or listing.record.kind != "agent":
                continue
            try:
                output = (listing.dir / "output.json").read_text()
            except OSError:
                continue
            cost = json.loads(output).get("cost_usd")
            if cost is not None:
                reported[listing.id] = Decimal(str(cost))
        problems = []
        total, runs = sum(charged.values(), Decimal(0)), sum(reported.values(), Decimal(0))
        if total != runs:
            problems.append(f"ledger ${total} but the runs' outputs say ${runs}")
            for run_id in sorted(set(charged) | set(reported)):
                a, b = charged.get(run_id, Decimal(0)), reported.get(run_id)
                if b is None or a != b:
                    problems.append(
                        f"  {run_id}: ledger ${a}, output {b if b is None else '$' + str(b)}"
                    )
        return problems


_ALL_STATES = ["Todo", "In Progress", "In Review", "Blocked", "Done", "Canceled"]


def run_soak(directory: Path, settings: SoakSettings) -> SoakResult:
    """Make the project under ``directory``, soak it, check it; every process ends with it."""
    with LLMServer() as server:
        root = make_project(directory / "project", server, settings)
        soak = Soak(root, settings)
        try:
            return soak.run()
        finally:
            for pid in processes(root, zygote=True):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
