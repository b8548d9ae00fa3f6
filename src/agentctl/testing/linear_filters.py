"""Filters and pagination for the fake Linear: IssueFilter and friends, Relay connections.

Linear's filter objects (``and``/``or``, comparators such as ``eq``, ``in``,
``containsIgnoreCase``) are evaluated here over the workspace's dataclasses; fields the
fake does not understand match everything and are reported through ``note``, so a test
checking ``failures`` sees them. Connections paginate by sort key, as Linear's do.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from agentctl.testing.linear_model import Issue, invalid, iso

# -- filters ----------------------------------------------------------------------

Note = Callable[[str], None]
Test = Callable[[Any, Any, Note], bool]


def _compare(value: Any, cond: Any, note: Note, where: str) -> bool:
    """One comparator (StringComparator, IDComparator, NumberComparator, ...) on one value."""
    if not isinstance(cond, dict):
        note(f"{where}: comparator is not an object")
        return True
    for op, arg in cond.items():
        if arg is None:
            continue
        if op == "null":
            ok = (value is None) == bool(arg)
        elif value is None:
            ok = False
        else:
            ok = _apply(op, value, arg, note, where)
        if not ok:
            return False
    return True


def _apply(op: str, value: Any, arg: Any, note: Note, where: str) -> bool:
    text = str(value).lower() if isinstance(value, str) else value
    low = arg.lower() if isinstance(arg, str) else arg
    if isinstance(value, bool):
        checks: dict[str, Callable[[], bool]] = {
            "eq": lambda: value == arg,
            "neq": lambda: value != arg,
        }
    elif isinstance(value, int | float):
        checks = {
            "eq": lambda: value == arg,
            "neq": lambda: value != arg,
            "in": lambda: value in arg,
            "nin": lambda: value not in arg,
            "gt": lambda: value > arg,
            "gte": lambda: value >= arg,
            "lt": lambda: value < arg,
            "lte": lambda: value <= arg,
        }
    else:
        checks = {
            "eq": lambda: value == arg,
            "neq": lambda: value != arg,
            "in": lambda: value in arg,
            "nin": lambda: value not in arg,
            "eqIgnoreCase": lambda: text == low,
            "neqIgnoreCase": lambda: text != low,
            "contains": lambda: arg in value,
            "notContains": lambda: arg not in value,
            "containsIgnoreCase": lambda: low in text,
            "containsIgnoreCaseAndAccent": lambda: low in text,
            "notContainsIgnoreCase": lambda: low not in text,
            "startsWith": lambda: value.startswith(arg),
            "startsWithIgnoreCase": lambda: text.startswith(low),
            "notStartsWith": lambda: not value.startswith(arg),
            "endsWith": lambda: value.endswith(arg),
            "notEndsWith": lambda: not value.endswith(arg),
            "gt": lambda: value > arg,
            "gte": lambda: value >= arg,
            "lt": lambda: value < arg,
            "lte": lambda: value <= arg,
        }
    check = checks.get(op)
    if check is None:
        note(f"{where}.{op}: comparator not supported by the fake")
        return True
    return check()


def _field(attr: str) -> Test:
    return lambda obj, cond, note: _compare(getattr(obj, attr), cond, note, attr)


def _date(attr: str) -> Test:
    """Date comparators with ISO timestamps (durations such as ``-P2W`` are not modelled)."""

    def test(obj: Any, cond: Any, note: Note) -> bool:
        fixed: dict[str, Any] = {}
        for op, arg in (cond or {}).items():
            if isinstance(arg, str) and arg.lstrip("-").startswith("P"):
                note(f"{attr}.{op}: durations not supported by the fake")
                continue
            if isinstance(arg, str):
                fixed[op] = iso(datetime.fromisoformat(arg.replace("Z", "+00:00")))
            elif isinstance(arg, list):
                fixed[op] = [iso(datetime.fromisoformat(a.replace("Z", "+00:00"))) for a in arg]
            else:
                fixed[op] = arg
        return _compare(getattr(obj, attr), fixed, note, attr)

    return test


def match(obj: Any, flt: Any, tests: dict[str, Test], note: Note, kind: str) -> bool:
    """Apply one filter object: every field must hold; ``and``/``or`` recurse; ``null`` tests
    absence (for the nullable filters)."""
    if not flt:
        return True
    if obj is None:
        return flt.get("null") is True
    for key, cond in flt.items():
        if cond is None:
            continue
        if key == "and":
            ok = all(match(obj, sub, tests, note, kind) for sub in cond)
        elif key == "or":
            ok = any(match(obj, sub, tests, note, kind) for sub in cond)
        elif key == "null":
            ok = not cond
        elif key in tests:
            ok = tests[key](obj, cond, note)
        else:
            note(f"{kind}.{key}: filter field not supported by the fake")
            ok = True
        if not ok:
            return False
    return True


def _sub(attr: str, tests: dict[str, Test], kind: str) -> Test:
    return lambda obj, cond, note: match(getattr(obj, attr), cond, tests, note, kind)


TEAM_TESTS: dict[str, Test] = {
    name: _field(name) for name in ("id", "key", "name", "description")
} | {"createdAt": _date("createdAt")}
STATE_TESTS: dict[str, Test] = {
    name: _field(name) for name in ("id", "name", "type", "position", "description")
} | {"team": _sub("team", TEAM_TESTS, "TeamFilter"), "createdAt": _date("createdAt")}
LABEL_TESTS: dict[str, Test] = {name: _field(name) for name in ("id", "name")} | {
    "team": _sub("team", TEAM_TESTS, "NullableTeamFilter")
}
PROJECT_TESTS: dict[str, Test] = {name: _field(name) for name in ("id", "name")}
USER_TESTS: dict[str, Test] = {
    name: _field(name) for name in ("id", "name", "email", "displayName")
} | {"isMe": lambda user, cond, note: _compare(True, cond, note, "isMe")}


def _labels(issue: Issue, flt: Any, note: Note) -> bool:
    """IssueLabelCollectionFilter: ``some``/``every``, or label fields meaning "some"."""
    labels = issue.label_list
    for key, cond in flt.items():
        if cond is None:
            continue
        if key == "and":
            ok = all(_labels(issue, sub, note) for sub in cond)
        elif key == "or":
            ok = any(_labels(issue, sub, note) for sub in cond)
        elif key == "some":
            ok = any(match(lb, cond, LABEL_TESTS, note, "IssueLabelFilter") for lb in labels)
        elif key == "every":
            ok = all(match(lb, cond, LABEL_TESTS, note, "IssueLabelFilter") for lb in labels)
        elif key == "null":
            ok = (not labels) == bool(cond)
        elif key == "length":
            ok = _compare(len(labels), cond, note, "labels.length")
        elif key in LABEL_TESTS:
            ok = any(LABEL_TESTS[key](label, cond, note) for label in labels)
        else:
            note(f"IssueLabelCollectionFilter.{key}: filter field not supported by the fake")
            ok = True
        if not ok:
            return False
    return True


ISSUE_TESTS: dict[str, Test] = {
    **{name: _field(name) for name in ("id", "number", "title", "description", "priority")},
    **{name: _date(name) for name in ("createdAt", "updatedAt", "completedAt", "canceledAt")},
    "state": _sub("state", STATE_TESTS, "WorkflowStateFilter"),
    "team": _sub("team", TEAM_TESTS, "TeamFilter"),
    "project": _sub("project", PROJECT_TESTS, "NullableProjectFilter"),
    "assignee": _sub("assignee", USER_TESTS, "NullableUserFilter"),
    "labels": _labels,
}


# -- connections ----------------------------------------------------------------------

DEFAULT_PAGE = 50  # a connection's page when neither ``first`` nor ``last`` is given


def _cursor(key: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> tuple[Any, ...]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return tuple(json.loads(base64.urlsafe_b64decode(padded)))
    except ValueError:
        raise invalid(f"Invalid cursor: {cursor}") from None


def page(
    items: Iterable[Any], args: dict[str, Any], key: Callable[[Any], tuple[Any, ...]]
) -> dict[str, Any]:
    """A Relay connection over ``items``; cursors carry the sort key, so a cursor stays
    valid when its node leaves the filter between pages (a ticket changing state)."""
    ordered = sorted(items, key=key)
    first, last = args.get("first"), args.get("last")
    if first is None and last is None:
        first = DEFAULT_PAGE
    for name, count in (("first", first), ("last", last)):
        if count is not None and count < 0:
            raise invalid(f"{name} must not be negative")
    start, end = 0, len(ordered)
    if args.get("after"):
        after = _uncursor(args["after"])
        start = next((i for i, item in enumerate(ordered) if key(item) > after), len(ordered))
    if args.get("before"):
        before = _uncursor(args["before"])
        end = next((i for i, item in enumerate(ordered) if key(item) >= before), len(ordered))
    end = max(start, end)
    if first is not None:
        end = min(end, start + first)
    if last is not None:
        start = max(start, end - last)
    nodes = ordered[start:end]
    edges = [{"node": node, "cursor": _cursor(key(node))} for node in nodes]
    return {
        "nodes": nodes,
        "edges": edges,
        "pageInfo": {
            "hasNextPage": end < len(ordered),
            "hasPreviousPage": start > 0,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def by_seq(item: Any) -> tuple[Any, ...]:
    return (item.seq,)
