"""The fake GitHub: agentctl's own GraphQL documents through gql, and real git over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError, TransportServerError
from gql.transport.httpx import HTTPXTransport

from agentctl.forges.github import documents as docs
from agentctl.testing.github_server import GitHubServer
from tests.conftest import git

TOKEN = "ghp_test"
OWNER, NAME = "acme", "app"


# -- helpers ------------------------------------------------------------------------


@pytest.fixture
def server(github_schema: Path, tmp_path: Path, repo: Path) -> Iterator[GitHubServer]:
    with GitHubServer(github_schema, tmp_path / "github", clock=lambda: 1_800_000_000.0) as srv:
        srv.add_repo(OWNER, NAME, source=repo)
        yield srv
    assert srv.failures == []


def client(server: GitHubServer, auth: str = f"bearer {TOKEN}") -> Client:
    # verify=False: plain http anyway, and it skips loading the CA bundle (~30 ms a request).
    transport = HTTPXTransport(
        url=server.graphql_url, headers={"Authorization": auth}, verify=False
    )
    return Client(transport=transport)


def run(server: GitHubServer, document: str, **variables: Any) -> dict[str, Any]:
    result: dict[str, Any] = client(server).execute(
        GraphQLRequest(document, variable_values=variables)
    )
    return result


def refused(server: GitHubServer, document: str, **variables: Any) -> TransportQueryError:
    with pytest.raises(TransportQueryError) as caught:
        client(server).execute(GraphQLRequest(document, variable_values=variables))
    return caught.value


def raw(
    server: GitHubServer, query: str, auth: str | None = f"bearer {TOKEN}"
) -> tuple[int, dict[str, str], bytes]:
    """POST a query without gql, to see the status, headers and exact body."""
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    request = urllib.request.Request(
        server.graphql_url, data=json.dumps({"query": query}).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def git_env(tmp_path: Path, token: str | None) -> dict[str, str]:
    """Environment for git over HTTP: GIT_ASKPASS answers from $FAKE_GH_TOKEN, never a prompt."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SSH_ASKPASS"))}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    if token is not None:
        askpass = tmp_path / "askpass.sh"
        askpass.write_text(
            '#!/bin/sh\ncase "$1" in Username*) echo x-access-token ;; '
            '*) echo "$FAKE_GH_TOKEN" ;; esac\n'
        )
        askpass.chmod(0o755)
        env["GIT_ASKPASS"] = str(askpass)
        env["FAKE_GH_TOKEN"] = token
    return env


def git_http(
    server: GitHubServer, cwd: Path, *args: str, token: str | None = TOKEN
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "credential.helper=", *args],
        cwd=cwd,
        env=git_env(cwd.parent, token),
        capture_output=True,
        text=True,
        timeout=20,
    )


def branch(
    repo: Path, name: str, files: dict[str, str], *, start: str = "main", message: str = ""
) -> str:
    git(repo, "checkout", "-q", "-B", name, start)
    for path, content in files.items():
        (repo / path).write_text(content)
        git(repo, "add", path)
    git(repo, "commit", "-q", "-m", message or f"change {', '.join(files)}")
    return git(repo, "rev-parse", "HEAD")


def push_branch(server: GitHubServer, repo: Path, name: str, files: dict[str, str]) -> str:
    sha = branch(repo, name, files)
    done = git_http(server, repo, "push", "-q", server.remote_url(OWNER, NAME), name)
    assert done.returncode == 0, done.stderr
    return sha


def repo_id(server: GitHubServer) -> str:
    return str(run(server, docs.REPOSITORY, owner=OWNER, name=NAME)["repository"]["id"])


def create_pr(server: GitHubServer, head: str, title: str = "Add a") -> dict[str, Any]:
    data = run(
        server,
        docs.CREATE_PR,
        input={
            "repositoryId": repo_id(server),
            "baseRefName": "main",
            "headRefName": head,
            "title": title,
            "body": "Closes ENG-7",
        },
    )
    pr: dict[str, Any] = data["createPullRequest"]["pullRequest"]
    return pr


