"""The Linear tracker against the schema-faithful fake: queries, mutations, limits, faults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.config import Config, load_config
from agentctl.errors import (
    EXIT_USAGE,
    MissingKeyError,
    NotFoundError,
    ServiceAuthError,
    ServiceRateLimitedError,
    ServiceRejectedError,
    ServiceUnavailableError,
    UsageError,
)
from agentctl.remote.graphql import GraphQLService
from agentctl.testing.linear_server import LinearServer
from agentctl.trackers import make_tracker
from agentctl.trackers.linear.tracker import RATE, LinearTracker, authorization, classify
from agentctl.workspace import find_workspace
from tests.conftest import Invoke

KEY = "lin_api_test"


class FakeTime:
    """A clock that only moves when the client sleeps: waits are recorded, never slept."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server(linear_schema: Path) -> Iterator[LinearServer]:
    with LinearServer(linear_schema) as running:
        yield running
        assert running.failures == []


def linear_config(root: Path, server: LinearServer, extra: str = "") -> Config:
    (root / "agentctl.toml").write_text(
        f'[tracker]\nkind = "linear"\n[tracker.linear]\nteam = "ENG"\n'
        f'url = "{server.graphql_url}"\n{extra}'
    )
    return load_config(find_workspace(root))


def tracker_for(
    config: Config, clock: FakeTime | None = None, max_retries: int = 3
) -> LinearTracker:
    clock = clock or FakeTime()
    settings = config.settings.tracker.linear
    service = GraphQLService(
        service="Linear",
        url=settings.url,
        authorization=authorization(KEY),
        classify=classify,
        rate_headers=RATE,
        sleep=clock.sleep,
        clock=clock,
        max_retries=max_retries,
    )
    return LinearTracker(settings, service)


@pytest.fixture
def config(workspace: Path, server: LinearServer) -> Config:
    return linear_config(workspace, server)


def test_lists_open_tickets_of_the_team_oldest_first_in_one_query(
    config: Config, server: LinearServer
) -> None:
    server.add_issue("first", "details", labels=["bug"])
    server.add_issue("shipped", state="Done")
    server.add_issue("dropped", state="Canceled")
    server.add_issue("going", state="In Progress")
    server.add_team("OPS", "Operations")
    server.add_issue("elsewhere", team="OPS")
    tracker = tracker_for(config)
    tickets = tracker.list()
    assert [(t.id, t.title, t.state) for t in tickets] == [
        ("ENG-1", "first", "Todo"),
        ("ENG-4", "going", "In Progress"),
    ]
    assert tickets[0].labels == ("bug",) and tickets[0].description == "details"
    assert tickets[0].url.startswith("https://linear.app/") and not tickets[0].closed
    assert tracker.service.requests == 1
    assert [t.id for t in tracker.list(states=["done"])] == ["ENG-2"]  # agentctl's names
    assert [t.id for t in tracker.list(states=["Todo"], labels=["BUG"])] == ["ENG-1"]


def test_a_long_list_is_read_page_by_page(config: Config, server: LinearServer) -> None:
    for n in range(57):
        server.add_issue(f"ticket {n}")
    tracker = tracker_for(config)
    assert [t.id for t in tracker.list()] == [f"ENG-{n}" for n in range(1, 58)]
    assert tracker.service.requests == 2  # 50 a page


def test_the_configured_labels_and_project_narrow_the_list(
    workspace: Path, server: LinearServer
) -> None:
    server.add_issue("a", labels=["agent", "bug"], project="Apollo")
    server.add_issue("b", labels=["agent"])
    server.add_issue("c", labels=["bug"], project="Apollo")
    config = linear_config(workspace, server, 'labels = ["agent"]\nproject = "Apollo"\n')
    assert [t.id for t in tracker_for(config).list()] == ["ENG-1"]


def test_states_map_to_the_teams_names_and_moves_are_idempotent(
    workspace: Path, server: LinearServer
) -> None:
    server.add_issue("a")
    config = linear_config(workspace, server, 'review_state = "In Review"\n')
    tracker = tracker_for(config)
    moved = tracker.set_state("eng-1", "in_review")
    assert moved.state == "In Review" and server.issue("ENG-1")["state"] == "In Review"
    mutations = len(server.mutations)
    tracker.set_state("ENG-1", "In Review")  # already there: nothing sent
    assert len(server.mutations) == mutations
    team_queries = [r for r in server.requests if r.operation == "AgentctlTeam"]
    assert len(team_queries) == 1  # the team's states are asked once
    with pytest.raises(UsageError, match="no workflow state 'Shipping'") as caught:
        tracker.set_state("ENG-1", "Shipping")
    assert "Backlog, Todo, In Progress" in str(caught.value.hint)
    assert tracker.set_state("ENG-1", "done").closed


