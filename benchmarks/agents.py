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

Then the agent backends beside agentctl's own agent: a role with ``backend =
"claude-code"`` (an Anthropic model) and ``"codex"`` (an OpenAI Responses model,
gpt-5.5), spawned the same way (zygote, warm), the real CLI found by
``agentctl.testing.clis.find`` (skipped, with why, when it is not installed): spawn
request → the CLI's first model request through agentctl's metering proxy (median of
--repeat; each run must succeed on its one scripted answer).

Targets (2-core machine), zygote: first request <= 150 ms; 20 agents <= 3.0 s;
Pss per agent <= 20 MiB; CPU per spawn <= 0.1 s. Figures, not a pass/fail test.
Measured here on 2026-12-05 (--repeat 3), zygote: first request 64 ms (OpenAI
chat) and 76 ms (Anthropic); 20 agents 1.71 s and 1.90 s; Pss 18.8 and 17.1 MiB;
CPU 0.05 and 0.04 s (exec: 816 and 1,176 ms, 11.1 and 17.0 s, 42 and 56 MiB,
0.68 and 1.03 s). Backends, first request: agentctl 64–76 ms, Claude Code 2.1.197
600–675 ms, Codex 0.171.0 305–320 ms (the CLI's own start-up: Node and its bundle).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agentctl.agent.backends import BACKENDS
from agentctl.agent.spawner import stop
from agentctl.agent.supervise import AgentRequest, start_agent
from agentctl.agent.zygote_paths import ZygotePaths
from agentctl.config import Config, load_config
from agentctl.runs import TERMINAL, Run
from agentctl.testing import clis
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.workspace import find_workspace

MODELS = {"openai": "bench-openai", "anthropic": "bench-anthropic"}
WIRES = {"openai": "chat", "anthropic": "messages"}
# The coding agent CLIs a role can run as its backend: program, model provider, wire,
# model name (Codex must know the model's metadata: gpt-5.5), requests per text answer.
CLIS = {
    "claude-code": ("claude", "anthropic", "messages", "claude-bench", 1),
    "codex": ("codex", "openai", "responses", "gpt-5.5", 1),
}
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


def cli_workspace(root: Path, server: LLMServer, backend: str, program: str) -> Config:
    """A workspace whose research role runs on the CLI ``backend`` (zygote spawn)."""
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    _, provider, wire, name, _ = CLIS[backend]
    url = server.openai_url if provider == "openai" else server.anthropic_url
    (root / "agentctl.toml").write_text(
        f'[models.bench]\nprovider = "{provider}"\napi = "{wire}"\nname = "{name}"\n'
        f'base_url = "{url}"\napi_key_env = ""\nprice = {{ input = 0.0, output = 0.0 }}\n\n'
        f'[roles.research]\nbackend = "{backend}"\nmodel = "bench"\nfallback = []\n'
        'tools = ["read", "glob"]\n'
        f'[roles.research.backend_options]\nexecutable = "{program}"\n\n'
        '[executor]\nspawn = "zygote"\nmax_processes = 64\n'
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


def first_request(config: Config, server: LLMServer, model: str, turns: int = 1) -> float:
    """Seconds from the spawn request to the agent's first model request; ``turns``
    scripted answers (one per request the agent makes for a text answer)."""
    server.script(model, *[Turn.text("done")] * turns)
    before = len(server.requests)
    started = time.perf_counter()
    run = spawn(config, "hi")
    until(lambda: len(server.requests) > before)
    elapsed = time.perf_counter() - started
    until(lambda: finished([run]))
    record = run.load()
    if record.status != "succeeded":
        raise SystemExit(f"{run.id} {record.status}: {record.reason or 'no reason recorded'}")
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


def measure(
    kind: str, how: str, scratch: Path, options: argparse.Namespace
) -> tuple[float, list[str]]:
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
    return first, [
        f"{first * 1000:5.0f} ms",
        f"{wall:5.2f} s",
        f"{pss:5.1f} MiB",
        f"{cpu + spawner:5.2f} s",
    ]


def installed(backend: str) -> tuple[str | None, str]:
    """The installed CLI of ``backend``, or None and why it is skipped."""
    module = BACKENDS[backend].split(":")[0]
    if importlib.util.find_spec(module) is None:
        return None, f"no backend module {module}"
    program = clis.find(CLIS[backend][0])
    if program is None:
        return None, f"{CLIS[backend][0]} not installed (python -m agentctl.testing.clis)"
    return program, ""


def measure_cli(backend: str, program: str, scratch: Path, options: argparse.Namespace) -> float:
    """Median seconds from the spawn request to the CLI's first model request (zygote
    warm, the CLI's files in the page cache: one run first)."""
    name, turns = CLIS[backend][3], CLIS[backend][4]
    with LLMServer() as server:
        config = cli_workspace(scratch / backend, server, backend, program)
        try:
            first_request(config, server, name, turns)
            first = statistics.median(
                first_request(config, server, name, turns) for _ in range(options.repeat)
            )
        finally:
            stop(config.workspace.state_dir)
        server.assert_complete()  # as many requests as scripted: no 500 for a missing turn
    return first


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
    own: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for kind in MODELS:
            for how in ("exec", "zygote"):
                first, cells = measure(kind, how, Path(scratch), options)
                if how == "zygote":
                    own[kind] = first
                print("  " + "  ".join(f"{c:>14}" for c in [kind, how, *cells]), flush=True)
        print(
            "  targets (zygote): <= 150 ms, <= 3.0 s, <= 20 MiB, <= 0.1 s; exec is the "
            "previous design"
        )
        print(
            f"\nagent backends: spawn request → first model request (zygote, median of "
            f"{options.repeat})"
        )
        print("  " + "  ".join(f"{h:>14}" for h in ("backend", "wire", "first request")))
        for kind, first in own.items():
            row = ("agentctl", WIRES[kind], f"{first * 1000:5.0f} ms")
            print("  " + "  ".join(f"{c:>14}" for c in row), flush=True)
        for backend in CLIS:
            program, why = installed(backend)
            if program is None:
                print(f"  {backend:>14}  skipped: {why}", flush=True)
                continue
            first = measure_cli(backend, program, Path(scratch), options)
            row = (backend, CLIS[backend][2], f"{first * 1000:5.0f} ms")
            print("  " + "  ".join(f"{c:>14}" for c in row), flush=True)


if __name__ == "__main__":
    main()