def error(exc: TransportQueryError) -> dict[str, Any]:
    assert exc.errors is not None
    first: dict[str, Any] = exc.errors[0]
    return first


# -- git smart HTTP -----------------------------------------------------------------


def test_push_with_credentials_reaches_the_bare_repo(server: GitHubServer, repo: Path) -> None:
    sha = push_branch(server, repo, "feat", {"a.txt": "a\n"})

    assert server.head(OWNER, NAME, "feat") == sha
    posts = [r for r in server.git_requests if r.method == "POST"]
    assert [(r.path, r.authorised, r.status) for r in posts] == [
        (f"/{OWNER}/{NAME}.git/git-receive-pack", True, 200)
    ]
    assert TOKEN not in repr(server.git_requests)


@pytest.mark.parametrize("token", [None, "ghp_wrong"])
def test_push_without_the_token_is_refused_with_401(
    server: GitHubServer, repo: Path, token: str | None
) -> None:
    branch(repo, "feat", {"a.txt": "a\n"})

    done = git_http(server, repo, "push", server.remote_url(OWNER, NAME), "feat", token=token)

    assert done.returncode != 0
    assert server.head(OWNER, NAME, "feat") is None
    assert server.git_requests, "git never reached the server"
    assert all(not r.authorised and r.status == 401 for r in server.git_requests)


def test_401_asks_for_basic_auth(server: GitHubServer) -> None:
    url = server.remote_url(OWNER, NAME) + "/info/refs?service=git-upload-pack"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=5)
    assert caught.value.code == 401
    assert caught.value.headers["WWW-Authenticate"] == 'Basic realm="GitHub"'


def test_large_push_with_a_chunked_body(server: GitHubServer, repo: Path) -> None:
    sha = branch(repo, "big", {"big.bin": os.urandom(48_000).hex()})

    done = git_http(
        server, repo, "-c", "http.postBuffer=4096", "push", server.remote_url(OWNER, NAME), "big"
    )

    assert done.returncode == 0, done.stderr
    assert server.head(OWNER, NAME, "big") == sha
    assert any(r.chunked and r.status == 200 for r in server.git_requests if r.method == "POST")


def test_clone_over_http(server: GitHubServer, repo: Path, tmp_path: Path) -> None:
    done = git_http(server, tmp_path, "clone", "-q", server.remote_url(OWNER, NAME), "copy")

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "copy" / "README.md").read_text() == "# demo\n"
    assert git(tmp_path / "copy", "rev-parse", "HEAD") == git(repo, "rev-parse", "main")


def test_gzipped_fetch_negotiation(server: GitHubServer, repo: Path, tmp_path: Path) -> None:
    stream = "".join(
        f"commit refs/heads/topic-{i:02d}\ncommitter T <t@x.invalid> 0 +0000\ndata 3\nc{i:02d}\n"
        for i in range(30)
    )
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=stream, text=True, check=True)
    server.add_repo(OWNER, "many", source=repo)

    done = git_http(
        server,
        tmp_path,
        "-c",
        "protocol.version=0",  # one want line per branch: a request body big enough to gzip
        "clone",
        "-q",
        "--mirror",
        server.remote_url(OWNER, "many"),
        "mirror",
    )

    assert done.returncode == 0, done.stderr
    assert git(tmp_path / "mirror", "rev-parse", "topic-29") == server.head(
        OWNER, "many", "topic-29"
    )
    assert any(r.encoding == "gzip" and r.status == 200 for r in server.git_requests)


# -- auth, headers and faults ---------------------------------------------------------