def test_get_comment_and_link_once(config: Config, server: LinearServer) -> None:
    server.add_issue("a")
    tracker = tracker_for(config)
    tracker.comment("ENG-1", "agentctl started")
    url = "https://github.com/acme/calc/pull/4"
    tracker.link("ENG-1", url, "PR #4")
    tracker.link("ENG-1", url, "PR #4")
    assert tracker.get("ENG-1").comments == ("agentctl started",)
    assert server.issue("ENG-1")["attachments"] == [{"url": url, "title": "PR #4"}]
    assert tracker.record("ENG-1")["links"] == [{"url": url, "title": "PR #4"}]
    with pytest.raises(NotFoundError, match="no Linear issue 'ENG-99'"):
        tracker.get("ENG-99")


def test_requests_slow_down_as_the_remaining_budget_falls(
    config: Config, server: LinearServer
) -> None:
    clock = FakeTime()
    tracker = tracker_for(config, clock)
    reset_ms = int((clock.now + 300) * 1000)
    server.set_rate_limit(limit=1000, remaining=500, reset_ms=reset_ms)
    tracker.list()
    tracker.list()
    assert clock.sleeps == []  # plenty left: full speed
    server.set_rate_limit(remaining=60)
    tracker.list()  # the reply says 59 left
    tracker.list()
    server.set_rate_limit(remaining=6)
    tracker.list()
    tracker.list()
    assert len(clock.sleeps) == 3 and clock.sleeps == sorted(clock.sleeps)
    assert clock.sleeps[0] > 4 and clock.sleeps[-1] > 40  # spread over what is left


def test_ratelimited_is_retried_after_the_wait_the_server_asked(
    config: Config, server: LinearServer
) -> None:
    server.add_issue("a")
    clock = FakeTime()
    tracker = tracker_for(config, clock)
    server.inject("ratelimited")
    assert [t.id for t in tracker.list()] == ["ENG-1"]
    assert clock.sleeps == [1.0] and tracker.service.requests == 2


def test_ratelimited_for_good_stops_after_a_bounded_number_of_tries(
    config: Config, server: LinearServer
) -> None:
    clock = FakeTime()
    tracker = tracker_for(config, clock)
    server.inject("ratelimited", times=10)
    with pytest.raises(ServiceRateLimitedError, match="Linear: rate limited"):
        tracker.list()
    assert tracker.service.requests == 4 and len(clock.sleeps) == 3


def test_a_permanent_error_is_reported_once_and_not_retried(
    config: Config, server: LinearServer
) -> None:
    server.add_issue("a")
    clock = FakeTime()
    tracker = tracker_for(config, clock)
    server.inject("invalid_input")
    with pytest.raises(ServiceRejectedError) as caught:
        tracker.comment("ENG-1", "hello")
    assert not isinstance(caught.value, ServiceUnavailableError)
    assert len(server.requests) == 1 and clock.sleeps == []
    assert server.issue("ENG-1")["comments"] == []


def test_a_refused_key_is_one_line_and_a_usage_exit(config: Config, server: LinearServer) -> None:
    clock = FakeTime()
    tracker = tracker_for(config, clock)
    server.inject("auth")
    with pytest.raises(ServiceAuthError) as caught:
        tracker.list()
    error = caught.value
    assert error.exit_code == EXIT_USAGE and error.status == 401
    assert "\n" not in str(error) and KEY not in str(error)
    assert "api_key_env" in str(error.hint)
    assert len(server.requests) == 1 and clock.sleeps == []


def test_a_server_error_is_retried_for_reads_but_never_for_writes(
    config: Config, server: LinearServer
) -> None:
    server.add_issue("a")
    clock = FakeTime()
    tracker = tracker_for(config, clock)
    tracker.get("ENG-1")
    server.inject("internal")
    assert tracker.list()  # a read: tried again
    assert clock.sleeps == [0.5]
    server.inject("internal")
    with pytest.raises(ServiceUnavailableError, match="HTTP 500"):
        tracker.comment("ENG-1", "once")  # a write may have landed: not sent twice
    assert len(server.mutations) == 1


