"""Agent backends: who runs a role step's agent when it is not agentctl's own loop.

A role with ``backend = "claude-code"`` or ``"codex"`` runs that coding agent CLI as
its agent, in the worktree, in its own process group, through a per-run metering
proxy (``proxy.py``) that holds the key, reserves each call against every cap and
prices it into the ledger. The pipeline, gates, review, merge queue and budgets do
not change: the backend is the agent process's inside. A backend is a class with
``api`` (the wire its CLI speaks), ``command`` (argv and environment), ``on_event``
(one JSON event of the CLI's output: journaled) and ``ending``; ``BACKENDS`` names
them. ``run`` is the part they share.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from agentctl.agent.backends.process import Exited, run_cli
from agentctl.agent.backends.proxy import MeteringProxy
from agentctl.agent.ending import Ending
from agentctl.agent.loop import Limits
from agentctl.agent.supervise import Heartbeat
from agentctl.agent.worker import overrides
from agentctl.atomic import write_text
from agentctl.config import Config
from agentctl.config.agents import CLI_PACKAGES, CLI_WIRE
from agentctl.config.schema import Role
from agentctl.cost.metered import Meter
from agentctl.errors import AgentctlError, PreflightError
from agentctl.llm import resolve_key
from agentctl.redact import Redactor
from agentctl.registry import load
from agentctl.runs import Run, read_journal
from agentctl.tools.env import tool_env
from agentctl.tools.projectenv import with_pythonpath

BACKENDS: dict[str, str] = {
    "claude-code": "agentctl.agent.backends.claude_code:ClaudeCode",
    "codex": "agentctl.agent.backends.codex:Codex",
}
# How long a CLI may go on after the proxy refused it a call before it is stopped.
REFUSED_GRACE = 3.0


@dataclass
class Session:
    """One CLI run of a role step: what the backend's hooks read and update."""

    config: Config
    run: Run
    role_name: str
    role: Role
    task: str
    cwd: Path
    chain: Sequence[str]
    limits: Limits
    redact: Redactor
    home: Path  # the CLI's own configuration folder, in the run directory
    resume_id: str | None = None  # the CLI's conversation to go on with
    session_id: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    turns: int = 0


class Backend(Protocol):
    api: str  # "messages" (Anthropic) or "responses" (OpenAI)

    def command(self, s: Session, proxy: MeteringProxy) -> tuple[list[str], dict[str, str]]:
        """The CLI's argv and its whole environment (allowlisted; a token, never a key)."""
        ...

    def on_event(self, s: Session, event: dict[str, Any]) -> None:
        """One JSON event of the CLI's output: journal it, keep what the ending needs."""
        ...

    def ending(self, s: Session, exited: Exited) -> Ending:
        """How the step ended, from the CLI's last events and its exit."""
        ...

    def sandboxed(self, s: Session) -> bool:
        """Whether the CLI itself runs in agentctl's sandbox (raises when it must but
        cannot); False where the CLI sandboxes its own commands."""
        ...


def guarded(
    s: Session, proxy: MeteringProxy, argv: list[str], env: dict[str, str], sandboxed: bool
) -> list[str]:
    """``argv`` below the warden (``tools/warden.py``) and, if ``sandboxed``, inside
    bubblewrap with no network but the proxy, relayed in through a Unix socket."""
    warden = [sys.executable, "-I", "-m", "agentctl.tools.warden"]
    if not sandboxed:
        return [*warden, "--parent", str(os.getpid()), "--", *argv]
    from agentctl.tools import sandbox  # lazy: bubblewrap's policy, for sandboxed CLIs only

    socket_path = s.home / "proxy.sock"
    socket_path.unlink(missing_ok=True)
    proxy.serve_unix(str(socket_path))
    port = proxy.url.rsplit(":", 1)[1]
    config = s.config
    project = config.settings.project
    policy = sandbox.workspace_policy(
        workspace=config.workspace.root,
        state_dir=config.workspace.state_dir,
        home=s.home,
        commands=[
            *(c for c in (project.test_command, project.setup_command) if c),
            os.path.realpath(argv[0]),
            sys.executable,
        ],
    )
    # The warden is agentctl's code: where agentctl is installed must be visible (an
    # editable install or a virtualenv in a temporary folder would be under a tmpfs).
    installed = str(Path(__file__).resolve().parents[3])
    policy = replace(policy, visible=(*policy.visible, installed))
    inner = [*warden, "--relay", f"{port}:{socket_path}", "--", *argv]
    return sandbox.wrap(str(s.cwd), inner, policy, env)