def test_viewer_and_rate_limit_headers(server: GitHubServer) -> None:
    gh = client(server)
    assert gh.execute(GraphQLRequest(docs.VIEWER)) == {"viewer": {"login": "agentctl-bot"}}
    first = dict(gh.transport.response_headers)
    gh.execute(GraphQLRequest(docs.VIEWER))
    second = dict(gh.transport.response_headers)

    assert first["x-ratelimit-limit"] == "5000"
    assert int(second["x-ratelimit-remaining"]) == int(first["x-ratelimit-remaining"]) - 1
    assert int(second["x-ratelimit-used"]) == int(first["x-ratelimit-used"]) + 1
    assert first["x-ratelimit-reset"] == str(1_800_000_000 + 3600)  # epoch seconds
    assert first["x-ratelimit-resource"] == "graphql"
    assert first["x-github-request-id"] != second["x-github-request-id"]


@pytest.mark.parametrize("auth", [f"token {TOKEN}", f"Bearer {TOKEN}", f"BEARER {TOKEN}"])
def test_token_schemes_accepted(server: GitHubServer, auth: str) -> None:
    result = client(server, auth).execute(GraphQLRequest(docs.VIEWER))
    assert result["viewer"]["login"] == "agentctl-bot"


@pytest.mark.parametrize("auth", ["bearer ghp_nope", TOKEN, None])
def test_bad_credentials_are_a_401_outside_graphql(server: GitHubServer, auth: str | None) -> None:
    status, _, body = raw(server, "{ viewer { login } }", auth=auth)
    assert status == 401
    assert json.loads(body) == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/graphql",
        "status": "401",
    }
    if auth is not None:
        with pytest.raises(TransportServerError) as caught:
            client(server, auth).execute(GraphQLRequest(docs.VIEWER))
        assert caught.value.code == 401


def test_rate_limited_fault(server: GitHubServer) -> None:
    server.inject("rate_limited")
    status, headers, body = raw(server, "{ viewer { login } }")
    assert status == 200
    assert headers["x-ratelimit-remaining"] == "0"
    assert json.loads(body) == {
        "errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."}]
    }
    status, headers, _ = raw(server, "{ viewer { login } }")  # consumed: back to normal
    assert status == 200 and headers["x-ratelimit-remaining"] != "0"


def test_rate_limit_2026_fault(server: GitHubServer) -> None:
    server.inject("rate_limit")
    exc = refused(server, docs.VIEWER)
    assert exc.errors == [
        {"type": "RATE_LIMIT", "code": "graphql_rate_limit", "message": "API rate limit exceeded"}
    ]


def test_secondary_rate_limit_fault(server: GitHubServer) -> None:
    server.inject("secondary")
    status, headers, body = raw(server, "{ viewer { login } }")
    assert status == 403
    assert headers["retry-after"] == "1"
    assert json.loads(body)["message"].startswith("You have exceeded a secondary rate limit.")


@pytest.mark.parametrize(("fault", "code"), [("bad_gateway", 502), ("auth", 401)])
def test_server_error_faults(server: GitHubServer, fault: str, code: int) -> None:
    server.inject(fault, times=2)
    for _ in range(2):
        with pytest.raises(TransportServerError) as caught:
            client(server).execute(GraphQLRequest(docs.VIEWER))
        assert caught.value.code == code
    assert run(server, docs.VIEWER)["viewer"]["login"] == "agentctl-bot"


def post(server: GitHubServer, query: str, auth: str = f"bearer {TOKEN}") -> httpx.Response:
    """The raw reply with every header line, repeated names included."""
    headers = {"Authorization": auth}
    return httpx.post(server.graphql_url, json={"query": query}, headers=headers, verify=False)


def test_bad_credentials_leave_the_fault_queued_and_cost_nothing(server: GitHubServer) -> None:
    server.inject("bad_gateway")

    refused = post(server, "{ viewer { login } }", auth="bearer ghp_nope")
    faulted = post(server, "{ viewer { login } }")
    served = post(server, "{ viewer { login } }")

    assert refused.status_code == 401
    assert refused.headers["x-ratelimit-used"] == "0"
    assert faulted.status_code == 502
    assert faulted.headers.get_list("content-type") == ["text/html"]
    assert faulted.headers["x-ratelimit-used"] == "1"
    assert served.status_code == 200
    assert served.headers["x-ratelimit-used"] == "2"


