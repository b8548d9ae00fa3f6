"""Gates and agents' bash test the worktree's code, on real projects with real venvs.

A src-layout package installed editable in a venv outside the workspace: its venv
points at the MAIN checkout, so without ``[project] pythonpath`` a worktree's
``python -m pytest`` imports main's (buggy) copy. A package with a C extension
needs it built inside the worktree: ``[project] setup_command``. Both are guessed by
``agentctl init``; scripted models, real processes, real git, real bubblewrap.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.runs import RunStore
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.tools import sandbox
from agentctl.tools.sandbox import bwrap_available
from tests.conftest import Invoke, git, make_repo

needs_bwrap = pytest.mark.skipif(
    not bwrap_available(), reason=f"bubblewrap cannot run here: {sandbox.bwrap_status()[1]}"
)
needs_cc = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None,
    reason="no C compiler on this machine: the extension cannot be built",
)

PYPROJECT = '[tool.pytest.ini_options]\ntestpaths = ["tests"]\naddopts = "-p no:cacheprovider"\n'
IGNORE = "*.egg-info/\nbuild/\n__pycache__/\n*.so\n"
SRC_SETUP = textwrap.dedent(
    """\
    from setuptools import find_packages, setup

    setup(name="calc", version="0.1", package_dir={"": "src"}, packages=find_packages("src"))
    """
)
CALC_BUG = "def add(a, b):\n    return a - b\n"
CALC_TEST = textwrap.dedent(
    """\
    import calc


    def test_add():
        print("calc from", calc.__file__)
        assert calc.add(2, 3) == 5
    """
)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    with LLMServer(api_key="sk-model") as running:
        monkeypatch.setenv("TEST_KEY", "sk-model")
        yield running


def project_venv(where: Path) -> Path:
    """A real venv (pip and setuptools from ensurepip, offline) with pytest copied in."""
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / version / "site-packages"
    for name in ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or (site / name).exists():
            continue
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, site / origin.parent.name)
        else:
            shutil.copy(origin, site / origin.name)
    return venv


def install_editable(venv: Path, checkout: Path) -> None:
    """An editable install of ``checkout`` into ``venv``, offline.

    ``pip install --no-build-isolation --no-index -e .`` needs the ``wheel`` package
    for setuptools' PEP 660 build, which an offline venv lacks; ``setup.py develop``
    is the same install (the venv's path entry names the checkout's ``src``).
    """
    done = subprocess.run(
        [str(venv / "bin" / "python"), "setup.py", "develop"],
        cwd=checkout,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def use_venv(monkeypatch: pytest.MonkeyPatch, venv: Path) -> None:
    """As an activated venv: its ``python`` first on PATH (agentctl itself runs as it is)."""
    monkeypatch.setenv("PATH", f"{venv / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))


def scripted_roles(repo: Path, server: LLMServer) -> None:
    """The dev and review roles on the scripted models; the rest as `init` wrote it."""
    config = repo / "agentctl.toml"
    config.write_text(
        config.read_text()
        + f'\n[models.coder]\nprovider = "openai"\nname = "coder"\nbase_url = "{server.openai_url}"'
        '\napi_key_env = "TEST_KEY"\nmax_retries = 0\nprice = { input = 1.0, output = 2.0 }\n'
        f'\n[models.reviewer]\nprovider = "openai"\nname = "reviewer"\n'
        f'base_url = "{server.openai_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
        "price = { input = 1.0, output = 2.0 }\n"
    )
    for role, model in (("dev", "coder"), ("review", "reviewer")):
        path = repo / "roles" / f"{role}.toml"
        lines = path.read_text().splitlines(keepends=True)
        for i, line in enumerate(lines):
            if line.startswith("model = "):
                lines[i] = f'model = "{model}"\n'
            elif line.startswith("fallback = "):
                lines[i] = "fallback = []\n"
        path.write_text("".join(lines))


def init(cli: Invoke, repo: Path) -> str:
    """`agentctl init` as a new user runs it; its report."""
    result = cli("init", cwd=repo)
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def tool_results(server: LLMServer, model: str) -> list[str]:
    """What each tool call of ``model`` answered, in order."""
    out = []
    for request in server.requests:
        if request.body.get("model") != model:
            continue
        last = request.body["messages"][-1]
        if last.get("role") == "tool":
            out.append(str(last["content"]))
    return out


def step_outputs(repo: Path, step: str) -> list[dict[str, object]]:
    store = RunStore(repo / ".agentctl")
    runs = [store.get(listing.id) for listing in store.list(kind="step")]
    found = [run for run in runs if run.read_input().get("step") == step]
    return [run.read_output() or {} for run in sorted(found, key=lambda r: r.id)]


# -- a src layout, installed editable ---------------------------------------------------------


@pytest.fixture
def src_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A src-layout package with a bug, installed editable in a venv outside the workspace."""
    repo = make_repo(tmp_path / "calc")
    (repo / "src" / "calc").mkdir(parents=True)
    (repo / "src" / "calc" / "__init__.py").write_text(CALC_BUG)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_calc.py").write_text(CALC_TEST)
    (repo / "setup.py").write_text(SRC_SETUP)
    (repo / "pyproject.toml").write_text(PYPROJECT)
    (repo / ".gitignore").write_text(IGNORE)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "calc (add() has a bug)")
    venv = project_venv(tmp_path / "outside")
    install_editable(venv, repo)
    use_venv(monkeypatch, venv)
    return repo, venv


