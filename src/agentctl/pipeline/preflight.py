"""Checks before the first model call: refuse at $0 what the gate or the merge would refuse.

A pipeline spends on its dev and review agents first and meets its test gate and
merge last. So what makes the end impossible whatever the agents do is looked at
before anything runs: the base branch exists; its checkout has no uncommitted
changes to tracked files (the local forge refuses to fast-forward over them); the
test command's program is on ``PATH``; every role step has a model whose local
endpoint answers (a TCP connect; hosted APIs are never called here). Each problem
is one line with its fix. ``pipeline run`` and the orchestrator's dispatch refuse
on the first; ``doctor`` lists them all.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from agentctl.cost.fallback import is_local
from agentctl.errors import PreflightError
from agentctl.pipeline.lookup import base_branch, find
from agentctl.tools.env import tool_env
from agentctl.tools.programs import missing_programs

if TYPE_CHECKING:
    from agentctl.config import Config
    from agentctl.config.schema import Pipeline

Status = Literal["ok", "warn", "fail"]
CONNECT_TIMEOUT = 1.5  # seconds: a local server answers a connect at once
TEST_SETTING = "[project] test_command in agentctl.toml"
SETUP_SETTING = "[project] setup_command in agentctl.toml"
MERGING = frozenset({"forge.merge"})  # the pipeline merges through the merge queue itself


@dataclass(frozen=True, slots=True)
class Finding:
    """One check: ``fail`` refuses the run; ``warn`` is said and the run goes on."""

    check: str
    status: Status
    detail: str
    hint: str | None = None

    def line(self) -> str:
        return f"{self.detail} — {self.hint}" if self.hint else self.detail


def require(config: Config, pipeline: str, *, merges: bool = False) -> list[Finding]:
    """Refuse (``PreflightError``, one line with the fix) or return the warnings.

    ``merges``: the caller will merge the change even if the pipeline does not (the
    orchestrator merges what its coding pipeline leaves as a reviewed PR).
    """
    findings = run_checks(config, pipeline, merges=merges)
    failed = [f for f in findings if f.status == "fail"]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more: see `agentctl doctor`)" if len(failed) > 1 else ""
        raise PreflightError(f"preflight: {first.detail}{more}", hint=first.hint)
    return [f for f in findings if f.status == "warn"]


def run_checks(
    config: Config, pipeline: str | None = None, *, merges: bool = False
) -> list[Finding]:
    """Every check that applies to ``pipeline`` (``None``: the whole workspace, for doctor)."""
    spec = find(config, pipeline) if pipeline is not None else None
    actions = {s.uses for s in spec.steps} if spec is not None else set(MERGING)
    merges = merges or bool(actions & MERGING)
    findings: list[Finding] = []
    uses_git = spec is None or any(a and a.split(".")[0] in ("git", "forge") for a in actions)
    if spec is None and config.workspace.git_root is None:
        uses_git = False  # doctor says so on its own line
    if uses_git and config.settings.forge.kind == "local":
        findings += _base(config, merges=merges)
    findings += _commands(config, spec, pipeline, merges=merges)
    findings += _endpoints(config, spec)
    return findings


# -- git ---------------------------------------------------------------------------


def _base(config: Config, *, merges: bool) -> list[Finding]:
    root = config.workspace.git_root
    if root is None:
        return [
            Finding(
                "base branch",
                "fail",
                f"{config.workspace.root} is not inside a git repository",
                "run `git init` and commit the project first",
            )
        ]
    base = base_branch(config)
    if _git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{base}^{{commit}}") is None:
        return [
            Finding(
                "base branch",
                "fail",
                f"the base branch {base!r} does not exist in {root}",
                "set [project] base_branch in agentctl.toml to an existing branch "
                "(or make its first commit)",
            )
        ]
    findings = [Finding("base branch", "ok", f"{base} exists")]
    if not merges:
        return findings
    for tree in _checkouts_of(root, base):
        files = _dirty_files(tree)  # the same test the local forge's merge makes
        if not files:
            continue
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        fix = f"commit or stash them (git -C {tree} status), then run again"
        if files and all(_written_by_init(f) for f in files):
            fix = "commit them (`agentctl init --commit` commits agentctl's files), then retry"
        return [
            *findings,
            Finding(
                "base checkout",
                "fail",
                f"{base} is checked out in {tree} with uncommitted changes to tracked "
                f"files ({shown}): a merge into {base} would refuse them",
                fix,
            ),
        ]
    return [*findings, Finding("base checkout", "ok", f"no uncommitted changes on {base}")]


def _written_by_init(path: str) -> bool:
    top = path.split("/", 1)[0]
    return top in ("agentctl.toml", ".gitignore", "HEARTBEAT.md", "roles", "pipelines")


def _checkouts_of(root: Path, branch: str) -> list[Path]:
    """Every worktree (the main checkout too) where ``branch`` is checked out."""
    out = _git(root, "worktree", "list", "--porcelain") or ""
    found: list[Path] = []
    for block in out.strip().split("\n\n"):
        fields = dict(line.partition(" ")[::2] for line in block.splitlines() if line)
        if "worktree" in fields and fields.get("branch") == f"refs/heads/{branch}":
            found.append(Path(fields["worktree"]))
    return found


def _dirty_files(path: Path) -> list[str]:
    """Tracked files with staged or unstaged changes, agentctl's state folder aside."""
    args = ("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude).agentctl")
    out = _git(path, *args) or ""
    return [line[3:] for line in out.splitlines() if len(line) > 3]


