"""A local Linear for tests: Linear's real schema over an in-memory workspace.

Documents are validated and executed against the SDL Linear publishes, so the
tracker's queries fail here as they would there. Auth, error bodies, HTTP statuses
and the rate-limit headers follow WIRE.md section 3: a personal key goes bare in
``Authorization``, an OAuth token after ``Bearer``; rate limits and bad keys are
HTTP 400 with a GraphQL ``errors`` body; entity errors are HTTP 200 with ``data``.

Fields the fake does not model resolve to null, or, when the schema says non-null,
to an empty value of their type (``""``, ``0``, ``[]``, an empty connection), so any
valid document executes. Filter fields it does not understand match everything
and are noted in ``failures``, so a test that checks ``failures`` sees them.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.testing.graphql_server import GraphQLServer, Headers, Recorded, Reply

if TYPE_CHECKING:
    from graphql import (
        DocumentNode,
        ExecutionResult,
        GraphQLError,
        GraphQLOutputType,
        GraphQLResolveInfo,
    )

DEFAULT_STATES = (
    ("Backlog", "backlog", 0),
    ("Todo", "unstarted", 1),
    ("In Progress", "started", 2),
    ("In Review", "started", 3),
    ("Done", "completed", 4),
    ("Canceled", "canceled", 5),
    ("Duplicate", "duplicate", 6),
)
STATE_COLORS = {
    "backlog": "#bec2c8",
    "unstarted": "#e2e2e2",
    "started": "#f2c94c",
    "completed": "#5e6ad2",
    "canceled": "#95a2b3",
    "duplicate": "#95a2b3",
}
LABEL_COLORS = ("#eb5757", "#f2994a", "#f2c94c", "#4cb782", "#26b5ce", "#5e6ad2", "#bb87fc")
PRIORITY_LABELS = {0: "No priority", 1: "Urgent", 2: "High", 3: "Medium", 4: "Low"}
DEFAULT_PAGE = 50
# Input fields the mutations act on; others are noted in ``failures`` as ignored.
ISSUE_CREATE_INPUT = {"teamId", "title", "description", "stateId", "labelIds", "priority"}
ISSUE_CREATE_INPUT |= {"projectId", "assigneeId"}
ISSUE_UPDATE_INPUT = {"stateId", "title", "description", "priority", "labelIds", "projectId"}
ISSUE_UPDATE_INPUT |= {"addedLabelIds", "removedLabelIds", "assigneeId"}
COMMENT_INPUT = {"issueId", "body"}
ATTACHMENT_INPUT = {"issueId", "url", "title", "subtitle", "metadata"}

AUTH_BODY = {
    "errors": [
        {
            "message": "Authentication required, not authenticated",
            "extensions": {
                "type": "authentication error",
                "code": "AUTHENTICATION_ERROR",
                "statusCode": 401,
                "userError": True,
                "userPresentableMessage": "You need to authenticate to access this operation.",
            },
        }
    ]
}
RATELIMITED_BODY = {
    "errors": [
        {
            "message": "Rate limit exceeded",
            "extensions": {
                "type": "ratelimited",
                "code": "RATELIMITED",
                "statusCode": 429,
                "userError": True,
            },
        }
    ]
}
INTERNAL_BODY = {
    "errors": [
        {
            "message": "Internal server error",
            "extensions": {"type": "internal error", "code": "INTERNAL_SERVER_ERROR"},
        }
    ]
}


class LinearError(Exception):
    """An error a resolver raises to answer the way Linear does (HTTP 200, ``data`` kept)."""

    def __init__(
        self,
        type: str,
        message: str,
        code: str,
        user_error: bool = True,
        presentable: str | None = None,
    ) -> None:
        super().__init__(message)
        self.type = type
        self.message = message
        self.code = code
        self.user_error = user_error
        self.presentable = presentable or message

    def extensions(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "code": self.code,
            "userError": self.user_error,
            "userPresentableMessage": self.presentable,
        }


def not_found(entity: str) -> LinearError:
    """Linear's answer to an id that names nothing."""
    return LinearError(
        "invalid input",
        f"Entity not found: {entity}",
        "INVALID_INPUT",
        presentable=f"Could not find referenced {entity}.",
    )


