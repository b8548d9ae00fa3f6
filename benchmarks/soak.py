"""The soak at scale: 100 tickets through cron ticks while processes are killed.

    python benchmarks/soak.py [--tickets 100] [--kills 50] [--seed N] [--chaos-seconds 120]

A scratch project with ``--tickets`` local tickets (scripted dev and reviewer per
ticket), ``agentctl orchestrate --once`` ticks as real subprocesses while a chaos
thread ``kill -9``s random agents, pipelines, ticks and merge-queue lock holders
(at least ``--kills``) and some ticks trip a random fail point; then ticks without
chaos until quiet. Prints the seed, tickets done/failed, kills by kind, fail points
tripped, ticks and seconds to converge, and each invariant of issue 14.
Exits 1 if an invariant fails. AGENTCTL_SOAK_SEED also sets the seed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from agentctl.testing.soak import SoakSettings, run_soak, seed_from_env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=seed_from_env(100))
    parser.add_argument("--chaos-seconds", type=float, default=120.0)
    parser.add_argument("--max-parallel", type=int, default=4)
    parser.add_argument("--spawn", choices=("zygote", "exec"), default="zygote")
    parser.add_argument("--keep", type=Path, help="Soak in this folder and keep it (to look).")
    args = parser.parse_args()
    settings = SoakSettings(
        tickets=args.tickets,
        seed=args.seed,
        chaos_seconds=args.chaos_seconds,
        min_kills=args.kills,
        max_parallel=args.max_parallel,
        max_quiet_ticks=150,
        spawn=args.spawn,
    )
    print(f"soak: {args.tickets} tickets, >= {args.kills} kills, seed {args.seed}", flush=True)
    started = time.monotonic()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run_soak(args.keep, settings)
    else:
        with tempfile.TemporaryDirectory(prefix="agentctl-soak-") as scratch:
            result = run_soak(Path(scratch), settings)
    for line in result.lines():
        print(line)
    print(f"total {time.monotonic() - started:.1f}s")
    return 0 if result.ok and result.quiet else 1


if __name__ == "__main__":
    sys.exit(main())
