"""``agentctl doctor``: is this machine and workspace ready to run agents? Says what to fix.

Each check is independent and cheap (no model is called): the config loads, every
API key the configured roles need is set, the Linear and GitHub accounts answer
(their own ``checks`` modules), the pipelines' preflight passes (``preflight``: base branch,
base checkout, test command, local model endpoints), the coding agent CLIs that roles
run as their backend answer ``--version``, git and bubblewrap are there, the state
folder is writable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agentctl import failpoints, keystore
from agentctl.agent.spawner import spawn_check
from agentctl.checks import Check
from agentctl.config import Config
from agentctl.config.agents import CLI_PACKAGES
from agentctl.errors import ConfigError, SecretsFileError, WorkspaceError
from agentctl.executors import executor_checks
from agentctl.forges import forge_checks
from agentctl.pipeline.preflight import run_checks
from agentctl.tools.sandbox import ROOT_HINT, Host
from agentctl.trackers import tracker_checks
from agentctl.workspace import Workspace


@dataclass(frozen=True, slots=True)
class DoctorReport:
    checks: tuple[Check, ...]
    config_error: bool

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)


def _git() -> Check:
    path = shutil.which("git")
    if path is None:
        return Check(
            "git", "fail", "git is not installed", "install git (e.g. apt-get install git)"
        )
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("git", "fail", f"git does not run: {exc}")
    return Check("git", "ok", out.stdout.strip())


def _bubblewrap(host: Host | None = None) -> Check:
    host = host or Host()
    ok, reason = host.bwrap()
    if ok:
        return Check("sandbox", "ok", "bubblewrap works: commands can run without network")
    if host.euid() == 0:
        # A root process reads every process's memory and environment: `auto` will not
        # run model-written commands unsandboxed, so nothing would run.
        return Check(
            "sandbox",
            "fail",
            f"{reason}, and agentctl runs as root: bash and gates with sandbox 'auto' or "
            "'strict' refuse to run commands",
            ROOT_HINT,
        )
    hint = (
        "apt-get install bubblewrap"
        if "not installed" in reason
        else ("unprivileged user namespaces may be off (sysctl kernel.unprivileged_userns_clone)")
    )
    return Check(
        "sandbox", "warn", f"{reason}: roles with sandbox = 'strict' cannot run commands", hint
    )


def _backends(config: Config, host: Host) -> list[Check]:
    """Each coding agent CLI a role runs as its backend: found on PATH, its version.

    None when no role uses one. As root, Claude Code refuses
    ``--dangerously-skip-permissions``, so a role asking for bypassPermissions fails.
    """
    users: dict[tuple[str, str], list[str]] = {}
    bypass: list[str] = []
    for name, role in sorted(config.roles.items()):
        if role.backend not in CLI_PACKAGES:
            continue
        program = role.backend_options.executable or CLI_PACKAGES[role.backend][0]
        users.setdefault((role.backend, program), []).append(name)
        if role.backend == "claude-code" and role.backend_options.permission_mode == (
            "bypassPermissions"
        ):
            bypass.append(name)
    checks = [_cli(backend, program, roles) for (backend, program), roles in users.items()]
    if bypass and host.euid() == 0:
        checks.append(
            Check(
                "claude-code",
                "fail",
                f"permission_mode bypassPermissions (roles: {', '.join(bypass)}) is refused "
                "as root: Claude Code will not skip permissions for root",
                "use acceptEdits (the default) or dontAsk with the role's tools, or run "
                "agentctl as another user",
            )
        )
    return checks


def _cli(backend: str, program: str, roles: list[str]) -> Check:
    """One CLI backend's program: where it is and what ``--version`` says (5 s at most)."""
    who = f"(roles: {', '.join(roles)})"
    path = shutil.which(program)
    if path is None:
        missing = "is not an executable file" if os.sep in program else "not found on PATH"
        return Check(
            backend,
            "fail",
            f"{program!r} {missing} {who}",
            f"npm install -g {CLI_PACKAGES[backend][1]}, or set [backend_options] executable",
        )
    try:
        out = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(backend, "fail", f"{path} does not run {who}: {exc}")
    said = (out.stdout.strip() or out.stderr.strip()).splitlines()
    first = said[0].strip() if said else "no output"
    if out.returncode != 0:
        return Check(
            backend, "fail", f"{path} --version exited {out.returncode}: {first[:200]} {who}"
        )
    return Check(backend, "ok", f"{first[:200]} at {path} {who}")