RUN_TESTS = {"command": "python -m pytest -q 2>&1 | tail -4"}


@needs_bwrap
def test_feature_pipeline_on_an_editable_src_layout_tests_and_merges_the_worktrees_fix(
    src_project: tuple[Path, Path], cli: Invoke, server: LLMServer
) -> None:
    repo, venv = src_project
    report = init(cli, repo)
    assert "pythonpath: src" in report
    config = (repo / "agentctl.toml").read_text()
    assert 'pythonpath = ["src"]' in config
    assert 'test_command = "python -m pytest -q"' in config
    scripted_roles(repo, server)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "agentctl init")  # as init's report says to
    server.script(
        "coder",
        Turn.tool_call("bash", RUN_TESTS),  # red, as the gate would be
        Turn.tool_call("edit", {"path": "src/calc/__init__.py", "old": "a - b", "new": "a + b"}),
        Turn.tool_call("bash", RUN_TESTS),  # green, as the gate will be
        Turn.text("Fixed add()."),
    )
    server.script(
        "reviewer",
        Turn.tool_call("git_diff", {}),
        Turn.tool_call("finish", {"verdict": "approve", "summary": "Good.", "comments": []}),
    )
    result = cli("pipeline", "run", "feature", "--task", "Fix add()", cwd=repo)
    assert result.exit_code == 0, result.stdout + result.stderr
    server.assert_complete()

    # The dev's sandboxed bash ran the venv's pytest on the worktree's code: red, then green.
    before, after = tool_results(server, "coder")[:2], tool_results(server, "coder")[2]
    assert before[0].startswith("exit code 0\n")  # `| tail` exits 0: the verdict is pytest's
    assert "1 failed" in before[0] and "1 passed" not in before[0], before[0]
    assert "1 passed" in after and "failed" not in after, after
    # The gate, on the same worktree while main still had the bug, said the same.
    (gate,) = step_outputs(repo, "test")
    assert gate["exit_code"] == 0 and gate["sandboxed"] is True, gate
    assert "1 passed" in str(gate["output"])
    # The reviewer's git_diff showed it the committed change itself.
    (diff,) = tool_results(server, "reviewer")
    assert "src/calc/__init__.py" in diff and "+    return a + b" in diff, diff
    # Merged: main holds the fix, and the venv (pointing at main) now passes too.
    assert "a + b" in (repo / "src" / "calc" / "__init__.py").read_text()
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q"], cwd=repo, capture_output=True
    )
    assert done.returncode == 0, done.stdout


@needs_bwrap
def test_the_gate_and_the_devs_bash_import_the_worktrees_package_not_mains(
    src_project: tuple[Path, Path], cli: Invoke, server: LLMServer
) -> None:
    """Without the fix anywhere but the worktree, both see the worktree's copy."""
    repo, _ = src_project
    init(cli, repo)
    scripted_roles(repo, server)
    (repo / "pipelines" / "where.toml").write_text(
        'description = "worktree, dev, gate"\n\n[[steps]]\nid = "worktree"\nuses = "git.worktree"'
        '\n\n[[steps]]\nid = "implement"\nrole = "dev"\nprompt = "{inputs.task}"\n\n[[steps]]\n'
        'id = "test"\nrun = "python -c \'import calc; print(calc.__file__)\'"\n'
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "agentctl init")
    where = {"command": "python -c 'import calc; print(calc.__file__)'; echo PP=$PYTHONPATH"}
    server.script("coder", Turn.tool_call("bash", where), Turn.text("looked"))
    result = cli("pipeline", "run", "where", "--task", "look", cwd=repo)
    assert result.exit_code == 0, result.stdout + result.stderr
    worktree = repo / ".agentctl" / "worktrees"
    (seen,) = tool_results(server, "coder")
    assert f"{worktree}" in seen and "/src/calc/__init__.py" in seen, seen
    assert f"{repo}/src/calc/__init__.py" not in seen
    assert f"PP={worktree}/" in seen  # the worktree's src, absolute, first
    (gate,) = step_outputs(repo, "test")
    assert str(gate["output"]).strip().startswith(f"{worktree}"), gate


