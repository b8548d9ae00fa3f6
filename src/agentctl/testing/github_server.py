"""A local GitHub for tests of agentctl's GitHub forge: GraphQL API v4 plus git over HTTP.

GraphQL documents are executed against GitHub's published schema (see
``GraphQLServer``), so a field GitHub lacks fails here as it would there; the
answers come from real bare repositories under ``root/<owner>/<name>.git``, which
the same port also serves over git's smart HTTP protocol. A test pushes a branch
with the real git client, opens a pull request through the real GraphQL document,
and the merge it asks for is a real commit on the bare repository's base branch.

What GitHub decides and this server reproduces: the error shapes (``type`` at the
top level of each error, validation errors with ``extensions.code`` and no
``data``), 401 "Bad credentials" outside GraphQL, the rate-limit headers, the
refusals a forge client must handle (duplicate PR, self-approval, stale
``expectedHeadOid``, conflicts) and live ``headRefOid``/``mergeable`` computed
from the bare repository, so a head moved behind the client's back is seen.

Usage::

    with GitHubServer(schema, tmp_path / "gh") as server:
        server.add_repo("acme", "app", source=repo)
        git push server.remote_url("acme", "app") ...   # Basic auth, password = token
        ... GraphQL at server.graphql_url with "Authorization: bearer <token>" ...
        assert server.pr(1)["state"] == "MERGED"

This module is the HTTP face (auth, faults, rate limits, error shapes, git HTTP, test
helpers); the bare repositories are in ``github_repos``, the objects GraphQL resolves in
``github_views``, and Query, Mutation and the pull-request rules in ``github_api``.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.testing.git_http import GitHttpBackend, GitRequest
from agentctl.testing.github_api import RATE_LIMIT, Root
from agentctl.testing.github_repos import BareRepos
from agentctl.testing.github_views import GitHubError
from agentctl.testing.graphql_server import GraphQLServer, Headers, Recorded, Reply

if TYPE_CHECKING:
    from graphql import ExecutionResult, GraphQLError

    from agentctl.testing.llm_http import Handler

__all__ = ["GitHubError", "GitHubServer", "GitRequest"]

RATE_WINDOW = 3600
STATUS_STATES = frozenset({"SUCCESS", "PENDING", "FAILURE", "ERROR", "EXPECTED"})
BAD_CREDENTIALS = {
    "message": "Bad credentials",
    "documentation_url": "https://docs.github.com/graphql",
    "status": "401",
}
INTERNAL_ERROR = (
    "Something went wrong while executing your query. This may be the result of a timeout, "
    "or it could be a GitHub bug. Please include `{}` when reporting this issue."
)


# -- the server ---------------------------------------------------------------------


class GitHubServer(GraphQLServer):
    """GitHub's GraphQL API and git smart HTTP for the repositories under ``root``.

    Faults (``inject(name, times)``): ``rate_limited`` (200, RATE_LIMITED, remaining 0),
    ``rate_limit`` (the 2026 ``RATE_LIMIT``/``graphql_rate_limit`` shape), ``secondary``
    (403 with ``retry-after: 1``), ``bad_gateway`` (502, text) and ``auth`` (401).
    """

    def __init__(
        self,
        schema_path: str | Path,
        root: Path,
        *,
        token: str = "ghp_test",
        login: str = "agentctl-bot",
        allow_self_review: bool = False,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(schema_path)
        self.git_root = Path(root).resolve()
        self.git_root.mkdir(parents=True, exist_ok=True)
        self._token = token
        self.login = login
        self.allow_self_review = allow_self_review
        self.clock: Callable[[], float] = clock or time.time
        self._git_http = GitHttpBackend(self.git_root, token)
        self._used = 0
        self._reset_at = self.clock() + RATE_WINDOW
        self._store = BareRepos(self.git_root, self.clock)
        self._root = Root(self, self._store)

    # -- public helpers ---------------------------------------------------------------

    @property
    def git_requests(self) -> list[GitRequest]:
        """Every git HTTP request (method, path, authorised, status); never credentials."""
        return self._git_http.requests

    def add_repo(
        self,
        owner: str,
        name: str,
        *,
        source: Path | None = None,
        default_branch: str = "main",
    ) -> Path:
        """Create ``root/owner/name.git`` (bare); push every branch and tag of ``source``."""
        with self._lock:
            return self._store.add(owner, name, source=source, default_branch=default_branch)

    def remote_url(self, owner: str, name: str) -> str:
        return f"{self.url}/{owner}/{name}.git"

    def head(self, owner: str, name: str, branch: str) -> str | None:
        """The branch's sha in the bare repository, None when it does not exist."""
        with self._lock:
            self._store.fresh()
            return self._store.rev(self._store.repo(owner, name), branch)

    def commit_to_branch(
        self, owner: str, name: str, branch: str, files: dict[str, str], message: str
    ) -> str:
        """Commit ``files`` on top of ``branch`` straight in the bare repo ("someone pushed").

        A missing branch starts from the default branch.
        """
        with self._lock:
            self._store.fresh()
            return self._store.commit_files(self._store.repo(owner, name), branch, files, message)

    def set_status(self, owner: str, name: str, sha: str, state: str) -> None:
        """The ``statusCheckRollup.state`` of a commit (a branch name is resolved first)."""
        if state not in STATUS_STATES:
            raise ValueError(f"state must be one of {sorted(STATUS_STATES)}, not {state!r}")
        with self._lock:
            self._store.fresh()
            repo = self._store.repo(owner, name)
            oid = sha if re.fullmatch(r"[0-9a-f]{40}", sha) else self._store.rev(repo, sha)
            if oid is None:
                raise ValueError(f"{sha!r} is neither a sha nor a branch of {repo.full_name}")
            repo.statuses[oid] = state

    def open_pr_as(
        self,
        owner: str,
        name: str,
        head: str,
        base: str,
        title: str,
        author: str = "someone",
        *,
        body: str = "",
    ) -> int:
        """Open a pull request "by hand" as another user; returns its number."""
        with self._lock:
            self._store.fresh()
            repo = self._store.repo(owner, name)
            pr = self._root.create_pr(
                repo, head=head, base=base, title=title, body=body, draft=False, author=author
            )
            return pr.number

    def pr(self, number: int, owner: str | None = None, name: str | None = None) -> dict[str, Any]:
        """A snapshot of a pull request for assertions (owner/name optional with one repo)."""
        with self._lock:
            self._store.fresh()
            repo = self._store.repo(owner, name)
            pr = repo.prs.get(number)
            if pr is None:
                raise KeyError(f"{repo.full_name} has no pull request #{number}")
            return {
                "number": pr.number,
                "state": pr.state,
                "head": pr.head,
                "base": pr.base,
                "head_oid": self._store.head_oid(pr),
                "merge_commit": pr.merge_commit,
                "title": pr.title,
                "body": pr.body,
                "author": pr.author,
                "draft": pr.draft,
                "reviews": [
                    {"state": r.state, "body": r.body, "commit": r.commit, "author": r.author}
                    for r in pr.reviews
                ],
                "comments": [c.body for c in pr.comments],
                "merge_method": pr.merge_method,
            }

    # -- GraphQLServer hooks --------------------------------------------------------

    def authenticate(self, headers: dict[str, str]) -> Reply | None:
        """Check the token, then charge the request (a refused one costs nothing)."""
        scheme, _, token = headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() not in ("bearer", "token") or token.strip() != self._token:
            return Reply(401, BAD_CREDENTIALS)
        with self._lock:
            self._roll_window()
            self._used += 1
        return None

    def fault(self, name: str) -> Reply:
        exhausted = [("x-ratelimit-remaining", "0")]
        if name == "rate_limited":
            message = "API rate limit exceeded for user ID 1."
            return Reply(200, {"errors": [{"type": "RATE_LIMITED", "message": message}]}, exhausted)
        if name == "rate_limit":
            error = {
                "type": "RATE_LIMIT",
                "code": "graphql_rate_limit",
                "message": "API rate limit exceeded",
            }
            return Reply(200, {"errors": [error]}, exhausted)
        if name == "secondary":
            message = (
                "You have exceeded a secondary rate limit. "
                "Please wait a few minutes before you try again."
            )
            return Reply(403, {"message": message}, [("retry-after", "1")])
        if name == "bad_gateway":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
            return Reply(502, page, [("content-type", "text/html")])
        if name == "auth":
            return Reply(401, BAD_CREDENTIALS)
        return super().fault(name)

    def root(self) -> Any:
        return self._root

    def before_execute(self, record: Recorded) -> None:
        self._store.fresh()  # each request reads the refs anew, once

    def headers(self, record: Recorded, reply: Reply) -> Headers:
        used, remaining, reset = self._rate_state()
        return [
            ("x-ratelimit-limit", str(RATE_LIMIT)),
            ("x-ratelimit-remaining", str(remaining)),
            ("x-ratelimit-used", str(used)),
            ("x-ratelimit-reset", str(int(reset))),
            ("x-ratelimit-resource", "graphql"),
            ("x-github-request-id", _request_id()),
            ("x-github-media-type", "github.v4; format=json"),
        ]

    def render(self, result: ExecutionResult, *, validation: bool) -> Reply:
        errors = list(result.errors or [])
        if validation or (result.data is None and errors and all(e.path is None for e in errors)):
            # Unparsable or invalid documents and bad variables: no data key at all.
            return Reply(200, {"errors": [_validation_error(e) for e in errors]})
        body: dict[str, Any] = {"data": result.data}
        if errors:
            body["errors"] = [self._execution_error(e) for e in errors]
        return Reply(200, body)

    def other(self, handler: Handler) -> None:
        path = handler.path.split("?", 1)[0]
        if re.match(r"^/[^/]+/[^/]+\.git(/|$)", path):
            try:
                self._git_http.handle(handler)
            except OSError:
                raise  # the client went away; the base class closes the connection
            except Exception as exc:
                with self._lock:
                    self.failures.append(f"git http error: {exc!r}")
                handler.close_connection = True
                handler.send_whole(500, [("content-type", "text/plain")], b"git http error\n")
            return
        body = b'{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}'
        handler.send_whole(404, [("content-type", "application/json; charset=utf-8")], body)

    # -- internals: errors and rate limits -----------------------------------------

    def _execution_error(self, error: GraphQLError) -> dict[str, Any]:
        formatted = error.formatted
        out: dict[str, Any] = {}
        original = error.original_error
        if isinstance(original, GitHubError):
            out["type"] = original.type
        if formatted.get("path") is not None:
            out["path"] = formatted["path"]
        if formatted.get("locations") is not None:
            out["locations"] = formatted["locations"]
        if isinstance(original, GitHubError):
            out["message"] = original.message
        else:
            # Anything else is this fake failing (a bug, or a field it does not implement).
            with self._lock:
                self.failures.append(f"{error.message} at {formatted.get('path')}")
            out["message"] = (
                INTERNAL_ERROR.format(_request_id()) if original is not None else error.message
            )
        return out

    def _roll_window(self) -> None:
        now = self.clock()
        if now >= self._reset_at:
            self._used = 0
            self._reset_at = now + RATE_WINDOW

    def _rate_state(self) -> tuple[int, int, float]:
        """(used, remaining, reset epoch seconds) of the current window."""
        with self._lock:
            return self._used, max(0, RATE_LIMIT - self._used), self._reset_at