def invalid(message: str) -> LinearError:
    return LinearError("invalid input", "Argument Validation Error", "INVALID_INPUT", True, message)


def _iso(moment: datetime) -> str:
    """Linear's timestamps: UTC, milliseconds, ``Z``; as strings they also sort by time."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _slug(title: str, limit: int = 50) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return words[:limit].rstrip("-")


# -- the workspace ---------------------------------------------------------------


@dataclass(eq=False)
class _User:
    id: str
    name: str
    displayName: str
    email: str
    active: bool = True


@dataclass(eq=False)
class _Team:
    seq: int
    id: str
    key: str
    name: str
    createdAt: str
    description: str | None = None
    states: list[_State] = field(default_factory=list)
    next_number: int = 1


@dataclass(eq=False)
class _State:
    seq: int
    id: str
    name: str
    type: str
    position: float
    color: str
    team: _Team
    createdAt: str
    updatedAt: str
    description: str | None = None


@dataclass(eq=False)
class _Label:
    seq: int
    id: str
    name: str
    color: str
    createdAt: str
    updatedAt: str
    description: str | None = None


@dataclass(eq=False)
class _Project:
    seq: int
    id: str
    name: str
    createdAt: str
    updatedAt: str


@dataclass(eq=False)
class _Comment:
    seq: int
    id: str
    body: str
    url: str
    user: _User | None
    createdAt: str
    updatedAt: str


@dataclass(eq=False)
class _Attachment:
    seq: int
    id: str
    url: str
    title: str
    subtitle: str | None
    sourceType: str | None
    metadata: dict[str, Any]
    createdAt: str
    updatedAt: str
    issue: _Issue | None = None
    groupBySource: bool = False


@dataclass(eq=False)
class _Issue:
    seq: int
    id: str
    team: _Team
    number: int
    title: str
    description: str | None
    state: _State
    priority: int
    createdAt: str
    updatedAt: str
    project: _Project | None = None
    assignee: _User | None = None
    label_list: list[_Label] = field(default_factory=list)
    comment_list: list[_Comment] = field(default_factory=list)
    attachment_list: list[_Attachment] = field(default_factory=list)
    completedAt: str | None = None
    canceledAt: str | None = None
    startedAt: str | None = None

    @property
    def identifier(self) -> str:
        return f"{self.team.key}-{self.number}"

    @property
    def url(self) -> str:
        slug = _slug(self.title)
        return f"https://linear.app/acme/issue/{self.identifier}" + (f"/{slug}" if slug else "")

    @property
    def branchName(self) -> str:
        slug = _slug(self.title)
        return self.identifier.lower() + (f"-{slug}" if slug else "")

    @property
    def priorityLabel(self) -> str:
        return PRIORITY_LABELS.get(self.priority, "No priority")

    @property
    def labelIds(self) -> list[str]:
        return [label.id for label in self.label_list]

    def snapshot(self) -> dict[str, Any]:
        """A plain copy for assertions in tests."""
        return {
            "id": self.id,
            "identifier": self.identifier,
            "number": self.number,
            "title": self.title,
            "description": self.description,
            "url": self.url,
            "branchName": self.branchName,
            "priority": self.priority,
            "state": self.state.name,
            "stateType": self.state.type,
            "team": self.team.key,
            "labels": [label.name for label in self.label_list],
            "project": self.project.name if self.project else None,
            "comments": [comment.body for comment in self.comment_list],
            "attachments": [{"url": a.url, "title": a.title} for a in self.attachment_list],
            "createdAt": self.createdAt,
            "updatedAt": self.updatedAt,
            "completedAt": self.completedAt,
        }


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
                fixed[op] = _iso(datetime.fromisoformat(arg.replace("Z", "+00:00")))
            elif isinstance(arg, list):
                fixed[op] = [_iso(datetime.fromisoformat(a.replace("Z", "+00:00"))) for a in arg]
            else:
                fixed[op] = arg
        return _compare(getattr(obj, attr), fixed, note, attr)

    return test


def _match(obj: Any, flt: Any, tests: dict[str, Test], note: Note, kind: str) -> bool:
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
            ok = all(_match(obj, sub, tests, note, kind) for sub in cond)
        elif key == "or":
            ok = any(_match(obj, sub, tests, note, kind) for sub in cond)
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
    return lambda obj, cond, note: _match(getattr(obj, attr), cond, tests, note, kind)


TEAM_TESTS: dict[str, Test] = {
    name: _field(name) for name in ("id", "key", "name", "description")
} | {"createdAt": _date("createdAt")}
STATE_TESTS: dict[str, Test] = {
    name: _field(name) for name in ("id", "name", "type", "position", "description")
} | {"team": _sub("team", TEAM_TESTS, "TeamFilter"), "createdAt": _date("createdAt")}
LABEL_TESTS: dict[str, Test] = {name: _field(name) for name in ("id", "name")}
PROJECT_TESTS: dict[str, Test] = {name: _field(name) for name in ("id", "name")}
USER_TESTS: dict[str, Test] = {
    name: _field(name) for name in ("id", "name", "email", "displayName")
} | {"isMe": lambda user, cond, note: _compare(True, cond, note, "isMe")}


def _labels(issue: _Issue, flt: Any, note: Note) -> bool:
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
            ok = any(_match(lb, cond, LABEL_TESTS, note, "IssueLabelFilter") for lb in labels)
        elif key == "every":
            ok = all(_match(lb, cond, LABEL_TESTS, note, "IssueLabelFilter") for lb in labels)
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


def _cursor(key: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> tuple[Any, ...]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return tuple(json.loads(base64.urlsafe_b64decode(padded)))
    except ValueError:
        raise invalid(f"Invalid cursor: {cursor}") from None


def _page(
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


def _by_seq(item: Any) -> tuple[Any, ...]:
    return (item.seq,)


def _blank(kind: GraphQLOutputType, now: str) -> Any:
    """What an unmodelled field answers: null, or an empty value when the schema says non-null."""
    from graphql import (
        is_enum_type,
        is_list_type,
        is_non_null_type,
        is_object_type,
        is_scalar_type,
    )

    if not is_non_null_type(kind):
        return None
    inner = kind.of_type
    if is_list_type(inner):
        return []
    if is_scalar_type(inner):
        empty = {"Float": 0.0, "Int": 0, "Boolean": False, "DateTime": now, "JSONObject": {}}
        return empty.get(inner.name, "")
    if is_enum_type(inner):
        return next(iter(inner.values))
    if is_object_type(inner):
        return _Blank()
    return None


class _Blank:
    """The source of an unmodelled non-null object: every field of it is blank too."""


def _integral(value: Any) -> Any:
    """JSON as JavaScript writes it: ``Float`` 3.0 goes out as ``3``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


