"""What a role agent process costs: start-up, a 3-turn run, and 20 agents at once.

    python benchmarks/agents.py [--agents 20] [--latency 1.0]

Against the scripted server on 127.0.0.1, with an OpenAI-compatible model:
- time from `agentctl agent run` to the first model request;
- wall and peak RSS of the agent process for a 3-turn agent (2 tool calls, answer);
- total wall for N agents started at once (each one model call with --latency s),
  beside one agent alone, and the CPU seconds each spawn costs.
Targets (2-core machine): 3-turn agent <= 1.0 s and <= 90 MiB; 20 agents <= 6 s.
Figures, not a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from agentctl.config import load_config
from agentctl.runs import RunStore
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.workspace import find_workspace

MODEL = "bench-agent"


def workspace(root: Path, server: LLMServer) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    (root / "a.py").write_text("x = 1\n")
    (root / "agentctl.toml").write_text(
        f'[models.bench]\nprovider = "openai"\nname = "{MODEL}"\nbase_url = "{server.openai_url}"\n'
        'price = { input = 0.0, output = 0.0 }\n\n[roles.research]\nmodel = "bench"\n'
        'fallback = []\ntools = ["read", "glob"]\n'
    )
    return root


def agent_input(root: Path, task: str) -> str:
    """A pending agent run made through the library, as `agent run` makes it."""
    config = load_config(find_workspace(root))
    run = RunStore(config.workspace.state_dir).create(
        "agent",
        input={
            "task": task,
            "role": "research",
            "cwd": str(root),
            "model": None,
            "models": ["bench"],
            "budget_usd": None,
            "max_turns": None,
            "sets": [],
        },
        role="research",
        model="bench",
    )
    return run.id


def worker(root: Path, run_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentctl", "--workspace", str(root), "agent", "worker", run_id],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def reap(process: subprocess.Popen[bytes]) -> tuple[float, float]:
    """(peak RSS MiB, CPU seconds) of a finished child."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def first_request(root: Path, server: LLMServer) -> float:
    server.script(MODEL, Turn.text("ok"))
    seen = threading.Event()
    before = len(server.requests)

    def poll() -> None:
        while len(server.requests) == before:
            time.sleep(0.0005)
        seen.set()

    threading.Thread(target=poll, daemon=True).start()
    started = time.perf_counter()
    agentctl = Path(sys.executable).parent / "agentctl"
    process = subprocess.Popen(
        [str(agentctl), "agent", "run", "research", "hi"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen.wait(30)
    elapsed = time.perf_counter() - started
    process.wait(30)
    return elapsed


def three_turns(root: Path, server: LLMServer) -> tuple[float, float, float]:
    server.script(
        MODEL,
        Turn.tool_call("glob", {"pattern": "*.py"}),
        Turn.tool_call("read", {"path": "a.py"}),
        Turn.text("x is 1"),
    )
    run_id = agent_input(root, "what is x?")
    started = time.perf_counter()
    process = worker(root, run_id)
    rss, cpu = reap(process)
    return time.perf_counter() - started, rss, cpu


def many(root: Path, server: LLMServer, count: int, latency: float) -> tuple[float, float]:
    server.script(MODEL, *[Turn.text("ok", delay=latency)] * count)
    ids = [agent_input(root, f"task {i}") for i in range(count)]
    started = time.perf_counter()
    processes = [worker(root, run_id) for run_id in ids]
    cpu = sum(reap(p)[1] for p in processes)
    return time.perf_counter() - started, cpu / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--latency", type=float, default=1.0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, LLMServer() as server:
        root = workspace(Path(scratch), server)
        print(f"agents ({os.cpu_count()} cores, OpenAI-compatible model on a local server)")
        first = min(first_request(root, server) for _ in range(3))
        print(f"  agent run → first model request   {first * 1000:7.0f} ms (best of 3)")
        wall, rss, cpu = min(three_turns(root, server) for _ in range(3))
        verdict = "ok" if wall <= 1.0 and rss <= 90 else "OVER"
        print(
            f"  3-turn agent process              {wall:7.2f} s  {rss:5.0f} MiB peak  "
            f"{cpu:4.2f} CPU s  target <= 1.0 s, <= 90 MiB: {verdict}"
        )
        one, _ = many(root, server, 1, options.latency)
        total, per_spawn = many(root, server, options.agents, options.latency)
        verdict = "ok" if total <= 6.0 else "OVER"
        print(f"  1 agent, {options.latency:g} s model latency        {one:7.2f} s")
        print(
            f"  {options.agents} agents at once                  {total:7.2f} s  "
            f"{per_spawn:4.2f} CPU s per spawn  target <= 6 s: {verdict}"
        )
        server.assert_complete()


if __name__ == "__main__":
    main()
