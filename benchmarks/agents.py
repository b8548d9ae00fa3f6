"""What starting a role agent costs, forked from the zygote beside exec'd (the previous design).

    python benchmarks/agents.py [--agents 20] [--latency 1.0] [--repeat 5]

Through the product's own spawn path (``agent.supervise.start_agent``, what
``agent run``, pipelines, the chat and the orchestrator call), against the scripted
model server on 127.0.0.1, for an OpenAI-compatible and an Anthropic model, with
``[executor] spawn = "exec"`` and ``"zygote"`` (warm: one agent ran first):

- spawn request → first model request (median of --repeat);
- N agents at once, each one model call answered after --latency s: total wall;
- while those N wait on the model: the proportional set size (Pss) each additional
  agent adds (its supervisor and agent processes, plus the change in the zygote's own
  Pss as it shares its pages with more processes, divided by N), and CPU seconds per
  agent so far (its start-up) plus what the spawning process spent per spawn.

Targets (2-core machine), zygote: first request <= 150 ms; 20 agents <= 3.0 s;
Pss per agent <= 20 MiB; CPU per spawn <= 0.1 s. Figures, not a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agentctl.agent.spawner import stop
from agentctl.agent.supervise import AgentRequest, start_agent
from agentctl.agent.zygote_paths import ZygotePaths
from agentctl.config import Config, load_config
from agentctl.runs import TERMINAL, Run
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.workspace import find_workspace

MODELS = {"openai": "bench-openai", "anthropic": "bench-anthropic"}
TICK = os.sysconf("SC_CLK_TCK")


def workspace(root: Path, server: LLMServer, kind: str, spawn: str) -> Config:
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    url = server.openai_url if kind == "openai" else server.anthropic_url
    (root / "agentctl.toml").write_text(
        f'[models.bench]\nprovider = "{kind}"\nname = "{MODELS[kind]}"\nbase_url = "{url}"\n'
        'api_key_env = ""\nprice = { input = 0.0, output = 0.0 }\n\n'
        '[roles.research]\nmodel = "bench"\nfallback = []\ntools = ["read", "glob"]\n\n'
        f'[executor]\nspawn = "{spawn}"\nmax_processes = 64\n'
    )
    return load_config(find_workspace(root))


def spawn(config: Config, task: str) -> Run:
    return start_agent(config, AgentRequest("research", task, config.workspace.root))


def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.0005)


def finished(runs: list[Run]) -> bool:
    return all(run.load().status in TERMINAL for run in runs)


def first_request(config: Config, server: LLMServer, model: str) -> float:
    server.script(model, Turn.text("ok"))
    before = len(server.requests)
    started = time.perf_counter()
    run = spawn(config, "hi")
    until(lambda: len(server.requests) > before)
    elapsed = time.perf_counter() - started
    until(lambda: finished([run]))
    return elapsed


def processes_of(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        queue += [int(c) for c in children]
    return found


def pss_mib(pid: int) -> float:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:  # it just ended
        return 0.0
    for line in lines:
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def many(
    config: Config, server: LLMServer, model: str, count: int, latency: float
) -> tuple[float, float, float, float]:
    """(wall s, Pss MiB per agent, agent CPU s per agent, spawner CPU s per spawn)."""
    server.script(model, *[Turn.text("ok", delay=latency)] * count)
    before = len(server.requests)
    zygote = ZygotePaths.of(config.workspace.state_dir).running_pid()
    if zygote:  # the earlier agents' processes gone: they share the zygote's pages too
        until(lambda: processes_of(zygote) == [zygote])
    alone = pss_mib(zygote) if zygote else 0.0  # the zygote's memory before these agents
    started, cpu_before = time.perf_counter(), time.process_time()
    runs = [spawn(config, f"task {i}") for i in range(count)]
    spawner_cpu = (time.process_time() - cpu_before) / count
    until(lambda: len(server.requests) - before == count)  # all of them wait on the model
    pss, cpu = [], []
    for run in runs:
        pid = run.load().pid
        assert pid is not None
        group = processes_of(pid)
        pss.append(sum(pss_mib(p) for p in group))
        cpu.append(sum(cpu_seconds(p) for p in group))
    # What N more agents add to the machine: theirs, plus the zygote's change (its share
    # of the pages they now share with it falls as they arrive).
    added = sum(pss) + (pss_mib(zygote) - alone if zygote else 0.0)
    until(lambda: finished(runs))
    wall = time.perf_counter() - started
    return wall, added / count, statistics.mean(cpu), spawner_cpu


def measure(kind: str, how: str, scratch: Path, options: argparse.Namespace) -> list[str]:
    with LLMServer() as server:
        config = workspace(scratch / f"{kind}-{how}", server, kind, how)
        model = MODELS[kind]
        try:
            first_request(config, server, model)  # warm: the zygote starts with the first agent
            first = statistics.median(
                first_request(config, server, model) for _ in range(options.repeat)
            )
            wall, pss, cpu, spawner = many(config, server, model, options.agents, options.latency)
        finally:
            stop(config.workspace.state_dir)
        server.assert_complete()
    return [
        f"{first * 1000:5.0f} ms",
        f"{wall:5.2f} s",
        f"{pss:5.1f} MiB",
        f"{cpu + spawner:5.2f} s",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    print(
        f"agent spawns ({os.cpu_count()} cores; {options.agents} agents at "
        f"{options.latency:g} s model latency)"
    )
    header = (
        "model",
        "spawn",
        "first request",
        f"{options.agents} agents",
        "Pss added/agent",
        "CPU/spawn",
    )
    print("  " + "  ".join(f"{h:>14}" for h in header))
    with tempfile.TemporaryDirectory() as scratch:
        for kind in MODELS:
            for how in ("exec", "zygote"):
                row = [kind, how, *measure(kind, how, Path(scratch), options)]
                print("  " + "  ".join(f"{c:>14}" for c in row), flush=True)
    print(
        "  targets (zygote): <= 150 ms, <= 3.0 s, <= 20 MiB, <= 0.1 s; exec is the previous design"
    )


if __name__ == "__main__":
    main()