@pytest.mark.parametrize("fault", ["rate_limited", "rate_limit"])
def test_rate_limit_faults_say_remaining_once(server: GitHubServer, fault: str) -> None:
    server.inject(fault)
    reply = post(server, "{ viewer { login } }")

    assert reply.headers.get_list("x-ratelimit-remaining") == ["0"]
    names = [name.lower() for name, _ in reply.headers.multi_items()]
    assert len(names) == len(set(names)), names


def test_each_request_reads_the_refs_anew(server: GitHubServer, repo: Path) -> None:
    """A push between two queries (no helper call in between) shows in the second."""
    first = push_branch(server, repo, "feat", {"a.txt": "a\n"})
    create_pr(server, "feat")
    seen = run(server, docs.PULL_REQUEST, owner=OWNER, name=NAME, number=1)
    moved = branch(repo, "feat", {"b.txt": "b\n"}, start="feat")
    done = git_http(server, repo, "push", "-q", server.remote_url(OWNER, NAME), "feat")
    assert done.returncode == 0, done.stderr

    again = run(server, docs.PULL_REQUEST, owner=OWNER, name=NAME, number=1)

    assert seen["repository"]["pullRequest"]["headRefOid"] == first
    assert again["repository"]["pullRequest"]["headRefOid"] == moved


def test_undefined_field_is_a_validation_error(server: GitHubServer) -> None:
    status, _, body = raw(server, '{ repository(owner: "acme", name: "app") { nope } }')
    payload = json.loads(body)

    assert status == 200
    assert "data" not in payload
    [err] = payload["errors"]
    assert err["extensions"] == {
        "code": "undefinedField",
        "typeName": "Repository",
        "fieldName": "nope",
    }
    assert err["message"] == "Field 'nope' doesn't exist on type 'Repository'"
    assert err["locations"] == [{"line": 1, "column": 44}]


def test_syntax_error_has_a_code_and_no_data(server: GitHubServer) -> None:
    status, _, body = raw(server, "{ viewer { login }")
    payload = json.loads(body)
    assert status == 200 and "data" not in payload
    assert payload["errors"][0]["extensions"]["code"]


def test_bad_variables_have_no_data(server: GitHubServer) -> None:
    exc = refused(server, docs.PULL_REQUEST, owner=OWNER, name=NAME, number="one")
    assert exc.data is None
    assert error(exc)["extensions"]["code"]


def test_unimplemented_field_is_recorded_as_a_failure(server: GitHubServer) -> None:
    exc = refused(server, "query { viewer { createdAt } }")
    assert error(exc)["message"].startswith("Something went wrong while executing your query.")
    assert error(exc)["path"] == ["viewer", "createdAt"]
    [failure] = server.failures  # the fake lacks the field: a test can see why
    assert "User.createdAt" in failure
    server.failures.clear()


# -- repository and pull requests -------------------------------------------------------


def test_repository(server: GitHubServer) -> None:
    data = run(server, docs.REPOSITORY, owner=OWNER, name=NAME)
    assert data["repository"]["nameWithOwner"] == "acme/app"
    assert data["repository"]["defaultBranchRef"] == {"name": "main"}
    assert data["repository"]["id"].startswith("R_kgDO")


def test_missing_repository_is_not_found(server: GitHubServer) -> None:
    exc = refused(server, docs.REPOSITORY, owner="acme", name="nope")
    assert exc.data == {"repository": None}
    assert exc.errors == [
        {
            "type": "NOT_FOUND",
            "path": ["repository"],
            "locations": [{"line": 2, "column": 3}],
            "message": "Could not resolve to a Repository with the name 'acme/nope'.",
        }
    ]


