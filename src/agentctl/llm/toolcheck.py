"""Check a model's tool call against the tools offered: never guess, say what is wrong.

Open models behind vLLM/Ollama send arguments missing a closing brace, arguments
as a JSON string, unknown tool names. Each becomes a ``ToolCall`` with ``error``
set, which the agent loop hands back to the model as a tool error it can correct.
The schema check covers the JSON Schema subset tool definitions use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from agentctl.llm.types import ToolCall, ToolSpec

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_errors(value: Any, schema: Mapping[str, Any], path: str = "") -> list[str]:
    """Mistakes of ``value`` against ``schema`` (type, required, properties, enum, items)."""
    where = path or "arguments"
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        ok = any(
            isinstance(value, _TYPES.get(name, object))
            and not (name in ("integer", "number") and isinstance(value, bool))
            for name in names
        )
        if not ok:
            return [f"{where} must be {' or '.join(names)}, not {_json_type(value)}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where} must be one of {json.dumps(schema['enum'])}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                errors.append(f"{where} is missing the required property {name!r}")
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(item, properties[name], f"{path}.{name}" if path else name)
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where} has an unexpected property {name!r}")
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    return errors


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def check_call(
    call_id: str, name: str, raw_arguments: str | Mapping[str, Any], tools: Sequence[ToolSpec]
) -> ToolCall:
    """A ``ToolCall`` from what the model sent, with ``error`` set when it is not usable."""
    raw = raw_arguments if isinstance(raw_arguments, str) else json.dumps(raw_arguments)
    spec = next((t for t in tools if t.name == name), None)
    if spec is None:
        offered = ", ".join(t.name for t in tools) or "none"
        return ToolCall(
            call_id, name, None, raw, f"unknown tool {name!r}; the tools are: {offered}"
        )
    if isinstance(raw_arguments, Mapping):
        arguments: Any = dict(raw_arguments)
    else:
        text = raw_arguments.strip() or "{}"
        try:
            arguments = json.loads(text)
        except json.JSONDecodeError as exc:
            return ToolCall(
                call_id,
                name,
                None,
                raw,
                f"arguments are not valid JSON ({exc.msg} at char {exc.pos})",
            )
        if isinstance(arguments, str):  # some servers double-encode: refuse, do not unwrap
            return ToolCall(
                call_id, name, None, raw, "arguments must be a JSON object, not a JSON string"
            )
    if not isinstance(arguments, dict):
        return ToolCall(
            call_id,
            name,
            None,
            raw,
            f"arguments must be a JSON object, not {_json_type(arguments)}",
        )
    problems = schema_errors(arguments, spec.parameters)
    if problems:
        return ToolCall(call_id, name, None, raw, "; ".join(problems))
    return ToolCall(call_id, name, arguments, raw)
