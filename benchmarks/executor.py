"""What running pipelines on Celery workers costs, beside local pipeline processes.

    python benchmarks/executor.py [--runs 20] [--concurrency 2] [--settle 3.0]

A trivial pipeline (one ``run = "true"`` step) through the product's own submit path
(``pipeline.process.start_pipeline``, what ``pipeline run``, the chat and the
orchestrator call), with ``[executor] kind = "local"`` (``max_processes = 64``) and
``kind = "celery"`` (a real redis-server on 127.0.0.1 and two ``agentctl worker
--concurrency 2``, each on its own clone of the workspace, sharing its state folder):

- submit-to-start latency: the run's ``started_at - created_at``, one run at a time
  (after one warm-up run), median and max of --runs;
- throughput: --runs pipelines submitted at once, wall time from the first submit to
  the last run's ``finished_at``, and runs/s;
- the memory of one idle Celery worker (``agentctl worker --concurrency 1``, --settle s
  after it answers): the sum of RSS, and of Pss where ``/proc/PID/smaps_rollup`` is
  readable, over its process group (the main process and its pool processes).

Targets: celery submit-to-start median <= 1 s; idle worker <= 120 MiB RSS. Figures,
not a pass/fail test: read the medians of a few runs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from tempfile import TemporaryDirectory

from agentctl.config import Config, load_config
from agentctl.executors.celery import CeleryExecutor
from agentctl.pipeline.process import start_pipeline
from agentctl.runs import TERMINAL, Run
from agentctl.testing.workers import RedisServer, WorkerProcess
from agentctl.testing.workers import clone as make_clone
from agentctl.workspace import find_workspace

PIPELINE = '[[steps]]\nid = "noop"\nrun = "true"\n'


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def workspace(root: Path, kind: str, broker: str) -> Config:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "bench")
    git(root, "config", "user.email", "bench@agentctl.invalid")
    (root / "pipelines").mkdir()
    (root / "pipelines" / "trivial.toml").write_text(PIPELINE)
    (root / "agentctl.toml").write_text(
        '[project]\ngate_sandbox = "none"\n\n'
        f'[executor]\nkind = "{kind}"\nmax_processes = 64\n\n'
        f'[executor.celery]\nbroker_url = "{broker}"\n\n'
        # a worker needs a forge that spans clones; a `run`-only pipeline never calls it
        '[forge]\nkind = "github"\n[forge.github]\nrepo = "bench/trivial"\n'
    )
    (root / ".gitignore").write_text(".agentctl/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "bench")
    return load_config(find_workspace(root))


@contextlib.contextmanager
def worker(config: Config, scratch: Path, name: str, concurrency: int) -> Iterator[int]:
    """An ``agentctl worker`` on its own clone, in its own session; yields its pid."""
    head = config.workspace.root
    clone = make_clone(head, scratch / f"clone-{name}", name=name)
    process = WorkerProcess(head, clone, name, scratch / f"worker-{name}.log", concurrency)
    process.start()
    try:
        executor = CeleryExecutor(config)
        deadline = time.monotonic() + 60
        while name not in {row["name"].split("@")[0] for row in executor.workers(timeout=0.5)}:
            if not process.alive() or time.monotonic() > deadline:
                raise SystemExit(f"worker {name} did not start:\n{process.tail()}")
        yield process.pid
    finally:
        process.stop()


def until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.005)


def finished(runs: list[Run]) -> bool:
    return all(run.load().status in TERMINAL for run in runs)


def submit(config: Config) -> Run:
    return start_pipeline(config, "trivial", preflight=False)


def check(runs: list[Run]) -> None:
    bad = [(r.id, r.load().status, r.load().reason) for r in runs if r.load().status != "succeeded"]
    if bad:
        raise SystemExit(f"runs did not succeed: {bad}")


def latency(config: Config, count: int) -> tuple[float, float]:
    """(median s, max s) of ``started_at - created_at``, one run at a time."""
    warm = submit(config)
    until(lambda: finished([warm]))
    waits, runs = [], []
    for _ in range(count):
        run = submit(config)
        until(functools.partial(finished, [run]))
        record = run.load()
        assert record.started_at is not None
        waits.append((record.started_at - record.created_at).total_seconds())
        runs.append(run)
    check([warm, *runs])
    return statistics.median(waits), max(waits)


def throughput(config: Config, count: int) -> float:
    """Wall s from the first submit to the last run's ``finished_at``, ``count`` at once."""
    started = time.time()
    runs = [submit(config) for _ in range(count)]
    until(lambda: finished(runs))
    check(runs)
    ends = [r.load().finished_at for r in runs]
    return max(end.timestamp() for end in ends if end is not None) - started


def group_of(leader: int) -> list[int]:
    """Every process in process group ``leader``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == leader:
            found.append(int(entry.name))
    return sorted(found)


def kib(path: str, key: str) -> int | None:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(key):
            return int(line.split()[1])
    return None


def memory(pids: list[int]) -> tuple[float, float | None]:
    """(RSS MiB, Pss MiB or None where smaps_rollup cannot be read), summed."""
    rss = sum(kib(f"/proc/{p}/status", "VmRSS:") or 0 for p in pids)
    pss = [kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids]
    return rss / 1024, (None if None in pss else sum(p or 0 for p in pss) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--settle", type=float, default=3.0)
    options = parser.parse_args()
    n = options.runs
    rows: dict[str, list[str]] = {}
    with TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server:
        scratch, broker = Path(tmp), server.url
        local = workspace(scratch / "local", "local", broker)
        median, most = latency(local, n)
        wall = throughput(local, n)
        rows["local"] = [f"{median * 1000:.0f} ms", f"{most * 1000:.0f} ms"]
        rows["local"] += [f"{wall:.2f} s", f"{n / wall:.1f}", "-", "-"]

        config = workspace(scratch / "celery", "celery", broker)
        with (
            worker(config, scratch, "w1", options.concurrency),
            worker(config, scratch, "w2", options.concurrency),
        ):
            median, most = latency(config, n)
            wall = throughput(config, n)
        rows["celery"] = [f"{median * 1000:.0f} ms", f"{most * 1000:.0f} ms"]
        rows["celery"] += [f"{wall:.2f} s", f"{n / wall:.1f}"]

        with worker(config, scratch, "idle", 1) as pid:
            time.sleep(options.settle)
            pids = group_of(pid)
            rss, pss = memory(pids)
        rows["celery"] += [f"{rss:.1f} MiB", "n/a" if pss is None else f"{pss:.1f} MiB"]

    print(
        f"pipeline executors ({os.cpu_count()} cores; trivial pipeline; local max_processes 64, "
        f"celery: 2 workers --concurrency {options.concurrency}; idle worker --concurrency 1, "
        f"{len(pids)} processes)"
    )
    header = ["executor", "start median", "start max", f"{n} at once", "runs/s"]
    header += ["idle RSS", "idle Pss"]
    print("  " + "  ".join(f"{h:>13}" for h in header))
    for name, cells in rows.items():
        print("  " + "  ".join(f"{c:>13}" for c in [name, *cells]))
    print("  targets (celery): start median <= 1 s; idle worker <= 120 MiB RSS")


if __name__ == "__main__":
    main()