def test_create_pr_then_duplicate_is_unprocessable(server: GitHubServer, repo: Path) -> None:
    sha = push_branch(server, repo, "feat", {"a.txt": "a\n"})

    pr = create_pr(server, "feat")

    assert pr["number"] == 1
    assert pr["state"] == "OPEN"
    assert pr["headRefOid"] == sha
    assert pr["mergeable"] == "MERGEABLE"
    assert pr["author"] == {"login": "agentctl-bot"}
    assert pr["url"] == "https://github.com/acme/app/pull/1"
    assert pr["commits"]["nodes"] == [{"commit": {"oid": sha, "statusCheckRollup": None}}]
    exc = refused(
        server,
        docs.CREATE_PR,
        input={"repositoryId": repo_id(server), "baseRefName": "main", "headRefName": "feat"}
        | {"title": "again"},
    )
    assert exc.data == {"createPullRequest": None}
    assert error(exc)["type"] == "UNPROCESSABLE"
    assert error(exc)["message"] == "A pull request already exists for acme:feat."
    assert error(exc)["path"] == ["createPullRequest"]


def test_create_pr_refusals(server: GitHubServer) -> None:
    base = {"repositoryId": repo_id(server), "baseRefName": "main", "title": "t"}
    missing = refused(server, docs.CREATE_PR, input=base | {"headRefName": "ghost"})
    assert error(missing)["message"] == (
        "Head sha can't be blank, Base sha can't be blank, No commits between main and ghost, "
        "Head ref must be a branch"
    )
    same = refused(server, docs.CREATE_PR, input=base | {"headRefName": "main"})
    assert error(same)["message"] == "No commits between main and main"
    unknown = refused(
        server, docs.CREATE_PR, input=base | {"repositoryId": "R_nope", "headRefName": "x"}
    )
    assert error(unknown)["type"] == "NOT_FOUND"


def test_pull_requests_filtered_by_head_and_state(server: GitHubServer, repo: Path) -> None:
    push_branch(server, repo, "feat", {"a.txt": "a\n"})
    push_branch(server, repo, "other", {"b.txt": "b\n"})
    mine = create_pr(server, "feat")
    theirs = server.open_pr_as(OWNER, NAME, "other", "main", "Their change")

    def numbers(**variables: Any) -> list[int]:
        data = run(
            server,
            docs.PULL_REQUESTS,
            owner=OWNER,
            name=NAME,
            first=10,
            direction="ASC",
            **variables,
        )
        return [pr["number"] for pr in data["repository"]["pullRequests"]["nodes"]]

    assert numbers() == [1, 2]
    assert numbers(head="feat") == [mine["number"]]
    assert numbers(head="other", states=["OPEN"]) == [theirs]
    assert numbers(head="feat", states=["MERGED", "CLOSED"]) == []
    run(server, docs.MERGE, input={"pullRequestId": mine["id"], "mergeMethod": "MERGE"})
    assert numbers(states=["MERGED"]) == [1]
    assert numbers(states=["OPEN"]) == [2]
    page = run(server, docs.PULL_REQUESTS, owner=OWNER, name=NAME, first=1, direction="ASC")
    info = page["repository"]["pullRequests"]["pageInfo"]
    assert info["hasNextPage"] is True
    rest = run(
        server,
        docs.PULL_REQUESTS,
        owner=OWNER,
        name=NAME,
        first=1,
        after=info["endCursor"],
        direction="ASC",
    )
    assert [pr["number"] for pr in rest["repository"]["pullRequests"]["nodes"]] == [2]
    assert rest["repository"]["pullRequests"]["pageInfo"]["hasNextPage"] is False


PRS_NEWEST_FIRST = """
query ($owner: String!, $name: String!) {
  repository(owner: $owner, name: $name) {
    newest: pullRequests(last: 1, orderBy: {field: CREATED_AT, direction: DESC}) {
      totalCount nodes { number } pageInfo { hasPreviousPage hasNextPage }
    }
    desc: pullRequests(first: 5, orderBy: {field: CREATED_AT, direction: DESC}) {
      edges { node { number } cursor }
    }
  }
}
"""


