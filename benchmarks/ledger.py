"""Ledger reads at 100,000 calls: the previous design (every line) beside day summaries.

    python benchmarks/ledger.py [--calls 100000] [--days 30] [--repeat 5]

Writes a ledger of ``--calls`` model calls over ``--days`` UTC days ending today
(20 calls a run, five runs a tree, four models) straight to a scratch workspace,
then prints, for ``cost`` (7 days), ``cost --by run`` (7 days), ``cost --run <tree>``
(all time) and ``spent(run_ids={one run})`` (what a budget check and every run's
ending pay), the median wall time of ``--repeat`` processes and their peak RSS:

- ``empty``: the new design over an empty ledger (the target is <= 1.5x this);
- ``previous``: every line of every day file in range parsed, as before summaries;
- ``new``: closed days from their summaries, the open day from its lines, a run's
  lines through the run index (summaries and indexes already built);
- ``cold``: the new design with the derived folder deleted before each run (the
  first read after an upgrade or ``rm -r ledger/derived``: it builds them).

Each command runs as its own process (``python -c``, the CLI's report code), so the
figures include the interpreter and imports, as a user's command does; ``cost --by
run`` prints a table of a row per run tree (rich renders it: ~0.15 s for 235 rows,
in both designs), so ``--json`` is shown beside it. Figures, not a pass/fail test:
a shared machine is noisy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agentctl.config.schema import Price
from agentctl.cost import dumps
from agentctl.cost.entry import Entry
from agentctl.cost.pricing import cost_at, rates
from agentctl.llm.types import Usage
from agentctl.runs import RunStore
from agentctl.runs.ids import new_run_id

MODELS = {
    "opus": Price(input=4.0, output=20.0, cache_write=5.0, cache_read=0.2),
    "sonnet": Price(input=2.0, output=10.0, cache_write=2.5, cache_read=0.1),
    "coder-next": Price(input=0.0, output=0.0),
    "codex": Price(input=1.25, output=10.0, cache_read=0.125),
}
ROLES = ("main", "dev", "review", "research", "devops")
PER_RUN, PER_TREE = 20, 5

_SETUP = """
import sys, time
from pathlib import Path
from agentctl.cli.cost import print_report
from agentctl.cost.ledger import Ledger
from agentctl.cost.report import build_report, descendants, parse_since, report
state, by, run, design = Path(sys.argv[1]), sys.argv[2], sys.argv[3] or None, sys.argv[4]
as_json = by.endswith("-json")
by = by.removesuffix("-json")
"""
# Peak RSS of this process alone: ru_maxrss of a child counts its parent's pages
# from before exec, VmHWM does not.
_PEAK = """
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        sys.stderr.write(f"{read_ms} {line.split()[1]}\\n")
"""
# The CLI's own report, cut from cli/cost.py, for both designs: only the read differs.
REPORT = (
    _SETUP
    + """
since = None if run else parse_since("7d")
started = time.perf_counter()
if design == "previous":  # every line of every day file in range, as before summaries
    ledger = Ledger(state)
    ids = descendants(state, run) if run else None
    lines = (
        e
        for path in ledger.day_files(since, None, ids)
        for e in ledger.read_day(path)
        if (since is None or e.ts >= since) and (ids is None or e.run_id in ids)
    )
    result = report(lines, by=by)
else:
    result = build_report(state, by=by, since=since, run=run)
read_ms = (time.perf_counter() - started) * 1000
if as_json:
    from agentctl.cost.ledger import dumps
    sys.stdout.write(dumps(result.to_json()) + "\\n")
elif result.rows:
    print_report(result, "cost")
"""
    + _PEAK
)
SPENT = (
    _SETUP
    + """
ledger = Ledger(state)
ids = {run}
started = time.perf_counter()
if design == "previous":
    total = sum(e.cost for p in ledger.day_files(None, None, ids) for e in ledger.read_day(p)
                if e.run_id in ids)
else:
    total = ledger.spent(since=None, run_ids=ids)
