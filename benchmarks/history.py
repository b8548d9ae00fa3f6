"""Reads that must not grow with history: status, runs list and cost at 0 to 20,000 runs.

    python benchmarks/history.py [--runs 5] [--sizes 0,2000,20000]

One scratch workspace grows in stages: a few unfinished runs (a running pipeline whose
finished step started a running agent, a paused agent) with a short tick journal,
outbox and ledger; then 2,000 and 20,000 finished runs; then a tick journal of
100,000 lines, 1,000 reports and a ledger of 100,000 calls over 30 days. At each
stage every command runs as a real CLI process (``python -m agentctl -w ROOT ...``):
the median wall time of ``--runs`` and the peak RSS (``wait4``), with the ratio to
the first stage. Target: each <= 1.5x. The previous design runs beside it in the
same run: ``runs list --json --all`` (--json printed every run) and ``status`` with
the functions it used before (every run record read, the whole outbox, one ledger
pass per run), kept here. Figures, not a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentctl.testing.runs import make_finished_runs

TARGET_RATIO = 1.5
COMMANDS: dict[str, list[str]] = {
    "status": ["status"],
    "status --json": ["status", "--json"],
    "runs list": ["runs", "list"],
    "runs list --json": ["runs", "list", "--json"],
    "cost": ["cost"],
    "cost --by run": ["cost", "--by", "run"],
}
# The same command's previous design, printed under it.
PREVIOUS: dict[str, list[str]] = {
    "status": ["--previous", "status"],
    "status --json": ["--previous", "status", "--json"],
    "runs list --json": ["runs", "list", "--json", "--all"],
}
LEDGER_CALLS = 100_000
TICK_LINES = 100_000
REPORTS = 1_000
DAYS = 30


def measure(command: list[str], cwd: Path, runs: int) -> tuple[float, float, float]:
    """Median and least wall ms of ``runs`` (after one warm-up), and peak RSS in MiB."""
    times, peak = [], 0
    for index in range(runs + 1):
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = (time.perf_counter() - started) * 1000
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited {process.returncode}")
        if index:
            times.append(elapsed)
            peak = max(peak, usage.ru_maxrss)  # KiB on Linux
    return statistics.median(times), min(times), peak / 1024


class Table:
    """One line a command: its figures and their ratio to the first stage's."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[float, float]] = {}

    def line(self, name: str, figures: tuple[float, float, float], *, target: bool) -> str:
        median, least, mib = figures
        first_median, first_least = self.first.setdefault(name, (median, least))
        ratio, least_ratio = median / first_median, least / first_least
        verdict = ("ok" if ratio <= TARGET_RATIO else "OVER") if target else ""
        return (
            f"{median:8.1f} ms (min {least:7.1f}) {mib:6.1f} MiB  "
            f"{ratio:5.2f}x (min {least_ratio:5.2f}x)  {verdict}"
        ).rstrip()


# -- the workspace ------------------------------------------------------------------


def unfinished(state_dir: Path) -> list[str]:
    """A running pipeline > finished step > running agent, and a paused agent, with costs."""
    from agentctl.config import load_config
    from agentctl.cost.ledger import Ledger
    from agentctl.llm.types import Usage
    from agentctl.runs import RunStore
    from agentctl.workspace import find_workspace

    config = load_config(find_workspace(explicit=state_dir.parent))
    store = RunStore(state_dir)
    pipeline = store.create("pipeline", input={}, pipeline="coding-pipeline", step="implement")
    step = store.create("step", input={}, parent=pipeline, step="implement")
    agent = store.create("agent", input={}, parent=step, role="dev", model="sonnet")
    paused = store.create("agent", input={}, role="research", model="sonnet")
    for run in (pipeline, step, agent, paused):
        run.mark_started(os.getpid(), os.getpgid(0))
        run.heartbeat()
    step.transition("succeeded")
    paused.transition("paused", reason="budget")
    ledger = Ledger(state_dir)
    for run in (step, agent, paused):
        ledger.charge(
            run=run.load(),
            model_name="sonnet",
            model=config.model("sonnet"),
            usage=Usage(10_000, 1_000),
        )
    return [pipeline.id, step.id, agent.id, paused.id]


def write_ticks(home: Path, count: int) -> None:
    """``count`` idle ticks a minute apart, ending now (plain lines, as Journal writes)."""
    import json

    from agentctl.runs import format_ts

    now = datetime.now(UTC)
    home.mkdir(parents=True, exist_ok=True)
    with (home / "ticks.jsonl").open("w", encoding="utf-8") as out:
        for seq in range(1, count + 1):
            ts = format_ts(now - timedelta(minutes=count - seq))
            line = {"seq": seq, "ts": ts, "type": "tick", "summary": "idle", "model_calls": 0}
            out.write(json.dumps(line) + "\n")


def post_reports(home: Path, count: int) -> None:
    from agentctl.runs import Mailbox

    outbox = Mailbox(home / "outbox")
    outbox.directory.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        outbox.post({"type": "report", "summary": f"{n} started", "started": [f"T-{n}"]})


