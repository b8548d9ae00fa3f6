"""Pipeline templates and ``when`` conditions: parsed and checked, never ``eval``'d.

A template is text with ``{a.b.c}`` references and ``{{``/``}}`` for literal braces.
A condition is ``<ref>``, ``not <ref>``, ``<ref> == <literal>`` or ``<ref> != <literal>``.
Both are checked against the names a pipeline can know (``Names``) at load time,
so a typo fails before anything runs; the engine renders them with real values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from agentctl.config.convert import suggest

_REF = r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*"
_REF_RE = re.compile(rf"^{_REF}$")
_CONDITION = re.compile(
    rf"""^\s*(?P<not>not\s+)?(?P<ref>{_REF})\s*
    (?:(?P<op>==|!=)\s*(?P<lit>'[^']*'|"[^"]*"|-?\d+(?:\.\d+)?|true|false))?\s*$""",
    re.VERBOSE,
)

TICKET_FIELDS = ("id", "key", "title", "description", "url", "state", "labels")
PROJECT_FIELDS = ("test_command", "base_branch")
RUN_FIELDS = ("id", "branch", "worktree")
STEP_FIELDS: Mapping[str, tuple[str, ...]] = {
    "role": ("output", "verdict", "comments", "status", "cost", "model"),
    "run": ("output", "exit_code", "status"),
    "uses": ("output", "status"),
}
ACTION_FIELDS: Mapping[str, tuple[str, ...]] = {
    "git.worktree": ("branch", "path"),
    "git.commit": ("sha",),
    "forge.open_pr": ("pr", "url"),
    "forge.merge": ("sha",),
    "forge.review": ("verdict",),
    "report.write": ("path",),
}


class TemplateSyntaxError(ValueError):
    """A malformed template or condition; the message says what and where."""


@dataclass(frozen=True, slots=True)
class Condition:
    ref: str
    negate: bool = False
    op: str | None = None
    literal: str | int | float | bool | None = None


def references(template: str) -> list[str]:
    """The ``{ref}`` names in ``template``, in order; raises on unbalanced braces."""
    refs: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if template.startswith(("{{", "}}"), i):
            i += 2
            continue
        if ch == "}":
            raise TemplateSyntaxError(
                f"a lone '}}' at character {i + 1}; write '}}}}' for a literal brace"
            )
        if ch == "{":
            end = template.find("}", i)
            if end < 0:
                raise TemplateSyntaxError(
                    f"'{{' at character {i + 1} is never closed; write '{{{{' for a literal brace"
                )
            name = template[i + 1 : end].strip()
            if not _REF_RE.match(name):
                raise TemplateSyntaxError(
                    f"{{{name}}} is not a reference like {{inputs.task}};"
                    " write '{{' and '}}' for literal braces"
                )
            refs.append(name)
            i = end + 1
            continue
        i += 1
    return refs


def parse_condition(text: str) -> Condition:
    match = _CONDITION.match(text)
    if not match:
        raise TemplateSyntaxError(
            f"cannot read the condition {text!r}: write `<ref>`, `not <ref>`,"
            " `<ref> == 'value'` or `<ref> != 'value'`"
        )
    literal: str | int | float | bool | None = None
    raw = match.group("lit")
    if raw is not None:
        if raw[0] in "'\"":
            literal = raw[1:-1]
        elif raw in ("true", "false"):
            literal = raw == "true"
        else:
            literal = float(raw) if "." in raw else int(raw)
    if match.group("not") and match.group("op"):
        raise TemplateSyntaxError(f"{text!r}: use `!=` rather than `not` with a comparison")
    return Condition(match.group("ref"), bool(match.group("not")), match.group("op"), literal)


@dataclass(frozen=True, slots=True)
class Names:
    """What a pipeline's templates may reference."""

    inputs: frozenset[str]
    steps: Mapping[str, tuple[str, ...]]  # step id → its fields

    def check(self, ref: str) -> tuple[str, str | None] | None:
        """None when ``ref`` is known; else (problem, suggestion)."""
        head, _, rest = ref.partition(".")
        if head == "inputs":
            return _check_field("inputs", rest, tuple(sorted(self.inputs)), extra_hint=True)
        if head == "ticket":
            return _check_field("ticket", rest, TICKET_FIELDS)
        if head == "project":
            return _check_field("project", rest, PROJECT_FIELDS)
        if head == "run":
            return _check_field("run", rest, RUN_FIELDS)
        if head == "steps":
            step, _, field = rest.partition(".")
            if step not in self.steps:
                return (f"no step {step!r} in this pipeline", suggest(step, self.steps))
            return _check_field(f"steps.{step}", field, self.steps[step])
        return (
            f"unknown value {{{ref}}}",
            suggest(head, ("inputs", "ticket", "steps", "project", "run"))
            or "references start with inputs., ticket., steps., project. or run.",
        )


def _check_field(
    prefix: str, field: str, known: tuple[str, ...], *, extra_hint: bool = False
) -> tuple[str, str | None] | None:
    if field in known:
        return None
    if not field:
        return (f"{{{prefix}}} needs a field, e.g. {{{prefix}.{known[0] if known else 'x'}}}", None)
    hint = suggest(field, known)
    if extra_hint and hint is None:
        hint = f'declare it under [inputs] ({field} = "default") or pass --set {field}=...'
    return (f"unknown value {{{prefix}.{field}}}", hint)