# -- a C extension ----------------------------------------------------------------------------

C_SETUP = textwrap.dedent(
    """\
    from setuptools import Extension, find_packages, setup

    setup(
        name="cext",
        version="0.1",
        package_dir={"": "src"},
        packages=find_packages("src"),
        ext_modules=[Extension("cext._fast", ["src/cext/_fast.c"])],
    )
    """
)
C_SOURCE = textwrap.dedent(
    """\
    #define PY_SSIZE_T_CLEAN
    #include <Python.h>

    static PyObject *add(PyObject *self, PyObject *args) {
        long a, b;
        if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
        return PyLong_FromLong(a - b);
    }

    static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "a + b"}, {NULL, NULL, 0, NULL}};
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fast", NULL, -1, methods};
    PyMODINIT_FUNC PyInit__fast(void) { return PyModule_Create(&module); }
    """
)
C_TEST = "from cext import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
GATE_PIPELINE = (
    'description = "a branch\'s worktree, then the gate"\n\n[inputs]\nbranch = ""\n\n'
    '[[steps]]\nid = "worktree"\nuses = "git.worktree"\nwith = { branch = "{inputs.branch}" }\n\n'
    '[[steps]]\nid = "test"\nrun = "{project.test_command}"\n'
)


@needs_bwrap
@needs_cc
def test_init_guesses_the_extension_build_and_the_gate_tests_the_worktrees_build(
    tmp_path: Path, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "cext")
    package = repo / "src" / "cext"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from cext._fast import add\n")
    (package / "_fast.c").write_text(C_SOURCE)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_cext.py").write_text(C_TEST)
    (repo / "setup.py").write_text(C_SETUP)
    (repo / "pyproject.toml").write_text(PYPROJECT)
    (repo / ".gitignore").write_text(IGNORE)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "cext (add() has a bug in C)")
    venv = project_venv(tmp_path / "outside")
    install_editable(venv, repo)  # builds main's (buggy) extension in place
    use_venv(monkeypatch, venv)

    report = init(cli, repo)
    assert "setup command: python setup.py build_ext --inplace" in report
    config = (repo / "agentctl.toml").read_text()
    assert 'setup_command = "python setup.py build_ext --inplace"' in config
    (repo / "pipelines" / "gate.toml").write_text(GATE_PIPELINE)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "agentctl init")
    git(repo, "branch", "nofix")
    git(repo, "checkout", "-q", "-b", "fix")
    (package / "_fast.c").write_text(C_SOURCE.replace("a - b", "a + b"))
    git(repo, "commit", "-q", "-am", "fix add() in C")
    git(repo, "checkout", "-q", "main")

    fixed = cli("pipeline", "run", "gate", "--set", "branch=fix", cwd=repo)
    assert fixed.exit_code == 0, fixed.stdout + fixed.stderr
    (gate,) = step_outputs(repo, "test")
    assert gate["exit_code"] == 0 and "1 passed" in str(gate["output"]), gate
    built = list((repo / ".agentctl" / "worktrees").rglob("_fast*.so"))
    assert built, "the extension was built in the worktree"
    assert "a - b" in (package / "_fast.c").read_text()  # main still has the bug

    unfixed = cli("pipeline", "run", "gate", "--set", "branch=nofix", cwd=repo)
    assert unfixed.exit_code != 0
    gates = step_outputs(repo, "test")
    assert len(gates) == 2 and gates[1]["exit_code"] != 0, gates
    assert "1 failed" in str(gates[1]["output"])
    assert "assert -1 == 5" in str(gates[1]["output"])