def write_ledger(state_dir: Path, calls: int, run_ids: list[str]) -> None:
    """``calls`` priced calls spread over the last ``DAYS`` days, charged to ``run_ids``."""
    from agentctl.cost.ledger import Entry, Ledger, dumps
    from agentctl.llm.types import Usage

    ledger = Ledger(state_dir)
    ledger.dir.mkdir(parents=True, exist_ok=True)
    price = {"input": Decimal(3), "output": Decimal(15), "cache_write": Decimal(0)}
    price["cache_read"] = Decimal(0)
    template = Entry(
        ts=datetime(2000, 1, 1, tzinfo=UTC),
        run_id="@RUN@",
        root_id="@RUN@",
        parent_id=None,
        role="dev",
        model="sonnet",
        provider="anthropic",
        model_id="claude-sonnet",
        request_id=None,
        usage=Usage(1000, 100),
        price=price,
        cost=Decimal("0.0045"),
    )
    line = dumps(template.to_json()) + "\n"
    head, _, tail = line.partition('"2000-01-01T00:00:00.000000Z"')
    now = datetime.now(UTC)
    per_day = calls // DAYS
    for day in range(DAYS):
        midnight = (now - timedelta(days=DAYS - 1 - day)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        step = timedelta(seconds=86_000 / per_day)
        with ledger.path_for(midnight.date()).open("a", encoding="utf-8") as out:
            for n in range(per_day):
                ts = (midnight + step * n).strftime('"%Y-%m-%dT%H:%M:%S.%fZ"')
                run_id = run_ids[(day * per_day + n) % len(run_ids)]
                out.write((head + ts + tail).replace("@RUN@", run_id))


def stages(root: Path, sizes: list[int]) -> Iterator[str]:
    """Grow the workspace; yield a label at each stage, once it is on disk."""
    state_dir = root / ".agentctl"
    home = state_dir / "orchestrator"
    unfinished(state_dir)
    write_ticks(home, 10)
    post_reports(home, 5)
    made = 0
    start = datetime.now(UTC) - timedelta(days=DAYS)
    ids: list[str] = []
    for size in sizes:
        step = (DAYS * 86_400) / max(size, 1)
        ids += make_finished_runs(
            state_dir, size - made, start=start + timedelta(seconds=step * made)
        )
        made = size
        yield f"{size:,} finished runs"
    write_ticks(home, TICK_LINES)
    post_reports(home, REPORTS)
    write_ledger(state_dir, LEDGER_CALLS, ids or ["20261125T090000.000000Z-agent-000000"])
    yield (
        f"{made:,} runs + {TICK_LINES:,}-line tick journal, {REPORTS:,} reports, "
        f"{LEDGER_CALLS:,}-call ledger over {DAYS} days"
    )


# -- the previous design of status, kept to print beside the current one ------------


def previous_status(argv: list[str]) -> None:
    """``agentctl status`` with the readers it had before the indexes (issue 17)."""
    from agentctl.commands import status
    from agentctl.cost.ledger import Ledger, report_once
    from agentctl.runs import Mailbox
    from agentctl.runs.record import TERMINAL
    from agentctl.runs.summary import list_rows

    def last_report(outbox: Path) -> dict[str, Any] | None:
        messages = Mailbox(outbox).read()
        if not messages:
            return None
        last = messages[-1]
        if last.problem is not None:
            return {"seq": last.seq, "problem": last.problem}
        return {**last.body, "seq": last.seq}

    def unfinished_runs(
        state_dir: Path, now: datetime, problems: list[str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        rows, _ = list_rows(state_dir, now=now)
        children: dict[str, list[str]] = {}
        for row in rows:
            if row["parent_id"] is not None:
                children.setdefault(row["parent_id"], []).append(row["id"])
        ledger = Ledger(state_dir)
        active: list[dict[str, Any]] = []
        stopped: list[dict[str, Any]] = []
        for row in reversed(rows):
            if row["status"] is None or row["status"] in TERMINAL:
                continue
            tree, todo = {row["id"]}, [row["id"]]
            while todo:
                for child in children.get(todo.pop(), ()):
                    if child not in tree:
                        tree.add(child)
                        todo.append(child)
            spent = ledger.spent(since=None, run_ids=tree)
            problems.extend(f"ledger: {p}" for p in report_once(ledger.problems))
            alive = not row["stale"] and row["status"] != "paused"
            keys = "id kind status display_status role pipeline step model ticket"
            keys += " parent_id age_s stale"
            (active if alive else stopped).append(
                {**{key: row[key] for key in keys.split()}, "cost_usd": float(spent)}
            )
        return active, stopped

    status._last_report = last_report
    status._unfinished_runs = unfinished_runs
    from agentctl.cli import main

    sys.argv = ["agentctl", *argv]
    main()


# -- the report ---------------------------------------------------------------------


def main() -> None:
    if sys.argv[1:2] == ["--previous"]:
        previous_status(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command")
    parser.add_argument("--sizes", default="0,2000,20000", help="finished runs at each stage")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
        from agentctl.commands.init import init_workspace

        init_workspace(root, test_command="true", base_branch="main")
        agentctl = [sys.executable, "-m", "agentctl", "-w", str(root)]
        here = [sys.executable, str(Path(__file__).resolve())]
        env_note = f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
        print(f"history: median of {options.runs} runs and peak RSS ({env_note})")
        print(f"target: each command's median <= {TARGET_RATIO}x its median at the first stage")
        table = Table()
        for label in stages(root, sizes):
            print(f"\n{label}")
            for name, args in COMMANDS.items():
                figures = measure([*agentctl, *args], root, options.runs)
                print(f"  {name:<24} {table.line(name, figures, target=True)}")
                if name in PREVIOUS:
                    previous = PREVIOUS[name]
                    command = (
                        [*here, "--previous", "-w", str(root), *previous[1:]]
                        if previous[0] == "--previous"
                        else [*agentctl, *previous]
                    )
                    figures = measure(command, root, options.runs)
                    line = table.line(f"previous {name}", figures, target=False)
                    print(f"    {'previous design':<22} {line}")


if __name__ == "__main__":
    main()
