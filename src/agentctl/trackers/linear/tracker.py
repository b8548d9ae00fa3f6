"""Linear as agentctl's tracker, over Linear's GraphQL API.

Tickets are Linear issues of one team; a ticket's id is its identifier (``ENG-42``),
which is what people type and what ``issue(id:)`` accepts. Pipelines and the
orchestrator speak in agentctl's state names (``Todo``, ``In Progress``, ``In
Review``, ``Done``, ``Canceled``); ``[tracker.linear]`` maps each to the team's own
workflow state, looked up once per process. "Open" means every state whose type is
not completed, canceled or duplicate, whatever the team calls them.

A ticket the orchestrator parks moves to ``blocked_state`` when one is set; else it
keeps its state and gets the label ``agentctl-blocked`` (the team's, made on first
use), which ``unblock`` removes again.

Only the orchestrator and pipeline processes hold the key; agents never do.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentctl.errors import (
    NotFoundError,
    ServiceAuthError,
    ServiceError,
    ServiceRateLimitedError,
    ServiceRejectedError,
    ServiceUnavailableError,
    UsageError,
)
from agentctl.remote.graphql import GraphQLService, RateHeaders, service_from_env
from agentctl.trackers import Ticket
from agentctl.trackers.linear import documents as doc

if TYPE_CHECKING:
    from agentctl.config import Config
    from agentctl.config.schema import LinearTracker as LinearSettings

SERVICE = "Linear"
CLOSED_TYPES = ("completed", "canceled", "duplicate")
PAGE = 50
RATE = RateHeaders(
    limit="x-ratelimit-requests-limit",
    remaining="x-ratelimit-requests-remaining",
    reset="x-ratelimit-requests-reset",
    reset_unit=0.001,  # epoch milliseconds
)
BLOCKED_LABEL = "agentctl-blocked"  # a parked issue, when no blocked_state is set
BLOCKED_COLOR = "#eb5757"
# agentctl's state names → the [tracker.linear] setting that names the team's state
CANONICAL = {
    "blocked": "blocked_state",
    "todo": "ready_state",
    "ready": "ready_state",
    "in progress": "in_progress_state",
    "in review": "review_state",
    "done": "done_state",
    "canceled": "canceled_state",
    "cancelled": "canceled_state",
}


def classify(errors: list[dict[str, Any]], status: int | None, service: str) -> ServiceError:
    """Linear's error body → agentctl's tree, on ``extensions.type`` as Linear's SDK does."""
    first = errors[0]
    ext = first.get("extensions") or {}
    code = str(ext.get("code") or "") or None
    kind = str(ext.get("type") or "").lower()
    message = str(first.get("message") or "request failed")
    if code == "RATELIMITED" or kind == "ratelimited" or status == 429:
        return ServiceRateLimitedError(
            "rate limited", service=service, status=status, code=code or "RATELIMITED"
        )
    if kind == "authentication error" or code == "AUTHENTICATION_ERROR" or status == 401:
        return ServiceAuthError(
            f"the API key was refused: {message}",
            service=service,
            status=status,
            code=code,
            hint="set the variable named by [tracker.linear] api_key_env to a personal API key "
            "(lin_api_...) from Linear's Settings → API, or an OAuth token",
        )
    if kind == "forbidden" or code == "FORBIDDEN":
        return ServiceAuthError(
            f"forbidden: {message}", service=service, status=status, code=code or "FORBIDDEN"
        )
    if kind == "internal error" or (status is not None and status >= 500):
        return ServiceUnavailableError(message, service=service, status=status, code=code)
    user = ext.get("userPresentableMessage")
    return ServiceRejectedError(
        f"{message}" + (f" ({user})" if user and user != message else ""),
        service=service,
        status=status,
        code=code or kind or None,
    )


def authorization(token: str) -> str:
    """Personal keys go bare; anything else is an OAuth token (``Bearer``)."""
    token = token.strip()
    if token.lower().startswith("bearer ") or token.startswith("lin_api_"):
        return token
    return f"Bearer {token}"


