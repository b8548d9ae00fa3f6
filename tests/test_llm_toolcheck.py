"""Malformed tool calls become structured errors; a good call parses exactly."""

from __future__ import annotations

import pytest

from agentctl.llm.toolcheck import check_call
from agentctl.llm.types import ToolSpec

READ = ToolSpec(
    "read",
    "read a file",
    {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "limit": {"type": "integer"},
            "mode": {"type": "string", "enum": ["text", "bytes"]},
            "lines": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["path"],
        "additionalProperties": False,
    },
)


def test_a_good_call_parses() -> None:
    call = check_call("c1", "read", '{"path": "a.py", "limit": 5}', [READ])
    assert call.error is None and call.arguments == {"path": "a.py", "limit": 5}
    assert check_call("c2", "read", {"path": "b"}, [READ]).arguments == {"path": "b"}


@pytest.mark.parametrize(
    ("name", "raw", "problem"),
    [
        ("read", '{"path": "a.py"', "arguments are not valid JSON"),
        ("read", '"{\\"path\\": \\"a\\"}"', "must be a JSON object, not a JSON string"),
        ("read", "[1, 2]", "must be a JSON object, not an array"),
        ("reed", '{"path": "a"}', "unknown tool 'reed'; the tools are: read"),
        ("read", "{}", "missing the required property 'path'"),
        ("read", '{"path": 3}', "path must be string, not an integer"),
        ("read", '{"path": "a", "limit": true}', "limit must be integer, not a boolean"),
        ("read", '{"path": "a", "mode": "x"}', 'mode must be one of ["text", "bytes"]'),
        ("read", '{"path": "a", "lines": [1, "2"]}', "lines[1] must be integer, not a string"),
        ("read", '{"path": "a", "extra": 1}', "unexpected property 'extra'"),
    ],
)
def test_malformed_calls_say_what_is_wrong(name: str, raw: str, problem: str) -> None:
    call = check_call("c1", name, raw, [READ])
    assert call.arguments is None and call.raw_arguments == raw
    assert call.error is not None and problem in call.error


def test_empty_arguments_mean_an_empty_object() -> None:
    tool = ToolSpec("git_status", "status", {"type": "object", "properties": {}})
    assert check_call("c", "git_status", "", [tool]).arguments == {}
