"""The dashboard's pages at 0 to 20,000 runs and a 100,000-call ledger, and its live latency.

    python benchmarks/dashboard.py [--requests 15] [--sizes 0,2000,20000] [--probes 10]

One scratch workspace grows in stages, as benchmarks/history.py's does: a handful of
unfinished runs (a running pipeline > running step > running agent, a running chat
with a pending agent, a paused agent; charged in the ledger) so the overview's
"working now" tree is not empty, a finished pipeline with three steps and a
``--events``-event journal (the run page shown), then 2,000 and 20,000 finished runs
(``make_finished_runs``), then a ledger of 100,000 calls over 30 days (four models,
five roles; today's share written from midnight to now) charged to those runs.

At each stage the app runs in this process behind its Gate (Starlette's TestClient,
the token cookie set, a Host it serves) and each page is requested ``--requests``
times after one first request: GET / (the overview), GET /runs/<that pipeline> (the
run page) and GET /costs (30 days by role, model and day). Printed: the median and
best wall ms, and the first request's (cold: templates compiled, the ledger's day
summaries and run index built). Target (issue 20): the overview under 300 ms at
20,000 runs and a 100,000-row ledger, on a 2-core machine. ``--profile`` then times
the overview's reads apart (today's spend, today by model, the unfinished runs, the
newest runs) and prints cProfile's top calls of ``views.overview`` at the last stage.

Then the live latency: a real ``agentctl dashboard`` process on a free port, an SSE
client (httpx, streaming ``/runs/<running agent>/events`` with the cookie); an event
is appended to that run's journal (``run.journal.append``) ``--probes`` times, and the
time from just before the append to its ``id:`` line arriving is measured. Goal:
<= 1 s (the stream looks at the journal every 0.2 s, so ~0.1 s is expected).
Figures, not a pass/fail test: a shared machine is noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentctl.runs import Run, RunStore
from agentctl.testing.runs import make_finished_runs

TARGET_MS = 300.0  # the overview at 20,000 runs and a 100,000-row ledger
LIVE_GOAL_S = 1.0
LEDGER_CALLS = 100_000
DAYS = 30
MODELS = ("opus", "sonnet", "coder-next", "codex")
ROLES = ("main", "dev", "review", "research", "devops")
TOKEN = "dashboard-benchmark-token"
PAGES = ("overview", "run page", "costs")


# -- the workspace ------------------------------------------------------------------


class Workspace:
    """The scratch workspace, its unfinished runs and the finished pipeline shown."""

    def __init__(self, root: Path, events: int) -> None:
        from agentctl.commands.init import init_workspace

        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
        init_workspace(root, test_command="true", base_branch="main")
        self.root = root
        self.state_dir = root / ".agentctl"
        self.store = RunStore(self.state_dir)
        self.running: list[Run] = []
        self.pipeline = self._finished_pipeline(events)
        self.follow = self._unfinished()
        self._ticks(10)

    def _finished_pipeline(self, events: int) -> Run:
        """A succeeded pipeline of three succeeded steps, with a journal to show."""
        pipeline = self.store.create(
            "pipeline", input={"ticket": "T-1"}, pipeline="coding-pipeline", ticket="T-1"
        )
        pipeline.mark_started(os.getpid(), os.getpgid(0))
        for name in ("implement", "review", "merge"):
            step = self.store.create("step", input={}, parent=pipeline, step=name)
            step.mark_started(os.getpid(), os.getpgid(0))
            step.transition("succeeded")
        for n in range(events):
            if n % 3 == 0:
                pipeline.journal.append("tool.start", name="bash", arguments={"command": "ls"})
            elif n % 3 == 1:
                pipeline.journal.append("tool.result", name="bash", content="file\n" * 40)
            else:
                pipeline.journal.append("note", text=f"step {n} went well")
        pipeline.transition("succeeded")
        return pipeline

    def _unfinished(self) -> Run:
        """Running and pending runs with costs; returns the running agent to follow."""
        from agentctl.config import load_config
        from agentctl.cost.ledger import Ledger
        from agentctl.llm.types import Usage
        from agentctl.workspace import find_workspace

        store = self.store
        pipeline = store.create(
            "pipeline", input={}, pipeline="coding-pipeline", step="implement", ticket="T-2"
        )
        step = store.create("step", input={}, parent=pipeline, step="implement")
        agent = store.create("agent", input={}, parent=step, role="dev", model="sonnet")
        chat = store.create("chat", input={}, role="main", model="sonnet")
        store.create("agent", input={}, parent=chat, role="research", model="sonnet")  # pending
        paused = store.create("agent", input={}, role="review", model="sonnet")
        self.running = [pipeline, step, agent, chat, paused]
        for run in self.running:
            run.mark_started(os.getpid(), os.getpgid(0))  # this process: alive while measured
            run.heartbeat()
        paused.transition("paused", reason="budget")
        config = load_config(find_workspace(explicit=self.root))
        ledger = Ledger(self.state_dir)
        for run in (agent, chat, paused):
            ledger.charge(
                run=run.load(),
                model_name="sonnet",
                model=config.model("sonnet"),
                usage=Usage(10_000, 1_000),
            )
        return agent

    def heartbeat(self) -> None:
        """Running runs stay fresh (stale after 120 s without a heartbeat)."""
        for run in self.running:
            run.heartbeat()

    def _ticks(self, count: int) -> None:
        import json

        from agentctl.runs import format_ts

        home = self.state_dir / "orchestrator"
        home.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        with (home / "ticks.jsonl").open("w", encoding="utf-8") as out:
            for seq in range(1, count + 1):
                ts = format_ts(now - timedelta(minutes=count - seq))
                line = {"seq": seq, "ts": ts, "type": "tick", "summary": "idle"}
                out.write(json.dumps(line) + "\n")


def write_ledger(state_dir: Path, calls: int, run_ids: list[str]) -> None:
    """``calls`` priced calls over the last ``DAYS`` days (today's from midnight to now),
    models and roles rotating, charged to ``run_ids``; written as lines, not one by one."""
    from agentctl.cost.ledger import Entry, Ledger, dumps
    from agentctl.llm.types import Usage

    ledger = Ledger(state_dir)
    ledger.dir.mkdir(parents=True, exist_ok=True)
    price = {k: Decimal(v) for k, v in (("input", 3), ("output", 15))}
    price |= {"cache_write": Decimal(0), "cache_read": Decimal(0)}
    heads_tails = []
    for n in range(len(MODELS) * len(ROLES)):
        template = Entry(
            ts=datetime(2000, 1, 1, tzinfo=UTC),
            run_id="@RUN@",
            root_id="@RUN@",
            parent_id=None,
            role=ROLES[n % len(ROLES)],
            model=MODELS[n % len(MODELS)],
            provider="anthropic",
            model_id=f"{MODELS[n % len(MODELS)]}-id",
            request_id=None,
            usage=Usage(1000 + n, 100),
            price=price,
            cost=Decimal("0.0045") + Decimal(n) / 10_000,
        )
        head, _, tail = (dumps(template.to_json()) + "\n").partition(
            '"2000-01-01T00:00:00.000000Z"'
        )
        heads_tails.append((head, tail))
    now = datetime.now(UTC)
    per_day = calls // DAYS
    for day in range(DAYS):
        midnight = (now - timedelta(days=DAYS - 1 - day)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        span = (now - midnight).total_seconds() if day == DAYS - 1 else 86_000.0
        step = timedelta(seconds=span / per_day)
        lines = []
        for n in range(per_day):
            call = day * per_day + n
            head, tail = heads_tails[call % len(heads_tails)]
            ts = (midnight + step * n).strftime('"%Y-%m-%dT%H:%M:%S.%fZ"')
            lines.append((head + ts + tail).replace("@RUN@", run_ids[call % len(run_ids)]))
        with ledger.path_for(midnight.date()).open("a", encoding="utf-8") as out:
            out.write("".join(lines))


def stages(space: Workspace, sizes: list[int], calls: int) -> Iterator[tuple[int, int]]:
    """Grow the workspace; yield (finished runs, ledger rows) once each stage is on disk."""
    made = 0
    start = datetime.now(UTC) - timedelta(days=DAYS)
    ids: list[str] = []
    for size in sizes:
        spacing = (DAYS * 86_400) / max(size, 1)
        ids += make_finished_runs(
            space.state_dir, size - made, start=start + timedelta(seconds=spacing * made)
        )
        made = size
        yield made, ledger_rows(space.state_dir)
    if calls:
        write_ledger(space.state_dir, calls, ids or [space.pipeline.id])
        yield made, ledger_rows(space.state_dir)


def ledger_rows(state_dir: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in (state_dir / "ledger").glob("*.jsonl"))


# -- the pages, in process ----------------------------------------------------------


def client_for(space: Workspace) -> Any:
    from starlette.testclient import TestClient

    from agentctl.commands.dashboard.app import make_app
    from agentctl.commands.dashboard.security import COOKIE, Guard
    from agentctl.config import load_config
    from agentctl.workspace import find_workspace

    config = load_config(find_workspace(explicit=space.root))
    app = make_app(config, Guard(token=TOKEN, host="127.0.0.1", port=8765))
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    client.cookies.set(COOKIE, TOKEN)
    return client


def measure(client: Any, path: str, requests: int) -> tuple[float, float, float]:
    """Median and best wall ms of ``requests`` GETs, and the first (cold) one's."""
    times = []
    for _ in range(requests + 1):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"GET {path}: {answer.status_code}\n{answer.text[:500]}")
    first, *rest = times
    return statistics.median(rest), min(rest), first


