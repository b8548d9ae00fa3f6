"""``agentctl init``: make a git repository an agentctl workspace, idempotently.

Writes ``agentctl.toml`` (with the test command guessed from the repository and
the current branch as the base branch), copies the shipped ``roles/`` and
``pipelines/``, writes a ``HEARTBEAT.md`` whose examples are inactive (so a fresh
workspace's first orchestrator tick is idle), and adds ``.agentctl/`` to
``.gitignore``. An existing file is kept unless ``force``; running it twice changes
nothing the second time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agentctl import atomic
from agentctl.config import tomlsafe
from agentctl.errors import WorkspaceError
from agentctl.orchestrator.heartbeat import HEARTBEAT_TEMPLATE
from agentctl.repo import gitops
from agentctl.repo.gitops import current_branch
from agentctl.workspace import CONFIG_NAME, STATE_NAME, git_root_of, shipped_dir

Action = Literal["created", "kept", "overwritten", "updated"]


@dataclass
class InitReport:
    root: Path
    test_command: str | None
    base_branch: str | None
    files: list[tuple[str, Action]] = field(default_factory=list)
    pythonpath: tuple[str, ...] = ()
    setup_command: str | None = None
    setup_note: str = ""  # why setup_command is what it is (compiled extensions found or not)


def guess_test_command(root: Path) -> str | None:
    """The project's test command, guessed from the files a repository usually has."""
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomlsafe.loads(pyproject.read_text(encoding="utf-8"))
        except (ValueError, OSError):  # TOMLDecodeError, too deep, not UTF-8
            data = {}
        if "pytest" in data.get("tool", {}) or "pytest" in pyproject.read_text(errors="replace"):
            return "python -m pytest -q"
    if (root / "pytest.ini").is_file() or (root / "conftest.py").is_file():
        return "python -m pytest -q"
    if (root / "tox.ini").is_file() and "pytest" in (root / "tox.ini").read_text(errors="replace"):
        return "python -m pytest -q"
    package = root / "package.json"
    if package.is_file():
        try:
            scripts = json.loads(package.read_text(encoding="utf-8")).get("scripts", {})
        except (json.JSONDecodeError, OSError, UnicodeDecodeError, AttributeError):
            scripts = {}
        if isinstance(scripts, dict) and "test" in scripts:
            return "npm test"
    if (root / "Cargo.toml").is_file():
        return "cargo test"
    if (root / "go.mod").is_file():
        return "go test ./..."
    makefile = root / "Makefile"
    if makefile.is_file() and "\ntest:" in "\n" + makefile.read_text(errors="replace"):
        return "make test"
    if any(root.glob("test*/test_*.py")) or any(root.glob("test_*.py")):
        return "python -m unittest discover -v"
    return None


def guess_pythonpath(root: Path) -> tuple[str, ...]:
    """``("src",)`` for a src layout: an editable install would import the main checkout."""
    src = root / "src"
    if src.is_dir() and any(p.is_file() for p in src.glob("*/__init__.py")):
        return ("src",)
    return ()


# Build backends whose packages are compiled: nothing to import until built.
EXTENSION_BACKENDS = {
    "scikit_build_core": "scikit-build-core",
    "mesonpy": "meson-python",
    "maturin": "maturin",
}


def guess_setup_command(root: Path) -> tuple[str | None, str]:
    """The command that builds compiled extensions in place, and what was found.

    ``ext_modules`` in setup.py: ``python setup.py build_ext --inplace``. A compiling
    build backend has no in-place build to guess: it is named, and left to a person.
    """
    setup_py = root / "setup.py"
    if setup_py.is_file() and "ext_modules" in setup_py.read_text(errors="replace"):
        return "python setup.py build_ext --inplace", "setup.py builds C extensions (ext_modules)"
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomlsafe.loads(pyproject.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            data = {}
        system = data.get("build-system", {})
        system = system if isinstance(system, dict) else {}
        backend = str(system.get("build-backend", ""))
        requires = " ".join(str(r) for r in system.get("requires", []) or [])
        for module, name in EXTENSION_BACKENDS.items():
            if backend.startswith(module) or name in requires.replace("_", "-"):
                return None, (
                    f"compiled extensions ({name}): set [project] setup_command to a command "
                    "that builds them inside the worktree"
                )
    return None, ""


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def render_config(
    test_command: str | None,
    base_branch: str | None,
    pythonpath: tuple[str, ...] = (),
    setup_command: str | None = None,
    setup_note: str = "",
) -> str:
    test_line = (
        f"test_command = {_toml_string(test_command)}"
        if test_command
        else '# test_command = "python -m pytest -q"   # could not guess: set the gate command'
    )
    branch_line = (
        f"base_branch = {_toml_string(base_branch)}"
        if base_branch
        else '# base_branch = "main"   # default: the branch checked out'
    )
    path_line = (
        f"pythonpath = {json.dumps(list(pythonpath))}"
        "   # src layout: the worktree's code first, not an editable install's"
        if pythonpath
        else '# pythonpath = ["src"]   # folders put first on PYTHONPATH in worktrees'
    )
    if setup_command:
        setup_line = f"setup_command = {_toml_string(setup_command)}   # {setup_note}"
    else:
        why = setup_note or "builds compiled extensions in each new worktree"
        setup_line = f'# setup_command = "python setup.py build_ext --inplace"   # {why}'
    return f"""\
# agentctl workspace configuration. Reference: `agentctl --help`, README.md.
# Shipped defaults apply to everything not set here; roles/ and pipelines/ beside
# this file override the shipped ones key by key.

[project]
{test_line}
{branch_line}
{path_line}
{setup_line}

# A [models.<name>] table here replaces the shipped model of that name whole.
# Secrets never live here: only the name of the environment variable that holds them.
#
# [models.coder-next]
# provider = "openai"              # anthropic | openai (any OpenAI-compatible server)
# api = "chat"                     # chat | responses
# name = "qwen3-coder-next"
# base_url = "http://localhost:8000/v1"
# max_concurrency = 2
# price = {{ input = 0.0, output = 0.0 }}

[orchestrator]
# pipeline = "coding-pipeline"
# max_parallel = 2
# triage = "model"                 # model | none

[budgets]
# daily_usd = 20.0
# roles = {{ dev = 10.0, review = 3.0 }}

[tracker]
kind = "local"                     # local | linear

[forge]
kind = "local"                     # local | github

# [executor]
# kind = "celery"                  # local | celery: pipelines on worker hosts (README)
"""


def _write_if_absent(report: InitReport, path: Path, content: bytes, force: bool) -> None:
    relative = str(path.relative_to(report.root))
    if path.exists() and not force:
        report.files.append((relative, "kept"))
        return
    existed = path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, content)
    report.files.append((relative, "overwritten" if existed else "created"))