def test_pull_requests_descending_and_last(server: GitHubServer, repo: Path) -> None:
    for name in ("one", "two", "three"):
        push_branch(server, repo, name, {f"{name}.txt": name})
        server.open_pr_as(OWNER, NAME, name, "main", name)

    data = run(server, PRS_NEWEST_FIRST, owner=OWNER, name=NAME)["repository"]

    assert [e["node"]["number"] for e in data["desc"]["edges"]] == [3, 2, 1]
    assert data["newest"]["totalCount"] == 3
    assert data["newest"]["nodes"] == [{"number": 1}]  # last of the descending list
    assert data["newest"]["pageInfo"] == {"hasPreviousPage": True, "hasNextPage": False}


CLOSE = """
mutation ($id: ID!) {
  closePullRequest(input: {pullRequestId: $id}) { pullRequest { state closed } }
}
"""


def test_close_pull_request(server: GitHubServer, repo: Path) -> None:
    push_branch(server, repo, "feat", {"a.txt": "a\n"})
    pr = create_pr(server, "feat")

    closed = run(server, CLOSE, id=pr["id"])["closePullRequest"]["pullRequest"]

    assert closed == {"state": "CLOSED", "closed": True}
    exc = refused(server, docs.MERGE, input={"pullRequestId": pr["id"]})
    assert error(exc)["message"] == "Pull request is closed"
    again = create_pr(server, "feat", title="second try")  # only OPEN PRs count as duplicates
    assert again["number"] == 2


def test_pull_request_by_number_and_missing(server: GitHubServer, repo: Path) -> None:
    push_branch(server, repo, "feat", {"a.txt": "a\n"})
    create_pr(server, "feat")
    data = run(server, docs.PULL_REQUEST, owner=OWNER, name=NAME, number=1)
    assert data["repository"]["pullRequest"]["headRefName"] == "feat"
    node = run(
        server,
        "query ($id: ID!) { node(id: $id) { __typename ... on PullRequest { number } } }",
        id=data["repository"]["pullRequest"]["id"],
    )
    assert node == {"node": {"__typename": "PullRequest", "number": 1}}
    exc = refused(server, docs.PULL_REQUEST, owner=OWNER, name=NAME, number=9)
    assert error(exc)["type"] == "NOT_FOUND"
    assert exc.data == {"repository": {"pullRequest": None}}


def test_status_rollup_follows_set_status(server: GitHubServer, repo: Path) -> None:
    sha = push_branch(server, repo, "feat", {"a.txt": "a\n"})
    create_pr(server, "feat")
    server.set_status(OWNER, NAME, sha, "FAILURE")
    pr = run(server, docs.PULL_REQUEST, owner=OWNER, name=NAME, number=1)["repository"]
    assert pr["pullRequest"]["commits"]["nodes"][0]["commit"]["statusCheckRollup"] == {
        "state": "FAILURE"
    }
    with pytest.raises(ValueError):
        server.set_status(OWNER, NAME, sha, "GREEN")


# -- reviews and comments ---------------------------------------------------------------


REVIEW_DECISION = """
query ($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) { pullRequest(number: $number) { reviewDecision } }
}
"""


def test_self_review_rules(server: GitHubServer, repo: Path) -> None:
    sha = push_branch(server, repo, "feat", {"a.txt": "a\n"})
    pr = create_pr(server, "feat")

    approve = refused(server, docs.REVIEW, input={"pullRequestId": pr["id"], "event": "APPROVE"})
    assert error(approve)["type"] == "UNPROCESSABLE"
    assert error(approve)["message"] == "Can not approve your own pull request"
    changes = refused(
        server, docs.REVIEW, input={"pullRequestId": pr["id"], "event": "REQUEST_CHANGES"}
    )
    assert error(changes)["message"] == "Can not request changes on your own pull request"
    comment = run(
        server, docs.REVIEW, input={"pullRequestId": pr["id"], "event": "COMMENT", "body": "LGTM"}
    )["addPullRequestReview"]["pullRequestReview"]

    assert comment["state"] == "COMMENTED"
    assert comment["url"].startswith("https://github.com/acme/app/pull/1#pullrequestreview-")
    assert server.pr(1)["reviews"] == [
        {"state": "COMMENTED", "body": "LGTM", "commit": sha, "author": "agentctl-bot"}
    ]