def _git(cwd: Path, *args: str) -> str | None:
    """git's output, or None when it fails.

    With the allowlisted environment: a key in the user's shell is not handed to a
    process that has no use for it.
    """
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=tool_env(), capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


# -- commands ----------------------------------------------------------------------


def _commands(
    config: Config, spec: Pipeline | None, name: str | None, *, merges: bool
) -> list[Finding]:
    """The gate's and the setup's programs, for the steps that will run them."""
    project = config.settings.project
    test = (project.test_command or "").strip()
    wanted: list[tuple[str, str]] = []  # (command, the setting or step that names it)
    findings: list[Finding] = []
    if spec is None:
        if test:
            wanted.append((test, TEST_SETTING))
    else:
        where = f"pipelines/{name}.toml"
        for step in spec.steps:
            gate = step.run if step.run is not None else None
            if step.uses == "forge.merge" and isinstance(step.with_.get("gate"), str):
                gate = str(step.with_["gate"])
            if gate is None:
                continue
            command = gate.replace("{project.test_command}", test).strip()
            if "{project.test_command}" in gate:
                wanted.append((command, TEST_SETTING))
            elif "{" not in command:  # another template: only known once it runs
                wanted.append((command, f"step {step.id!r} in {where}"))
        if merges and not any(s.uses == "forge.merge" and s.with_.get("gate") for s in spec.steps):
            wanted.append((test, TEST_SETTING))  # the merge queue runs it again
        if not test and any(setting == TEST_SETTING for _, setting in wanted):
            findings.append(
                Finding(
                    "test command",
                    "fail",
                    f"pipeline {name!r} needs a test command to gate and "
                    "merge, and [project] test_command is not set",
                    f"set {TEST_SETTING}",
                )
            )
    if project.setup_command and (
        spec is None or any(s.uses == "git.worktree" for s in spec.steps)
    ):
        wanted.append((project.setup_command.strip(), SETUP_SETTING))
    seen: set[str] = set()
    for command, setting in wanted:
        if not command or command in seen:
            continue
        seen.add(command)
        label = "setup command" if setting == SETUP_SETTING else "test command"
        missing = missing_programs(command)
        if missing:
            findings.append(
                Finding(
                    label,
                    "fail",
                    f"`{command}` cannot run: {missing[0]!r} is not on PATH",
                    f"install {missing[0]}, or fix {setting}",
                )
            )
        else:
            findings.append(Finding(label, "ok", f"`{command}`: its programs are on PATH"))
    return findings


# -- model endpoints ---------------------------------------------------------------


def _endpoints(config: Config, spec: Pipeline | None) -> list[Finding]:
    """Each role step needs a model that can answer; local endpoints get a TCP connect."""
    if spec is not None:
        needs = [
            (step.role, [step.model] if step.model else list(config.role(step.role).models))
            for step in spec.steps
            if step.role is not None
        ]
    else:
        needs = [(name, list(role.models)) for name, role in sorted(config.roles.items())]
    answers: dict[str, str | None] = {}  # url → why it does not answer (None: it does)
    findings: list[Finding] = []
    reported: set[str] = set()
    for role, models in needs:
        down: list[tuple[str, str, str]] = []
        usable = False
        for name in models:
            url = config.models[name].base_url
            if url is None or not is_local(url):
                usable = True  # a hosted API: never called here
                continue
            if url not in answers:
                answers[url] = _connect(url)
            if answers[url] is None:
                usable = True
            else:
                down.append((name, url, str(answers[url])))
        if not down:
            continue
        name, url, why = down[0]
        if name in reported:
            continue
        reported.add(name)
        if usable:
            findings.append(
                Finding(
                    "model endpoint",
                    "warn",
                    f"model {name}'s endpoint {url} does not answer ({why}): role {role} will "
                    "fall back to its next model",
                    f"start the server at {url}, or fix base_url in [models.{name}]",
                )
            )
        else:
            findings.append(
                Finding(
                    "model endpoint",
                    "fail",
                    f"model {name}'s endpoint {url} does not answer ({why}): role {role} "
                    "cannot run",
                    f"start the server at {url}, or fix base_url in [models.{name}] "
                    f"(or give role {role} another model)",
                )
            )
    for url, problem in answers.items():
        if problem is None:
            findings.append(Finding("model endpoint", "ok", f"{url} answers"))
    return findings


def _connect(url: str, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when a TCP connection to ``url``'s host and port opens, else why not."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or "localhost"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
