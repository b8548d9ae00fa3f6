"""An idle orchestrator tick: what cron pays every minute.

    python benchmarks/tick.py [--runs 11]

A workspace with 1,000 finished runs and 200 tickets (none ready), one
`agentctl orchestrate --once` after another: the median wall time beside
`python -c pass`, and which heavy modules an idle tick imports (none of the model
SDKs may be). Target: <= 300 ms. Figures, not a pass/fail test.

With Linear as the tracker (the fake Linear on 127.0.0.1, built from the real schema
in ../shared/conformance when it is there), the same idle tick's time and how many
requests and mutations it sends to Linear (target: 1 query, 0 mutations).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agentctl.commands.init import init_workspace
from agentctl.testing.linear_server import LinearServer
from agentctl.testing.runs import make_finished_runs
from agentctl.trackers.local import LocalTracker

HEAVY = ("anthropic", "openai", "gql", "graphql", "httpx", "httpx2", "pydantic", "git")
SCHEMA = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "schemas"


def timed(
    command: list[str], root: Path, runs: int, env: dict[str, str] | None = None
) -> list[float]:
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(
            command, cwd=root, capture_output=True, text=True, env=env, check=False
        )
        times.append((time.perf_counter() - started) * 1000)
        assert done.returncode == 0 and "tick: idle" in done.stdout, done.stdout + done.stderr
    return times[1:]


def linear(command: list[str], runs: int) -> None:
    """The idle tick against Linear: its time and what it asked Linear."""
    import os

    schema = SCHEMA / "linear.graphql"
    if not schema.is_file():
        print(f"idle tick with Linear: skipped ({schema} not found)")
        return
    with tempfile.TemporaryDirectory() as scratch, LinearServer(schema) as server:
        root = Path(scratch)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
        init_workspace(root, test_command="true", base_branch="main")
        (root / "agentctl.toml").write_text(
            '[project]\ntest_command = "true"\nbase_branch = "main"\n'
            f'[tracker]\nkind = "linear"\n[tracker.linear]\nteam = "ENG"\n'
            f'url = "{server.graphql_url}"\n'
        )
        for n in range(200):
            server.add_issue(f"ticket {n}", state="Done" if n % 2 else "In Review")
        env = {**os.environ, "LINEAR_API_KEY": "lin_api_test"}
        before = len(server.requests)
        times = timed(command, root, runs, env)
        sent = server.requests[before:]
        ms = statistics.median(times)
        print(f"idle tick with Linear (200 issues, none ready), median of {runs}")
        print(
            f"  orchestrate --once (idle) {ms:7.1f} ms (min {min(times):.1f})  "
            f"Linear per tick: {len(sent) / (runs + 1):g} requests, "
            f"{sum(r.mutation for r in sent)} mutations (target 1 and 0)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
        init_workspace(root, test_command="true", base_branch="main")
        make_finished_runs(root / ".agentctl", 1000)
        tracker = LocalTracker(root / ".agentctl")
        for n in range(200):
            ticket = tracker.add(f"ticket {n}")
            tracker.set_state(ticket.id, "Done" if n % 2 else "In Review")
        command = [sys.executable, "-m", "agentctl", "orchestrate", "--once"]
        agentctl = Path(sys.executable).parent / "agentctl"
        if agentctl.exists():
            command = [str(agentctl), "orchestrate", "--once"]
        times = [0.0, *timed(command, root, runs)]
        base = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            base.append((time.perf_counter() - started) * 1000)
        traced = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "agentctl", "orchestrate", "--once"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        heavy = sorted(
            {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in traced.stderr.splitlines()}
            & set(HEAVY)
        )
        ms = statistics.median(times[1:])
        print(f"idle tick, 1,000 runs and 200 tickets, median of {runs}")
        print(f"  python -c pass            {statistics.median(base):7.1f} ms")
        print(
            f"  orchestrate --once (idle) {ms:7.1f} ms (min {min(times[1:]):.1f})  "
            f"target <= 300 ms: {'ok' if ms <= 300 else 'OVER'}  "
            f"heavy imports: {', '.join(heavy) or 'none'}"
        )
    linear(command, runs)


if __name__ == "__main__":
    main()