def test_review_of_someone_elses_pr_and_decision(server: GitHubServer, repo: Path) -> None:
    push_branch(server, repo, "other", {"b.txt": "b\n"})
    number = server.open_pr_as(OWNER, NAME, "other", "main", "Their change")
    pr = run(server, docs.PULL_REQUEST, owner=OWNER, name=NAME, number=number)
    pr_id = pr["repository"]["pullRequest"]["id"]

    def decision() -> str:
        data = run(server, REVIEW_DECISION, owner=OWNER, name=NAME, number=number)
        return str(data["repository"]["pullRequest"]["reviewDecision"])

    assert decision() == "REVIEW_REQUIRED"
    run(server, docs.REVIEW, input={"pullRequestId": pr_id, "event": "REQUEST_CHANGES"})
    assert decision() == "CHANGES_REQUESTED"
    review = run(server, docs.REVIEW, input={"pullRequestId": pr_id, "event": "APPROVE"})
    assert review["addPullRequestReview"]["pullRequestReview"]["state"] == "APPROVED"
    assert decision() == "APPROVED"  # the latest review per author counts


def test_self_approval_when_allowed(github_schema: Path, tmp_path: Path, repo: Path) -> None:
    with GitHubServer(github_schema, tmp_path / "gh2", allow_self_review=True) as srv:
        srv.add_repo(OWNER, NAME, source=repo)
        push_branch(srv, repo, "feat", {"a.txt": "a\n"})
        pr = create_pr(srv, "feat")
        data = run(srv, docs.REVIEW, input={"pullRequestId": pr["id"], "event": "APPROVE"})
        assert data["addPullRequestReview"]["pullRequestReview"]["state"] == "APPROVED"
        after = run(srv, docs.PULL_REQUEST, owner=OWNER, name=NAME, number=1)
        reviews = after["repository"]["pullRequest"]["reviews"]["nodes"]
        assert [(r["state"], r["author"]["login"]) for r in reviews] == [
            ("APPROVED", "agentctl-bot")
        ]
        assert srv.failures == []


def test_add_comment(server: GitHubServer, repo: Path) -> None:
    push_branch(server, repo, "feat", {"a.txt": "a\n"})
    pr = create_pr(server, "feat")
    data = run(server, docs.COMMENT, input={"subjectId": pr["id"], "body": "Merged by agentctl"})
    node = data["addComment"]["commentEdge"]["node"]
    assert node["url"].startswith("https://github.com/acme/app/pull/1#issuecomment-")
    assert server.pr(1)["comments"] == ["Merged by agentctl"]
    missing = refused(server, docs.COMMENT, input={"subjectId": "PR_nope", "body": "x"})
    assert error(missing)["type"] == "NOT_FOUND"


# -- merging --------------------------------------------------------------------------


def test_stale_expected_head_refuses_merge(server: GitHubServer, repo: Path) -> None:
    pushed = push_branch(server, repo, "feat", {"a.txt": "a\n"})
    pr = create_pr(server, "feat")
    main_before = server.head(OWNER, NAME, "main")
    moved = server.commit_to_branch(OWNER, NAME, "feat", {"sneaky.txt": "x\n"}, "behind your back")

    exc = refused(
        server,
        docs.MERGE,
        input={"pullRequestId": pr["id"], "mergeMethod": "SQUASH", "expectedHeadOid": pushed},
    )

    assert error(exc)["type"] == "UNPROCESSABLE"
    assert error(exc)["message"] == "Head branch was modified. Review and try the merge again."
    assert server.head(OWNER, NAME, "main") == main_before
    assert server.pr(1)["state"] == "OPEN"
    assert server.pr(1)["head_oid"] == moved  # headRefOid is live
    live = run(server, docs.PULL_REQUEST, owner=OWNER, name=NAME, number=1)
    assert live["repository"]["pullRequest"]["headRefOid"] == moved


