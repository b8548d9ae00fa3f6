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