def run(
    config: Config,
    run: Run,
    role: Role,
    data: dict[str, Any],
    chain: Sequence[str],
    heartbeat: Heartbeat,
    redact: Redactor,
) -> Ending:
    """Run the role's CLI backend to an ending (never raises for an agent-level outcome)."""

    backend: Backend = load(BACKENDS, role.backend, "agent backend")()
    provider, api = CLI_WIRE[role.backend]
    for name in chain:  # a --model given on the command line is checked here
        model = config.models[name]
        if (model.provider, model.resolved_api) != (provider, api):
            return Ending(
                "failed",
                "error",
                f"{role.backend} speaks {provider}/{api}, but model {name!r} is "
                f"{model.provider}/{model.resolved_api}: choose a {provider}/{api} model",
                failure="permanent",
            )
    limits = Limits.of(role, overrides(run, data))
    home = run.dir / "cli"
    home.mkdir(mode=0o700, exist_ok=True)
    session = Session(
        config=config,
        run=run,
        role_name=str(data["role"]),
        role=role,
        task=str(data["task"]),
        cwd=Path(data["cwd"]),
        chain=chain,
        limits=limits,
        redact=redact,
        home=home,
        resume_id=_resume_id(run, home) if role.backend_options.resume else None,
    )
    meter = Meter(config, run, session.role_name, run_cap=limits.budget_usd)
    refused_at: list[float] = []
    proxy = MeteringProxy(
        meter=meter,
        chain=chain,
        api=backend.api,
        redact=redact,
        on_refused=lambda reason: refused_at.append(time.monotonic()),
        max_calls=limits.max_turns,
    )

    def should_stop() -> str | None:
        if heartbeat.cancel.is_set():
            return "canceled"
        if refused_at and time.monotonic() - refused_at[0] > REFUSED_GRACE:
            return "refused"  # it went on after a refusal: stopped, whole
        return None

    scrub(home, redact)  # what an earlier, killed attempt left unscrubbed
    try:
        for name in chain:  # a missing key is one clear ending, not a CLI's API error
            resolve_key(name, config.models[name])
        argv, env = backend.command(session, proxy.start())
        sandboxed = backend.sandboxed(session)
        run.journal.append(
            "cli.start",
            durable=True,
            backend=role.backend,
            argv=redact.redact_obj(argv[:1] + [a[:200] for a in argv[1:]]),
            proxy=proxy.url,
            resume=session.resume_id,
            sandbox=sandboxed,
        )
        exited = run_cli(
            guarded(session, proxy, argv, env, sandboxed),
            cwd=str(session.cwd),
            env=env,
            log=run.dir / "cli.log",
            on_event=lambda event: backend.on_event(session, event),
            should_stop=should_stop,
            on_process=lambda pgid: run.journal.append("tool.process", durable=True, pgid=pgid),
        )
    except AgentctlError as exc:  # no CLI, a refused permission mode: one clear ending
        return Ending("failed", "error", exc.message, failure="permanent")
    except OSError as exc:
        return Ending("failed", "error", f"{role.backend}: {exc}", failure="permanent")
    finally:
        proxy.close()
        scrub(home, redact)
    run.journal.append(
        "cli.exit", durable=True, code=exited.code, stopped=exited.stopped, calls=proxy.calls
    )
    # A cancel signals our whole group, so the CLI may be gone before we stopped it.
    if exited.stopped == "canceled" or heartbeat.cancel.is_set():
        return Ending("canceled", "canceled", "canceled on request")
    if proxy.refused is not None:
        if proxy.refused.startswith("max_turns"):
            return Ending("failed", "max_turns", proxy.refused)
        return Ending("paused", "budget", proxy.refused)
    return backend.ending(session, exited)


def scrub(home: Path, redact: Redactor, *, limit: int = 64 * 1024 * 1024) -> None:
    """Take every known secret out of the CLI's own files (its transcripts, logs).

    The CLI writes them itself, not through agentctl's redactor, and a key it read from
    a file of the worktree would stay there. The model never saw it (the proxy redacts
    each request), so a resumed conversation loses nothing it had.
    """
    for path in home.rglob("*"):
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > limit:
                continue
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        clean = redact(text)
        if clean != text:
            write_text(path, clean, durable=False)


def _resume_id(run: Run, home: Path) -> str | None:
    """The CLI's conversation id from an earlier attempt of this run, if the CLI saved
    that conversation (both keep one ``<id>.jsonl``-named file per session in ``home``);
    else None, and the task starts over (journaled)."""
    ids = [
        e.get("session_id")
        for e in read_journal(run.paths.events).events
        if e.get("type") == "cli.session"
    ]
    if not ids or not ids[-1]:
        return None
    session = str(ids[-1])
    if any(home.rglob(f"*{session}*.jsonl")):
        return session
    run.journal.append("cli.resume_lost", session_id=session, reason="not saved before it ended")
    return None


def cli_env(s: Session, extra: dict[str, str]) -> dict[str, str]:
    """The CLI's environment: the agents' tool allowlist and the role's ``env``, the
    worktree's own code first on PYTHONPATH (as for agentctl's agents), then ``extra``."""
    project = s.config.settings.project
    env = with_pythonpath(tool_env(s.role.env), project.pythonpath, s.cwd)
    env.update(extra)
    return env


def executable(role: Role, default: str) -> str:
    """The CLI program: ``backend_options.executable`` or ``default``, found on PATH."""
    wanted = role.backend_options.executable or default
    found = shutil.which(wanted, path=os.environ.get("PATH"))
    if found is None:
        package = CLI_PACKAGES[role.backend][1]
        raise PreflightError(
            f"{role.backend}: {wanted!r} not found on PATH",
            hint=f"npm install -g {package}, or set [backend_options] executable",
        )
    return os.path.realpath(found)  # what a sandbox must show, not a link in a hidden home
