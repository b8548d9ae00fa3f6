"""``run_cli``: a CLI's JSON events as they come, and the whole group stopped on demand."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from agentctl.agent.backends.process import run_cli
from agentctl.tools.env import tool_env
from tests.processes import process_running

# Prints two events and a plain line, starts a command in a session of its own (as the
# CLIs do), then keeps printing events forever: a CLI that goes on after a refusal.
GOES_ON = """
import itertools, json, os, subprocess, sys, time
print(json.dumps({"type": "start"}), flush=True)
print("a plain line", flush=True)
subprocess.Popen(["sleep", "969"], start_new_session=True)
for n in itertools.count():
    print(json.dumps({"type": "tick", "n": n}), flush=True)
    time.sleep(0.05)
"""


def test_a_cli_that_goes_on_is_stopped_whole_when_asked(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    log = tmp_path / "cli.log"
    started = time.monotonic()
    warden = [sys.executable, "-I", "-m", "agentctl.tools.warden", "--parent", str(os.getpid())]
    exited = run_cli(
        [*warden, "--", sys.executable, "-c", GOES_ON],  # as the backends run a CLI
        cwd=str(tmp_path),
        env=tool_env(),
        log=log,
        on_event=events.append,
        should_stop=lambda: "refused" if len(events) >= 4 else None,
        grace=0.5,
    )
    assert exited.stopped == "refused" and exited.code != 0
    assert time.monotonic() - started < 5
    assert events[0] == {"type": "start"} and events[1]["type"] == "tick"
    assert "a plain line" in log.read_text()  # not JSON: kept beside stderr
    assert not process_running("sleep 969")  # its setsid child went with it (the warden)


def test_a_cli_that_ends_by_itself_gives_every_event_and_its_code(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    program = 'import json\nfor n in range(3): print(json.dumps({"n": n}))\nraise SystemExit(3)'
    exited = run_cli(
        [sys.executable, "-c", program],
        cwd=str(tmp_path),
        env=tool_env(),
        log=tmp_path / "cli.log",
        on_event=events.append,
        should_stop=lambda: None,
    )
    assert (exited.code, exited.stopped) == (3, None)
    assert events == [{"n": 0}, {"n": 1}, {"n": 2}]
