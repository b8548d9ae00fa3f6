"""The import-linter contracts in pyproject.toml bite: one upward import breaks them.

`lint-imports` runs on a copy of the package (so the test never edits the product),
found through PYTHONPATH, with a copy of pyproject.toml as its config.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.exists(), reason="import-linter is not installed (the dev extra has it)"
)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The package and the config, copied into tmp_path."""
    shutil.copytree(
        REPO / "src" / "agentctl",
        tmp_path / "src" / "agentctl",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint(copy: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(copy / "pyproject.toml"), "--no-cache"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def add_import(module: Path, line: str) -> None:
    """Put ``line`` right after ``from __future__ import annotations``."""
    text = module.read_text("utf-8")
    future = "from __future__ import annotations\n"
    assert future in text
    module.write_text(text.replace(future, future + line + "\n", 1), "utf-8")


def test_the_package_as_it_is_keeps_every_contract(copy: Path) -> None:
    result = lint(copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_core_importing_the_cli_breaks_the_layers(copy: Path) -> None:
    add_import(copy / "src/agentctl/runs/store.py", "import agentctl.cli")
    result = lint(copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "agentctl.runs is not allowed to import agentctl.cli" in result.stdout
    assert "agentctl.runs.store -> agentctl.cli" in result.stdout


def test_an_import_inside_a_function_counts(copy: Path) -> None:
    module = copy / "src/agentctl/pipeline/render.py"
    module.write_text(
        module.read_text("utf-8")
        + "\n\ndef _upward() -> None:\n    from agentctl.orchestrator import tick  # noqa\n",
        "utf-8",
    )
    result = lint(copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "agentctl.pipeline.render -> agentctl.orchestrator.tick" in result.stdout


def test_the_product_importing_testing_breaks_its_contract(copy: Path) -> None:
    add_import(copy / "src/agentctl/orchestrator/home.py", "import agentctl.testing.soak")
    result = lint(copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "agentctl.orchestrator.home -> agentctl.testing.soak" in result.stdout


SRC = Path(__file__).resolve().parents[1] / "src" / "agentctl"


def _hidden_imports(root: Path) -> list[str]:
    """agentctl imports inside functions outside cli/ and the registries, with no reason.

    Such an import hides who depends on whom; one is allowed where it keeps an SDK,
    GitPython or gql out of start-up or the idle tick, said by a ``# lazy:`` comment
    on the line before its group of imports.
    """
    import ast

    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("cli/", "testing/")) or rel in ("registry.py", "llm/__init__.py"):
            continue
        lines = path.read_text("utf-8").splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                    "agentctl"
                ):
                    continue
                at = node.lineno - 2  # look up through the group for its reason
                while at >= 0 and lines[at].strip().startswith("from agentctl"):
                    at -= 1
                here = lines[node.lineno - 1]
                if "# lazy" not in here and (at < 0 or "# lazy" not in lines[at]):
                    found.append(f"{rel}:{node.lineno} {node.module}")
    return found


def test_imports_inside_functions_say_why() -> None:
    assert _hidden_imports(SRC) == []


def test_an_unexplained_import_inside_a_function_is_found(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(
        "def f() -> None:\n    from agentctl.runs import RunStore\n\n"
        "def g() -> None:\n    # lazy: GitPython\n    from agentctl.repo import gitops\n"
    )
    assert _hidden_imports(tmp_path) == ["mod.py:2 agentctl.runs"]