def profile_overview(space: Workspace, top: int, requests: int) -> None:
    """The overview's reads timed apart (median ms, no profiler), then cProfile's
    heaviest calls (by cumulative time) of one warm overview read."""
    from agentctl.commands import status
    from agentctl.commands.dashboard import views
    from agentctl.config import load_config
    from agentctl.cost.report import build_report
    from agentctl.runs.summary import list_rows
    from agentctl.workspace import find_workspace

    config = load_config(find_workspace(explicit=space.root))
    state_dir, now = space.state_dir, datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    parts = {
        "views.overview (all)": lambda: views.overview(config, now),
        "status.snapshot": lambda: status.snapshot(config, now),
        "  _spend_today": lambda: status._spend_today(state_dir, now, config.settings.budgets, []),
        "  _unfinished_runs": lambda: status._unfinished_runs(state_dir, now, []),
        "build_report(by=model, today)": lambda: build_report(
            state_dir, by="model", since=midnight
        ),
        "list_rows(limit=60)": lambda: list_rows(state_dir, limit=60, now=now),
    }
    for name, read in parts.items():
        read()  # warm: derived ledger files built
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            read()
            times.append((time.perf_counter() - started) * 1000)
        print(f"  {name:<32} {statistics.median(times):7.1f} ms (best {min(times):6.1f})")
    print()
    profiler = cProfile.Profile()
    profiler.enable()
    views.overview(config, datetime.now(UTC))
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    print(out.getvalue())