class LinearTracker:
    """The ``Tracker`` protocol over one Linear team."""

    def __init__(self, settings: LinearSettings, service: GraphQLService) -> None:
        if not settings.team:
            raise UsageError(
                "[tracker.linear] team is not set", hint='set team = "ENG" (the team key)'
            )
        self.settings = settings
        self.service = service
        self._states: list[dict[str, Any]] | None = None
        self._team_id: str | None = None
        self._uuids: dict[str, str] = {}
        self._labels: dict[str, str] = {}  # team id → the agentctl-blocked label's id

    @classmethod
    def from_config(cls, config: Config, environ: Mapping[str, str] | None = None) -> LinearTracker:
        settings = config.settings.tracker.linear
        service, _ = service_from_env(
            environ,
            settings.api_key_env,
            service=SERVICE,
            url=settings.url,
            authorization=authorization,
            classify=classify,
            rate_headers=RATE,
            hint=f"export {settings.api_key_env}=lin_api_... "
            "(Linear → Settings → Security & access → Personal API keys)",
        )
        return cls(settings, service)

    # -- the Tracker protocol -------------------------------------------------------

    def list(
        self, *, states: Sequence[str] | None = None, labels: Sequence[str] = ()
    ) -> builtins.list[Ticket]:
        """One paginated query: open issues of the team (or those in ``states``), oldest first."""
        where: list[dict[str, Any]] = [{"team": {"key": {"eq": self.settings.team}}}]
        if states is None:
            where.append({"state": {"type": {"nin": list(CLOSED_TYPES)}}})
        else:
            names = [self.state_name(s) for s in states]
            where.append({"state": {"name": {"in": names}}})
        for label in dict.fromkeys([*self.settings.labels, *labels]):
            where.append({"labels": {"some": {"name": {"eqIgnoreCase": label}}}})
        if self.settings.project:
            where.append({"project": {"name": {"eq": self.settings.project}}})
        found: builtins.list[Ticket] = []
        after: str | None = None
        while True:
            data = self.service.execute(
                doc.ISSUES, {"filter": {"and": where}, "first": PAGE, "after": after}
            )
            page = data["issues"]
            found += [self._ticket(node) for node in page["nodes"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        return sorted(found, key=lambda t: _number(t.id))

    def get(self, ticket_id: str) -> Ticket:
        return self._ticket(self._issue(ticket_id))

    def set_state(self, ticket_id: str, state: str) -> Ticket:
        """Move to the team's state named by ``state`` (agentctl's name or Linear's); idempotent."""
        target = self._state(state)
        issue = self._issue(ticket_id)
        if issue["state"]["id"] == target["id"]:
            return self._ticket(issue)
        data = self.service.execute(doc.SET_STATE, {"id": issue["id"], "stateId": target["id"]})
        result = data["issueUpdate"]
        if not result.get("success"):
            raise ServiceRejectedError(
                f"{ticket_id} was not moved to {target['name']}", service=SERVICE
            )
        return self._ticket({**issue, "state": result["issue"]["state"]})

    def block(self, ticket_id: str) -> Ticket:
        """Parked: into ``blocked_state`` when set, else the state kept and the issue
        labelled ``agentctl-blocked`` (the team's label, made on first use); idempotent."""
        if self.settings.blocked_state:
            return self.set_state(ticket_id, self.settings.blocked_state)
        issue = self._issue(ticket_id)
        if _blocked_label_id(issue) is not None:
            return self._ticket(issue)
        label_id = self._blocked_label(issue["team"]["id"])
        data = self.service.execute(doc.ADD_LABEL, {"id": issue["id"], "labelId": label_id})
        result = data["issueAddLabel"]
        if not result.get("success") or not result.get("issue"):
            raise ServiceRejectedError(
                f"{ticket_id} was not labelled {BLOCKED_LABEL}", service=SERVICE
            )
        return self._ticket({**issue, "labels": result["issue"]["labels"]})

    def unblock(self, ticket_id: str, state: str) -> Ticket:
        """Move to ``state`` and drop the ``agentctl-blocked`` label if the issue has it
        (whatever ``blocked_state`` says now: the setting may have changed since)."""
        ticket = self.set_state(ticket_id, state)
        issue = self._issue(ticket_id)
        label_id = _blocked_label_id(issue)
        if label_id is None:
            return ticket
        data = self.service.execute(doc.REMOVE_LABEL, {"id": issue["id"], "labelId": label_id})
        result = data["issueRemoveLabel"]
        if not result.get("success") or not result.get("issue"):
            raise ServiceRejectedError(
                f"the {BLOCKED_LABEL} label was not removed from {ticket_id}", service=SERVICE
            )
        return self._ticket({**issue, "labels": result["issue"]["labels"]})

    def is_blocked(self, ticket: Ticket) -> bool:
        """Parked by ``block``: in ``blocked_state``, or carrying the label."""
        blocked = self.settings.blocked_state
        if blocked and ticket.state.lower() == blocked.lower():
            return True
        return any(label.lower() == BLOCKED_LABEL for label in ticket.labels)

    def comment(self, ticket_id: str, body: str) -> None:
        data = self.service.execute(doc.COMMENT, {"issueId": self._uuid(ticket_id), "body": body})
        if not data["commentCreate"].get("success"):
            raise ServiceRejectedError(f"the comment on {ticket_id} was not saved", service=SERVICE)

    def link(self, ticket_id: str, url: str, title: str) -> None:
        """Attach ``url`` (the pull request) to the issue; Linear upserts on the URL."""
        data = self.service.execute(
            doc.LINK, {"issueId": self._uuid(ticket_id), "url": url, "title": title}
        )
        if not data["attachmentLinkURL"].get("success"):
            raise ServiceRejectedError(f"the link on {ticket_id} was not saved", service=SERVICE)

    def add(self, title: str, description: str = "", labels: Sequence[str] = ()) -> Ticket:
        """A new issue of the team, in the ready state (labels must exist in Linear)."""
        if not title.strip():
            raise UsageError("a ticket needs a title")
        if labels:
            raise UsageError(
                "labels on new Linear issues are not supported here", hint="add them in Linear"
            )
        ready = self._state(self.settings.ready_state)
        payload = {
            "teamId": self._team_id,
            "title": title.strip(),
            "description": description,
            "stateId": ready["id"],
        }
        data = self.service.execute(doc.CREATE, {"input": payload})
        if not data["issueCreate"].get("success"):
            raise ServiceRejectedError("the issue was not created", service=SERVICE)
        return self._ticket(data["issueCreate"]["issue"])

    # -- more than the protocol -------------------------------------------------------

    def record(self, ticket_id: str) -> dict[str, Any]:
        """The issue with its comments and attachments, for ``tickets show``."""
        issue = self._issue(ticket_id)
        return {
            "comments": [
                {"at": c.get("createdAt") or "", "body": c.get("body") or ""}
                for c in issue["comments"]["nodes"]
            ],
            "links": [
                {"url": a.get("url"), "title": a.get("title")}
                for a in issue["attachments"]["nodes"]
            ],
            "created": issue.get("createdAt"),
            "updated": None,
        }

    def team_states(self) -> builtins.list[dict[str, Any]]:
        """The team's workflow states, asked once per process (``doctor`` checks names here)."""
        if self._states is None:
            data = self.service.execute(doc.TEAM, {"key": self.settings.team})
            teams = data["teams"]["nodes"]
            if not teams:
                raise NotFoundError(
                    f"Linear has no team with key {self.settings.team!r}",
                    hint="set [tracker.linear] team to a team key (the prefix of its issue ids)",
                )
            self._team_id = teams[0]["id"]
            self._states = sorted(teams[0]["states"]["nodes"], key=lambda s: s["position"])
        return self._states

    def state_name(self, state: str) -> str:
        """agentctl's name for a state → the team's name from config; others pass through."""
        key = " ".join(state.replace("_", " ").replace("-", " ").split()).lower()
        setting = CANONICAL.get(key)
        named = getattr(self.settings, setting) if setting else None
        return str(named) if named else state

    def state_names(self) -> builtins.list[str]:
        """Every workflow state of the team, in Linear's order (``tickets list --state all``)."""
        return [str(s["name"]) for s in self.team_states()]

    def viewer(self) -> dict[str, Any]:
        return dict(self.service.execute(doc.VIEWER)["viewer"])

    # -- internals --------------------------------------------------------------------

    def _state(self, state: str) -> dict[str, Any]:
        name = self.state_name(state)
        states = self.team_states()
        for found in states:
            if found["name"].lower() == name.lower():
                return found
        raise UsageError(
            f"team {self.settings.team} has no workflow state {name!r}",
            hint=f"its states: {', '.join(s['name'] for s in states)}; "
            "set the *_state names in [tracker.linear]",
        )

    def _blocked_label(self, team_id: str) -> str:
        """The id of the label the team's issues can carry: the team's own or a workspace
        label; made for the team when there is neither."""
        if team_id in self._labels:
            return self._labels[team_id]
        data = self.service.execute(doc.LABELS, {"name": BLOCKED_LABEL})
        usable = [
            node
            for node in data["issueLabels"]["nodes"]
            if node.get("team") is None or node["team"]["id"] == team_id
        ]
        if usable:
            label_id = str(usable[0]["id"])
        else:
            payload = {
                "name": BLOCKED_LABEL,
                "teamId": team_id,
                "color": BLOCKED_COLOR,
                "description": "parked by agentctl after failed attempts: a person decides "
                "(agentctl tickets retry, or move the issue back to the ready state)",
            }
            created = self.service.execute(doc.LABEL_CREATE, {"input": payload})
            result = created["issueLabelCreate"]
            if not result.get("success"):
                raise ServiceRejectedError(
                    f"the label {BLOCKED_LABEL} was not created", service=SERVICE
                )
            label_id = str(result["issueLabel"]["id"])
        self._labels[team_id] = label_id
        return label_id

    def _issue(self, ticket_id: str) -> dict[str, Any]:
        try:
            data = self.service.execute(doc.ISSUE, {"id": ticket_id.strip()})
        except ServiceRejectedError as exc:
            if isinstance(exc, ServiceAuthError) or "not found" not in exc.message.lower():
                raise
            raise NotFoundError(
                f"no Linear issue {ticket_id!r}", hint="see `agentctl tickets list`"
            ) from None
        issue = data.get("issue")
        if not issue:
            raise NotFoundError(
                f"no Linear issue {ticket_id!r}", hint="see `agentctl tickets list`"
            )
        self._uuids[issue["identifier"]] = issue["id"]
        return dict(issue)

    def _uuid(self, ticket_id: str) -> str:
        key = ticket_id.strip().upper()
        if key not in self._uuids:
            self._issue(key)
        return self._uuids.get(key) or self._uuids[self._issue(key)["identifier"]]

    def _ticket(self, node: Mapping[str, Any]) -> Ticket:
        self._uuids[node["identifier"]] = node["id"]
        comments = node.get("comments") or {}
        return Ticket(
            id=node["identifier"],
            key=node["identifier"],
            title=node["title"],
            description=node.get("description") or "",
            state=node["state"]["name"],
            labels=tuple(label["name"] for label in node["labels"]["nodes"]),
            url=node.get("url") or "",
            comments=tuple(c.get("body") or "" for c in comments.get("nodes", ())),
            closed=node["state"]["type"] in CLOSED_TYPES,
        )


def _blocked_label_id(issue: Mapping[str, Any]) -> str | None:
    for label in issue["labels"]["nodes"]:
        if str(label["name"]).lower() == BLOCKED_LABEL:
            return str(label["id"])
    return None


def _number(identifier: str) -> int:
    digits = identifier.rpartition("-")[2]
    return int(digits) if digits.isdigit() else 0
