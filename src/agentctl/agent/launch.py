"""Starting a run's worker process: forked by the zygote, exec'd, or run attached.

``spawn_worker`` starts ``agentctl <group> worker RUN`` in its own session with an
allowlisted environment, its keys through an inherited pipe and its output in
process.log; ``run_attached`` runs a pipeline below a Celery task and waits for it;
``take_process_slot`` holds one of ``[executor] max_processes`` for a worker's life.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from agentctl import keystore
from agentctl.agent.env import DIE_WITH, agent_env
from agentctl.agent.spawner import Forked, fork_worker
from agentctl.config import Config
from agentctl.errors import AgentctlError
from agentctl.keystore import service_keys
from agentctl.runs import Run, RunStore, this_host
from agentctl.runs.procslots import needs_slot, wait_for_slot


def _worker_args(config: Config, run: Run, group: str, extra: tuple[str, ...] = ()) -> list[str]:
    """``agentctl --workspace W [--set ...] <group> worker RUN`` (the part after ``-m``)."""
    args = ["--workspace", str(config.workspace.root)]
    for item in [*extra, *run.read_input().get("sets", [])]:
        args += ["--set", item]
    return [*args, group, "worker", run.id]


def _keys(config: Config, run: Run, group: str) -> list[str]:
    """The keys a worker gets: its models', and for a pipeline the tracker's and forge's."""
    keys = {config.models[m].key_env for m in run.read_input().get("models", ())} - {None}
    if group == "pipeline":  # a pipeline opens PRs and moves tickets; its agents never do
        keys |= set(service_keys(config))
    return sorted(k for k in keys if k)


def _bound(config: Config, run: Run, group: str) -> bool:
    """A pipeline's agent on a Celery worker dies with its pipeline (and so with the
    worker): a killed worker leaves nothing behind, and the run moves whole to the
    worker that resumes it. Such agents are exec'd: a zygote's child is not ours."""
    if group != "agent" or config.settings.executor.kind != "celery":
        return False
    parent = run.load().parent_id
    if parent is None:
        return False
    with contextlib.suppress(AgentctlError):
        return RunStore(run.dir.parent.parent).get(parent).load().kind == "pipeline"
    return False


def spawn_worker(
    config: Config,
    run: Run,
    environ: Mapping[str, str] | None = None,
    *,
    group: str = "agent",
) -> int:
    """Start ``agentctl <group> worker RUN`` in its own session; returns its pid.

    It receives the keys of the models in the run's input (``models``) and, for a
    pipeline, the tracker and forge tokens through an inherited pipe, with every key
    value to redact; its environment holds nothing secret. ``environ``, when given,
    stands in for this process's environment and key store.
    """
    args = _worker_args(config, run, group)
    bound = _bound(config, run, group)
    with (
        run.paths.process_log.open("ab") as log,
        keystore.handoff(_keys(config, run, group), environ) as handoff,
    ):
        env = agent_env(environ)
        fallback = None
        if group == "agent" and config.settings.executor.spawn == "zygote" and not bound:
            forked = fork_worker(
                config,
                args,
                env=env,
                log_fd=log.fileno(),
                keys_fd=handoff.pass_fds[0],
                environ=environ,
            )
            if isinstance(forked, Forked):
                try:
                    run.journal.append(
                        "process.spawned",
                        durable=True,
                        pid=forked.pid,
                        spawn="zygote",
                        host=this_host(),
                    )
                except BaseException:
                    forked.abort()  # it leaves without running: nothing was journaled
                    raise
                forked.go()
                return forked.pid
            fallback = forked
        process = subprocess.Popen(
            [sys.executable, "-m", "agentctl", *args],
            cwd=config.workspace.root,
            env={**env, **handoff.env, **({DIE_WITH: str(os.getpid())} if bound else {})},
            pass_fds=handoff.pass_fds,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    extra: dict[str, Any] = {"spawn": "exec", "host": this_host()}
    if fallback is not None:
        extra["fallback"] = fallback
    if bound:
        extra["bound"] = True
    run.journal.append("process.spawned", durable=True, pid=process.pid, **extra)
    return process.pid


def run_attached(config: Config, run: Run, *, sets: tuple[str, ...] = ()) -> int:
    """Run ``agentctl pipeline worker RUN`` below this process and wait for its exit code.

    A Celery task's way: the pipeline stays in the worker's process group and gets
    SIGKILL when its parent (the task's pool process) dies, so a worker killed whole
    leaves no pipeline behind. Keys come from this host's own environment or key file.
    ``sets`` are the worker's own ``--set`` options (its clone, say).
    """
    args = _worker_args(config, run, "pipeline", sets)
    with (
        run.paths.process_log.open("ab") as log,
        keystore.handoff(_keys(config, run, "pipeline")) as handoff,
    ):
        process = subprocess.Popen(
            [sys.executable, "-m", "agentctl", *args],
            cwd=config.workspace.root,
            env={**agent_env(), **handoff.env, DIE_WITH: str(os.getpid())},
            pass_fds=handoff.pass_fds,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        run.journal.append(
            "process.spawned", durable=True, pid=process.pid, spawn="attached", host=this_host()
        )
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process.wait()


def take_process_slot(config: Config, run: Run) -> bool:
    """Hold one of ``[executor] max_processes`` slots for this worker's life, waiting for it.

    False when the run was canceled while it waited: the worker leaves without starting.
    The slot is released by the kernel when this process ends, however it ends.
    """
    if not needs_slot(run):
        return True  # a pipeline's step agent runs in its pipeline's slot
    capacity = config.settings.executor.max_processes
    slot = wait_for_slot(run, config.worktree_home / "locks", capacity)  # per host
    if slot is None:
        return False
    _HELD.append(slot)
    return True


_HELD: list[Any] = []  # this process's slot: kept open until it exits
