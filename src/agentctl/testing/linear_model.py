"""The fake Linear's workspace: its entities and the errors Linear answers about them.

Teams, workflow states, labels, projects, issues, comments and attachments are plain
dataclasses whose attribute names are the schema's field names, so the field resolver
reads them as they are; ``LinearError`` is how a resolver refuses the way Linear does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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


def iso(moment: datetime) -> str:
    """Linear's timestamps: UTC, milliseconds, ``Z``; as strings they also sort by time."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _slug(title: str, limit: int = 50) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return words[:limit].rstrip("-")


# -- the workspace ---------------------------------------------------------------


@dataclass(eq=False)
class User:
    id: str
    name: str
    displayName: str
    email: str
    active: bool = True


@dataclass(eq=False)
class Team:
    seq: int
    id: str
    key: str
    name: str
    createdAt: str
    description: str | None = None
    states: list[State] = field(default_factory=list)
    next_number: int = 1


@dataclass(eq=False)
class State:
    seq: int
    id: str
    name: str
    type: str
    position: float
    color: str
    team: Team
    createdAt: str
    updatedAt: str
    description: str | None = None


@dataclass(eq=False)
class Label:
    seq: int
    id: str
    name: str
    color: str
    createdAt: str
    updatedAt: str
    description: str | None = None
    team: Team | None = None  # None: a workspace label, usable by every team


@dataclass(eq=False)
class Project:
    seq: int
    id: str
    name: str
    createdAt: str
    updatedAt: str


@dataclass(eq=False)
class Comment:
    seq: int
    id: str
    body: str
    url: str
    user: User | None
    createdAt: str
    updatedAt: str


@dataclass(eq=False)
class Attachment:
    seq: int
    id: str
    url: str
    title: str
    subtitle: str | None
    sourceType: str | None
    metadata: dict[str, Any]
    createdAt: str
    updatedAt: str
    issue: Issue | None = None
    groupBySource: bool = False


@dataclass(eq=False)
class Issue:
    seq: int
    id: str
    team: Team
    number: int
    title: str
    description: str | None
    state: State
    priority: int
    createdAt: str
    updatedAt: str
    project: Project | None = None
    assignee: User | None = None
    label_list: list[Label] = field(default_factory=list)
    comment_list: list[Comment] = field(default_factory=list)
    attachment_list: list[Attachment] = field(default_factory=list)
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
