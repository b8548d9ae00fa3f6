"""The fake Linear answers agentctl's documents, over gql, as WIRE.md §3 says Linear does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXTransport

from agentctl.testing.linear_server import AUTH_BODY, LinearServer
from agentctl.trackers.linear import documents

KEY = "lin_api_test"
OPEN = {"state": {"type": {"nin": ["completed", "canceled", "duplicate"]}}}
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def server(linear_schema: Path) -> Iterator[LinearServer]:
    with LinearServer(linear_schema, oauth_token="lin_oauth_token") as running:
        yield running
        assert running.failures == []


def connect(server: LinearServer, auth: str = KEY) -> tuple[Client, HTTPXTransport]:
    # verify=False: no TLS on loopback, and loading the CA bundle costs ~0.1 s per client.
    transport = HTTPXTransport(
        url=server.graphql_url, headers={"Authorization": auth}, verify=False
    )
    return Client(transport=transport), transport


def run(server: LinearServer, document: str, auth: str = KEY, **variables: Any) -> Any:
    client, _ = connect(server, auth)
    return client.execute(GraphQLRequest(document, variable_values=variables))


def failing(server: LinearServer, document: str, **variables: Any) -> TransportQueryError:
    with pytest.raises(TransportQueryError) as caught:
        run(server, document, **variables)
    return caught.value


def post(server: LinearServer, body: dict[str, Any], auth: str = KEY) -> httpx.Response:
    """The raw reply, for status codes and bodies gql does not expose."""
    return httpx.post(server.graphql_url, json=body, headers={"Authorization": auth}, verify=False)


def states(server: LinearServer) -> dict[str, str]:
    return {state["name"]: state["id"] for state in server.team()["states"]}


def test_lists_by_team_key_and_state_name_across_pages(server: LinearServer) -> None:
    for n in range(5):
        server.add_issue(f"Todo {n}")
    server.add_issue("Started", state="In Progress")
    server.add_team("OPS", "Operations")
    server.add_issue("Other team", team="OPS")
    wanted = {"team": {"key": {"eq": "ENG"}}, "state": {"name": {"eq": "Todo"}}}

    seen, after, pages = [], None, 0
    while True:
        page = run(server, documents.ISSUES, filter=wanted, first=2, after=after)["issues"]
        pages += 1
        seen += [node["identifier"] for node in page["nodes"]]
        assert len(page["nodes"]) <= 2
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    assert seen == ["ENG-1", "ENG-2", "ENG-3", "ENG-4", "ENG-5"]
    assert pages == 3


def test_a_cursor_survives_its_issue_leaving_the_filter(server: LinearServer) -> None:
    for n in range(4):
        server.add_issue(f"Todo {n}")
    todo = {"state": {"name": {"eq": "Todo"}}}
    first = run(server, documents.ISSUES, filter=todo, first=2)["issues"]
    server.set_state("ENG-2", "In Progress")  # a person picks up the last issue on the page

    after = first["pageInfo"]["endCursor"]
    rest = run(server, documents.ISSUES, filter=todo, first=2, after=after)["issues"]

    assert [n["identifier"] for n in rest["nodes"]] == ["ENG-3", "ENG-4"]


def test_issue_fields_follow_linear(server: LinearServer) -> None:
    made = server.add_issue("Fix the login page!", "Steps", labels=["bug"], priority=2)
    node = run(server, documents.ISSUES, first=10)["issues"]["nodes"][0]

    assert node["id"] == made["id"]
    assert node["identifier"] == "ENG-1"
    assert node["number"] == 1
    assert node["url"] == "https://linear.app/acme/issue/ENG-1/fix-the-login-page"
    assert node["branchName"] == "eng-1-fix-the-login-page"
    assert node["priority"] == 2
    assert node["description"] == "Steps"
    assert node["createdAt"].endswith("Z")
    assert node["state"]["name"] == "Todo"
    assert node["state"]["type"] == "unstarted"
    assert [label["name"] for label in node["labels"]["nodes"]] == ["bug"]
    assert node["team"]["key"] == "ENG"
    raw = post(server, {"query": "{ issues { nodes { number priority } } }"}).text
    assert '"number": 1,' in raw or '"number":1,' in raw  # a JavaScript number, not 1.0


def test_label_filter_with_some(server: LinearServer) -> None:
    server.add_issue("Crash", labels=["bug", "p1"])
    server.add_issue("Feature", labels=["feature"])
    server.add_issue("Plain")
    some_bug = {"labels": {"some": {"name": {"eqIgnoreCase": "BUG"}}}}
    direct = {"labels": {"name": {"in": ["feature"]}}}
    neither = {"labels": {"null": True}}

    def titles(flt: dict[str, Any]) -> list[str]:
        nodes = run(server, documents.ISSUES, filter=flt, first=50)["issues"]["nodes"]
        return [node["title"] for node in nodes]

    assert titles(some_bug) == ["Crash"]
    assert titles(direct) == ["Feature"]
    assert titles(neither) == ["Plain"]
    assert titles({"or": [some_bug, direct]}) == ["Crash", "Feature"]


def test_open_ticket_filter_leaves_out_finished_states(server: LinearServer) -> None:
    for name in ("Backlog", "Todo", "In Progress", "In Review", "Done", "Canceled", "Duplicate"):
        server.add_issue(f"In {name}", state=name)

    nodes = run(server, documents.ISSUES, filter=OPEN, first=50)["issues"]["nodes"]

    assert [node["state"]["name"] for node in nodes] == [
        "Backlog",
        "Todo",
        "In Progress",
        "In Review",
    ]


def test_issue_by_identifier_carries_comments_and_attachments(server: LinearServer) -> None:
    made = server.add_issue("Fix X")
    server.add_comment("ENG-1", "first")
    server.add_attachment("ENG-1", "https://github.com/acme/app/pull/7", "PR #7")

    issue = run(server, documents.ISSUE, id="eng-1")["issue"]
    by_id = run(server, documents.ISSUE, id=made["id"])["issue"]

    assert issue["identifier"] == "ENG-1"
    assert [comment["body"] for comment in issue["comments"]["nodes"]] == ["first"]
    assert issue["attachments"]["nodes"][0]["url"] == "https://github.com/acme/app/pull/7"
    assert issue["attachments"]["nodes"][0]["title"] == "PR #7"
    assert by_id == issue


def test_unknown_issue_and_state_are_invalid_input(server: LinearServer) -> None:
    server.add_issue("Fix X")

    missing = failing(server, documents.ISSUE, id="ENG-99")
    bad_state = failing(server, documents.SET_STATE, id="ENG-1", stateId="nope")

    for error, entity in ((missing, "Issue"), (bad_state, "WorkflowState")):
        assert error.errors is not None
        first = error.errors[0]
        assert first["message"] == f"Entity not found: {entity}"
        assert first["extensions"]["type"] == "invalid input"
        assert first["extensions"]["code"] == "INVALID_INPUT"
        assert first["extensions"]["userError"] is True
        assert first["path"]
        assert error.data is None
    assert server.requests[-1].status == 200
    assert server.issue("ENG-1")["state"] == "Todo"


def test_team_document_returns_the_workflow_states(server: LinearServer) -> None:
    teams = run(server, documents.TEAM, key="ENG")["teams"]["nodes"]

    assert len(teams) == 1
    assert teams[0]["name"] == "Engineering"
    got = [(s["name"], s["type"], s["position"]) for s in teams[0]["states"]["nodes"]]
    assert got == [
        ("Backlog", "backlog", 0),
        ("Todo", "unstarted", 1),
        ("In Progress", "started", 2),
        ("In Review", "started", 3),
        ("Done", "completed", 4),
        ("Canceled", "canceled", 5),
        ("Duplicate", "duplicate", 6),
    ]
    assert run(server, documents.TEAM, key="NOPE")["teams"]["nodes"] == []


def test_set_state_moves_the_issue(server: LinearServer) -> None:
    server.add_issue("Fix X")
    ids = states(server)

    done = run(server, documents.SET_STATE, id="ENG-1", stateId=ids["Done"])["issueUpdate"]

    assert done["success"] is True
    assert done["issue"]["state"] == {"id": ids["Done"], "name": "Done", "type": "completed"}
    assert server.issue("ENG-1")["state"] == "Done"
    assert server.issue("ENG-1")["completedAt"] is not None
    run(server, documents.SET_STATE, id="ENG-1", stateId=ids["Todo"])
    assert server.issue("ENG-1")["completedAt"] is None


def test_a_state_of_another_team_is_refused(server: LinearServer) -> None:
    server.add_issue("Fix X")
    ops = server.add_team("OPS", "Operations")
    done = next(s["id"] for s in ops["states"] if s["name"] == "Done")

    error = failing(server, documents.SET_STATE, id="ENG-1", stateId=done)

    assert error.errors is not None
    assert error.errors[0]["extensions"]["code"] == "INVALID_INPUT"
    assert server.issue("ENG-1")["state"] == "Todo"


def test_comment_is_added(server: LinearServer) -> None:
    server.add_issue("Fix X")

    made = run(server, documents.COMMENT, issueId="ENG-1", body="Working on it")["commentCreate"]

    assert made["success"] is True
    assert made["comment"]["id"]
    assert server.issue("ENG-1")["comments"] == ["Working on it"]


def test_linking_a_url_twice_keeps_one_attachment(server: LinearServer) -> None:
    server.add_issue("Fix X")
    url = "https://github.com/acme/app/pull/7"

    once = run(server, documents.LINK, issueId="ENG-1", url=url, title="PR #7")
    twice = run(server, documents.LINK, issueId="ENG-1", url=url, title="PR #7 (merged)")
    run(server, documents.LINK, issueId="ENG-1", url=url + "1", title="Other")

    assert (
        once["attachmentLinkURL"]["attachment"]["id"]
        == (twice["attachmentLinkURL"]["attachment"]["id"])
    )
    assert server.issue("ENG-1")["attachments"] == [
        {"url": url, "title": "PR #7 (merged)"},
        {"url": url + "1", "title": "Other"},
    ]


def test_issue_create_and_attachment_create(server: LinearServer) -> None:
    team = server.team()
    create = """
    mutation Create($input: IssueCreateInput!) {
      issueCreate(input: $input) { success lastSyncId issue { identifier state { name } } }
    }"""
    attach = """
    mutation Attach($input: AttachmentCreateInput!) {
      attachmentCreate(input: $input) { success attachment { id title subtitle } }
    }"""

    made = run(server, create, input={"teamId": team["id"], "title": "New"})["issueCreate"]
    url = "https://example.com/log"
    first = run(server, attach, input={"issueId": "ENG-1", "url": url, "title": "Log"})
    again = {"issueId": "ENG-1", "url": url, "title": "Log 2", "subtitle": "rerun"}
    second = run(server, attach, input=again)["attachmentCreate"]["attachment"]

    assert made["success"] is True
    assert made["issue"] == {"identifier": "ENG-1", "state": {"name": "Backlog"}}
    assert second["id"] == first["attachmentCreate"]["attachment"]["id"]
    assert (second["title"], second["subtitle"]) == ("Log 2", "rerun")
    assert server.issue("ENG-1")["attachments"] == [{"url": url, "title": "Log 2"}]


def test_unknown_field_fails_validation_with_http_400(server: LinearServer) -> None:
    bad = "query { viewer { id nickname } }"

    error = failing(server, bad)
    raw = post(server, {"query": bad})

    assert error.errors is not None
    assert error.errors[0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert server.requests[0].status == 400
    assert raw.status_code == 400
    body = raw.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"] == {
        "code": "GRAPHQL_VALIDATION_FAILED",
        "type": "graphql error",
        "userError": False,
    }
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 21}]


def test_missing_required_variable_is_a_400(server: LinearServer) -> None:
    raw = post(server, {"query": documents.ISSUE, "variables": {}})

    assert raw.status_code == 400
    assert "data" not in raw.json()


def test_wrong_key_is_an_authentication_error(server: LinearServer) -> None:
    with pytest.raises(TransportQueryError) as caught:
        run(server, documents.VIEWER, auth="lin_api_wrong")
    raw = post(server, {"query": documents.VIEWER}, auth="")

    assert caught.value.errors is not None
    assert caught.value.errors[0]["extensions"]["code"] == "AUTHENTICATION_ERROR"
    assert caught.value.errors[0]["extensions"]["type"] == "authentication error"
    assert server.requests[0].status == 400
    assert (raw.status_code, raw.json()) == (400, AUTH_BODY)


@pytest.mark.parametrize(
    ("auth", "accepted"),
    [
        ("Bearer lin_oauth_token", True),
        ("bearer lin_oauth_token", True),
        (f"Bearer {KEY}", True),
        (KEY, True),
        ("lin_oauth_token", False),  # a token needs its Bearer
        (f"Bearer {KEY}x", False),
    ],
)
def test_personal_key_bare_and_oauth_bearer(
    server: LinearServer, auth: str, accepted: bool
) -> None:
    raw = post(server, {"query": documents.VIEWER}, auth=auth)

    assert raw.status_code == (200 if accepted else 400)
    assert ("data" in raw.json()) is accepted


def test_auth_status_is_configurable(linear_schema: Path) -> None:
    with LinearServer(linear_schema, api_key="lin_api_other", auth_status=401) as server:
        assert post(server, {"query": documents.VIEWER}).status_code == 401
        assert post(server, {"query": documents.VIEWER}, auth="lin_api_other").status_code == 200


FAULTS = {
    "ratelimited": (400, "RATELIMITED", "ratelimited"),
    "invalid_input": (200, "INVALID_INPUT", "invalid input"),
    "auth": (401, "AUTHENTICATION_ERROR", "authentication error"),
    "internal": (500, "INTERNAL_SERVER_ERROR", "internal error"),
    "forbidden": (200, "FORBIDDEN", "forbidden"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_has_its_status_and_body(server: LinearServer, fault: str) -> None:
    status, code, kind = FAULTS[fault]
    server.inject(fault)

    raw = post(server, {"query": documents.VIEWER})
    after = post(server, {"query": documents.VIEWER})

    assert raw.status_code == status
    extensions = raw.json()["errors"][0]["extensions"]
    assert (extensions["code"], extensions["type"]) == (code, kind)
    assert after.status_code == 200  # one injected, one consumed
    assert "errors" not in after.json()


def test_rate_limited_fault_through_gql(server: LinearServer) -> None:
    client, transport = connect(server)
    server.inject("ratelimited")

    with pytest.raises(TransportQueryError) as caught:
        client.execute(GraphQLRequest(documents.VIEWER))

    assert caught.value.errors is not None
    assert caught.value.errors[0]["extensions"]["code"] == "RATELIMITED"
    assert caught.value.errors[0]["extensions"]["statusCode"] == 429
    assert transport.response_headers is not None
    assert transport.response_headers["x-ratelimit-requests-remaining"] == "0"
    assert transport.response_headers["retry-after"] == "1"
    assert server.requests[0].status == 400


def test_rate_limit_headers_count_down(linear_schema: Path) -> None:
    with LinearServer(linear_schema, clock=lambda: NOW) as server:
        client, transport = connect(server)
        seen = []
        for _ in range(3):
            client.execute(GraphQLRequest(documents.VIEWER))
            assert transport.response_headers is not None
            seen.append(dict(transport.response_headers))

    assert [h["x-ratelimit-requests-remaining"] for h in seen] == ["1499", "1498", "1497"]
    assert seen[0]["x-ratelimit-requests-limit"] == "1500"
    reset_ms = int(NOW.timestamp() * 1000) + 3_600_000
    assert seen[0]["x-ratelimit-requests-reset"] == str(reset_ms)
    for name in ("limit", "remaining", "reset"):
        assert int(seen[0][f"x-ratelimit-complexity-{name}"]) > 0
    assert int(seen[0]["x-complexity"]) >= 1


def test_an_empty_budget_is_rate_limited(server: LinearServer) -> None:
    server.set_rate_limit(limit=10, remaining=1, reset_ms=4_102_444_800_000)

    last_allowed = post(server, {"query": documents.VIEWER})
    refused = post(server, {"query": documents.VIEWER})

    assert last_allowed.status_code == 200
    assert last_allowed.headers["x-ratelimit-requests-remaining"] == "0"
    assert last_allowed.headers["x-ratelimit-requests-limit"] == "10"
    assert last_allowed.headers["x-ratelimit-requests-reset"] == "4102444800000"
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATELIMITED"
    assert refused.headers["x-ratelimit-requests-remaining"] == "0"


def test_a_refused_request_leaves_the_injected_fault_queued(server: LinearServer) -> None:
    server.inject("internal")

    bad_key = post(server, {"query": documents.VIEWER}, auth="lin_api_wrong")
    server.set_rate_limit(remaining=0)
    over_budget = post(server, {"query": documents.VIEWER})
    server.set_rate_limit(remaining=10)
    faulted = post(server, {"query": documents.VIEWER})
    after = post(server, {"query": documents.VIEWER})

    assert (bad_key.status_code, bad_key.json()) == (400, AUTH_BODY)
    assert over_budget.json()["errors"][0]["extensions"]["code"] == "RATELIMITED"
    assert faulted.status_code == 500
    assert faulted.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert after.status_code == 200


def test_refused_requests_are_charged_too(server: LinearServer) -> None:
    server.set_rate_limit(remaining=5)

    refused = post(server, {"query": documents.VIEWER}, auth="lin_api_wrong")
    served = post(server, {"query": documents.VIEWER})

    assert refused.headers["x-ratelimit-requests-remaining"] == "4"
    assert served.headers["x-ratelimit-requests-remaining"] == "3"


def test_a_fault_header_replaces_the_budget_header(server: LinearServer) -> None:
    server.inject("ratelimited")

    limited = post(server, {"query": documents.VIEWER})
    served = post(server, {"query": documents.VIEWER})

    assert limited.headers.get_list("x-ratelimit-requests-remaining") == ["0"]
    assert served.headers.get_list("x-ratelimit-requests-remaining") == ["1498"]
    for reply in (limited, served):
        names = [name.lower() for name, _ in reply.headers.multi_items()]
        assert len(names) == len(set(names)), names


def test_complexity_is_charged_only_for_documents_that_ran(server: LinearServer) -> None:
    ran = post(server, {"query": documents.VIEWER})
    invalid = post(server, {"query": "{ viewer { nope } }"})
    again = post(server, {"query": documents.VIEWER})

    cost = int(ran.headers["x-complexity"])
    left = int(ran.headers["x-ratelimit-complexity-remaining"])
    assert cost >= 1
    assert (invalid.status_code, invalid.headers["x-complexity"]) == (400, "0")
    assert int(invalid.headers["x-ratelimit-complexity-remaining"]) == left
    assert int(again.headers["x-ratelimit-complexity-remaining"]) == left - cost
    assert server.requests[0].document is not None
    assert server.requests[1].document is None


def test_mutations_are_recorded_apart(server: LinearServer) -> None:
    server.add_issue("Fix X")
    run(server, documents.ISSUE, id="ENG-1")
    run(server, documents.COMMENT, issueId="ENG-1", body="hi")

    assert len(server.requests) == 2
    assert [m.operation for m in server.mutations] == ["AgentctlComment"]
    assert server.mutations[0].variables == {"issueId": "ENG-1", "body": "hi"}


def test_unmodelled_fields_answer_blank_and_unknown_filters_are_noted(
    linear_schema: Path,
) -> None:
    with LinearServer(linear_schema) as server:
        server.add_issue("Fix X", project="Launch")
        query = """{ issues(filter: {cycle: {number: {eq: 1}}}) {
          nodes { sortOrder children { nodes { id } } assignee { id } project { name } } } }"""
        raw = post(server, {"query": query})

        nodes = raw.json()["data"]["issues"]["nodes"]
        assert nodes == [
            {
                "sortOrder": 0,
                "children": {"nodes": []},
                "assignee": None,
                "project": {"name": "Launch"},
            }
        ]
        assert server.failures == ["IssueFilter.cycle: filter field not supported by the fake"]
        post(server, {"query": "{ organization { id } }"})
        assert server.failures[1:] == ["Query.organization: not modelled by the fake"]


def test_issue_helper_refuses_unknown_refs(server: LinearServer) -> None:
    with pytest.raises(KeyError):
        server.issue("ENG-1")
    with pytest.raises(ValueError, match="no state"):
        server.add_issue("x", state="Shipped")


def test_json_bodies_are_what_gql_reads(server: LinearServer) -> None:
    """gql sees a JSON body with ``data`` on success: not a protocol error."""
    raw = post(server, {"query": documents.VIEWER})

    assert raw.headers["content-type"].startswith("application/json")
    assert json.loads(raw.content)["data"]["viewer"]["email"] == server.viewer["email"]
