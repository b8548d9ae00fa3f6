"""Start-up time of commands that call no model, beside a bare interpreter.

    python benchmarks/startup.py [--runs 21]

Prints the median wall time of ``python -c pass``, ``agentctl --help``, ``agentctl
runs list`` and ``agentctl runs list --json`` over 1,000 runs (made in a scratch
git repository), the targets, and which heavy modules (model SDKs, gql, GitPython,
pydantic) each command imported. Figures, not a pass/fail test: shared machines
are noisy, so read the medians beside the minimum (the least disturbed run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agentctl.testing.runs import make_finished_runs

HEAVY = (
    "anthropic",
    "openai",
    "gql",
    "git",
    "graphql",
    "httpx",
    "httpx2",
    "pydantic",
    "starlette",
    "uvicorn",
    "jinja2",
)
TARGETS_MS = {"agentctl --help": 120.0, "agentctl runs list": 250.0}


def agentctl() -> list[str]:
    script = Path(sys.executable).parent / "agentctl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "agentctl"]


def timings_ms(command: list[str], cwd: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - started) * 1000)
    return times


def heavy_imports(args: list[str], cwd: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "agentctl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    found = set()
    for line in done.stderr.splitlines():
        name = line.rsplit("|", 1)[-1].strip()
        if name.split(".")[0] in HEAVY:
            found.add(name.split(".")[0])
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="timed runs per command")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        repo = Path(scratch)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
        make_finished_runs(repo / ".agentctl", 1000)
        env_note = f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
        print(f"startup, median of {options.runs} runs ({env_note}), 1,000 runs on disk")
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "agentctl --help": [*agentctl(), "--help"],
            "agentctl runs list": [*agentctl(), "runs", "list"],
            "agentctl runs list --json": [*agentctl(), "runs", "list", "--json"],
            # the previous design: --json printed every run
            "agentctl runs list --json --all": [*agentctl(), "runs", "list", "--json", "--all"],
        }
        for label, command in commands.items():
            timings_ms(command, repo, 2)  # warm the page cache and .pyc files
            times = timings_ms(command, repo, options.runs)
            ms = statistics.median(times)
            target = TARGETS_MS.get(label.removesuffix(" --all").removesuffix(" --json"))
            verdict = ""
            if target is not None:
                verdict = f"  target <= {target:.0f} ms: {'ok' if ms <= target else 'OVER'}"
            heavy = ""
            if label.startswith("agentctl"):
                imported = heavy_imports(command[len(agentctl()) :], repo)
                heavy = f"  heavy imports: {', '.join(imported) or 'none'}"
            print(f"  {label:<33} {ms:7.1f} ms (min {min(times):6.1f}){verdict}{heavy}")


if __name__ == "__main__":
    main()
