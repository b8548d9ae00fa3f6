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

This module is the HTTP face (auth, faults, budgets, error rendering, test helpers);
the workspace's entities are in ``linear_model``, the store and its resolvers in
``linear_store``, filters and pagination in ``linear_filters``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.testing.graphql_server import GraphQLServer, Headers, Recorded, Reply
from agentctl.testing.linear_filters import DEFAULT_PAGE
from agentctl.testing.linear_model import (
    Issue,
    Label,
    LinearError,
    State,
    Team,
    invalid,
    not_found,
)
from agentctl.testing.linear_store import Workspace

if TYPE_CHECKING:
    from graphql import DocumentNode, ExecutionResult, GraphQLError

__all__ = [
    "AUTH_BODY",
    "INTERNAL_BODY",
    "RATELIMITED_BODY",
    "LinearError",
    "LinearServer",
    "not_found",
]

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


def _integral(value: Any) -> Any:
    """JSON as JavaScript writes it: ``Float`` 3.0 goes out as ``3``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
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
        self._store = Workspace(self.clock, self._note)
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

    def add_label(self, name: str, team: str | None = None) -> dict[str, Any]:
        """A label as made in Linear's settings: of ``team`` (a key), or workspace-wide."""
        with self._lock:
            owner = self._store.team(team) if team else None
            return _label_dict(self._store.create_label(name, owner))

    def labels(self) -> list[dict[str, Any]]:
        """Every label: ``{"id","name","team"}`` (``team``: a key, None workspace-wide)."""
        with self._lock:
            return [_label_dict(label) for label in self._store.labels]

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

    def _issue(self, ref: str) -> Issue:
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


def _state_named(team: Team, name: str) -> State:
    for state in team.states:
        if state.name.lower() == name.lower():
            return state
    raise ValueError(f"team {team.key} has no state {name!r}")


def _label_dict(label: Label) -> dict[str, Any]:
    return {"id": label.id, "name": label.name, "team": label.team.key if label.team else None}


def _team_dict(team: Team) -> dict[str, Any]:
    states = [
        {"id": s.id, "name": s.name, "type": s.type, "position": s.position} for s in team.states
    ]
    return {"id": team.id, "key": team.key, "name": team.name, "states": states}