# -- resolvers ------------------------------------------------------------------------


class _Workspace:
    """The store and the resolvers: the root value for Query and Mutation.

    The field resolver calls ``gql_<Type>_<field>(source, args)`` when defined here, else
    reads the source's attribute (or dict key) of the field's name, else answers blank.
    """

    def __init__(self, clock: Callable[[], datetime], note: Note) -> None:
        self.clock = clock
        self.note = note
        self.seq = 0
        self.sync_id = 1000
        self.teams: list[_Team] = []
        self.labels: list[_Label] = []
        self.projects: list[_Project] = []
        self.issues: list[_Issue] = []
        self.viewer = _User(str(uuid.uuid4()), "Test User", "test", "test@example.com")

    def now(self) -> str:
        return _iso(self.clock())

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # -- lookups

    def team(self, ref: str) -> _Team:
        for team in self.teams:
            if ref in (team.id, team.key) or ref.upper() == team.key.upper():
                return team
        raise not_found("Team")

    def issue(self, ref: str) -> _Issue:
        for issue in self.issues:
            if ref == issue.id or ref.upper() == issue.identifier.upper():
                return issue
        raise not_found("Issue")

    def state(self, state_id: str) -> _State:
        for team in self.teams:
            for state in team.states:
                if state.id == state_id:
                    return state
        raise not_found("WorkflowState")

    def label(self, label_id: str) -> _Label:
        for label in self.labels:
            if label.id == label_id:
                return label
        raise not_found("IssueLabel")

    def project(self, project_id: str) -> _Project:
        for project in self.projects:
            if project.id == project_id:
                return project
        raise not_found("Project")

    # -- creation (helpers and mutations)

    def add_team(self, key: str, name: str) -> _Team:
        if any(team.key.upper() == key.upper() for team in self.teams):
            raise ValueError(f"team {key} exists")
        now = self.now()
        team = _Team(self.next_seq(), str(uuid.uuid4()), key, name, now)
        for state_name, kind, position in DEFAULT_STATES:
            team.states.append(
                _State(
                    self.next_seq(),
                    str(uuid.uuid4()),
                    state_name,
                    kind,
                    float(position),
                    STATE_COLORS[kind],
                    team,
                    now,
                    now,
                )
            )
        self.teams.append(team)
        return team

    def label_named(self, name: str) -> _Label:
        for label in self.labels:
            if label.name.lower() == name.lower():
                return label
        now = self.now()
        color = LABEL_COLORS[len(self.labels) % len(LABEL_COLORS)]
        label = _Label(self.next_seq(), str(uuid.uuid4()), name, color, now, now)
        self.labels.append(label)
        return label

    def project_named(self, name: str) -> _Project:
        for project in self.projects:
            if project.name == name:
                return project
        now = self.now()
        project = _Project(self.next_seq(), str(uuid.uuid4()), name, now, now)
        self.projects.append(project)
        return project

    def create_issue(
        self,
        team: _Team,
        title: str,
        description: str | None,
        state: _State,
        labels: list[_Label],
        priority: int,
        project: _Project | None,
    ) -> _Issue:
        now = self.now()
        issue = _Issue(
            self.next_seq(),
            str(uuid.uuid4()),
            team,
            team.next_number,
            title,
            description,
            state,
            priority,
            now,
            now,
            project,
            label_list=labels,
        )
        team.next_number += 1
        self.set_state(issue, state)
        self.issues.append(issue)
        return issue

    def set_state(self, issue: _Issue, state: _State) -> None:
        if state.team is not issue.team:
            raise invalid(f"State {state.name} belongs to another team")
        now = self.now()
        issue.state = state
        issue.completedAt = now if state.type == "completed" else None
        issue.canceledAt = now if state.type in ("canceled", "duplicate") else None
        if state.type == "started" and issue.startedAt is None:
            issue.startedAt = now

    def add_comment(self, issue: _Issue, body: str) -> _Comment:
        now = self.now()
        comment_id = str(uuid.uuid4())
        url = f"{issue.url}#comment-{comment_id[:8]}"
        comment = _Comment(self.next_seq(), comment_id, body, url, self.viewer, now, now)
        issue.comment_list.append(comment)
        return comment

    def link(
        self,
        issue: _Issue,
        url: str,
        title: str | None,
        subtitle: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> _Attachment:
        """Attachments upsert on (issue, url), as Linear's do."""
        now = self.now()
        for attachment in issue.attachment_list:
            if attachment.url == url:
                if title is not None:
                    attachment.title = title
                if subtitle is not None:
                    attachment.subtitle = subtitle
                if metadata is not None:
                    attachment.metadata = metadata
                attachment.updatedAt = now
                return attachment
        source = "github" if re.match(r"https://github\.com/[^/]+/[^/]+/pull/\d+", url) else None
        attachment = _Attachment(
            self.next_seq(),
            str(uuid.uuid4()),
            url,
            title if title is not None else url,
            subtitle,
            source,
            metadata or {},
            now,
            now,
            issue,
        )
        issue.attachment_list.append(attachment)
        return attachment

    def payload(self, **fields: Any) -> dict[str, Any]:
        self.sync_id += 1
        return {"success": True, "lastSyncId": float(self.sync_id), **fields}

    # -- the field resolver

    def resolve(self, source: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
        name = info.field_name
        special = getattr(self, f"gql_{info.parent_type.name}_{name}", None)
        if special is not None:
            return special(source, args)
        if isinstance(source, dict):
            if name in source:
                return source[name]
        elif source is self:
            self.note(f"{info.parent_type.name}.{name}: not modelled by the fake")
        elif not name.startswith("_") and hasattr(source, name):
            return getattr(source, name)
        return _blank(info.return_type, getattr(source, "createdAt", None) or self.now())

    def issues_matching(self, args: dict[str, Any], *extra: Callable[[_Issue], bool]) -> Any:
        flt = args.get("filter")
        found = [
            issue
            for issue in self.issues
            if all(test(issue) for test in extra)
            and _match(issue, flt, ISSUE_TESTS, self.note, "IssueFilter")
        ]
        order = args.get("orderBy") or "createdAt"
        return _page(found, args, lambda issue: (getattr(issue, order), issue.seq))

    def states_matching(self, states: Iterable[_State], args: dict[str, Any]) -> Any:
        flt = args.get("filter")
        found = [s for s in states if _match(s, flt, STATE_TESTS, self.note, "WorkflowStateFilter")]
        return _page(found, args, _by_seq)

    # Query

    def gql_Query_viewer(self, _: Any, args: dict[str, Any]) -> Any:
        return self.viewer

    def gql_Query_teams(self, _: Any, args: dict[str, Any]) -> Any:
        flt = args.get("filter")
        found = [t for t in self.teams if _match(t, flt, TEAM_TESTS, self.note, "TeamFilter")]
        return _page(found, args, _by_seq)

    def gql_Query_team(self, _: Any, args: dict[str, Any]) -> Any:
        return self.team(args["id"])

    def gql_Query_workflowStates(self, _: Any, args: dict[str, Any]) -> Any:
        return self.states_matching((s for t in self.teams for s in t.states), args)

    def gql_Query_workflowState(self, _: Any, args: dict[str, Any]) -> Any:
        return self.state(args["id"])

    def gql_Query_issues(self, _: Any, args: dict[str, Any]) -> Any:
        return self.issues_matching(args)

    def gql_Query_issue(self, _: Any, args: dict[str, Any]) -> Any:
        return self.issue(args["id"])

    def gql_Query_issueLabels(self, _: Any, args: dict[str, Any]) -> Any:
        flt = args.get("filter")
        found = [lb for lb in self.labels if _match(lb, flt, LABEL_TESTS, self.note, "Label")]
        return _page(found, args, _by_seq)

    # Types

    def gql_Team_states(self, team: _Team, args: dict[str, Any]) -> Any:
        return self.states_matching(team.states, args)

    def gql_Team_issues(self, team: _Team, args: dict[str, Any]) -> Any:
        return self.issues_matching(args, lambda issue: issue.team is team)

    def gql_WorkflowState_issues(self, state: _State, args: dict[str, Any]) -> Any:
        return self.issues_matching(args, lambda issue: issue.state is state)

    def gql_Issue_labels(self, issue: _Issue, args: dict[str, Any]) -> Any:
        flt = args.get("filter")
        labels = issue.label_list
        found = [lb for lb in labels if _match(lb, flt, LABEL_TESTS, self.note, "Label")]
        return _page(found, args, _by_seq)

    def gql_Issue_comments(self, issue: _Issue, args: dict[str, Any]) -> Any:
        if args.get("filter"):
            self.note("Issue.comments(filter:): not supported by the fake")
        return _page(issue.comment_list, args, _by_seq)

    def gql_Issue_attachments(self, issue: _Issue, args: dict[str, Any]) -> Any:
        if args.get("filter"):
            self.note("Issue.attachments(filter:): not supported by the fake")
        return _page(issue.attachment_list, args, _by_seq)

    # Mutation

    def gql_Mutation_issueCreate(self, _: Any, args: dict[str, Any]) -> Any:
        given = args["input"]
        team = self.team(given["teamId"])
        if not given.get("title"):
            raise invalid("title must be a string")
        state = self.state(given["stateId"]) if given.get("stateId") else team.states[0]
        labels = [self.label(label_id) for label_id in given.get("labelIds") or []]
        project = self.project(given["projectId"]) if given.get("projectId") else None
        priority = _priority(given.get("priority"))
        issue = self.create_issue(
            team, given["title"], given.get("description"), state, labels, priority, project
        )
        self.unsupported(given, ISSUE_CREATE_INPUT)
        if given.get("assigneeId"):
            issue.assignee = self.assignee(given["assigneeId"])
        return self.payload(issue=issue)

    def gql_Mutation_issueUpdate(self, _: Any, args: dict[str, Any]) -> Any:
        issue = self.issue(args["id"])
        given = args["input"]
        if given.get("stateId"):
            self.set_state(issue, self.state(given["stateId"]))
        if given.get("title") is not None:
            issue.title = given["title"]
        if "description" in given:
            issue.description = given["description"]
        if given.get("priority") is not None:
            issue.priority = _priority(given["priority"])
        if given.get("labelIds") is not None:
            issue.label_list = [self.label(label_id) for label_id in given["labelIds"]]
        for label_id in given.get("addedLabelIds") or []:
            if (label := self.label(label_id)) not in issue.label_list:
                issue.label_list.append(label)
        removed = {self.label(label_id).id for label_id in given.get("removedLabelIds") or []}
        issue.label_list = [label for label in issue.label_list if label.id not in removed]
        if "projectId" in given:
            project_id = given["projectId"]
            issue.project = self.project(project_id) if project_id else None
        if "assigneeId" in given:
            assignee_id = given["assigneeId"]
            issue.assignee = self.assignee(assignee_id) if assignee_id else None
        self.unsupported(given, ISSUE_UPDATE_INPUT)
        issue.updatedAt = self.now()
        return self.payload(issue=issue)

    def gql_Mutation_commentCreate(self, _: Any, args: dict[str, Any]) -> Any:
        given = args["input"]
        if not given.get("issueId"):
            raise invalid("issueId must be given: the fake has comments on issues only")
        issue = self.issue(given["issueId"])
        if not given.get("body"):
            raise invalid("body must be a string")
        self.unsupported(given, COMMENT_INPUT)
        return self.payload(comment=self.add_comment(issue, given["body"]))

    def gql_Mutation_attachmentLinkURL(self, _: Any, args: dict[str, Any]) -> Any:
        issue = self.issue(args["issueId"])
        attachment = self.link(issue, args["url"], args.get("title"))
        return self.payload(attachment=attachment)

    def gql_Mutation_attachmentCreate(self, _: Any, args: dict[str, Any]) -> Any:
        given = args["input"]
        issue = self.issue(given["issueId"])
        attachment = self.link(
            issue, given["url"], given["title"], given.get("subtitle"), given.get("metadata")
        )
        self.unsupported(given, ATTACHMENT_INPUT)
        return self.payload(attachment=attachment)

    def assignee(self, user_id: str) -> _User:
        if user_id != self.viewer.id:
            raise not_found("User")
        return self.viewer

    def unsupported(self, given: dict[str, Any], handled: set[str]) -> None:
        for key in sorted(set(given) - handled):
            self.note(f"input field {key}: ignored by the fake")


def _priority(value: int | None) -> int:
    if value is None:
        return 0
    if not 0 <= value <= 4:
        raise invalid("priority must be between 0 and 4")
    return value


def _complexity(document: DocumentNode) -> int:
    """A plausible ``X-Complexity`` after Linear's rule: 0.1 per scalar, 1 per object,
    children times the page size (``first``/``last``, 50 when a variable)."""
    from graphql import FieldNode, FragmentDefinitionNode, FragmentSpreadNode, IntValueNode

    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }

    def cost(node: Any) -> float:
        total = 0.0
        selection_set = getattr(node, "selection_set", None)
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                total += cost(fragment) if fragment else 0
            elif isinstance(selection, FieldNode):
                children = cost(selection)
                size = 1
                for arg in selection.arguments or ():
                    if arg.name.value in ("first", "last"):
                        value = arg.value
                        size = int(value.value) if isinstance(value, IntValueNode) else DEFAULT_PAGE
                total += 1 + children * size if selection.selection_set else 0.1
            else:
                total += cost(selection)
        return total

    operations = [d for d in document.definitions if not isinstance(d, FragmentDefinitionNode)]
    return max(1, round(sum(cost(op) for op in operations)))


# -- the server -------------------------------------------------------------------------


class LinearServer(GraphQLServer):
    """A fake ``https://api.linear.app/graphql``; use as ``with LinearServer(path) as s:``.

    Faults for ``inject``: ``ratelimited``, ``invalid_input``, ``auth``, ``internal``,
    ``forbidden``.
    """

    def __init__(
        self,
        schema_path: str | Path,
        *,
        api_key: str = "lin_api_test",
        oauth_token: str | None = None,
        team_key: str = "ENG",
        team_name: str = "Engineering",
        auth_status: int = 400,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(schema_path)
        self.api_key = api_key
        self.oauth_token = oauth_token
        self.auth_status = auth_status
        self.clock = clock or (lambda: datetime.now(UTC))
        self._store = _Workspace(self.clock, self._note)
        self._store.add_team(team_key, team_name)
        self.field_resolver = self._store.resolve  # unmodelled fields answer blank
        self._limit = 1500
        self._remaining = 1500
        self._reset_ms = self._epoch_ms() + 3_600_000
        self._complexity_limit = 250_000
        self._complexity_remaining = 250_000

    # -- helpers for tests

    def add_team(self, key: str, name: str) -> dict[str, Any]:
        """A second team with the default workflow states."""
        with self._lock:
            return _team_dict(self._store.add_team(key, name))

    def team(self, key: str | None = None) -> dict[str, Any]:
        """``{"id","key","name","states":[{"id","name","type","position"}]}``."""
        with self._lock:
            return _team_dict(self._store.team(key) if key else self._store.teams[0])

    def add_issue(
        self,
        title: str,
        description: str = "",
        *,
        state: str = "Todo",
        labels: Iterable[str] = (),
        project: str | None = None,
        priority: int = 0,
        team: str | None = None,
    ) -> dict[str, Any]:
        """A new issue numbered next in its team (default: the first team); see ``issue``."""
        with self._lock:
            store = self._store
            owner = store.team(team) if team else store.teams[0]
            issue = store.create_issue(
                owner,
                title,
                description or None,
                _state_named(owner, state),
                [store.label_named(name) for name in labels],
                priority,
                store.project_named(project) if project else None,
            )
            return issue.snapshot()

    def add_comment(self, ref: str, body: str) -> dict[str, Any]:
        """A comment by the viewer, as if posted in Linear's app."""
        with self._lock:
            comment = self._store.add_comment(self._issue(ref), body)
            return {"id": comment.id, "body": comment.body, "url": comment.url}

    def add_attachment(self, ref: str, url: str, title: str | None = None) -> dict[str, Any]:
        with self._lock:
            attachment = self._store.link(self._issue(ref), url, title)
            return {"id": attachment.id, "url": attachment.url, "title": attachment.title}

    def set_state(self, ref: str, state: str) -> dict[str, Any]:
        """Move an issue as a person in Linear would (say, cancel it under the agent)."""
        with self._lock:
            issue = self._issue(ref)
            self._store.set_state(issue, _state_named(issue.team, state))
            issue.updatedAt = self._store.now()
            return issue.snapshot()

    def issue(self, ref: str) -> dict[str, Any]:
        """A snapshot of one issue by id or identifier; KeyError if there is none."""
        with self._lock:
            return self._issue(ref).snapshot()

    def issues(self) -> list[dict[str, Any]]:
        with self._lock:
            return [issue.snapshot() for issue in self._store.issues]

    @property
    def viewer(self) -> dict[str, Any]:
        user = self._store.viewer
        return {"id": user.id, "name": user.name, "email": user.email}

    def set_rate_limit(
        self, *, limit: int | None = None, remaining: int | None = None, reset_ms: int | None = None
    ) -> None:
        """Set the request budget; at 0 remaining, requests are answered RATELIMITED."""
        with self._lock:
            if limit is not None:
                self._limit = limit
            if remaining is not None:
                self._remaining = max(0, remaining)
            if reset_ms is not None:
                self._reset_ms = reset_ms

    @property
    def mutations(self) -> list[Recorded]:
        return [request for request in self.requests if request.mutation]

    # -- the GraphQLServer hooks

    def authenticate(self, headers: dict[str, str]) -> Reply | None:
        """Charge the request to the budget, then check the key (bare) or token (Bearer),
        then refuse it if the budget was already empty: so neither a bad key nor an empty
        budget uses up an injected fault, while every request, refused or not, is charged."""
        limited = self._charge()
        given = headers.get("authorization", "").strip()
        scheme, _, rest = given.partition(" ")
        accepted = given == self.api_key or (
            scheme.lower() == "bearer" and rest.strip() in (self.api_key, self.oauth_token)
        )
        if not given or not accepted:
            return Reply(self.auth_status, AUTH_BODY)
        return self.fault("ratelimited") if limited else None

    def fault(self, name: str) -> Reply:
        if name == "ratelimited":
            exhausted = [("X-RateLimit-Requests-Remaining", "0"), ("Retry-After", "1")]
            return Reply(400, RATELIMITED_BODY, exhausted)
        if name == "invalid_input":
            error = invalid("Argument Validation Error")
            return Reply(200, {"errors": [_error(error, None)], "data": None})
        if name == "auth":
            return Reply(401, AUTH_BODY)
        if name == "internal":
            return Reply(500, INTERNAL_BODY)
        if name == "forbidden":
            error = LinearError(
                "forbidden", "Forbidden", "FORBIDDEN", True, "You don't have access."
            )
            return Reply(200, {"errors": [_error(error, None)], "data": None})
        return super().fault(name)

    def root(self) -> Any:
        return self._store

    def render(self, result: ExecutionResult, *, validation: bool) -> Reply:
        errors = list(result.errors or [])
        if validation or (result.data is None and errors and all(not e.path for e in errors)):
            # Parse, validation and variable errors: the request never ran.
            code = "GRAPHQL_VALIDATION_FAILED" if validation else "BAD_USER_INPUT"
            extensions = {"code": code, "type": "graphql error", "userError": False}
            rendered = [
                {"message": e.message, "locations": _locations(e), "extensions": extensions}
                for e in errors
            ]
            return Reply(400, {"errors": rendered})
        body: dict[str, Any] = {"data": _integral(result.data)}
        if errors:
            body["errors"] = [self._execution_error(error) for error in errors]
        return Reply(200, body)

    def headers(self, record: Recorded, reply: Reply) -> Headers:
        """The budgets after this request; its complexity is charged here (0 if it never ran)."""
        complexity = _complexity(record.document) if record.document is not None else 0
        with self._lock:
            self._complexity_remaining = max(0, self._complexity_remaining - complexity)
            values = [
                ("X-RateLimit-Requests-Limit", self._limit),
                ("X-RateLimit-Requests-Remaining", self._remaining),
                ("X-RateLimit-Requests-Reset", self._reset_ms),
                ("X-RateLimit-Complexity-Limit", self._complexity_limit),
                ("X-RateLimit-Complexity-Remaining", self._complexity_remaining),
                ("X-RateLimit-Complexity-Reset", self._reset_ms),
                ("X-Complexity", complexity),
            ]
        return [(name, str(value)) for name, value in values]

    # -- internals

    def _epoch_ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    def _charge(self) -> bool:
        """Spend one request; True when the budget was already empty (refilled at reset)."""
        with self._lock:
            now = self._epoch_ms()
            if now >= self._reset_ms:
                self._remaining = self._limit
                self._complexity_remaining = self._complexity_limit
                self._reset_ms = now + 3_600_000
            limited = self._remaining <= 0
            self._remaining = max(0, self._remaining - 1)
            return limited

    def _issue(self, ref: str) -> _Issue:
        try:
            return self._store.issue(ref)
        except LinearError:
            raise KeyError(ref) from None

    def _note(self, message: str) -> None:
        with self._lock:
            if message not in self.failures:
                self.failures.append(message)

    def _execution_error(self, error: GraphQLError) -> dict[str, Any]:
        cause = error.original_error
        if isinstance(cause, LinearError):
            return _error(cause, error)
        # Anything else is a bug in this fake (or a field it cannot answer): say so.
        self._note(f"error at {error.path}: {error.message}")
        internal = LinearError(
            "internal error", error.message, "INTERNAL_SERVER_ERROR", False, "Internal error"
        )
        return _error(internal, error)


def _error(cause: LinearError, error: GraphQLError | None) -> dict[str, Any]:
    rendered: dict[str, Any] = {"message": cause.message}
    if error is not None:
        rendered["path"] = error.path
        rendered["locations"] = _locations(error)
    rendered["extensions"] = cause.extensions()
    return rendered


def _locations(error: GraphQLError) -> list[dict[str, int]]:
    return [{"line": loc.line, "column": loc.column} for loc in error.locations or []]


def _state_named(team: _Team, name: str) -> _State:
    for state in team.states:
        if state.name.lower() == name.lower():
            return state
    raise ValueError(f"team {team.key} has no state {name!r}")


def _team_dict(team: _Team) -> dict[str, Any]:
    states = [
        {"id": s.id, "name": s.name, "type": s.type, "position": s.position} for s in team.states
    ]
    return {"id": team.id, "key": team.key, "name": team.name, "states": states}
