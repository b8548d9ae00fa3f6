"""Every GraphQL document agentctl sends validates against the real service's schema.

The documents live in ``trackers/linear/documents.py`` and ``forges/github/documents.py``; a scan of
``src/`` makes sure no document hides anywhere else, unvalidated.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import ModuleType

import pytest

from agentctl.forges.github import documents as github_documents
from agentctl.testing.graphql_server import load_schema
from agentctl.trackers.linear import documents as linear_documents

SRC = Path(__file__).resolve().parents[1] / "src" / "agentctl"
OPERATION = re.compile(r"^\s*(query|mutation|subscription|fragment)\s+\w+", re.MULTILINE)
HOMES = {SRC / "trackers" / "linear" / "documents.py", SRC / "forges" / "github" / "documents.py"}


def operations(module: ModuleType) -> dict[str, str]:
    """The module's executable documents (fragments are validated inside them)."""
    return {
        name: value
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and re.match(r"\s*(query|mutation)", value)
    }


@pytest.mark.parametrize(
    ("module", "schema_name"), [(linear_documents, "linear"), (github_documents, "github")]
)
def test_every_document_validates_against_the_real_schema(
    module: ModuleType, schema_name: str, conformance_dir: Path
) -> None:
    from graphql import parse, validate

    schema = load_schema(str(conformance_dir / "schemas" / f"{schema_name}.graphql"))
    found = operations(module)
    assert len(found) >= 6
    for name, document in found.items():
        errors = validate(schema, parse(document))
        assert not errors, f"{module.__name__}.{name}: {[e.message for e in errors]}"


def test_a_document_with_a_wrong_field_fails_validation(conformance_dir: Path) -> None:
    from graphql import parse, validate

    schema = load_schema(str(conformance_dir / "schemas" / "linear.graphql"))
    wrong = linear_documents.VIEWER.replace("email", "emailAddress")
    assert validate(schema, parse(wrong))  # the check above would catch this


def test_no_graphql_document_lives_outside_the_documents_modules() -> None:
    strays = []
    for path in SRC.rglob("*.py"):
        if path in HOMES or "testing" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and OPERATION.search(node.value)
                and "{" in node.value
            ):
                strays.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert strays == []