def _ensure_gitignored(report: InitReport) -> None:
    path = report.root / ".gitignore"
    entry = f"{STATE_NAME}/"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = {line.strip() for line in text.splitlines()}
    if {entry, STATE_NAME, f"/{entry}", f"/{STATE_NAME}"} & lines:
        report.files.append((".gitignore", "kept"))
        return
    prefix = "" if not text or text.endswith("\n") else "\n"
    atomic.write_text(path, f"{text}{prefix}{entry}\n")
    report.files.append((".gitignore", "updated" if text else "created"))


def init_workspace(
    directory: Path,
    *,
    force: bool = False,
    test_command: str | None = None,
    base_branch: str | None = None,
) -> InitReport:
    """Make the git repository at or above ``directory`` an agentctl workspace."""
    root = git_root_of(directory.resolve())
    if root is None:
        raise WorkspaceError(
            f"{directory} is not inside a git repository",
            hint="agentctl works on git repositories: run `git init` first",
        )
    report = InitReport(
        root,
        test_command or guess_test_command(root),
        base_branch or current_branch(root),
        pythonpath=guess_pythonpath(root),
    )
    report.setup_command, report.setup_note = guess_setup_command(root)
    config = render_config(
        report.test_command,
        report.base_branch,
        report.pythonpath,
        report.setup_command,
        report.setup_note,
    )
    _write_if_absent(report, root / CONFIG_NAME, config.encode(), force)
    for kind in ("roles", "pipelines"):
        for source in sorted(shipped_dir(kind).glob("*.toml")):
            _write_if_absent(report, root / kind / source.name, source.read_bytes(), force)
    _write_if_absent(report, root / "HEARTBEAT.md", HEARTBEAT_TEMPLATE.encode(), force)
    _ensure_gitignored(report)
    return report


def uncommitted(report: InitReport) -> list[str]:
    """The files ``init`` manages that git does not hold as they are (new or changed).

    Worth saying: a merge into the base branch refuses a checkout with uncommitted
    changes to tracked files (``.gitignore`` after ``init``), after the agents spent.
    """
    paths = [path for path, _ in report.files]
    if not paths:
        return []
    repo = gitops.open_repo(report.root)
    out = gitops.run_git(repo, "status", "--porcelain", "--untracked-files=all", "--", *paths)
    return sorted(line[3:] for line in out.splitlines() if len(line) > 3)


def commit_files(report: InitReport) -> str | None:
    """Commit what ``init`` wrote, and only that (with agentctl's identity if git has none).

    Returns the new commit's SHA, or None when git already held every file as it is.
    Other staged or unstaged changes of the user's are left as they were.
    """
    paths = uncommitted(report)
    if not paths:
        return None
    repo = gitops.open_repo(report.root)
    gitops.run_git(repo, "add", "--", *paths)
    message = "agentctl workspace: config, roles, pipelines\n\nWritten by `agentctl init`."
    gitops.run_git(
        repo, "commit", "--quiet", "-m", message, "--", *paths, env=gitops.identity_env(repo)
    )
    return gitops.head(report.root)


def shown(paths: list[str]) -> str:
    """``roles/dev.toml, roles/review.toml`` said as ``roles/``: one line for a person."""
    tops: list[str] = []
    for path in paths:
        top = path.split("/", 1)[0] + ("/" if "/" in path else "")
        if top not in tops:
            tops.append(top)
    return " ".join(tops)
