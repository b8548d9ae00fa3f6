"""The fake Linear's in-memory store and its resolvers: the root value for every field.

Lookups, creation and the mutations (issueCreate, issueUpdate, commentCreate, the
label and attachment mutations) act on the workspace's dataclasses; the field resolver answers
what the store does not model with null or an empty value of the schema's type, so any
valid document executes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agentctl.testing.linear_filters import (
    ISSUE_TESTS,
    LABEL_TESTS,
    STATE_TESTS,
    TEAM_TESTS,
    Note,
    by_seq,
    match,
    page,
)
from agentctl.testing.linear_model import (
    DEFAULT_STATES,
    LABEL_COLORS,
    STATE_COLORS,
    Attachment,
    Comment,
    Issue,
    Label,
    Project,
    State,
    Team,
    User,
    invalid,
    iso,
    not_found,
)

if TYPE_CHECKING:
    from graphql import GraphQLOutputType, GraphQLResolveInfo

# Input fields the mutations act on; others are noted in ``failures`` as ignored.
ISSUE_CREATE_INPUT = {"teamId", "title", "description", "stateId", "labelIds", "priority"}
ISSUE_CREATE_INPUT |= {"projectId", "assigneeId"}
ISSUE_UPDATE_INPUT = {"stateId", "title", "description", "priority", "labelIds", "projectId"}
ISSUE_UPDATE_INPUT |= {"addedLabelIds", "removedLabelIds", "assigneeId"}
COMMENT_INPUT = {"issueId", "body"}
LABEL_INPUT = {"name", "teamId", "color", "description"}
ATTACHMENT_INPUT = {"issueId", "url", "title", "subtitle", "metadata"}


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


# -- resolvers ------------------------------------------------------------------------


class Workspace:
    """The store and the resolvers: the root value for Query and Mutation.

    The field resolver calls ``gql_<Type>_<field>(source, args)`` when defined here, else
    reads the source's attribute (or dict key) of the field's name, else answers blank.
    """

    def __init__(self, clock: Callable[[], datetime], note: Note) -> None:
        self.clock = clock
        self.note = note
        self.seq = 0
        self.sync_id = 1000
        self.teams: list[Team] = []
        self.labels: list[Label] = []
        self.projects: list[Project] = []
        self.issues: list[Issue] = []
        self.viewer = User(str(uuid.uuid4()), "Test User", "test", "test@example.com")

    def now(self) -> str:
        return iso(self.clock())

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # -- lookups

    def team(self, ref: str) -> Team:
        for team in self.teams:
            if ref in (team.id, team.key) or ref.upper() == team.key.upper():
                return team
        raise not_found("Team")

    def issue(self, ref: str) -> Issue:
        for issue in self.issues:
            if ref == issue.id or ref.upper() == issue.identifier.upper():
                return issue
        raise not_found("Issue")

    def state(self, state_id: str) -> State:
        for team in self.teams:
            for state in team.states:
                if state.id == state_id:
                    return state
        raise not_found("WorkflowState")

    def label(self, label_id: str) -> Label:
        for label in self.labels:
            if label.id == label_id:
                return label
        raise not_found("IssueLabel")

    def project(self, project_id: str) -> Project:
        for project in self.projects:
            if project.id == project_id:
                return project
        raise not_found("Project")

    # -- creation (helpers and mutations)

    def add_team(self, key: str, name: str) -> Team:
        if any(team.key.upper() == key.upper() for team in self.teams):
            raise ValueError(f"team {key} exists")
        now = self.now()
        team = Team(self.next_seq(), str(uuid.uuid4()), key, name, now)
        for state_name, kind, position in DEFAULT_STATES:
            team.states.append(
                State(
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

    def label_named(self, name: str) -> Label:
        for label in self.labels:
            if label.name.lower() == name.lower():
                return label
        return self.create_label(name, None)

    def create_label(
        self,
        name: str,
        team: Team | None,
        color: str | None = None,
        description: str | None = None,
    ) -> Label:
        """A team's label, or a workspace label (``team`` None). Linear refuses a name
        already used by a label the same issues could carry: one of the team, or a
        workspace label; a workspace label also clashes with any team's label."""
        if not name.strip():
            raise invalid("name must be a non-empty string")
        for label in self.labels:
            if label.name.lower() == name.lower() and (
                team is None or label.team is None or label.team is team
            ):
                raise invalid("Duplicate label name")
        now = self.now()
        color = color or LABEL_COLORS[len(self.labels) % len(LABEL_COLORS)]
        label = Label(self.next_seq(), str(uuid.uuid4()), name, color, now, now, description, team)
        self.labels.append(label)
        return label

    def project_named(self, name: str) -> Project:
        for project in self.projects:
            if project.name == name:
                return project
        now = self.now()
        project = Project(self.next_seq(), str(uuid.uuid4()), name, now, now)
        self.projects.append(project)
        return project

    def create_issue(
        self,
        team: Team,
        title: str,
        description: str | None,
        state: State,
        labels: list[Label],
        priority: int,
        project: Project | None,
    ) -> Issue:
        now = self.now()
        issue = Issue(
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

    def set_state(self, issue: Issue, state: State) -> None:
        if state.team is not issue.team:
            raise invalid(f"State {state.name} belongs to another team")
        now = self.now()
        issue.state = state
        issue.completedAt = now if state.type == "completed" else None
        issue.canceledAt = now if state.type in ("canceled", "duplicate") else None
        if state.type == "started" and issue.startedAt is None:
            issue.startedAt = now

    def add_comment(self, issue: Issue, body: str) -> Comment:
        now = self.now()
        comment_id = str(uuid.uuid4())
        url = f"{issue.url}#comment-{comment_id[:8]}"
        comment = Comment(self.next_seq(), comment_id, body, url, self.viewer, now, now)
        issue.comment_list.append(comment)
        return comment

    def link(
        self,
        issue: Issue,
        url: str,
        title: str | None,
        subtitle: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Attachment:
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
        attachment = Attachment(
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

    def issues_matching(self, args: dict[str, Any], *extra: Callable[[Issue], bool]) -> Any:
        flt = args.get("filter")
        found = [
            issue
            for issue in self.issues
            if all(test(issue) for test in extra)
            and match(issue, flt, ISSUE_TESTS, self.note, "IssueFilter")
        ]
        order = args.get("orderBy") or "createdAt"
        return page(found, args, lambda issue: (getattr(issue, order), issue.seq))

    def states_matching(self, states: Iterable[State], args: dict[str, Any]) -> Any:
        flt = args.get("filter")
        found = [s for s in states if match(s, flt, STATE_TESTS, self.note, "WorkflowStateFilter")]
        return page(found, args, by_seq)

    # Query

    def gql_Query_viewer(self, _: Any, args: dict[str, Any]) -> Any:
        return self.viewer

    def gql_Query_teams(self, _: Any, args: dict[str, Any]) -> Any:
        flt = args.get("filter")
        found = [t for t in self.teams if match(t, flt, TEAM_TESTS, self.note, "TeamFilter")]
        return page(found, args, by_seq)

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
        found = [lb for lb in self.labels if match(lb, flt, LABEL_TESTS, self.note, "Label")]
        return page(found, args, by_seq)

    # Types

    def gql_Team_states(self, team: Team, args: dict[str, Any]) -> Any:
        return self.states_matching(team.states, args)

    def gql_Team_issues(self, team: Team, args: dict[str, Any]) -> Any:
        return self.issues_matching(args, lambda issue: issue.team is team)

    def gql_WorkflowState_issues(self, state: State, args: dict[str, Any]) -> Any:
        return self.issues_matching(args, lambda issue: issue.state is state)

    def gql_Issue_labels(self, issue: Issue, args: dict[str, Any]) -> Any:
        flt = args.get("filter")
        labels = issue.label_list
        found = [lb for lb in labels if match(lb, flt, LABEL_TESTS, self.note, "Label")]
        return page(found, args, by_seq)

    def gql_Issue_comments(self, issue: Issue, args: dict[str, Any]) -> Any:
        if args.get("filter"):
            self.note("Issue.comments(filter:): not supported by the fake")
        return page(issue.comment_list, args, by_seq)

    def gql_Issue_attachments(self, issue: Issue, args: dict[str, Any]) -> Any:
        if args.get("filter"):
            self.note("Issue.attachments(filter:): not supported by the fake")
        return page(issue.attachment_list, args, by_seq)

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

    def gql_Mutation_issueLabelCreate(self, _: Any, args: dict[str, Any]) -> Any:
        given = args["input"]
        if args.get("replaceTeamLabels"):
            self.note("issueLabelCreate(replaceTeamLabels:): not supported by the fake")
        team = self.team(given["teamId"]) if given.get("teamId") else None
        label = self.create_label(given["name"], team, given.get("color"), given.get("description"))
        self.unsupported(given, LABEL_INPUT)
        return self.payload(issueLabel=label)

    def gql_Mutation_issueAddLabel(self, _: Any, args: dict[str, Any]) -> Any:
        issue = self.issue(args["id"])
        label = self.label(args["labelId"])
        if label.team is not None and label.team is not issue.team:
            raise invalid(f"Label {label.name} belongs to another team")
        if label not in issue.label_list:
            issue.label_list.append(label)
            issue.updatedAt = self.now()
        return self.payload(issue=issue)

    def gql_Mutation_issueRemoveLabel(self, _: Any, args: dict[str, Any]) -> Any:
        issue = self.issue(args["id"])
        label = self.label(args["labelId"])
        if label in issue.label_list:
            issue.label_list.remove(label)
            issue.updatedAt = self.now()
        return self.payload(issue=issue)

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

    def assignee(self, user_id: str) -> User:
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