def test_an_unreachable_endpoint_is_a_clear_bounded_failure(config: Config) -> None:
    settings = config.settings.tracker.linear
    clock = FakeTime()
    service = GraphQLService(
        service="Linear",
        url="http://127.0.0.1:9/graphql",
        authorization=KEY,
        classify=classify,
        rate_headers=RATE,
        sleep=clock.sleep,
        clock=clock,
    )
    with pytest.raises(
        ServiceUnavailableError, match=r"cannot reach http://127\.0\.0\.1:9"
    ) as caught:
        LinearTracker(settings, service).list()
    assert caught.value.hint and "url" in caught.value.hint
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_a_missing_key_names_the_variable(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINEAR_API_KEY", raising=False)
    with pytest.raises(MissingKeyError, match="LINEAR_API_KEY is not set"):
        make_tracker(config)


def test_the_tickets_command_lists_and_shows_linear_issues(
    workspace: Path, server: LinearServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    linear_config(workspace, server)
    server.add_issue("Fix the login", "It fails on Safari.", labels=["bug"])
    server.add_issue("Old", state="Done")
    server.add_comment("ENG-1", "seen it too")
    monkeypatch.setenv("LINEAR_API_KEY", KEY)
    listed = cli("tickets", "list")
    assert listed.exit_code == 0, listed.output
    assert "ENG-1" in listed.output and "Fix the login" in listed.output
    assert "ENG-2" not in listed.output
    done = cli("tickets", "list", "--state", "done")
    assert "ENG-2" in done.output and "ENG-1" not in done.output
    shown = cli("tickets", "show", "eng-1")
    assert shown.exit_code == 0, shown.output
    assert "It fails on Safari." in shown.output and "seen it too" in shown.output
    added = cli("tickets", "add", "New one", "-d", "made from the CLI")
    assert added.exit_code == 0, added.output
    assert "added ENG-3: New one" in added.output
    assert server.issue("ENG-3")["state"] == "Todo"
    assert server.issue("ENG-3")["description"] == "made from the CLI"
    monkeypatch.setenv("LINEAR_API_KEY", "lin_api_wrong")
    refused = cli("tickets", "list")
    assert refused.exit_code == EXIT_USAGE
    assert "Linear: the API key was refused" in refused.output
    assert "Traceback" not in refused.output


def test_only_pipelines_and_the_orchestrator_get_the_tokens(config: Config) -> None:
    from agentctl.agent.env import agent_env
    from agentctl.keystore import service_keys
    from agentctl.tools.env import tool_env

    environ = {"PATH": "/bin", "LINEAR_API_KEY": KEY, "GITHUB_TOKEN": "ghp_x"}
    assert service_keys(config) == ["LINEAR_API_KEY"]  # handed to a pipeline through a pipe
    assert "LINEAR_API_KEY" not in agent_env(environ)  # never in any child's environment
    assert set(tool_env((), environ)) == {"PATH"}  # the commands it runs


def test_an_oauth_token_goes_as_bearer_and_a_personal_key_bare(
    workspace: Path, linear_schema: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert authorization("lin_api_abc") == "lin_api_abc"
    assert authorization("oauth-token") == "Bearer oauth-token"
    assert authorization("Bearer oauth-token") == "Bearer oauth-token"
    with LinearServer(linear_schema, oauth_token="lin_oauth_xyz") as server:
        server.add_issue("via OAuth")
        config = linear_config(workspace, server)
        monkeypatch.setenv("LINEAR_API_KEY", "lin_oauth_xyz")
        assert [t.title for t in make_tracker(config).list()] == ["via OAuth"]
        assert server.requests[-1].headers["authorization"] == "Bearer lin_oauth_xyz"


def test_a_403_that_says_rate_limit_is_a_rate_limit_even_without_retry_after(
    config: Config,
) -> None:
    service = tracker_for(config).service
    limited = service._http_error(403, "You have exceeded a secondary rate limit.")
    assert isinstance(limited, ServiceRateLimitedError) and limited.retry_after == 120.0
    forbidden = service._http_error(403, "Resource not accessible by integration")
    assert isinstance(forbidden, ServiceAuthError)