def _request_id() -> str:
    parts = (secrets.token_hex(2), secrets.token_hex(2), secrets.token_hex(3))
    return ":".join(p.upper() for p in (*parts, secrets.token_hex(3), secrets.token_hex(4)))


_UNDEFINED_FIELD = re.compile(r"Cannot query field '([^']+)' on type '([^']+)'")
_UNKNOWN_ARGUMENT = re.compile(r"Unknown argument '([^']+)' on field '([^'.]+)\.([^']+)'")
_UNKNOWN_TYPE = re.compile(r"Unknown type '([^']+)'")
_MISSING_ARGUMENT = re.compile(r"Field '([^']+)' argument '([^']+)' of type '[^']+' is required")


def _validation_error(error: GraphQLError) -> dict[str, Any]:
    """GitHub's wording and ``extensions.code`` for a document graphql-core rejected."""
    message = error.message
    extensions: dict[str, Any]
    if match := _UNDEFINED_FIELD.search(message):
        field_name, type_name = match.groups()
        message = f"Field '{field_name}' doesn't exist on type '{type_name}'"
        extensions = {"code": "undefinedField", "typeName": type_name, "fieldName": field_name}
    elif match := _UNKNOWN_ARGUMENT.search(message):
        argument, type_name, field_name = match.groups()
        message = f"Field '{field_name}' doesn't accept argument '{argument}'"
        extensions = {
            "code": "argumentNotAccepted",
            "name": field_name,
            "typeName": "Field",
            "argumentName": argument,
        }
    elif match := _UNKNOWN_TYPE.search(message):
        message = f"No such type {match.group(1)}, so it can't be a fragment condition"
        extensions = {"code": "undefinedType", "typeName": match.group(1)}
    elif match := _MISSING_ARGUMENT.search(message):
        field_name, argument = match.groups()
        message = f"Field '{field_name}' is missing required arguments: {argument}"
        extensions = {
            "code": "missingRequiredArguments",
            "className": "Field",
            "name": field_name,
            "arguments": argument,
        }
    elif message.startswith("Syntax Error"):
        extensions = {"code": "parseError"}
    elif message.startswith("Variable"):
        extensions = {"code": "variableMismatch"}
    else:
        extensions = {"code": "validationError"}
    out: dict[str, Any] = {}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    out["message"] = message
    out["extensions"] = extensions
    return out
