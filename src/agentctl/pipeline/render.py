"""Fill templates and decide ``when`` conditions from a pipeline's values — no ``eval``.

The names were checked when the config loaded (``config/templates.py``); here a
reference that has no value yet (a step that has not run) renders as an empty
string, so a first attempt's prompt can mention a later step's comments safely.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentctl.config.templates import parse_condition, references


def lookup(values: Mapping[str, Any], ref: str) -> Any:
    current: Any = values
    for part in ref.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(template: str, values: Mapping[str, Any]) -> str:
    """``{a.b}`` → its value; ``{{``/``}}`` → literal braces."""
    references(template)  # raises on malformed text (already checked at load)
    out: list[str] = []
    i = 0
    while i < len(template):
        if template.startswith(("{{", "}}"), i):
            out.append(template[i])
            i += 2
            continue
        if template[i] == "{":
            end = template.index("}", i)
            out.append(_text(lookup(values, template[i + 1 : end].strip())))
            i = end + 1
            continue
        out.append(template[i])
        i += 1
    return "".join(out)


def holds(condition: str, values: Mapping[str, Any]) -> bool:
    """Whether a ``when`` condition is true for ``values``."""
    parsed = parse_condition(condition)
    value = lookup(values, parsed.ref)
    if parsed.op is None:
        result = bool(value) and value not in ("false", "0")
    elif isinstance(parsed.literal, str):
        result = _text(value) == parsed.literal
        result = result if parsed.op == "==" else not result
    else:
        result = value == parsed.literal
        result = result if parsed.op == "==" else not result
    return not result if parsed.negate else result