def set_project(repo: Path, **keys: str) -> None:
    config = repo / "agentctl.toml"
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    kept = [line for line in config.read_text().splitlines(True) if line.split(" =")[0] not in keys]
    config.write_text("".join(kept).replace("[project]\n", f"[project]\n{lines}", 1))


@needs_bwrap
def test_the_setup_command_runs_once_per_worktree_and_head_and_a_failure_stops_clearly(
    repo: Path, cli: Invoke
) -> None:
    init(cli, repo)
    set_project(repo, setup_command="echo ran >> setup.log", test_command="cat setup.log")
    (repo / "pipelines" / "gate.toml").write_text(GATE_PIPELINE)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "agentctl init")
    result = cli("pipeline", "run", "gate", cwd=repo)
    assert result.exit_code == 0, result.stdout + result.stderr
    (gate,) = step_outputs(repo, "test")
    assert str(gate["output"]) == "ran\n"  # before the gate, and not again at the same head

    set_project(repo, setup_command="echo no-compiler-here >&2; exit 3")
    git(repo, "commit", "-q", "-am", "a setup that cannot work here")
    result = cli("pipeline", "run", "gate", cwd=repo)
    assert result.exit_code != 0
    said = result.stdout + result.stderr
    assert "the setup command `echo no-compiler-here >&2; exit 3` exited 3" in said, said
    assert "no-compiler-here" in said
    assert len(step_outputs(repo, "test")) == 1  # the gate never ran


def test_init_leaves_setup_command_commented_without_extensions_and_names_a_compiling_backend(
    tmp_path: Path, cli: Invoke
) -> None:
    plain = make_repo(tmp_path / "plain")
    (plain / "pkg").mkdir()
    (plain / "pkg" / "__init__.py").write_text("")
    report = init(cli, plain)
    config = (plain / "agentctl.toml").read_text()
    assert "\n# setup_command = " in config and "\n# pythonpath = " in config
    assert "setup command" not in report and "pythonpath" not in report
    rust = make_repo(tmp_path / "rust")
    (rust / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["maturin>=1.0"]\nbuild-backend = "maturin"\n'
    )
    report = init(cli, rust)
    assert "compiled extensions (maturin)" in report
    assert "\n# setup_command = " in (rust / "agentctl.toml").read_text()
    as_json = json.loads(cli("init", "--json", cwd=rust).stdout)
    assert as_json["setup_command"] is None and as_json["pythonpath"] == []


# -- the merge queue ----------------------------------------------------------------------------


@needs_bwrap
def test_the_merge_queue_runs_the_setup_command_on_the_head_it_gates(repo: Path) -> None:
    from agentctl.forges import Review
    from agentctl.forges.local import LocalForge
    from agentctl.pipeline.mergequeue import merge_pr
    from agentctl.repo import gitops
    from agentctl.tools.gate import GateSandbox

    state = repo / ".agentctl"
    (repo / ".gitignore").write_text(".agentctl/\n*.flag\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ignore")
    forge = LocalForge(repo, state)

    def approved(branch: str) -> int:
        tree = gitops.ensure_worktree(repo, state, branch, "main")
        (tree / f"{branch}.txt").write_text("work\n")
        assert gitops.commit_all(tree, f"{branch}: work") is not None
        pr = forge.open_pr(branch=branch, base="main", title=branch, body="")
        return forge.add_review(pr.number, Review("approve", "fine")).number

    def merge(number: int, setup: str) -> tuple[str, str, str]:
        policy = GateSandbox(state_dir=state, workspace=repo, setup_command=setup)
        outcome = merge_pr(
            forge, number, repo_root=repo, state_dir=state, gate="cat built.flag", sandbox=policy
        )
        return outcome.status, outcome.detail, outcome.gate_output

    first = approved("one")
    (repo / "main.txt").write_text("moved\n")  # the queue gates a new head: main merged in
    git(repo, "add", "main.txt")
    git(repo, "commit", "-q", "-m", "main moves")
    status, detail, output = merge(first, "echo built >> built.flag")
    assert status == "merged", detail + output
    assert output == "built\n"  # the setup ran once, in the tree, before the gate

    main = git(repo, "rev-parse", "main")
    status, detail, output = merge(approved("two"), "echo no-toolchain; exit 4")
    assert status == "gate_failed"
    assert detail == "the setup command `echo no-toolchain; exit 4` exited 4"
    assert "no-toolchain" in output
    assert git(repo, "rev-parse", "main") == main