read_ms = (time.perf_counter() - started) * 1000
"""
    + _PEAK
)


def write_ledger(state: Path, calls: int, days: int) -> tuple[str, str]:
    """The day files, written directly; returns (a tree's root id, a run id of today)."""
    ledger_dir = state / "ledger"
    ledger_dir.mkdir(parents=True)
    now = datetime.now(UTC)
    first = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    span = (now - first).total_seconds()
    store = RunStore(state)
    runs = calls // PER_RUN
    lines: dict[str, list[str]] = {}
    root = last_run = ""
    tree_start = runs - 2 * PER_TREE  # a tree with run records, for cost --run
    tree = None
    for n in range(runs):
        start = first + timedelta(seconds=span * n / runs)
        kind = "chat" if n % PER_TREE == 0 else "agent"
        if n == tree_start:
            tree = store.create("chat", input={}, role="main")
            run_id = tree.id
        elif tree is not None and n < tree_start + PER_TREE:
            run_id = store.create("agent", input={}, parent=tree, role="dev").id
        else:
            run_id = new_run_id(kind, start)
        if n % PER_TREE == 0:
            root = run_id
        model = list(MODELS)[n % len(MODELS)]
        for call in range(PER_RUN):
            ts = start + timedelta(seconds=20 * call)
            usage = Usage(2_000 + 500 * call, 300 + call, 100 * (call % 3), 1_500 * call)
            applied = rates(MODELS[model], usage.prompt_tokens)
            entry = Entry(
                ts=ts,
                run_id=run_id,
                root_id=root,
                parent_id=None if run_id == root else root,
                role=ROLES[n % len(ROLES)],
                model=model,
                provider="anthropic",
                model_id=model,
                request_id=f"req_{n}_{call}",
                usage=usage,
                price=applied,
                cost=cost_at(usage, applied),
            )
            day = ts.date().isoformat()
            lines.setdefault(day, []).append(dumps(entry.to_json()))
        last_run = run_id
    for day, day_lines in lines.items():
        (ledger_dir / f"{day}.jsonl").write_text("\n".join(day_lines) + "\n")
    assert tree is not None
    return tree.id, last_run


def measure(
    code: str, args: list[str], repeat: int, before: object = None
) -> tuple[float, float, int]:
    """Median wall ms of ``repeat`` processes, median ms of their read (in process),
    and the largest peak RSS (KiB)."""
    times, reads, peak = [], [], 0
    for _ in range(repeat):
        if callable(before):
            before()
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        times.append((time.perf_counter() - started) * 1000)
        if done.returncode != 0:
            raise SystemExit(f"failed: {args}\n{done.stderr}")
        read_ms, kib = done.stderr.split()[-2:]
        reads.append(float(read_ms))
        peak = max(peak, int(kib))
    return statistics.median(times), statistics.median(reads), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        full, empty = Path(scratch) / "full", Path(scratch) / "empty"
        started = time.perf_counter()
        tree, today_run = write_ledger(full, options.calls, options.days)
        shutil.copytree(full / "runs", empty / "runs")  # the same runs, no ledger
        print(
            f"ledger: {options.calls:,} calls over {options.days} days "
            f"({sum(p.stat().st_size for p in (full / 'ledger').glob('*.jsonl')) / 2**20:.0f} "
            f"MiB), written in {time.perf_counter() - started:.1f} s; python "
            f"{sys.version.split()[0]}, {os.cpu_count()} cores; median of {options.repeat}"
        )
        derived = full / "ledger" / "derived"

        def drop() -> None:
            shutil.rmtree(derived, ignore_errors=True)

        cases = {
            "cost (7d)": (REPORT, ["model", ""]),
            "cost --by run (7d)": (REPORT, ["run", ""]),
            "cost --by run --json": (REPORT, ["run-json", ""]),
            "cost --run <tree>": (REPORT, ["model", tree]),
            "spent(run_ids={one})": (SPENT, ["model", today_run]),
        }
        print("  wall ms (the read alone, in process) peak RSS; target: new <= 1.5x empty")
        titles = ("empty", "previous", "new", "cold")
        print(f"  {'':<22}" + "".join(f"{t:>24}" for t in titles) + "  new/empty")
        for label, (code, args) in cases.items():
            base = measure(code, [str(empty), *args, "new"], options.repeat)
            old = measure(code, [str(full), *args, "previous"], options.repeat)
            measure(code, [str(full), *args, "new"], 1)  # build what is derived
            new = measure(code, [str(full), *args, "new"], options.repeat)
            cold = measure(code, [str(full), *args, "new"], options.repeat, drop)
            cells = "".join(
                f"{wall:7.0f} ({read:5.0f}) {kib / 1024:3.0f} MiB"
                for wall, read, kib in (base, old, new, cold)
            )
            ratio = new[0] / base[0]
            print(f"  {label:<22}{cells}  {ratio:4.2f}x {'ok' if ratio <= 1.5 else 'OVER'}")


if __name__ == "__main__":
    main()