def _state_dir(workspace: Workspace) -> Check:
    directory = workspace.state_dir
    probe = directory if directory.exists() else directory.parent
    if os.access(probe, os.W_OK):
        return Check("state", "ok", f"{directory} is writable")
    return Check("state", "fail", f"{directory} is not writable", "fix its permissions")


def _secrets(config: Config) -> Check:
    """Load the configured keys into the key store; a bad ``[secrets] file`` fails here."""
    try:
        keystore.load_configured(config)
    except SecretsFileError as exc:
        return Check("secrets", "fail", exc.message, exc.hint)
    path = keystore.secrets_file(config)
    where = f"the environment and {path}" if path else "the environment"
    return Check("secrets", "ok", f"keys come from {where}; no child sees them in its environment")


def _keys(needed: Mapping[str, list[str]], environ: Mapping[str, str] | None) -> list[Check]:
    lookup = keystore.get if environ is None else environ.get
    checks = []
    for env, users in sorted(needed.items()):
        who = ", ".join(users)
        if lookup(env):
            checks.append(Check(f"key {env}", "ok", f"set (used by {who})"))
        else:
            checks.append(
                Check(
                    f"key {env}",
                    "warn",
                    f"not set; needed by {who}",
                    f"export {env}=... (or put it in the [secrets] file) "
                    "or map those roles to another model",
                )
            )
    return checks


def _preflight(config: Config) -> list[Check]:
    """What ``pipeline run`` and the orchestrator check before spending (``preflight``).

    A state that a person changes in passing (uncommitted changes, a local model server
    not started yet) is a warning here; a branch or program that is not there fails.
    """
    checks = []
    for found in run_checks(config):
        status = found.status
        if status == "fail" and found.check in ("base checkout", "model endpoint"):
            status = "warn"
        checks.append(Check(f"preflight {found.check}", status, found.detail, found.hint))
    return checks


def run_doctor(
    workspace_loader: Callable[[], Workspace],
    config_loader: Callable[[], Config],
    environ: Mapping[str, str] | None = None,
    host: Host | None = None,
) -> DoctorReport:
    """Run every check; a broken config is one failed check, not an exception.

    ``environ`` stands in for the key store when given; ``host`` says whether
    bubblewrap works and who we run as (real by default).
    """
    host = host or Host()
    checks = [Check("python", "ok", sys.version.split()[0])]
    try:
        workspace = workspace_loader()
    except WorkspaceError as exc:
        return DoctorReport((*checks, Check("workspace", "fail", str(exc))), config_error=True)
    where = str(workspace.config_file) if workspace.config_file else "none (shipped defaults)"
    checks.append(Check("workspace", "ok", f"{workspace.root} (config: {where})"))
    if workspace.git_root is None:
        checks.append(Check("repository", "warn", "not inside a git repository", "run `git init`"))
    config_error = False
    try:
        config = config_loader()
    except ConfigError as exc:
        config_error = True
        checks.extend(Check("config", "fail", str(e)) for e in exc.all)
    else:
        checks.append(Check("config", "ok", f"{len(config.files)} files, all valid"))
        if environ is None:
            checks.append(_secrets(config))
        checks.extend(_keys(needed_keys(config), environ))
        checks.extend(tracker_checks(config, environ))
        checks.extend(forge_checks(config, environ))
        checks.extend(_preflight(config))
        checks.append(spawn_check(config))
        checks.extend(executor_checks(config))
        checks.extend(_backends(config, host))
        if not config.settings.project.test_command:
            checks.append(
                Check(
                    "test command",
                    "warn",
                    "[project] test_command is not set: pipelines have no test gate",
                    "set it in agentctl.toml",
                )
            )
    checks.append(_git())
    checks.append(_bubblewrap(host))
    checks.append(_state_dir(workspace))
    armed = failpoints.armed()
    if armed:
        checks.append(
            Check(
                "failpoints",
                "warn",
                f"{failpoints.ENV} arms {', '.join(sorted(armed))}",
                f"unset {failpoints.ENV} unless you are testing crashes",
            )
        )
    return DoctorReport(tuple(checks), config_error)


def needed_keys(config: Config) -> dict[str, list[str]]:
    """Environment variable → the roles (via their models) that need it."""
    needed: dict[str, list[str]] = {}
    for role_name, role in config.roles.items():
        for model_name in role.models:
            env = config.models[model_name].key_env
            if env is not None:
                label = f"{role_name} ({model_name})"
                if label not in needed.setdefault(env, []):
                    needed[env].append(label)
    return needed