# -- the live stream, from a real server --------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def dashboard_server(root: Path) -> Iterator[str]:
    """A real ``agentctl dashboard`` process on a free port, its own session; its base
    address once it answers, and it (and whatever it started) killed at the end."""

    port = free_port()
    command = [sys.executable, "-m", "agentctl", "-w", str(root), "dashboard"]
    command += ["--port", str(port), "--token", TOKEN]
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as errors:
        server = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 30
            while not answers(base):
                if server.poll() is not None or time.monotonic() > deadline:
                    errors.seek(0)
                    raise SystemExit(f"the server did not start:\n{errors.read().decode()}")
                time.sleep(0.1)
            yield base
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def answers(base: str) -> bool:
    import httpx

    try:
        httpx.get(base + "/", timeout=1)  # any status: it is up
    except httpx.TransportError:
        return False
    return True


def live_latency(space: Workspace, probes: int) -> list[float]:
    """Seconds from an append to the follow run's journal to its ``id:`` line over SSE."""
    import httpx

    from agentctl.commands.dashboard.security import COOKIE

    lines: queue.Queue[tuple[float, str]] = queue.Queue()

    def read(response: httpx.Response) -> None:
        with contextlib.suppress(httpx.HTTPError, RuntimeError):  # closed at the end
            for line in response.iter_lines():
                lines.put((time.perf_counter(), line))

    run = space.follow
    known = run.journal.append("note", text="before the stream")
    latencies = []
    with (
        dashboard_server(space.root) as base,
        httpx.Client(base_url=base, cookies={COOKIE: TOKEN}, timeout=None) as client,
        client.stream("GET", f"/runs/{run.id}/events") as response,
    ):
        if response.status_code != 200:
            raise SystemExit(f"events: {response.status_code}")
        threading.Thread(target=read, args=(response,), daemon=True).start()
        wait_for(lines, f"id: {known}", 10)  # what the journal had is sent first
        for n in range(probes):
            time.sleep(0.3 + (n * 0.037) % 0.2)  # at every phase of the 0.2 s poll
            started = time.perf_counter()
            seq = run.journal.append("note", text=f"probe {n}")
            latencies.append(wait_for(lines, f"id: {seq}", 10) - started)
    return latencies


