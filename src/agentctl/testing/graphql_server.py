"""A GraphQL server that *executes* documents against a real service's schema.

The fake Linear and GitHub servers build on this. Documents are parsed, validated
and executed by graphql-core against the schema SDL the real service publishes, so
a query that asks for a field the service does not have fails here exactly as it
would there. Resolvers are plain Python over an in-memory store; each subclass
decides auth, the error shapes and the rate-limit headers of its service.

A request goes: ``authenticate`` (the service's own refusals), then an injected
fault if one is queued, then ``execute`` (with ``field_resolver`` and ``before_execute``
for the subclass) and ``render``; ``headers`` adds the service's headers to whatever
reply came out. Faults are queued with ``inject(name, times=1)`` and consumed by the
next requests that get past ``authenticate`` (``fault(...)`` in the subclass renders
them); every request is kept in ``requests`` for tests that count calls or read variables.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.testing.loopback import LoopbackServer

if TYPE_CHECKING:
    from graphql import DocumentNode, ExecutionResult, GraphQLFieldResolver, GraphQLSchema

    from agentctl.testing.llm_http import Handler

Headers = list[tuple[str, str]]


@lru_cache(maxsize=4)
def load_schema(path: str) -> GraphQLSchema:
    """Build a schema from SDL once per process (about a second each for the real ones).

    GitHub's SDL trips two strict checks GitHub itself does not apply, hence
    ``assume_valid_sdl`` and the cleared validation errors (see conformance/README).
    """
    from graphql import build_schema

    schema = build_schema(Path(path).read_text(encoding="utf-8"), assume_valid_sdl=True)
    schema._validation_errors = []
    return schema


@dataclass
class Recorded:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]  # lower-cased names
    query: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    operation: str | None = None  # operationName, else the name of the document's operation
    mutation: bool = False
    status: int = 0
    # The parsed document once it validated (None if the request never reached execution),
    # so reply headers can describe the query (Linear's X-Complexity).
    document: DocumentNode | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any  # JSON-able, or bytes sent as they are
    headers: Headers = field(default_factory=list)  # override same-named ``headers()`` ones


class GraphQLServer(LoopbackServer):
    """Serves ``POST <graphql_path>``; anything else goes to ``other`` (404 by default)."""

    graphql_path = "/graphql"
    # Resolves every field (graphql-core's ``field_resolver``); None keeps graphql-core's
    # default, which reads the source's attribute or key and calls it when callable.
    field_resolver: GraphQLFieldResolver | None = None

    def __init__(self, schema_path: str | Path) -> None:
        super().__init__()
        self.schema = load_schema(str(schema_path))
        self._requests: list[Recorded] = []
        self._faults: deque[str] = deque()
        self.failures: list[str] = []  # server-side bugs, for tests to assert empty

    # -- the public surface -----------------------------------------------------

    @property
    def graphql_url(self) -> str:
        return self.url + self.graphql_path

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def inject(self, fault: str, times: int = 1) -> None:
        """Answer the next ``times`` GraphQL requests with ``fault`` (see the subclass)."""
        with self._lock:
            self._faults.extend([fault] * times)

    # -- for subclasses ---------------------------------------------------------

    def authenticate(self, headers: dict[str, str]) -> Reply | None:
        """A reply refusing the request (credentials, an empty budget), or None to let it
        through. Runs before an injected fault is taken, so a refused request leaves it queued.
        """
        return None

    def fault(self, name: str) -> Reply:
        raise ValueError(f"{type(self).__name__} has no fault {name!r}")

    @abstractmethod
    def root(self) -> Any:
        """The root value: an object whose attributes resolve Query and Mutation fields."""

    def before_execute(self, record: Recorded) -> None:
        """Called under the lock just before each execution: reset per-request caches here."""

    def context(self, headers: dict[str, str]) -> Any:
        return {"headers": headers}

    def render(self, result: ExecutionResult, *, validation: bool) -> Reply:
        """Turn graphql-core's result into the service's HTTP reply."""
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        if not validation:
            body["data"] = result.data
        return Reply(200, body)

    def headers(self, record: Recorded, reply: Reply) -> Headers:
        """Headers on every GraphQL reply (rate limits, request ids); ``reply.headers``
        override same-named ones, so a fault can say ``remaining: 0`` or its content type."""
        return []

    def other(self, handler: Handler) -> None:
        handler.send_whole(404, [("content-type", "text/plain")], b"not found\n")

    def execute(self, record: Recorded, operation_name: str | None, ctx: Any) -> Reply:
        """Parse, validate and run ``record.query``; ``operation_name`` is the one sent."""
        from graphql import parse, validate
        from graphql.error import GraphQLError
        from graphql.execution import ExecutionResult, execute

        try:
            document = parse(record.query)
        except GraphQLError as exc:
            return self.render(ExecutionResult(None, [exc]), validation=True)
        errors = validate(self.schema, document)
        if errors:
            return self.render(ExecutionResult(None, errors), validation=True)
        record.document = document
        with self._lock:  # one request at a time touches the store
            self.before_execute(record)
            result = execute(
                self.schema,
                document,
                root_value=self.root(),
                context_value=ctx,
                variable_values=record.variables,
                operation_name=operation_name,
                field_resolver=self.field_resolver,
            )
        assert not hasattr(result, "__await__"), "resolvers here are synchronous"
        return self.render(result, validation=False)

    # -- request handling -------------------------------------------------------

    def _dispatch(self, handler: Handler) -> None:
        path = handler.path.split("?", 1)[0]
        if path != self.graphql_path or handler.command != "POST":
            try:
                self.other(handler)
            except OSError:
                handler.close_connection = True
            return
        try:
            self._answer(handler)
        except OSError:
            handler.close_connection = True
        except Exception as exc:
            with self._lock:
                self.failures.append(f"server error: {exc!r}")
            handler.send_whole(500, [("content-type", "text/plain")], repr(exc).encode())

    def _answer(self, handler: Handler) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        raw = handler.read_body()
        record = Recorded(path=handler.path, headers=headers)
        try:
            payload = json.loads(raw or b"{}")
            record.query = str(payload.get("query") or "")
            record.variables = dict(payload.get("variables") or {})
            record.operation = payload.get("operationName") or _operation_name(record.query)
            record.mutation = record.query.lstrip().startswith("mutation")
        except (ValueError, AttributeError):
            payload = None
        with self._lock:
            self._requests.append(record)
        reply = self.authenticate(headers)
        if reply is None:
            with self._lock:
                fault = self._faults.popleft() if self._faults else None
            if fault is not None:
                reply = self.fault(fault)
        if reply is None and payload is None:
            reply = Reply(400, {"errors": [{"message": "Body is not valid JSON"}]})
        if reply is None:
            reply = self.execute(record, payload.get("operationName"), self.context(headers))
        record.status = reply.status
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        base = [("content-type", "application/json; charset=utf-8")]
        handler.send_whole(
            reply.status, _merge(base, self.headers(record, reply), reply.headers), body
        )


def _merge(*groups: Headers) -> Headers:
    """Later groups win: a name they set drops every earlier header of that name (any case)."""
    merged: Headers = []
    for group in groups:
        names = {name.lower() for name, _ in group}
        merged = [(name, value) for name, value in merged if name.lower() not in names]
        merged.extend(group)
    return merged


def _operation_name(query: str) -> str | None:
    words = query.replace("(", " ").replace("{", " ").split()
    if len(words) >= 2 and words[0] in ("query", "mutation"):
        return words[1]
    return None
