"""Finding the processes a test started, and waiting for them, from /proc."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from agentctl.runs import Run, RunStore


def _scan(needle: bytes, *, environ: bool) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                seen = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                if environ:
                    seen += (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in seen:
                found.append(int(entry.name))
    return found


def process_running(marker: str) -> bool:
    """Whether a process's command line contains ``marker``."""
    return bool(_scan(marker.encode(), environ=False))


def processes_naming(folder: Path) -> list[int]:
    """Processes whose command line or environment names ``folder`` (a CLI's home)."""
    return _scan(str(folder).encode(), environ=True)


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def only_agent_run(repo: Path) -> Run:
    """The one agent run of the workspace at ``repo``."""
    (listing,) = RunStore(repo / ".agentctl").list(kind="agent")
    return RunStore(repo / ".agentctl").get(listing.id)