def wait_for(lines: queue.Queue[tuple[float, str]], wanted: str, timeout: float) -> float:
    """When the line ``wanted`` arrived (perf_counter), skipping the lines before it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            at, line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise SystemExit(f"no {wanted!r} within {timeout} s") from None
        if line == wanted:
            return at


# -- the report ---------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=15, help="timed requests per page")
    parser.add_argument("--sizes", default="0,2000,20000", help="finished runs at each stage")
    parser.add_argument("--calls", type=int, default=LEDGER_CALLS, help="ledger rows at the end")
    parser.add_argument("--events", type=int, default=200, help="events of the run page's run")
    parser.add_argument("--probes", type=int, default=10, help="SSE appends timed")
    parser.add_argument("--profile", action="store_true", help="profile the last overview")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        space = Workspace(Path(scratch), options.events)
        env_note = f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
        print(
            f"dashboard: median / best of {options.requests} requests in process "
            f"(TestClient), and the first (cold) one, in ms ({env_note})"
        )
        print(f"target: the overview < {TARGET_MS:.0f} ms at 20,000 runs, 100,000 ledger rows")
        heads = "".join(f"{page + ' ms':>26}" for page in PAGES)
        print(f"\n{'runs':>7} {'ledger rows':>12}{heads}")
        print(f"{'':>20}" + f"{'median   best  first':>26}" * len(PAGES))
        overview_ms = 0.0
        for runs, rows in stages(space, sizes, options.calls):
            space.heartbeat()
            with client_for(space) as client:
                cells = []
                for path in ("/", f"/runs/{space.pipeline.id}", "/costs"):
                    median, best, first = measure(client, path, options.requests)
                    cells.append(f"{median:12.1f} {best:6.1f} {first:6.1f}")
                    if path == "/":
                        overview_ms = median
            print(f"{runs:>7,} {rows:>12,}" + "".join(cells), flush=True)
        verdict = "ok" if overview_ms < TARGET_MS else "OVER"
        print(f"overview at the last stage: {overview_ms:.1f} ms median, {verdict}")
        if options.profile:
            print("\nthe overview's reads, warm, apart; then views.overview by cumulative time:")
            profile_overview(space, 25, options.requests)
        space.heartbeat()
        latencies = live_latency(space, options.probes)
        print(
            f"\nlive: append -> its SSE `id:` line, real server, {len(latencies)} probes: "
            f"median {statistics.median(latencies) * 1000:.0f} ms, "
            f"best {min(latencies) * 1000:.0f} ms, worst {max(latencies) * 1000:.0f} ms "
            f"(goal <= {LIVE_GOAL_S:.0f} s: "
            f"{'ok' if statistics.median(latencies) <= LIVE_GOAL_S else 'OVER'})"
        )


if __name__ == "__main__":
    main()