def test_squash_merge_changes_main(server: GitHubServer, repo: Path, tmp_path: Path) -> None:
    head = push_branch(server, repo, "feat", {"a.txt": "a\n"})
    pr = create_pr(server, "feat")

    data = run(
        server,
        docs.MERGE,
        input={"pullRequestId": pr["id"], "mergeMethod": "SQUASH", "expectedHeadOid": head},
    )

    merged = data["mergePullRequest"]["pullRequest"]
    assert merged["state"] == "MERGED"
    assert merged["headRefOid"] == head
    new_main = server.head(OWNER, NAME, "main")
    assert merged["mergeCommit"] == {"oid": new_main}
    snapshot = server.pr(1)
    assert (snapshot["state"], snapshot["merge_method"]) == ("MERGED", "SQUASH")
    assert snapshot["merge_commit"] == new_main
    git(repo, "checkout", "-q", "main")
    done = git_http(server, repo, "pull", "-q", "--ff-only", server.remote_url(OWNER, NAME), "main")
    assert done.returncode == 0, done.stderr
    assert (repo / "a.txt").read_text() == "a\n"
    assert (
        git(repo, "log", "-1", "--format=%s%n%P")
        == f"Add a (#1)\n{git(repo, 'rev-parse', 'HEAD~1')}"
    )
    again = refused(server, docs.MERGE, input={"pullRequestId": pr["id"]})
    assert error(again)["message"] == "Pull request is already merged"


def test_merge_commit_has_two_parents(server: GitHubServer, repo: Path) -> None:
    base = server.head(OWNER, NAME, "main")
    head = push_branch(server, repo, "feat", {"a.txt": "a\n"})
    server.commit_to_branch(OWNER, NAME, "main", {"other.txt": "o\n"}, "meanwhile on main")
    moved_base = server.head(OWNER, NAME, "main")
    assert moved_base != base
    pr = create_pr(server, "feat")

    run(server, docs.MERGE, input={"pullRequestId": pr["id"], "mergeMethod": "MERGE"})

    bare = server.git_root / OWNER / f"{NAME}.git"
    merge = server.head(OWNER, NAME, "main")
    assert git(bare, "log", "-1", "--format=%P", str(merge)).split() == [moved_base, head]
    assert git(bare, "show", f"{merge}:other.txt") == "o"
    assert git(bare, "show", f"{merge}:a.txt") == "a"


def test_conflicting_pr_cannot_merge(server: GitHubServer, repo: Path) -> None:
    push_branch(server, repo, "feat", {"README.md": "# mine\n"})
    server.commit_to_branch(OWNER, NAME, "main", {"README.md": "# theirs\n"}, "conflict")
    main_before = server.head(OWNER, NAME, "main")
    pr = create_pr(server, "feat")

    assert pr["mergeable"] == "CONFLICTING"
    exc = refused(server, docs.MERGE, input={"pullRequestId": pr["id"], "mergeMethod": "MERGE"})
    assert error(exc)["message"] == "Pull Request is not mergeable"
    assert server.head(OWNER, NAME, "main") == main_before
    assert server.pr(1)["state"] == "OPEN"


def test_missing_pagination_boundary(server: GitHubServer) -> None:
    query = '{ repository(owner: "acme", name: "app") { pullRequests { totalCount } } }'
    status, _, body = raw(server, query)
    payload = json.loads(body)
    assert status == 200
    assert payload["data"] == {"repository": None}
    assert payload["errors"][0]["type"] == "MISSING_PAGINATION_BOUNDARIES"
    assert payload["errors"][0]["path"] == ["repository", "pullRequests"]
